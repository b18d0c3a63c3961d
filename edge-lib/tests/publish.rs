//! Events out, against real servers on loopback: mosquitto (password, QoS 1, retained
//! availability, last will) and a webhook receiver (signature, retries, final refusals), and
//! targets that are down (publishing never blocks; everything is counted).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::mqtt_broker::{Message, Mosquitto};
use common::webhook_receiver::WebhookReceiver;
use hmac::{Hmac, Mac};
use rollcall_edge::publish::event::SessionSummary;
use rollcall_edge::publish::{PublishOptions, PublishTarget, Publisher};
use rollcall_edge::receive::ReceivedResult;
use rollcall_edge::session::{ClipCounters, EndReason, PersonTally, SessionReport};
use rollcall_protocol::wire::{ClipMeta, PixelBox, RecognitionResult, RecognizedPerson};

const DEVICE: &str = "hall-cam";

/// A received result of clip `seq` naming `people`.
fn result(seq: u64, people: &[(&str, &str, f32)]) -> ReceivedResult {
    let meta = ClipMeta {
        device_id: DEVICE.into(),
        session_id: "s1".into(),
        seq,
        first_frame_ns: 1,
        last_frame_ns: 2,
        closed_ns: 1_795_726_800_000_000_000 + seq * 500_000_000,
        fps: 30.0,
        width: 640,
        height: 480,
        frame_count: 15,
        codec: "h264-annexb".into(),
    };
    let mut result = RecognitionResult::empty_for(&meta);
    for (id, name, similarity) in people {
        result.people.push(RecognizedPerson {
            person_id: id.to_string(),
            name: name.to_string(),
            details: BTreeMap::from([("student_id".to_string(), format!("S-{id}"))]),
            similarity: *similarity,
            bbox: PixelBox {
                x1: 10.0,
                y1: 20.0,
                x2: 60.0,
                y2: 90.0,
            },
            frame: 3,
        });
    }
    ReceivedResult {
        result,
        received_ns: 0,
        end_to_end: None,
    }
}

fn summary() -> SessionSummary {
    let report = SessionReport {
        clips: ClipCounters {
            captured: 4,
            uploaded: 4,
            results: 4,
            errors: 0,
            spooled: 0,
            lost: 0,
        },
        people: vec![PersonTally {
            person_id: "ada".into(),
            name: "Ada Lovelace".into(),
            clips: 2,
            best_similarity: 0.7,
            first_seen_ns: 1_700_000_000_000_000_000,
            last_seen_ns: 1_700_000_001_000_000_000,
            details: Default::default(),
        }],
        latency: Default::default(),
        duplicates: 0,
        unknown_faces: 1,
        spool_dropped: 0,
        lost_clip_ids: Vec::new(),
        earlier: Default::default(),
        link: Default::default(),
        peak_spooled: 0,
        ended: EndReason::Duration,
        error: None,
        first_result_error: None,
        capture_time: Duration::from_secs(2),
        total_time: Duration::from_secs(3),
        source: "test".into(),
        camera_offline: Vec::new(),
    };
    SessionSummary::from_report(&report, DEVICE, "s1", 1_795_726_803_000_000_000)
}

fn quick() -> PublishOptions {
    PublishOptions {
        retry_first: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        timeout: Duration::from_secs(3),
        ..PublishOptions::default()
    }
}

fn on(messages: &[Message], topic: &str) -> Vec<Message> {
    messages
        .iter()
        .filter(|m| m.topic == topic)
        .cloned()
        .collect()
}

