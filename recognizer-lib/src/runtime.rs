//! The ONNX Runtime environment and reusable inference sessions.
//!
//! ONNX Runtime is loaded at run time (`ort`'s `load-dynamic`) from the library that
//! `rollcall models fetch` put in the model cache, so no build step downloads anything.
//! `ort::Session::run` needs `&mut Session`, so a model is held as a small pool of sessions behind
//! mutexes: callers on several threads share one [`SessionPool`] without blocking each other when
//! the pool has a session per worker.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use rollcall_models::ModelCache;

use crate::error::RecognizerError;

mod dims;
mod prelu;
mod proto;
mod quantized;
mod subnormal;

pub use dims::DynamicAxes;

/// How inference sessions are created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Threads ONNX Runtime may use inside one inference call (1 = one core per call).
    pub intra_threads: usize,
    /// Sessions created per model, i.e. how many threads can run the same model at once.
    pub sessions_per_model: usize,
    /// Replace `PRelu` after a convolution by an equivalent that ONNX Runtime runs about 5x
    /// faster (outputs equal to ~1e-6; see [`prelu`]). On by default; off loads the files as
    /// they are.
    pub rewrite_prelu: bool,
    /// Set subnormal weights (below ~1.2e-38 in magnitude) to zero when a model loads: some
    /// CPUs multiply them ~8x slower (see [`subnormal`]). On by default; off loads the weights
    /// as they are.
    pub flush_subnormal_weights: bool,
    /// Whether convolutions run in ONNX Runtime's blocked (NCHWc) layout; see [`ConvLayout`].
    pub conv_layout: ConvLayout,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            intra_threads: 1,
            sessions_per_model: 1,
            rewrite_prelu: true,
            flush_subnormal_weights: true,
            conv_layout: ConvLayout::Auto,
        }
    }
}

/// The memory layout ONNX Runtime's CPU provider runs convolutions in.
///
/// Why a choice: with its highest optimisation level ONNX Runtime rewrites convolutions into a
/// blocked layout (NCHWc, 8 or 16 channels per block) for its AVX2/AVX-512 kernels. On most
/// machines that is the fastest, and it is what the detectors want (measured 2026-12-06 on an
/// Ice Lake server VM: YuNet 9.5 vs 30 ms, UltraFace 5.1 vs 16 ms, MTCNN 52 vs 82 ms per frame).
/// The same VM once ran the embedder ~3x slower blocked than plain (`fr_feature` 66 vs 21 ms per
/// face). The cause turned out to be the model's subnormal weights, which the blocked kernels
/// multiply on a slow path; with them set to zero at load ([`subnormal`]) the embedder runs
/// fastest blocked there too (7.4 vs 13.8 ms). A model can still meet a CPU that runs one layout
/// badly, so a model that offers a probe input is timed both ways when it loads
/// ([`ConvLayout::Auto`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ConvLayout {
    /// Time a probe run of the model both ways at load and keep the faster (models without a
    /// probe input use [`ConvLayout::Blocked`]). Costs a few runs of the model at start-up.
    #[default]
    Auto,
    /// Always the blocked layout (ONNX Runtime's default at its highest optimisation level).
    Blocked,
    /// Never the blocked layout: plain NCHW convolutions.
    Plain,
}

impl ConvLayout {
    /// The name used in settings: `auto`, `blocked` or `plain`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConvLayout::Auto => "auto",
            ConvLayout::Blocked => "blocked",
            ConvLayout::Plain => "plain",
        }
    }
}

impl std::fmt::Display for ConvLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ConvLayout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(ConvLayout::Auto),
            "blocked" | "nchwc" => Ok(ConvLayout::Blocked),
            "plain" | "nchw" => Ok(ConvLayout::Plain),
            other => Err(format!(
                "unknown convolution layout {other:?} (expected auto, blocked or plain)"
            )),
        }
    }
}

