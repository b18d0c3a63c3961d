//! List the files rollcall needs on this machine and whether the cache has them.
//!
//! ```text
//! cargo run -p rollcall-models --example list_models            # uses $ROLLCALL_HOME or ~/.local/share/rollcall
//! cargo run -p rollcall-models --example list_models -- /some/cache
//! ```
//!
//! Never touches the network; `rollcall models fetch` fills the cache.

use rollcall_models::{Manifest, ModelCache};

fn main() -> Result<(), rollcall_models::ModelsError> {
    let cache = match std::env::args_os().nth(1) {
        Some(root) => ModelCache::at(root),
        None => ModelCache::from_env()?,
    };
    let manifest = Manifest::embedded();
    println!("cache: {}", cache.root().display());
    for status in cache.status(false) {
        let file = manifest.file(&status.name, status.kind).expect("listed");
        let package = manifest.package(&file.package).expect("declared");
        println!(
            "{:<8} {:<26} {:<8} {}@{} ({})",
            status.kind.as_str(),
            status.name,
            if status.present { "present" } else { "missing" },
            package.name,
            package.version,
            file.role,
        );
    }
    match cache.locate_onnxruntime() {
        Ok(lib) => println!("onnxruntime: {} (from {})", lib.path.display(), lib.source),
        Err(e) => println!("onnxruntime: {e}"),
    }
    Ok(())
}
