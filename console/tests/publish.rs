//! `rollcall session --publish ...`: recognition events of a real session (the Hamilton video,
//! embedded backend; the Obama video through moto and `rollcall worker` with `--backend aws`)
//! reach mosquitto and a webhook receiver on loopback, in the shape docs/protocol.md shows,
//! while a target that is down is counted and never holds recognition back. Skipped (with the
//! reason printed) without the data set, the models, mosquitto or (AWS) moto, unless
//! `ROLLCALL_REQUIRE_DATA=1`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::mqtt_broker::{self, Mosquitto};
use common::webhook_receiver::WebhookReceiver;
use common::{data_dir, enroll_examples, models_present, rollcall_command, text, EXAMPLE_PEOPLE};
use serde_json::Value;

const SECRET: &str = "webhook-key-1";

/// The JSON examples of docs/protocol.md's "Events out" section, by `type`.
fn documented_events() -> Vec<Value> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md"))
            .expect("docs/protocol.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Events out"))
        .expect("an \"Events out\" section in docs/protocol.md");
    section
        .split("```json")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .map(|json| serde_json::from_str(json).expect("the doc's JSON examples parse"))
        .collect()
}

fn documented(kind: &str) -> Value {
    documented_events()
        .into_iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("docs/protocol.md shows no {kind} event"))
}

/// `actual` has exactly the fields of `doc`, with the same JSON types (null stands for any), all
/// the way down (arrays: their first elements).
fn assert_same_shape(doc: &Value, actual: &Value, path: &str) {
    match (doc, actual) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(d), Value::Object(a)) => {
            let dk: BTreeSet<&String> = d.keys().collect();
            let ak: BTreeSet<&String> = a.keys().collect();
            // Maps of free keys (academic details) only need to be objects.
            if path.ends_with(".details") {
                return;
            }
            assert_eq!(dk, ak, "fields of {path}: documented vs published");
            for key in dk {
                assert_same_shape(&d[key], &a[key], &format!("{path}.{key}"));
            }
        }
        (Value::Array(d), Value::Array(a)) => {
            if let (Some(d), Some(a)) = (d.first(), a.first()) {
                assert_same_shape(d, a, &format!("{path}[0]"));
            }
        }
        (d, a) => assert_eq!(
            std::mem::discriminant(d),
            std::mem::discriminant(a),
            "type of {path}: documented {d}, published {a}"
        ),
    }
}

fn verify_signature(body: &str, signature: Option<&str>) {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(signature, Some(expected.as_str()), "signature of {body}");
}

#[test]
fn session_events_reach_mqtt_and_a_webhook_in_the_documented_shape() {
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let Some(broker) = Mosquitto::start(false) else {
        return;
    };
    let watch = broker.subscribe("campus/#");
    let hook = WebhookReceiver::start();
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("people.db");
    enroll_examples(&data, &db, &EXAMPLE_PEOPLE);
    let report = tmp.path().join("r.json");
    let video = data.join("videos/short_hamilton_clip/short_hamilton_clip.mp4");
    // The broker's credentials from the environment; a second broker that is down.
    let broker_url = format!("mqtt://127.0.0.1:{}/campus", broker.port);
    let out = rollcall_command()
        .args([
            "session",
            "--headless",
            "--source",
            &format!("file:{}", video.display()),
            "--pace",
            "fast",
            "--duration",
            "end",
            "--device",
            "hall-cam",
            "--publish",
            &broker_url,
            "--publish",
            &hook.url("/api/webhook/lecture-hall"),
            "--publish",
            &format!("mqtt://127.0.0.1:{dead_port}/nowhere"),
            "--report",
            report.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--grace",
            "60s",
        ])
        .env("ROLLCALL_MQTT_USERNAME", mqtt_broker::USER)
        .env("ROLLCALL_MQTT_PASSWORD", mqtt_broker::PASSWORD)
        .env("ROLLCALL_WEBHOOK_SECRET", SECRET)
        .output()
        .expect("run rollcall");
    let output = text(&out);
    println!("{output}");
    assert!(out.status.success(), "{output}");
    assert!(!output.contains(mqtt_broker::PASSWORD) && !output.contains(SECRET));
    assert!(
        !output.contains("lecture-hall"),
        "webhook paths are not shown"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();

    // Recognition went on as without publishing: every clip answered, Lin named.
    let captured = r["clips"]["captured"].as_u64().unwrap();
    assert_eq!(r["clips"]["results"], captured, "{r:#}");
    assert_eq!(r["clips"]["lost"], 0, "{r:#}");
    let lin_clips = r["people"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["person_id"] == "lin_manuel_miranda")
        .and_then(|p| p["clips"].as_u64())
        .unwrap_or_else(|| panic!("Lin Manuel Miranda not recognised: {r:#}"));
    let person_events: u64 = r["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["clips"].as_u64().unwrap())
        .sum();

    // Per target: everything delivered to the live ones, everything failed at the dead one.
    let publish = r["publish"].as_array().expect("publish counters");
    assert_eq!(publish.len(), 3, "{r:#}");
    for live in &publish[..2] {
        assert_eq!(live["sent"].as_u64(), Some(person_events + 1), "{r:#}");
        assert_eq!(live["failed"], 0, "{r:#}");
        assert_eq!(live["dropped"], 0, "{r:#}");
    }
    let dead = &publish[2];
    assert_eq!(dead["sent"], 0, "{r:#}");
    assert_eq!(
        dead["failed"].as_u64().unwrap() + dead["dropped"].as_u64().unwrap(),
        person_events + 1,
        "{r:#}"
    );
    assert!(
        output.contains(&format!(
            "events: mqtt://{}:***@127.0.0.1:{dead_port}/nowhere: 0 sent",
            mqtt_broker::USER
        )),
        "{output}"
    );

    // MQTT: the events, availability online then offline (retained).
    let messages = watch.wait_until(Duration::from_secs(10), |m| {
        m.iter().any(|m| m.topic == "campus/session_summary")
            && m.iter()
                .filter(|m| m.topic == "campus/hall-cam/available")
                .any(|m| m.payload == "offline")
    });
    let on = |topic: &str| -> Vec<Value> {
        messages
            .iter()
            .filter(|m| m.topic == topic)
            .map(|m| m.json())
            .collect()
    };
    let seen = on("campus/tracked_object_update");
    assert_eq!(seen.len() as u64, person_events);
    let lin: Vec<&Value> = seen
        .iter()
        .filter(|e| e["person_id"] == "lin_manuel_miranda")
        .collect();
    assert_eq!(lin.len() as u64, lin_clips);
    assert_eq!(lin[0]["name"], "Lin Manuel Miranda");
    assert_eq!(lin[0]["camera"], "hall-cam");
    assert!(lin[0]["score"].as_f64().unwrap() > 0.3);
    assert_eq!(
        lin[0]["session_id"], r["session_id"],
        "events name the session"
    );
    let summaries = on("campus/session_summary");
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0]["clips"]["captured"], captured);
    assert_eq!(summaries[0]["ended"], "end_of_source");
    let availability: Vec<&str> = messages
        .iter()
        .filter(|m| m.topic == "campus/hall-cam/available")
        .map(|m| m.payload.as_str())
        .collect();
    assert_eq!(availability.first(), Some(&"online"), "{availability:?}");
    assert_eq!(availability.last(), Some(&"offline"), "{availability:?}");

    // The webhook: the same events, signed, in order.
    let requests = hook.requests();
    assert_eq!(requests.len() as u64, person_events + 1);
    for request in &requests {
        assert_eq!(request.path, "/api/webhook/lecture-hall");
        verify_signature(&request.body, request.header("x-rollcall-signature"));
    }
    let bodies: Vec<Value> = requests.iter().map(|r| r.json()).collect();
    assert_eq!(
        bodies[..bodies.len() - 1],
        seen[..],
        "MQTT and webhook carry the same events"
    );
    assert_eq!(bodies.last().unwrap()["type"], "session_summary");

    // Both kinds have exactly the documented fields.
    assert_same_shape(&documented("face"), &seen[0], "face");
    assert_same_shape(
        &documented("session_summary"),
        &summaries[0],
        "session_summary",
    );
}