/// A float input of a fixed shape that [`ConvLayout::Auto`] times a model with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeInput {
    /// The input's shape, e.g. `[1, 3, 112, 112]`.
    pub shape: Vec<usize>,
}

/// Timed runs per layout in a probe (after one untimed run that lets ONNX Runtime allocate);
/// the fastest counts, so a run slowed by another process does not decide.
const PROBE_RUNS: usize = 3;

/// The plain layout is kept only when it is clearly faster: within this ratio the blocked
/// layout (ONNX Runtime's own choice) stays.
const PROBE_MARGIN: f64 = 0.85;

/// ONNX Runtime's name of the graph transformer that introduces the blocked layout.
const NCHWC_TRANSFORMER: &str = "NchwcTransformer";

/// The loaded library and its environment; ort only keeps a weak reference, so it lives here.
static ORT_LIBRARY: OnceLock<Result<(PathBuf, ort::environment::Environment), String>> =
    OnceLock::new();

/// Load ONNX Runtime from the model cache (or `ORT_DYLIB_PATH`) once per process.
///
/// Later calls return the library loaded first, whatever cache they name.
pub fn init_onnxruntime(cache: &ModelCache) -> Result<PathBuf, RecognizerError> {
    let outcome = ORT_LIBRARY.get_or_init(|| {
        let library = cache.onnxruntime_library().map_err(|e| e.to_string())?;
        let builder = ort::init_from(&library)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", library.display()))?;
        let environment = builder
            .with_name("rollcall")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", library.display()))?;
        tracing::debug!(library = %library.display(), "ONNX Runtime loaded");
        Ok((library, environment))
    });
    match outcome {
        Ok((library, _)) => Ok(library.clone()),
        Err(message) => Err(RecognizerError::Runtime {
            message: message.clone(),
        }),
    }
}

