//! Write the hostile photos the tests generate into a folder, for the memory benchmark
//! (docs/benchmarks.md): `huge.png` (12000x12000, mostly uniform, one face), `crowd.png` (400
//! faces tiled, 1800x1800) and `ordinary.jpg` (one ordinary photo), from the public data set.
//!
//! ```sh
//! cargo run --release -p rollcall-recognizer --example hostile_photos -- ../shared/data /tmp/hostile
//! /usr/bin/time -v rollcall identify /tmp/hostile/huge.png
//! ```

#[path = "../tests/common/hostile.rs"]
mod hostile;

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(data), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: hostile_photos DATA_DIR OUT_DIR".into());
    };
    let (data, out) = (PathBuf::from(data), PathBuf::from(out));
    std::fs::create_dir_all(&out)?;
    let huge = hostile::png_bytes(&hostile::huge_photo(&data));
    std::fs::write(out.join("huge.png"), &huge)?;
    println!("{} ({} bytes)", out.join("huge.png").display(), huge.len());
    let crowd = hostile::png_bytes(&hostile::crowd_photo(&data));
    std::fs::write(out.join("crowd.png"), &crowd)?;
    println!(
        "{} ({} bytes)",
        out.join("crowd.png").display(),
        crowd.len()
    );
    std::fs::copy(
        data.join("examples/barack_obama/obama1.jpg"),
        out.join("ordinary.jpg"),
    )?;
    println!("{}", out.join("ordinary.jpg").display());
    Ok(())
}
