//! Rollcall's recognition core.
//!
//! - [`vision`]: decode photos, detect faces (MTCNN), align them (ArcFace template), embed them
//!   (`fr_feature`, 512-d) and match embeddings against enrolled people.
//! - [`directory`]: the people directory (academic records and face templates), SQLite backend.
//! - [`enrollment`]: photos -> templates in the directory, threshold calibration.
//! - [`evaluation`]: open-set identification accuracy.
//! - [`wire`]: clip metadata and the other types that cross process boundaries.
//! - [`runtime`]: ONNX Runtime loading and shareable inference sessions.
//! - [`clip`]: H.264 clip decoding and per-clip analysis.
//! - [`store`], [`results`], [`handler`], [`pool`]: the recognition service: the object store
//!   holding clips, the per-device result queues, the function (clip event -> result) shared by
//!   every deployment, and the autoscaling worker pool that runs it in-process.
//!
//! - [`events`]: storage notifications (S3 events, SQS-wrapped) -> clip events.
//! - [`logs`]: the service's log lines read back (tail) and, with feature `aws`, CloudWatch Logs
//!   (tail and shipper).
//! - `aws` (feature `aws`): S3 store, SQS result queues, DynamoDB directory, provisioning and
//!   the SQS worker loop.
//!
//! Models and the ONNX Runtime library come from [`rollcall_models`]'s cache
//! (`rollcall models fetch`).
//!
//! ```no_run
//! use rollcall_models::ModelCache;
//! use rollcall_recognizer::vision::{load_image, FacePipeline, PipelineOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pipeline = FacePipeline::load(&ModelCache::from_env()?, PipelineOptions::default())?;
//! let photo = load_image("group.jpg".as_ref())?;
//! let (faces, _times) = pipeline.faces(&photo)?;
//! println!("{} faces", faces.len());
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "aws")]
pub mod aws;
pub mod clip;
pub mod directory;
pub mod enrollment;
pub mod error;
pub mod evaluation;
pub mod events;
pub mod handler;
pub mod logs;
pub mod pool;
pub mod results;
pub mod runtime;
pub mod store;
pub mod vision;
pub mod wire;

pub use error::RecognizerError;
