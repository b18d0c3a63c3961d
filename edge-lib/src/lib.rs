//! Edge side of rollcall: capture video, cut it into 0.5 s H.264 clips, keep them in a disk
//! spool and upload them.
//!
//! ```text
//! source (camera | file | test pattern) --Frame--> segment::ClipSegmenter --EncodedClip-->
//!     spool::ClipSpool (disk, bounded) --> upload::Uploader --> upload::ClipSink (local dir | S3)
//! ```
//!
//! - [`source`]: one trait, [`source::FrameSource`], handing out I420 [`source::Frame`]s; open a
//!   source from a spec string (`file:PATH`, `v4l2:/dev/videoN`, `rpicam`, `test`, or an
//!   `rtsp://` / `http(s)://` camera URL, reconnected when it drops).
//! - [`segment`]: frames -> self-contained Annex-B clips (SPS/PPS + IDR first) with
//!   [`ClipMeta`](rollcall_protocol::wire::ClipMeta), encoded in-process with openh264.
//! - [`spool`]: the durable, byte-bounded, per-device on-disk spool: a clip stays there from
//!   its capture until its result arrives (or it is reported lost by id).
//! - [`upload`]: the [`upload::ClipSink`] trait, a local-directory sink (the embedded object
//!   store), a sink over any [`ClipStore`](rollcall_protocol::store::ClipStore), and the
//!   [`upload::Uploader`] worker pool with exponential backoff.
//! - [`receive`]: results from the result queue, duplicates dropped, latency recorded, answered
//!   clips removed from the spool.
//! - [`link`]: is the store / the queue reachable, since when not, retries.
//! - [`drain`]: waiting for the answers at the end of a session; draining what earlier runs
//!   left in a spool.
//! - [`replay`]: clips recorded once and sent again at camera pace (load tests of the
//!   recognition side without the cost of live cameras).
//! - [`session`]: all of the above for one capture session, with counters (captured, uploaded,
//!   results, errors, spooled, lost).
//! - [`publish`]: recognition events out to MQTT and webhooks (the clients behind the feature
//!   `publish`), shaped like Frigate's `tracked_object_update`.
//! - [`redact`]: URLs shown without their passwords and tokens (everywhere a URL is shown).
//! - `gpio` (feature `gpio`): a push button and an LED on a Raspberry Pi.
//!
//! `examples/capture_to_dir.rs` wires all four together.

pub mod drain;
#[cfg(feature = "gpio")]
pub mod gpio;
pub mod latency;
pub mod link;
pub mod publish;
pub mod receive;
pub mod redact;
pub mod replay;
pub mod segment;
pub mod session;
pub mod source;
pub mod spool;
pub mod upload;

pub use drain::{drain_spool, DrainConfig, DrainReport};
pub use link::{Link, LinkHealth, LinkStatus};
pub use receive::{ReceivedResult, ResultPump, ResultReceiver};
pub use segment::{ClipSegmenter, EncodedClip, SegmentConfig, SegmentError};
pub use session::{run_session, SessionConfig, SessionReport};
pub use source::{open_source, CaptureError, Frame, FrameSource, Pace, SourceOptions, SourceSpec};
pub use spool::{ClipSpool, SpoolError};
pub use upload::{
    ClipSink, LocalDirSink, SinkError, StoreSink, UploadEvent, Uploader, UploaderConfig,
};
