//! The recognition service on real clips: clips cut by the edge's segmenter from the videos in
//! `$ROLLCALL_DATA/videos/`, stored in the local object store, handled by the recognition
//! function against an in-memory SQLite directory enrolled from `examples/` photos, results
//! through the in-process queue to the edge's receiver; and a whole session through a saturated
//! one-worker pool.
//!
//! Skipped, with the reason printed, without the data or the models (`rollcall models fetch`);
//! `ROLLCALL_REQUIRE_DATA=1` makes that a failure.

mod common;
/// Data, models and skip rules shared with the recognizer's tests.
#[path = "../../recognizer-lib/tests/common/mod.rs"]
mod shared;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::runtime;
use rollcall_edge::latency::Stage;
use rollcall_edge::receive::ResultReceiver;
use rollcall_edge::segment::{ClipSegmenter, EncodedClip, SegmentConfig};
use rollcall_edge::session::{run_session, SessionConfig, SessionProbe};
use rollcall_edge::source::{now_ns, open_source, Pace, SourceOptions, SourceSpec};
use rollcall_edge::upload::{ClipSink, LocalDirSink};
use rollcall_protocol::results::{LocalResultQueue, ResultQueue};
use rollcall_protocol::store::{ClipStore, LocalClipStore};
use rollcall_protocol::wire::{ClipEvent, RecognitionResult};
use rollcall_recognizer::clip::ClipAnalyzer;
use rollcall_recognizer::directory::sqlite::SqliteDirectory;
use rollcall_recognizer::directory::{PeopleDirectory, PersonRecord};
use rollcall_recognizer::enrollment::{embed_person_photos, recalibrate, store_enrollment};
use rollcall_recognizer::handler::{HandlerConfig, HandlerError, RecognitionHandler};
use rollcall_recognizer::pool::{PoolConfig, WorkerPool};
use rollcall_recognizer::vision::FacePipeline;
use shared::{pipeline, ENROLLED, HAMILTON};

macro_rules! or_skip {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return,
        }
    };
}

/// Everyone in [`ENROLLED`] (one photo each) with an academic record, in memory.
fn directory(data: &Path, pipeline: &FacePipeline) -> Arc<SqliteDirectory> {
    let directory = SqliteDirectory::open_in_memory().unwrap();
    for (person, photo) in ENROLLED {
        let mut record = PersonRecord::new(person).unwrap();
        record
            .details
            .insert("programme".into(), format!("DEMO {person}"));
        directory.upsert_records(&[record]).unwrap();
        let enrollment = embed_person_photos(pipeline, person, &[data.join(photo)]);
        assert_eq!(enrollment.used(), 1, "{person}");
        assert!(store_enrollment(&directory, &enrollment).unwrap().stored);
    }
    recalibrate(&directory).unwrap();
    Arc::new(directory)
}

/// The first `max` clips of `video`, cut by the edge's segmenter as fast as possible.
fn clips(data: &Path, video: &str, session: &str, max: usize) -> Vec<EncodedClip> {
    let options = SourceOptions {
        pace: Pace::Fast,
        ..SourceOptions::default()
    };
    let mut source = open_source(&SourceSpec::File(data.join(video)), &options).unwrap();
    let mut segmenter =
        ClipSegmenter::new(SegmentConfig::new("test-cam", session, source.fps())).unwrap();
    let mut clips = Vec::new();
    while clips.len() < max {
        match source.next_frame().unwrap() {
            Some(frame) => clips.extend(segmenter.push(frame).unwrap()),
            None => {
                clips.extend(segmenter.finish().unwrap());
                break;
            }
        }
    }
    clips.truncate(max);
    clips
}

type Handler = RecognitionHandler<Arc<LocalClipStore>, SqliteDirectory, Arc<LocalResultQueue>>;

struct Service {
    _dir: tempfile::TempDir,
    store: Arc<LocalClipStore>,
    queue: Arc<LocalResultQueue>,
    directory: Arc<SqliteDirectory>,
    handler: Handler,
    runtime: tokio::runtime::Runtime,
}

