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
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            intra_threads: 1,
            sessions_per_model: 1,
            rewrite_prelu: true,
        }
    }
}

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
    next: AtomicUsize,
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
    /// them, see [`quantized`]), `axes` are freed, and `PRelu` is rewritten when
    /// `options.rewrite_prelu` (see [`prelu`]).
    pub fn load_with(
        path: &Path,
        options: &RuntimeOptions,
        axes: DynamicAxes,
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
        let count = options.sessions_per_model.max(1);
        let mut sessions = Vec::with_capacity(count);
        for _ in 0..count {
            let mut builder = Session::builder(environment)
                .map_err(model_error)?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(|e| model_error(e.into()))?
                .with_intra_threads(options.intra_threads.max(1))
                .map_err(|e| model_error(e.into()))?
                .with_inter_threads(1)
                .map_err(|e| model_error(e.into()))?;
            let session = match &edited {
                Some(bytes) => builder.commit_from_memory(bytes),
                None => builder.commit_from_file(path),
            }
            .map_err(model_error)?;
            sessions.push(Mutex::new(session));
        }
        Ok(SessionPool {
            name,
            sessions,
            next: AtomicUsize::new(0),
        })
    }

    /// The model's file name, for messages.
    pub fn name(&self) -> &str {
        &self.name
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