#[test]
fn bad_publish_targets_are_refused_clearly() {
    let out = rollcall_command()
        .args([
            "session",
            "--source",
            "test",
            "--publish",
            "mqtt://u:secret@broker/a/#",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let output = text(&out);
    assert!(output.contains("invalid publish target"), "{output}");
    assert!(output.contains("mqtt://u:***@broker/a/#"), "{output}");
    assert!(!output.contains("secret"), "{output}");
}

#[test]
fn a_bad_camera_url_is_refused_without_its_password() {
    // An unencoded '/' in the password: refused, and clap must not echo the URL as typed.
    let out = rollcall_command()
        .args([
            "session",
            "--headless",
            "--source",
            "rtsp://viewer:pa/ss@cam.local/stream1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let output = text(&out);
    assert!(output.contains("--source"), "{output}");
    assert!(output.contains("percent-encode"), "{output}");
    assert!(!output.contains("pa/ss"), "{output}");
}

#[cfg(feature = "aws")]
#[test]
fn aws_sessions_publish_what_the_edge_receives() {
    use common::{aws_endpoint, enroll_examples_aws, rollcall_aws, WorkerProcess};
    if aws_endpoint().is_none() {
        return;
    }
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let prefix = format!("rc-publish-{}", std::process::id());
    let device = "cam-publish";
    let out = rollcall_aws(
        &["aws", "provision", "--prefix", &prefix, "--device", device],
        &prefix,
    );
    assert!(out.status.success(), "{}", text(&out));
    enroll_examples_aws(&data, tmp.path(), &prefix, &[("barack_obama", "obama.jpg")]);
    let _worker = WorkerProcess::start(&prefix);
    let hook = WebhookReceiver::start();
    let report = tmp.path().join("report.json");
    let video = data.join("videos/armbiantest_obama/obama.mp4");
    let out = rollcall_aws(
        &[
            "session",
            "--headless",
            "--backend",
            "aws",
            "--device",
            device,
            "--source",
            &format!("file:{}", video.display()),
            "--duration",
            "4s",
            "--grace",
            "30s",
            "--publish",
            &hook.url("/aws"),
            "--report",
            report.to_str().unwrap(),
        ],
        &prefix,
    );
    let output = text(&out);
    println!("{output}");
    assert!(out.status.success(), "{output}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["backend"], "aws");
    let obama_clips = r["people"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["person_id"] == "barack_obama")
        .and_then(|p| p["clips"].as_u64())
        .unwrap_or_else(|| panic!("Obama not recognised: {r:#}"));
    let bodies: Vec<Value> = hook.requests().iter().map(|r| r.json()).collect();
    let obama = bodies
        .iter()
        .filter(|b| b["type"] == "face" && b["person_id"] == "barack_obama")
        .count() as u64;
    assert_eq!(obama, obama_clips, "one event per clip naming him");
    assert!(bodies.iter().all(|b| b["camera"] == device));
    assert_eq!(bodies.last().unwrap()["type"], "session_summary");
    assert_eq!(r["publish"][0]["sent"].as_u64(), Some(bodies.len() as u64));
}