fn service(data: &Path, pipeline: Arc<FacePipeline>, config: HandlerConfig) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalClipStore::new(dir.path().join("objects")));
    let queue = Arc::new(LocalResultQueue::new());
    let directory = directory(data, &pipeline);
    let handler = RecognitionHandler::new(
        Arc::clone(&store),
        Arc::clone(&directory),
        Arc::clone(&queue),
        ClipAnalyzer::new(pipeline),
        config,
    );
    Service {
        _dir: dir,
        store,
        queue,
        directory,
        handler,
        runtime: runtime(),
    }
}

impl Service {
    fn put(&self, clip: &EncodedClip) -> ClipEvent {
        LocalDirSink::from_store(Arc::clone(&self.store))
            .put(&clip.meta, &clip.bytes)
            .unwrap();
        ClipEvent::for_clip(clip.meta.clone())
    }

    fn handle(&self, event: ClipEvent) -> RecognitionResult {
        self.runtime.block_on(self.handler.handle(event)).unwrap()
    }

    fn received(&self) -> Vec<RecognitionResult> {
        self.runtime
            .block_on(self.queue.receive("test-cam", 1000, Duration::ZERO))
            .unwrap()
            .into_iter()
            .map(|d| d.result)
            .collect()
    }
}

#[test]
fn real_clips_name_the_people_with_their_records() {
    let data = or_skip!(common::data_dir());
    let pipeline = or_skip!(pipeline());
    let svc = service(&data, pipeline, HandlerConfig::default());
    let clips = clips(&data, HAMILTON, "names", 20);
    assert!(clips.len() >= 18, "{} clips", clips.len());
    let mut results = Vec::new();
    for clip in &clips {
        let result = svc.handle(svc.put(clip));
        assert_eq!(result.clip_id, clip.meta.clip_id());
        assert_eq!(
            (result.device_id.as_str(), result.seq),
            ("test-cam", clip.meta.seq)
        );
        assert_eq!(result.closed_ns, clip.meta.closed_ns);
        assert!(result.completed_ns >= clip.meta.closed_ns);
        assert!(result.error.is_none(), "{:?}", result.error);
        assert_eq!(result.cold_start, clip.meta.seq == 0);
        assert!(!result.instance_id.is_empty());
        let t = result.timings;
        assert!(t.decode_ms > 0.0 && t.detect_ms > 0.0, "{t:?}");
        // Decoding may run beside the analysis (on a spare core), detection and embedding not.
        assert!(
            t.total_ms >= t.detect_ms + t.embed_ms && t.total_ms >= t.decode_ms,
            "{t:?}"
        );
        for p in &result.people {
            assert!(
                p.person_id == "lin_manuel_miranda" || p.person_id == "alex_lacamoire",
                "clip {} named {}",
                result.seq,
                p.person_id
            );
            assert_eq!(p.details["programme"], format!("DEMO {}", p.person_id));
            assert!(p.bbox.x2 > p.bbox.x1 && p.bbox.y2 > p.bbox.y1);
            assert!(p.frame < clip.meta.frame_count);
        }
        results.push(result);
    }
    let lin = results
        .iter()
        .filter(|r| r.people.iter().any(|p| p.person_id == "lin_manuel_miranda"))
        .count();
    println!("lin_manuel_miranda in {lin} of {} clips", results.len());
    assert!(
        lin * 3 >= results.len(),
        "lin_manuel_miranda in only {lin} clips"
    );
    let lin_name = results
        .iter()
        .flat_map(|r| &r.people)
        .find(|p| p.person_id == "lin_manuel_miranda")
        .unwrap();
    assert_eq!(lin_name.name, "Lin Manuel Miranda");
    // Everything was published, in order, to the device's queue.
    assert_eq!(svc.received(), results);
    let stats = svc.handler.stats();
    assert_eq!((stats.processed, stats.errors), (results.len() as u64, 0));
    assert_eq!(stats.gallery_loads, 1);
}

