//! The protocol's round trip on the local backends, as a foreign edge or function would drive
//! it: store a clip under its key, receive the "clip created" event, answer it on the device's
//! result queue, and receive the answer as the device.
//!
//! `cargo run -p rollcall-protocol --example clip_round_trip [DIR]` (DIR: where the local object
//! store lives; default a temporary folder).

use std::sync::mpsc;
use std::time::Duration;

use rollcall_protocol::results::{LocalResultQueue, ResultQueue};
use rollcall_protocol::store::{ClipStore, LocalClipStore};
use rollcall_protocol::wire::{unix_now_ns, ClipMeta, RecognitionResult, CLIP_CODEC_H264_ANNEXB};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let root = std::env::args_os()
        .nth(1)
        .map_or_else(|| scratch.path().to_path_buf(), Into::into);

    // The function side learns about clips from the store's notifications.
    let (events, created) = mpsc::channel();
    let store = LocalClipStore::new(&root).on_created(move |event| {
        let _ = events.send(event);
    });
    let queue = LocalResultQueue::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;

    // Edge: one 0.5 s clip of device pi-lab-1.
    let now = unix_now_ns();
    let meta = ClipMeta {
        device_id: "pi-lab-1".into(),
        session_id: "2026-12-06T09-00-00Z".into(),
        seq: 0,
        first_frame_ns: now.saturating_sub(500_000_000),
        last_frame_ns: now,
        closed_ns: now,
        fps: 30.0,
        width: 640,
        height: 360,
        frame_count: 15,
        codec: CLIP_CODEC_H264_ANNEXB.into(),
    };
    let bytes = b"\x00\x00\x00\x01 (H.264 Annex-B bytes would go here)";
    runtime.block_on(store.put(&meta.object_key(), &meta, bytes))?;
    println!("edge: stored {} ({} bytes)", meta.object_key(), bytes.len());

    // Function: the event names the key; the clip and its metadata come from the store.
    let event = created.recv_timeout(Duration::from_secs(1))?;
    let clip = runtime.block_on(store.get(&event.key, 8 << 20))?;
    println!("function: got {} ({} bytes)", event.key, clip.bytes.len());
    let mut result = RecognitionResult::empty_for(&event.meta);
    result.completed_ns = unix_now_ns();
    runtime.block_on(queue.publish(&result))?;

    // Edge: only its own device's results arrive on its queue.
    let deliveries =
        runtime.block_on(queue.receive(&meta.device_id, 10, Duration::from_secs(1)))?;
    for delivery in &deliveries {
        println!(
            "edge: result for clip {} ({} people, error {:?})",
            delivery.result.clip_id,
            delivery.result.people.len(),
            delivery.result.error
        );
    }
    assert_eq!(deliveries.len(), 1, "one result per clip");
    Ok(())
}
