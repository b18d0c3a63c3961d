//! What `rollcall bench cameras` reports: per camera, per camera count (the table rows and the
//! JSON), and the criterion.

use serde::Serialize;

use crate::plan::report::LatencyMs;

/// One simulated camera's outcome over one camera count.
#[derive(Serialize, Clone, Debug, Default)]
pub(super) struct CameraOutcome {
    pub(super) device_id: String,
    pub(super) video: String,
    /// Sessions run back to back (more than one when the video is shorter than --duration).
    pub(super) passes: u32,
    pub(super) captured: u64,
    pub(super) results: u64,
    pub(super) errors: u64,
    pub(super) lost: u64,
    /// Why a session could not run or failed, if one did.
    pub(super) failure: Option<String>,
}

/// One camera count.
#[derive(Serialize)]
pub(super) struct Step {
    pub(super) cameras: usize,
    /// Clips captured by all cameras.
    pub(super) clips: u64,
    pub(super) results: u64,
    pub(super) errors: u64,
    pub(super) lost: u64,
    /// End to end: clip closed at the edge -> result received, all cameras together.
    pub(super) latency_ms: Option<LatencyMs>,
    /// Median per stage (encode, upload, function, decode, detect, embed, delivery, ...).
    pub(super) stages_ms: std::collections::BTreeMap<String, f64>,
    /// Largest backlog sampled during capture, and over its last third (embedded: the pool's
    /// queued clips; aws: the clip-events queue's messages, waiting + in flight).
    pub(super) peak_backlog: usize,
    pub(super) last_third_peak_backlog: usize,
    /// Least-squares trend of the sampled backlog over the capture, clips per second.
    pub(super) backlog_trend_per_s: f64,
    /// Embedded: the pool's largest worker count; aws: the most clips in flight at once
    /// (received by a worker, not yet answered).
    pub(super) peak_workers: usize,
    /// Backlog samples that could not be read (aws: a failed GetQueueAttributes).
    pub(super) backlog_sample_errors: usize,
    /// This process's CPU time over wall time (100 = one core busy), and the whole machine's
    /// busy share of all cores (others' load included).
    pub(super) cpu_percent: Option<f64>,
    /// aws: the `rollcall worker` processes' CPU time over wall time, all together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) worker_cpu_percent: Option<f64>,
    pub(super) machine_busy_percent: Option<f64>,
    pub(super) capture_s: f64,
    pub(super) wall_s: f64,
    pub(super) realtime: bool,
    /// The criteria that failed (empty when real time).
    pub(super) failed: Vec<String>,
    pub(super) per_camera: Vec<CameraOutcome>,
}

#[derive(Serialize)]
pub(super) struct Criterion {
    /// End-to-end p99 limit: clip length + margin.
    pub(super) p99_limit_ms: f64,
    /// The last-third backlog limit is the camera count (one waiting clip per camera).
    pub(super) backlog_limit: &'static str,
    /// What the backlog counts.
    pub(super) backlog: &'static str,
    pub(super) complete: &'static str,
}

#[derive(Serialize)]
pub(super) struct BenchJson {
    pub(super) backend: &'static str,
    pub(super) cores: usize,
    /// Embedded: the pool's most workers; aws: per `rollcall worker` process.
    pub(super) max_workers: usize,
    /// aws: `rollcall worker` processes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) worker_processes: Option<usize>,
    pub(super) videos: Vec<String>,
    /// Whether the cameras replayed recorded clips (`--replay`) instead of encoding live.
    pub(super) replay: bool,
    pub(super) size: String,
    pub(super) clip_ms: u32,
    pub(super) duration_s: f64,
    pub(super) sample: String,
    pub(super) criterion: Criterion,
    pub(super) steps: Vec<Step>,
    /// The largest camera count that met the criterion (`null` if none did).
    pub(super) largest_realtime: Option<usize>,
}

pub(super) fn print_header() {
    eprintln!(
        "{:>7} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7}  real time",
        "cameras", "clips", "lost", "p50 ms", "p90 ms", "p99 ms", "backlog", "CPU%", "machine"
    );
}

pub(super) fn print_row(step: &Step) {
    let (p50, p90, p99) =
        step.latency_ms
            .as_ref()
            .map_or(("-".to_string(), "-".to_string(), "-".to_string()), |l| {
                (
                    format!("{:.1}", l.p50),
                    format!("{:.1}", l.p90),
                    format!("{:.1}", l.p99),
                )
            });
    let percent = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    // All of rollcall's CPU: this process, plus the worker processes on aws (moto's is only in
    // the machine's figure).
    let rollcall_cpu = match (step.cpu_percent, step.worker_cpu_percent) {
        (Some(bench), Some(workers)) => Some(bench + workers),
        (bench, workers) => bench.or(workers),
    };
    let verdict = if step.realtime {
        "yes".to_string()
    } else {
        format!("NO: {}", step.failed.join("; "))
    };
    eprintln!(
        "{:>7} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7}  {verdict}",
        step.cameras,
        step.clips,
        step.lost,
        p50,
        p90,
        p99,
        format!("{}/{}", step.last_third_peak_backlog, step.peak_backlog),
        percent(rollcall_cpu),
        percent(step.machine_busy_percent),
    );
}