#[test]
fn a_redelivered_event_gives_the_same_result_and_the_receiver_drops_it() {
    let data = or_skip!(common::data_dir());
    let pipeline = or_skip!(pipeline());
    let svc = service(&data, pipeline, HandlerConfig::default());
    let clips = clips(&data, HAMILTON, "dup", 12);
    let clip = &clips[11];
    let event = svc.put(clip);
    let first = svc.handle(event.clone());
    let again = svc.handle(event.clone());
    assert_eq!(first, again, "a redelivery republishes the same result");
    let stats = svc.handler.stats();
    assert_eq!((stats.processed, stats.duplicates), (1, 1));
    // An overwrite of the key with other bytes is a new version: analysed anew (and answered
    // after the first result, so the receiver below keeps the first).
    let mut other = clips[10].clone();
    other.meta = clip.meta.clone();
    other.meta.frame_count = clips[10].meta.frame_count;
    svc.put(&other);
    let overwritten = svc.handle(event);
    assert_ne!(overwritten.completed_ns, first.completed_ns);
    let stats = svc.handler.stats();
    assert_eq!((stats.processed, stats.duplicates), (2, 1));

    let mut receiver = ResultReceiver::new("test-cam");
    let delivered = svc.received();
    assert_eq!(delivered.len(), 3, "the queue delivers all three");
    let accepted: Vec<_> = delivered
        .into_iter()
        .filter_map(|r| receiver.accept(r, now_ns()))
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].result, first);
    assert!(accepted[0].end_to_end.is_some());
    assert_eq!(receiver.stats().duplicates, 2);
}

#[test]
fn concurrent_deliveries_of_one_version_are_analysed_once() {
    let data = or_skip!(common::data_dir());
    let pipeline = or_skip!(pipeline());
    let svc = service(&data, pipeline, HandlerConfig::default());
    let clips = clips(&data, HAMILTON, "concurrent", 3);
    let event = svc.put(&clips[2]);
    // Three deliveries of one object version at once (an SQS redelivery racing a slow worker,
    // a Lambda retry): one analysis, the others wait for its result.
    let svc = &svc;
    let results: Vec<RecognitionResult> = std::thread::scope(|scope| {
        let deliveries: Vec<_> = (0..3)
            .map(|_| {
                let event = event.clone();
                scope.spawn(move || svc.handle(event))
            })
            .collect();
        deliveries
            .into_iter()
            .map(|delivery| delivery.join().unwrap())
            .collect()
    });
    assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
    let stats = svc.handler.stats();
    assert_eq!((stats.processed, stats.duplicates), (1, 2), "{stats:?}");
    assert_eq!(svc.received().len(), 3, "every delivery is answered");
}

