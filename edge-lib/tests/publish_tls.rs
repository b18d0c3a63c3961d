//! Events out over TLS: `mqtts://` to mosquitto's TLS listener and an `https://` webhook, both
//! with a certificate from a CA made for the test, trusted through `SSL_CERT_FILE` (the only
//! test of this binary, since it sets the variable for the process).

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use common::mqtt_broker::Mosquitto;
use common::webhook_receiver::WebhookReceiver;
use rollcall_edge::publish::{PublishOptions, PublishTarget, Publisher};
use rollcall_edge::receive::ReceivedResult;
use rollcall_protocol::wire::{ClipMeta, PixelBox, RecognitionResult, RecognizedPerson};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn seen_ada() -> ReceivedResult {
    let meta = ClipMeta {
        device_id: "tls-cam".into(),
        session_id: "s1".into(),
        seq: 0,
        first_frame_ns: 1,
        last_frame_ns: 2,
        closed_ns: 3,
        fps: 30.0,
        width: 640,
        height: 480,
        frame_count: 15,
        codec: "h264-annexb".into(),
    };
    let mut result = RecognitionResult::empty_for(&meta);
    result.people.push(RecognizedPerson {
        person_id: "ada".into(),
        name: "Ada Lovelace".into(),
        details: BTreeMap::new(),
        similarity: 0.7,
        bbox: PixelBox::default(),
        frame: 0,
    });
    ReceivedResult {
        result,
        received_ns: 0,
        end_to_end: None,
    }
}

#[test]
fn mqtts_and_https_deliver_with_a_trusted_ca_and_refuse_without() {
    let Some(broker) = Mosquitto::start(true) else {
        return;
    };
    // An HTTPS front for the webhook receiver, with the broker's certificate.
    let receiver = Arc::new(WebhookReceiver::start());
    let (cert, key) = broker.server_identity();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let https = TcpListener::bind("127.0.0.1:0").unwrap();
    let https_port = https.local_addr().unwrap().port();
    {
        let receiver = Arc::clone(&receiver);
        std::thread::spawn(move || {
            for tcp in https.incoming().map_while(Result::ok) {
                let Ok(conn) = rustls::ServerConnection::new(Arc::clone(&config)) else {
                    continue;
                };
                let receiver = Arc::clone(&receiver);
                std::thread::spawn(move || {
                    receiver.serve_connection(rustls::StreamOwned::new(conn, tcp));
                });
            }
        });
    }
    let targets = [
        PublishTarget::parse(&broker.tls_url("secure")).unwrap(),
        PublishTarget::parse(&format!("https://localhost:{https_port}/hook")).unwrap(),
    ];
    let options = PublishOptions {
        attempts: 2,
        retry_first: Duration::from_millis(50),
        timeout: Duration::from_secs(3),
        ..PublishOptions::default()
    };
    let watch = broker.subscribe("secure/#");

    // The system's CAs do not know the test's CA: both handshakes fail, counted.
    std::env::remove_var("SSL_CERT_FILE");
    std::env::remove_var("SSL_CERT_DIR");
    match Publisher::start(&targets, "tls-cam", options.clone()) {
        Ok(publisher) => {
            publisher.publish_result(&seen_ada());
            let stats = publisher.shutdown(Duration::from_secs(15));
            for s in &stats {
                assert_eq!((s.sent, s.failed), (0, 1), "{s:?}");
            }
        }
        // A machine without any system certificates refuses TLS up front: fine too.
        Err(e) => assert!(e.to_string().contains("TLS"), "{e}"),
    }
    assert!(receiver.requests().is_empty());

    // Trusting the test's CA: delivered over both.
    std::env::set_var("SSL_CERT_FILE", broker.ca_file());
    let publisher = Publisher::start(&targets, "tls-cam", options).unwrap();
    publisher.publish_result(&seen_ada());
    assert!(publisher.flush(Duration::from_secs(15)));
    let stats = publisher.shutdown(Duration::from_secs(10));
    for s in &stats {
        assert_eq!((s.sent, s.failed), (1, 0), "{s:?}");
    }
    let messages = watch.wait_until(Duration::from_secs(5), |m| {
        m.iter().any(|m| m.topic == "secure/tracked_object_update")
    });
    let event = messages
        .iter()
        .find(|m| m.topic == "secure/tracked_object_update")
        .unwrap()
        .json();
    assert_eq!(event["name"], "Ada Lovelace");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].json()["id"], "tls-cam/s1/00000000/ada");
}
