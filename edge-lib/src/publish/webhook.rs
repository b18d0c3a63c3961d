//! The webhook sink: one `POST` of the event's JSON per event, in order, retried with a doubling
//! backoff on connection errors, timeouts, 5xx, 408 and 429; any other 4xx is final (retrying
//! would not change the answer).
//!
//! Headers: `Content-Type: application/json`, `X-Rollcall-Event` (`tracked_object_update` or
//! `session_summary`), `X-Rollcall-Event-Id` (the event's `id`, stable across retries), and with
//! a secret `X-Rollcall-Signature: sha256=<hex HMAC-SHA256 of the body>`; credentials in the
//! URL become `Authorization: Basic`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;

use super::publisher::{Counters, Outbound};
use super::{PublishOptions, WebhookTarget};

/// `sha256=<hex>` of `body` under `secret`: what `X-Rollcall-Signature` carries.
pub(crate) fn signature(secret: &[u8], body: &[u8]) -> String {
    match Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        // HMAC takes keys of any length: this does not happen.
        Err(_) => String::new(),
    }
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    /// Worth another try (network, timeout, 5xx, 408, 429).
    Retry(String),
    /// Refused for good (other 4xx).
    Refused(String),
}

/// Runs the target until `queue` closes.
pub(crate) async fn run(
    target: WebhookTarget,
    tls: Option<Arc<rustls::ClientConfig>>,
    mut queue: mpsc::Receiver<Outbound>,
    counters: Arc<Counters>,
    options: PublishOptions,
) {
    let shown = super::PublishTarget::Webhook(target.clone()).to_string();
    let (url, login) = target.request_parts();
    let uri: hyper::Uri = match url.parse() {
        Ok(uri) => uri,
        Err(e) => {
            // Parsing already checked the URL's shape; an unusual one ends up here.
            tracing::error!(target = %shown, error = %e, "webhook URL not usable; its events fail");
            while queue.recv().await.is_some() {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
    };
    let authorization = login.and_then(|(user, password)| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).ok()
    });
    // Plain http needs no certificates: an empty trust store then.
    let tls = match tls.map_or_else(
        || super::tls::config_with_roots(rustls::RootCertStore::empty()),
        Ok,
    ) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(target = %shown, error = %e, "no TLS configuration; webhook events fail");
            while queue.recv().await.is_some() {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let secret = options.webhook_secret.clone().map(String::into_bytes);
    while let Some(event) = queue.recv().await {
        let mut last = String::new();
        let mut delivered = false;
        for attempt in 0..options.attempts.max(1) {
            if attempt > 0 {
                counters.retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(options.backoff(attempt - 1)).await;
            }
            let mut request = Request::post(uri.clone())
                .header(CONTENT_TYPE, "application/json")
                .header(USER_AGENT, concat!("rollcall/", env!("CARGO_PKG_VERSION")))
                .header("X-Rollcall-Event", event.kind.topic_name())
                .header("X-Rollcall-Event-Id", event.id.as_str());
            if let Some(secret) = &secret {
                request = request.header("X-Rollcall-Signature", signature(secret, &event.body));
            }
            if let Some(value) = &authorization {
                request = request.header(AUTHORIZATION, value.clone());
            }
            let request = match request.body(Full::new(event.body.clone())) {
                Ok(r) => r,
                Err(e) => {
                    last = format!("cannot build the request: {e}");
                    break;
                }
            };
            let outcome = match tokio::time::timeout(options.timeout, client.request(request)).await
            {
                Err(_) => Attempt::Retry(format!(
                    "no answer within {:.0} s",
                    options.timeout.as_secs_f64()
                )),
                Ok(Err(e)) => Attempt::Retry(error_chain(&e)),
                Ok(Ok(response)) => classify(response.status()),
            };
            match outcome {
                Attempt::Delivered => {
                    delivered = true;
                    break;
                }
                Attempt::Retry(why) => {
                    tracing::debug!(target = %shown, event = %event.id, attempt, error = %why, "webhook attempt failed");
                    last = why;
                }
                Attempt::Refused(why) => {
                    last = why;
                    break;
                }
            }
        }
        if delivered {
            counters.sent.fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::warn!(target = %shown, event = %event.id, error = %last, "event not delivered to the webhook");
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn classify(status: StatusCode) -> Attempt {
    if status.is_success() {
        Attempt::Delivered
    } else if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Attempt::Retry(format!("answered {status}"))
    } else {
        Attempt::Refused(format!("answered {status}"))
    }
}

/// An error and its causes in one line (hyper's own message alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    crate::redact::redact_text(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn statuses_are_retried_or_final() {
        assert!(matches!(classify(StatusCode::OK), Attempt::Delivered));
        assert!(matches!(
            classify(StatusCode::NO_CONTENT),
            Attempt::Delivered
        ));
        for retry in [500, 502, 503, 408, 429] {
            let status = StatusCode::from_u16(retry).unwrap();
            assert!(matches!(classify(status), Attempt::Retry(_)), "{retry}");
        }
        for final_ in [400, 401, 404, 410] {
            let status = StatusCode::from_u16(final_).unwrap();
            assert!(matches!(classify(status), Attempt::Refused(_)), "{final_}");
        }
    }
}