/// The model at `path` after the load-time graph edits of [`SessionPool::load_with`], or
/// `None` when none applies (the file is then loaded as it is). Every session of a pool is
/// built from the same edited bytes.
fn edit_graph(
    path: &Path,
    name: &str,
    options: &RuntimeOptions,
    axes: DynamicAxes,
) -> Result<Option<Vec<u8>>, RecognizerError> {
    let bytes = std::fs::read(path).map_err(|e| RecognizerError::Model {
        model: name.to_string(),
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    let mut edited = None;
    if let Some((folded, count)) = quantized::fold_dequantize(&bytes) {
        tracing::debug!(model = %name, nodes = count, "quantized weights folded to float");
        edited = Some(folded);
    }
    if options.flush_subnormal_weights {
        let current = edited.as_deref().unwrap_or(&bytes);
        if let Some((flushed, count)) = subnormal::flush_subnormal_weights(current) {
            tracing::debug!(model = %name, weights = count, "subnormal weights set to zero");
            edited = Some(flushed);
        }
    }
    if axes != DynamicAxes::AsDeclared {
        let current = edited.as_deref().unwrap_or(&bytes);
        let (freed, count) =
            dims::free_input_axes(current, axes).map_err(|why| RecognizerError::Model {
                model: name.to_string(),
                message: format!("cannot make its input dimensions ({axes:?}) free: {why}"),
            })?;
        tracing::debug!(model = %name, ?axes, dims = count, "input dimensions freed");
        edited = Some(freed);
    }
    if options.rewrite_prelu {
        let current = edited.as_deref().unwrap_or(&bytes);
        if let Some((rewritten, count)) = prelu::rewrite_prelu(current) {
            tracing::debug!(model = %name, prelu = count, "PRelu rewritten for ONNX Runtime");
            edited = Some(rewritten);
        }
    }
    Ok(edited)
}

/// A few sessions of one model, shareable across threads.
pub struct SessionPool {
    name: String,
    sessions: Vec<Mutex<Session>>,
    layout: ConvLayout,
    next: AtomicUsize,
}

/// Build the model both ways, time [`PROBE_RUNS`] runs of each on `probe`, and return the
/// faster layout with its session (the other is dropped).
fn choose_layout(
    name: &str,
    probe: &ProbeInput,
    build: &dyn Fn(ConvLayout) -> Result<Session, RecognizerError>,
) -> Result<(ConvLayout, Session), RecognizerError> {
    let values: Vec<f32> = (0..probe.shape.iter().product::<usize>())
        // Varied, normal values: zeros or denormals could take other paths than real inputs.
        .map(|i| ((i % 255) as f32 - 127.5) / 128.0)
        .collect();
    let time = |session: &mut Session| -> Result<std::time::Duration, ort::Error> {
        let mut best = std::time::Duration::MAX;
        for run in 0..=PROBE_RUNS {
            let tensor =
                ort::value::TensorRef::from_array_view((probe.shape.clone(), values.as_slice()))?;
            let started = std::time::Instant::now();
            session.run(ort::inputs![tensor])?;
            if run > 0 {
                best = best.min(started.elapsed());
            }
        }
        Ok(best)
    };
    let probe_error = |e: ort::Error| RecognizerError::Model {
        model: name.to_string(),
        message: format!("probe run on {:?}: {e}", probe.shape),
    };
    let mut blocked = build(ConvLayout::Blocked)?;
    let blocked_time = time(&mut blocked).map_err(probe_error)?;
    let mut plain = build(ConvLayout::Plain)?;
    let plain_time = time(&mut plain).map_err(probe_error)?;
    let plain_wins = plain_time.as_secs_f64() < blocked_time.as_secs_f64() * PROBE_MARGIN;
    tracing::debug!(
        model = %name,
        blocked_ms = blocked_time.as_secs_f64() * 1e3,
        plain_ms = plain_time.as_secs_f64() * 1e3,
        chosen = if plain_wins { "plain" } else { "blocked" },
        "convolution layout timed"
    );
    Ok(if plain_wins {
        (ConvLayout::Plain, plain)
    } else {
        (ConvLayout::Blocked, blocked)
    })
}

impl SessionPool {
    /// Create `options.sessions_per_model` sessions of the model at `path`
    /// ([`init_onnxruntime`] must have succeeded), with the graph as declared.
    pub fn load(path: &Path, options: &RuntimeOptions) -> Result<SessionPool, RecognizerError> {
        SessionPool::load_with(path, options, DynamicAxes::AsDeclared)
    }

    /// [`load`](Self::load), with the input dimensions `axes` made free (see [`DynamicAxes`]).
    ///
    /// Before the sessions are created the graph is edited in memory (the file is not changed):
    /// constant block-quantised weights are folded to float (always: ONNX Runtime cannot run
    /// them, see [`quantized`]), subnormal weights are set to zero when
    /// `options.flush_subnormal_weights` (see [`subnormal`]), `axes` are freed, and `PRelu` is
    /// rewritten when `options.rewrite_prelu` (see [`prelu`]).
    pub fn load_with(
        path: &Path,
        options: &RuntimeOptions,
        axes: DynamicAxes,
    ) -> Result<SessionPool, RecognizerError> {
        SessionPool::load_probed(path, options, axes, None)
    }

    /// [`load_with`](Self::load_with); with [`ConvLayout::Auto`] and a `probe`, the convolution
    /// layout is chosen by timing the model on the probe input both ways (logged at debug level,
    /// see [`layout`](Self::layout)).
    pub fn load_probed(
        path: &Path,
        options: &RuntimeOptions,
        axes: DynamicAxes,
        probe: Option<&ProbeInput>,
    ) -> Result<SessionPool, RecognizerError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let model_error = |e: ort::Error| RecognizerError::Model {
            model: name.clone(),
            message: e.to_string(),
        };
        let environment = match ORT_LIBRARY.get() {
            Some(Ok((_, environment))) => environment,
            Some(Err(message)) => {
                return Err(RecognizerError::Runtime {
                    message: message.clone(),
                })
            }
            None => {
                return Err(RecognizerError::Runtime {
                    message: "not loaded yet (call init_onnxruntime first)".to_string(),
                })
            }
        };
        let edited = edit_graph(path, &name, options, axes)?;
        let build = |layout: ConvLayout| -> Result<Session, RecognizerError> {
            let mut builder = Session::builder(environment)
                .map_err(model_error)?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(|e| model_error(e.into()))?
                .with_intra_threads(options.intra_threads.max(1))
                .map_err(|e| model_error(e.into()))?
                .with_inter_threads(1)
                .map_err(|e| model_error(e.into()))?
                // With memory patterns ONNX Runtime plans one block per input shape and keeps the
                // plan; these models see many shapes (YuNet's tiles, batches of faces, MTCNN's
                // pyramid), and a 2-worker 1080p session peaked at 499 MB with them, 436 MB
                // without, at the same speed (docs/benchmarks.md). Tensors then come one by one
                // from the arena, which reuses what earlier tensors freed.
                .with_memory_pattern(false)
                .map_err(|e| model_error(e.into()))?;
            if layout == ConvLayout::Plain {
                builder = builder
                    .with_disabled_optimizers(NCHWC_TRANSFORMER)
                    .map_err(|e| model_error(e.into()))?;
            }
            match &edited {
                Some(bytes) => builder.commit_from_memory(bytes),
                None => builder.commit_from_file(path),
            }
            .map_err(model_error)
        };
        let count = options.sessions_per_model.max(1);
        let mut sessions = Vec::with_capacity(count);
        let layout = match (options.conv_layout, probe) {
            (ConvLayout::Auto, Some(probe)) => match choose_layout(&name, probe, &build) {
                Ok((layout, session)) => {
                    sessions.push(Mutex::new(session));
                    layout
                }
                // Timing is an optimisation: a failed probe leaves ONNX Runtime's own choice.
                Err(e) => {
                    tracing::warn!(model = %name, error = %e, "convolution layout not timed; using the blocked layout");
                    ConvLayout::Blocked
                }
            },
            (ConvLayout::Auto, None) => ConvLayout::Blocked,
            (chosen, _) => chosen,
        };
        while sessions.len() < count {
            sessions.push(Mutex::new(build(layout)?));
        }
        Ok(SessionPool {
            name,
            sessions,
            layout,
            next: AtomicUsize::new(0),
        })
    }

    /// The convolution layout the sessions use (never [`ConvLayout::Auto`]: the choice made).
    pub fn layout(&self) -> ConvLayout {
        self.layout
    }

    /// The model's file name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sessions no thread is running right now (a snapshot: another thread may take one the
    /// next moment).
    pub fn idle_sessions(&self) -> usize {
        self.sessions
            .iter()
            .filter(|slot| slot.try_lock().is_ok())
            .count()
    }

    /// Run `job` with exclusive use of one session: a free one if any, else wait for the next in turn.
    pub fn with_session<R>(
        &self,
        job: impl FnOnce(&mut Session) -> Result<R, ort::Error>,
    ) -> Result<R, RecognizerError> {
        let mut guard = self.acquire();
        job(&mut guard).map_err(|e| RecognizerError::Model {
            model: self.name.clone(),
            message: e.to_string(),
        })
    }

    fn acquire(&self) -> MutexGuard<'_, Session> {
        for slot in &self.sessions {
            if let Ok(guard) = slot.try_lock() {
                return guard;
            }
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        // A poisoned session only means another thread panicked mid-run; the session itself is intact.
        self.sessions[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_layout_names_round_trip_and_unknown_names_are_refused() {
        for layout in [ConvLayout::Auto, ConvLayout::Blocked, ConvLayout::Plain] {
            assert_eq!(layout.as_str().parse::<ConvLayout>(), Ok(layout));
        }
        assert_eq!(" NCHWC ".parse::<ConvLayout>(), Ok(ConvLayout::Blocked));
        let refused = "fast".parse::<ConvLayout>().unwrap_err();
        assert!(refused.contains("\"fast\""), "{refused}");
    }
}
