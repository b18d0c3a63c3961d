//! Detect, align and embed every face in the images given on the command line.
//!
//! ```sh
//! rollcall models fetch
//! cargo run -p rollcall-recognizer --example detect_faces -- photo.jpg
//! ```

use rollcall_models::ModelCache;
use rollcall_recognizer::vision::{load_image, FacePipeline, PipelineOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pipeline = FacePipeline::load(&ModelCache::from_env()?, PipelineOptions::default())?;
    for path in std::env::args().skip(1) {
        let image = match load_image(path.as_ref()) {
            Ok(image) => image,
            Err(e) => {
                eprintln!("{e}");
                continue;
            }
        };
        let (faces, times) = pipeline.faces(&image)?;
        println!(
            "{path}: {} face(s), detect {:.1} ms, embed {:.1} ms",
            faces.len(),
            times.detect.as_secs_f64() * 1e3,
            times.embed.as_secs_f64() * 1e3
        );
        for face in faces {
            let d = &face.detection;
            println!(
                "  box ({:.1},{:.1})-({:.1},{:.1}) score {:.3} landmarks {:?}",
                d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2, d.score, d.landmarks
            );
        }
    }
    Ok(())
}