#[test]
fn unprocessable_clips_give_error_results_naming_the_key() {
    let data = or_skip!(common::data_dir());
    let pipeline = or_skip!(pipeline());
    let clips = clips(&data, HAMILTON, "bad", 6);
    // A limit that only the largest clip exceeds.
    let limit = clips.iter().map(|c| c.bytes.len()).max().unwrap() - 1;
    let svc = service(
        &data,
        pipeline,
        HandlerConfig {
            max_clip_bytes: limit,
            ..HandlerConfig::default()
        },
    );
    let sink = LocalDirSink::from_store(Arc::clone(&svc.store));
    let mut expect = Vec::new();

    // Damaged: the first half of a clip (cut mid-picture: fewer pictures than its metadata
    // announces), and noise.
    let small = clips
        .iter()
        .find(|c| c.bytes.len() <= limit)
        .expect("a clip under the limit");
    let mut meta = small.meta.clone();
    meta.seq = 100;
    sink.put(&meta, &small.bytes[..small.bytes.len() / 2])
        .unwrap();
    expect.push((ClipEvent::for_clip(meta.clone()), "truncated"));
    meta.seq = 101;
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    sink.put(&meta, &noise).unwrap();
    expect.push((ClipEvent::for_clip(meta.clone()), ""));
    // Over the size limit.
    let big = clips
        .iter()
        .find(|c| c.bytes.len() > limit)
        .expect("a clip over the limit");
    expect.push((svc.put(big), "limit"));
    // Never stored.
    meta.seq = 102;
    expect.push((ClipEvent::for_clip(meta.clone()), "no clip stored"));
    // A refused key whose device can be read: answered there.
    expect.push((
        ClipEvent {
            key: format!("clips/test-cam/{} x/00000103.h264", meta.session_id),
            ..ClipEvent::for_clip(meta.clone())
        },
        "refusing object key",
    ));
    // Metadata naming another device than the key: answered on the key's device, never on the
    // other one.
    let mut spoof = meta.clone();
    spoof.seq = 104;
    let key = spoof.object_key();
    spoof.device_id = "other-cam".into();
    svc.store.put_blocking(&key, &spoof, &small.bytes).unwrap();
    spoof.device_id = "test-cam".into();
    expect.push((ClipEvent::for_clip(spoof), "disagrees with the object key"));

    for (event, words) in expect {
        let result = svc.handle(event.clone());
        let error = result
            .error
            .unwrap_or_else(|| panic!("{}: no error", event.key));
        println!("{}: {error}", event.key);
        assert!(
            error.contains(&event.key),
            "{error} should name {}",
            event.key
        );
        assert!(error.contains(words), "{error} should say {words:?}");
        assert!(result.people.is_empty());
        assert_eq!(result.device_id, "test-cam");
        assert_eq!(
            result.clip_id,
            event
                .key
                .trim_start_matches("clips/")
                .trim_end_matches(".h264"),
            "the key names the clip"
        );
    }
    assert_eq!(svc.received().len(), 6, "every failure is published");
    assert_eq!(svc.handler.stats().errors, 6);
    let other = svc
        .runtime
        .block_on(svc.queue.receive("other-cam", 10, Duration::ZERO))
        .unwrap();
    assert!(other.is_empty(), "metadata never routes: {other:?}");
    // A key naming no device: nobody to tell, nothing published.
    let unroutable = svc.runtime.block_on(svc.handler.handle(ClipEvent {
        key: "../../etc/passwd".into(),
        ..ClipEvent::for_clip(meta.clone())
    }));
    match unroutable {
        Err(e @ HandlerError::Unroutable { .. }) => {
            assert!(e.to_string().contains("../../etc/passwd"), "{e}");
            assert!(!e.is_retryable());
        }
        other => panic!("{other:?}"),
    }
    assert!(svc.received().is_empty());
}

#[test]
fn the_gallery_is_reloaded_when_the_directory_changes() {
    let data = or_skip!(common::data_dir());
    let pipeline = or_skip!(pipeline());
    let svc = service(
        &data,
        pipeline,
        HandlerConfig {
            version_poll: Duration::ZERO,
            ..HandlerConfig::default()
        },
    );
    let clips = clips(&data, HAMILTON, "reload", 12);
    // Clips 7..12 show Lin-Manuel Miranda.
    let named =
        |r: &RecognitionResult| r.people.iter().any(|p| p.person_id == "lin_manuel_miranda");
    let before: Vec<_> = clips[7..10]
        .iter()
        .map(|c| svc.handle(svc.put(c)))
        .collect();
    assert!(before.iter().any(named), "{before:?}");
    let stats = svc.handler.stats();
    assert_eq!(stats.gallery_loads, 1, "same version: no reload");
    assert!(stats.version_checks >= 3, "{stats:?}");
    assert!(svc.directory.remove("lin_manuel_miranda").unwrap());
    let after: Vec<_> = clips[7..10]
        .iter()
        .map(|c| {
            let mut meta = c.meta.clone();
            meta.seq += 1000;
            LocalDirSink::from_store(Arc::clone(&svc.store))
                .put(&meta, &c.bytes)
                .unwrap();
            svc.handle(ClipEvent::for_clip(meta))
        })
        .collect();
    assert!(
        !after.iter().any(named),
        "removed person still named: {after:?}"
    );
    assert_eq!(svc.handler.stats().gallery_loads, 2);
}