#[test]
fn mqtt_events_are_acknowledged_with_retained_availability_and_a_last_will() {
    let Some(broker) = Mosquitto::start(false) else {
        return;
    };
    let watch = broker.subscribe("campus/#");
    let target = PublishTarget::parse(&broker.url("campus")).unwrap();
    assert!(!target.to_string().contains(common::mqtt_broker::PASSWORD));
    let publisher = Publisher::start(std::slice::from_ref(&target), DEVICE, quick()).unwrap();
    watch.wait_until(Duration::from_secs(10), |m| {
        on(m, "campus/hall-cam/available")
            .iter()
            .any(|m| m.payload == "online")
    });
    // Someone subscribing later finds the device online: the message is retained.
    let late = broker.subscribe("campus/hall-cam/available");
    let seen = late.wait_until(Duration::from_secs(5), |m| !m.is_empty());
    assert!(seen[0].retained && seen[0].payload == "online", "{seen:?}");

    publisher.publish_result(&result(0, &[("ada", "Ada Lovelace", 0.71)]));
    publisher.publish_result(&result(1, &[]));
    publisher.publish_result(&result(
        2,
        &[("ada", "Ada Lovelace", 0.69), ("alan", "Alan Turing", 0.55)],
    ));
    publisher.publish_summary(&summary());
    assert!(publisher.flush(Duration::from_secs(10)));
    let stats = publisher.stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (stats[0].sent, stats[0].failed, stats[0].dropped),
        (4, 0, 0)
    );

    let messages = watch.wait_until(Duration::from_secs(5), |m| {
        on(m, "campus/tracked_object_update").len() == 3
            && on(m, "campus/session_summary").len() == 1
    });
    let people: Vec<serde_json::Value> = on(&messages, "campus/tracked_object_update")
        .iter()
        .map(Message::json)
        .collect();
    let ids: Vec<&str> = people.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "hall-cam/s1/00000000/ada",
            "hall-cam/s1/00000002/ada",
            "hall-cam/s1/00000002/alan"
        ]
    );
    assert_eq!(people[0]["type"], "face");
    assert_eq!(people[0]["camera"], DEVICE);
    assert_eq!(people[0]["name"], "Ada Lovelace");
    assert!((people[0]["score"].as_f64().unwrap() - 0.71).abs() < 1e-6);
    assert_eq!(people[0]["timestamp"], 1_795_726_800.0);
    assert_eq!(people[0]["details"]["student_id"], "S-ada");
    let summary = on(&messages, "campus/session_summary")[0].json();
    assert_eq!(summary["type"], "session_summary");
    assert_eq!(summary["ended"], "duration");
    assert_eq!(summary["clips"]["captured"], 4);

    // A clean shutdown says offline itself (retained).
    let stats = publisher.shutdown(Duration::from_secs(10));
    assert_eq!(stats[0].sent, 4);
    watch.wait_until(Duration::from_secs(5), |m| {
        on(m, "campus/hall-cam/available")
            .last()
            .is_some_and(|m| m.payload == "offline")
    });

    // A publisher that vanishes without a word: the broker sends its last will.
    let door = PublishTarget::parse(&broker.url("campus")).unwrap();
    let publisher = Publisher::start(&[door], "door-cam", quick()).unwrap();
    watch.wait_until(Duration::from_secs(10), |m| {
        on(m, "campus/door-cam/available")
            .iter()
            .any(|m| m.payload == "online")
    });
    drop(publisher);
    watch.wait_until(Duration::from_secs(10), |m| {
        on(m, "campus/door-cam/available")
            .last()
            .is_some_and(|m| m.payload == "offline")
    });
    let late = broker.subscribe("campus/door-cam/available");
    let seen = late.wait_until(Duration::from_secs(5), |m| !m.is_empty());
    assert!(seen[0].retained && seen[0].payload == "offline", "{seen:?}");
}

#[test]
fn a_wrong_mqtt_password_fails_the_events_and_counts_them() {
    let Some(broker) = Mosquitto::start(false) else {
        return;
    };
    let url = format!("mqtt://edge:wrong@127.0.0.1:{}/campus", broker.port);
    let options = PublishOptions {
        attempts: 2,
        timeout: Duration::from_secs(1),
        ..quick()
    };
    let publisher =
        Publisher::start(&[PublishTarget::parse(&url).unwrap()], DEVICE, options).unwrap();
    publisher.publish_result(&result(0, &[("ada", "Ada Lovelace", 0.71)]));
    let stats = publisher.shutdown(Duration::from_secs(10));
    assert_eq!((stats[0].sent, stats[0].failed), (0, 1), "{stats:?}");
    assert!(stats[0].retried >= 1, "{stats:?}");
}

