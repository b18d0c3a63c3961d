//! What crosses rollcall's process boundaries, cheap to build: the bottom layer every other
//! rollcall crate (edge, recognizer, Lambda, console) depends on, and what a foreign client needs
//! to speak rollcall's protocol (see `docs/protocol.md`).
//!
//! ```text
//! edge --ClipMeta + bytes--> ClipStore (local dir | S3) --"clip created"--> function
//!      <--RecognitionResult-- ResultQueue (in-process | SQS) <-----------------'
//! ```
//!
//! - [`wire`]: [`ClipMeta`](wire::ClipMeta), [`ClipEvent`](wire::ClipEvent),
//!   [`RecognitionResult`](wire::RecognitionResult), serialised as JSON.
//! - [`ids`]: the one validator of device/session/person ids and object keys, and the clip an
//!   object key names (the key is authoritative: it routes the result).
//! - [`store`]: the [`ClipStore`](store::ClipStore) trait, a local-directory backend and, with
//!   feature `aws`, S3.
//! - [`results`]: the [`ResultQueue`](results::ResultQueue) trait, an in-process backend and,
//!   with feature `aws`, one SQS queue per device.
//! - [`input_files`]: only regular files are read as inputs (no FIFO, device or directory).
//! - [`terminal_text`]: outside text made safe for terminals and logs.
//! - [`events`]: storage notifications (S3 events, direct, SQS- or SNS-wrapped) -> clip records,
//!   judged one by one.
//! - `aws` (feature `aws`): SDK configuration, resource names, SDK error helpers.
//!
//! ```
//! use rollcall_protocol::wire::{ClipEvent, ClipMeta, CLIP_CODEC_H264_ANNEXB};
//!
//! let meta = ClipMeta {
//!     device_id: "pi-lab-1".into(),
//!     session_id: "s1".into(),
//!     seq: 7,
//!     first_frame_ns: 0,
//!     last_frame_ns: 0,
//!     closed_ns: 0,
//!     fps: 30.0,
//!     width: 640,
//!     height: 480,
//!     frame_count: 15,
//!     codec: CLIP_CODEC_H264_ANNEXB.into(),
//! };
//! assert_eq!(ClipEvent::for_clip(meta).key, "clips/pi-lab-1/s1/00000007.h264");
//! ```

#[cfg(feature = "aws")]
pub mod aws;
pub mod events;
pub mod ids;
pub mod input_files;
pub mod results;
pub mod store;
pub mod terminal_text;
pub mod wire;
