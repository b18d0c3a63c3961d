//! The recognition service over a local object store: every clip found in OBJECTS (as written by
//! `rollcall-edge`'s `capture_to_dir` example or `rollcall session --objects DIR`) is handed as a
//! "clip created" event to an autoscaling worker pool running the recognition handler; results
//! are read back from the in-process queue.
//!
//! ```sh
//! cargo run --release -p rollcall-recognizer --example recognition_service -- OBJECTS people.db
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rollcall_models::ModelCache;
use rollcall_protocol::events::clip_event_from_key;
use rollcall_protocol::results::{LocalResultQueue, ResultQueue};
use rollcall_protocol::store::LocalClipStore;
use rollcall_recognizer::clip::ClipAnalyzer;
use rollcall_recognizer::directory::sqlite::SqliteDirectory;
use rollcall_recognizer::handler::{HandlerConfig, RecognitionHandler};
use rollcall_recognizer::pool::{default_max_workers, PoolConfig, WorkerPool};
use rollcall_recognizer::vision::{FacePipeline, PipelineOptions};

/// Keys of every `<key>.json` + `<key>` pair under `root`.
fn stored_clips(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            stored_clips(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "h264") {
            if let Ok(key) = path.strip_prefix(root) {
                out.push(key.to_string_lossy().into_owned());
            }
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [objects, db] = args.as_slice() else {
        eprintln!("usage: recognition_service OBJECTS_DIR PEOPLE_DB");
        std::process::exit(2);
    };
    let workers = default_max_workers();
    let mut options = PipelineOptions::default();
    options.runtime.sessions_per_model = workers;
    let pipeline = Arc::new(FacePipeline::load(&ModelCache::from_env()?, options)?);
    let store = Arc::new(LocalClipStore::new(objects));
    let queue = Arc::new(LocalResultQueue::new());
    let handler = Arc::new(RecognitionHandler::new(
        Arc::clone(&store),
        Arc::new(SqliteDirectory::open(db)?),
        Arc::clone(&queue),
        ClipAnalyzer::new(pipeline),
        HandlerConfig::default(),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let io = runtime.handle().clone();
    let pool = WorkerPool::start(PoolConfig::with_max_workers(workers), move |event| {
        if let Err(e) = io.block_on(handler.handle(event)) {
            eprintln!("{e}");
        }
    });

    let mut keys = Vec::new();
    stored_clips(objects, objects, &mut keys)?;
    keys.sort();
    let mut devices = std::collections::BTreeSet::new();
    for key in &keys {
        // The key names the clip (and routes its result); the handler reads the metadata.
        let event = match clip_event_from_key(key, None) {
            Ok(event) => event,
            Err(refused) => {
                eprintln!("{refused}: skipped");
                continue;
            }
        };
        devices.insert(event.meta.device_id.clone());
        pool.submit(event);
    }
    println!("{} clips submitted; pool {:?}", keys.len(), pool.stats());
    pool.wait_idle(Duration::from_secs(600));
    println!("pool after: {:?}", pool.stats());
    for device in devices {
        let results = runtime.block_on(queue.receive(&device, usize::MAX, Duration::ZERO))?;
        for delivery in results {
            let r = delivery.result;
            let names: Vec<String> = r
                .people
                .iter()
                .map(|p| format!("{} {:.2}", p.name, p.similarity))
                .collect();
            println!(
                "{}: [{}] {} unknown, {:.0} ms{}",
                r.clip_id,
                names.join(", "),
                r.unknown_faces,
                r.timings.total_ms,
                r.error.map(|e| format!(", error: {e}")).unwrap_or_default()
            );
        }
    }
    pool.shutdown();
    Ok(())
}