type HmacSha256 = Hmac<sha2::Sha256>;

#[test]
fn webhooks_are_signed_retried_and_refusals_are_final() {
    let receiver = WebhookReceiver::start();
    receiver.script(&[500, 503]);
    let options = PublishOptions {
        webhook_secret: Some("hook-secret".into()),
        ..quick()
    };
    let url = format!(
        "http://ha:pw@127.0.0.1:{}/api/webhook/abc?x=1",
        receiver.port
    );
    let target = PublishTarget::parse(&url).unwrap();
    assert_eq!(
        target.to_string(),
        format!("http://127.0.0.1:{}/...", receiver.port)
    );
    let publisher = Publisher::start(&[target], DEVICE, options).unwrap();
    publisher.publish_result(&result(5, &[("ada", "Ada Lovelace", 0.71)]));
    publisher.publish_summary(&summary());
    assert!(publisher.flush(Duration::from_secs(10)));
    let stats = publisher.stats();
    assert_eq!(
        (stats[0].sent, stats[0].failed, stats[0].retried),
        (2, 0, 2),
        "{stats:?}"
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 4, "two refused, then both delivered");
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/api/webhook/abc?x=1");
        assert_eq!(request.header("content-type"), Some("application/json"));
        // ha:pw
        assert_eq!(request.header("authorization"), Some("Basic aGE6cHc="));
        let mut mac = HmacSha256::new_from_slice(b"hook-secret").unwrap();
        mac.update(request.body.as_bytes());
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            request.header("x-rollcall-signature"),
            Some(expected.as_str())
        );
    }
    // The same event, retried, keeps its id.
    assert_eq!(
        requests[0].header("x-rollcall-event-id"),
        Some("hall-cam/s1/00000005/ada")
    );
    assert_eq!(requests[0].body, requests[2].body);
    assert_eq!(
        requests[2].header("x-rollcall-event"),
        Some("tracked_object_update")
    );
    assert_eq!(requests[2].json()["name"], "Ada Lovelace");
    assert_eq!(
        requests[3].header("x-rollcall-event"),
        Some("session_summary")
    );
    assert_eq!(requests[3].json()["type"], "session_summary");

    // A 404 is not retried: the event fails at once.
    receiver.script(&[404]);
    publisher.publish_result(&result(6, &[("ada", "Ada Lovelace", 0.6)]));
    assert!(publisher.flush(Duration::from_secs(10)));
    let stats = publisher.shutdown(Duration::from_secs(5));
    assert_eq!(
        (stats[0].sent, stats[0].failed, stats[0].retried),
        (2, 1, 2),
        "{stats:?}"
    );
    assert_eq!(receiver.requests().len(), 5);
}

#[test]
fn targets_that_are_down_never_block_and_every_event_is_counted() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let slow = WebhookReceiver::start();
    slow.delay(Duration::from_secs(2));
    let targets = [
        PublishTarget::parse(&format!("mqtt://127.0.0.1:{closed}/x")).unwrap(),
        PublishTarget::parse(&format!("http://127.0.0.1:{closed}/hook")).unwrap(),
        PublishTarget::parse(&slow.url("/slow")).unwrap(),
    ];
    let options = PublishOptions {
        queue: 4,
        attempts: 2,
        timeout: Duration::from_millis(500),
        ..quick()
    };
    let publisher = Publisher::start(&targets, DEVICE, options).unwrap();
    let started = Instant::now();
    for seq in 0..100 {
        publisher.publish_result(&result(seq, &[("ada", "Ada Lovelace", 0.7)]));
    }
    // Queuing is all the caller waits for (100 events against three stuck targets).
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let stats = publisher.shutdown(Duration::from_secs(3));
    for s in &stats {
        assert_eq!(s.sent + s.failed + s.dropped, 100, "{s:?}");
        assert!(s.dropped >= 90, "{s:?}");
    }
    assert_eq!(stats[0].sent + stats[1].sent, 0, "{stats:?}");
}
