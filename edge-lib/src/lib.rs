//! Edge side of rollcall: capture, 0.5 s H.264 clips, spool, upload, results and latency.
//!
//! Not implemented yet: this crate is a placeholder in the workspace layout so that the edge parts
//! land in their own crate (tracked by the "Edge capture, 0.5 s clips and clip recognition" issue).
//! It exports nothing, so nothing can mistake it for a working capture path.