#[test]
fn a_saturated_one_worker_pool_loses_no_clip() {
    let data = or_skip!(common::data_dir());
    let pipeline = or_skip!(pipeline());
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let queue = Arc::new(LocalResultQueue::new());
    let directory = directory(&data, &pipeline);

    // Embedded wiring: store "clip created" -> pool (1 worker) -> handler -> queue.
    let pool_slot: Arc<Mutex<Option<WorkerPool<ClipEvent>>>> = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&pool_slot);
    // Saturation must not depend on whether this machine encodes faster than it
    // recognises: the worker starts only once three clips have been created, so
    // the pool's backlog is at least two whatever the speeds.
    let created = Arc::new((Mutex::new(0usize), Condvar::new()));
    let counted = Arc::clone(&created);
    let store = Arc::new(
        LocalClipStore::new(dir.path().join("objects"))
            .durable(false)
            .on_created(move |event| {
                slot.lock().unwrap().as_ref().unwrap().submit(event);
                let (count, grew) = &*counted;
                *count.lock().unwrap() += 1;
                grew.notify_all();
            }),
    );
    let handler = Arc::new(RecognitionHandler::new(
        Arc::clone(&store),
        directory,
        Arc::clone(&queue),
        ClipAnalyzer::new(pipeline),
        HandlerConfig::default(),
    ));
    let io = runtime.handle().clone();
    let job_handler = Arc::clone(&handler);
    *pool_slot.lock().unwrap() = Some(WorkerPool::start(
        PoolConfig::with_max_workers(1),
        move |event: ClipEvent| {
            let (count, grew) = &*created;
            let guard = count.lock().unwrap();
            drop(
                grew.wait_timeout_while(guard, Duration::from_secs(60), |n| *n < 3)
                    .unwrap(),
            );
            io.block_on(job_handler.handle(event)).unwrap();
        },
    ));

    let mut config = SessionConfig::new(
        SourceSpec::File(data.join(HAMILTON)),
        "test-cam",
        "saturated",
        dir.path().join("spool"),
    );
    config.source_options.pace = Pace::Fast;
    config.grace = Duration::from_secs(60);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let probe = SessionProbe::new();
    let report = run_session(
        &config,
        Arc::new(LocalDirSink::from_store(Arc::clone(&store))),
        Arc::clone(&queue),
        runtime.handle().clone(),
        Arc::new(AtomicBool::new(false)),
        &probe,
        move |got| s.lock().unwrap().push(got.result.seq),
    )
    .unwrap();
    let pool = pool_slot.lock().unwrap().take().unwrap();
    let stats = pool.stats();
    pool.shutdown();
    println!("{:?}; pool {stats:?}", report.clips);
    // The probe saw the same session the report describes.
    let live = probe.snapshot();
    assert!(live.capture_done);
    assert_eq!(live.clips.results, report.clips.results);
    assert_eq!(live.spooled, 0, "everything was uploaded");
    assert_eq!(
        live.latency.count(Stage::EndToEnd),
        report.latency.count(Stage::EndToEnd),
        "the probe shows the results' latency"
    );
    let clips = report.clips;
    assert!(clips.captured >= 18, "{clips:?}");
    assert_eq!(clips.uploaded, clips.captured, "{clips:?}");
    assert_eq!(clips.results, clips.captured, "{clips:?}");
    assert_eq!(
        (clips.lost, clips.spooled, clips.errors),
        (0, 0, 0),
        "{clips:?}"
    );
    assert!(report.lost_clip_ids.is_empty());
    // Every clip answered: nothing left on disk in the device's spool.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("spool/test-cam"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != rollcall_edge::spool::LOCK_FILE)
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(stats.peak_workers, 1);
    assert!(
        stats.peak_backlog >= 2,
        "the pool was not saturated: {stats:?}"
    );
    let mut seqs = seen.lock().unwrap().clone();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..clips.captured).collect::<Vec<_>>());
    assert!(report
        .people
        .iter()
        .any(|p| p.person_id == "lin_manuel_miranda"));
    assert!(
        report
            .latency
            .count(rollcall_edge::latency::Stage::EndToEnd)
            == clips.captured
    );
    let _ = handler.store().backend();
}
