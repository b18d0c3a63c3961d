//! Rollcall's recognition core.
//!
//! - [`vision`]: decode photos, detect faces (MTCNN), align them (ArcFace template), embed them
//!   (`fr_feature`, 512-d) and match embeddings against enrolled people.
//! - [`directory`]: the people directory (academic records and face templates), SQLite backend.
//! - [`enrollment`]: photos -> templates in the directory, threshold calibration.
//! - [`evaluation`]: open-set identification accuracy.
//! - [`runtime`]: ONNX Runtime loading and shareable inference sessions.
//! - [`clip`]: H.264 clip decoding and per-clip analysis.
//! - [`handler`], [`pool`]: the recognition function (clip event -> result) shared by every
//!   deployment, with its one retry-or-drop decision, and the autoscaling worker pool that runs it
//!   in-process.
//! - With feature `aws`: the DynamoDB directory, [`provision`] (bucket, queues, table,
//!   notification), the SQS [`worker`] loop, [`dead_letters`] (list and redrive the clip-events
//!   DLQ) and [`aws_handler`], the handler over the AWS backends that the Lambda and the worker
//!   share.
//!
//! What crosses process boundaries (wire types, the clip store and result queue traits and their
//! backends, storage-notification parsing) is [`rollcall_protocol`]'s.
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
pub mod aws_handler;
pub mod clip;
#[cfg(feature = "aws")]
pub mod dead_letters;
pub mod directory;
pub mod enrollment;
pub mod error;
pub mod evaluation;
pub mod handler;
pub mod pool;
#[cfg(feature = "aws")]
pub mod provision;
pub mod runtime;
pub mod vision;
#[cfg(feature = "aws")]
pub mod worker;

pub use error::RecognizerError;
