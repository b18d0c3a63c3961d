//! A webhook receiver on loopback for the publishing tests: a plain HTTP/1.1 server (one request
//! per connection) that records every request and answers with scripted statuses.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    /// A header's value (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

#[derive(Default)]
struct Shared {
    requests: Vec<Request>,
    /// Statuses for the next requests, in order; 200 once empty.
    script: VecDeque<u16>,
    /// Hold every answer this long (a slow receiver).
    delay: Duration,
}

/// The receiver; it stops with the test process.
pub struct WebhookReceiver {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl WebhookReceiver {
    pub fn start() -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook receiver");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                for stream in listener.incoming().map_while(Result::ok) {
                    let shared = Arc::clone(&shared);
                    std::thread::spawn(move || serve(stream, &shared));
                }
            });
        }
        WebhookReceiver { port, shared }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answer the next requests with these statuses (then 200 again).
    pub fn script(&self, statuses: &[u16]) {
        self.shared.lock().unwrap().script.extend(statuses);
    }

    /// Hold every answer this long.
    pub fn delay(&self, delay: Duration) {
        self.shared.lock().unwrap().delay = delay;
    }

    /// Serves one connection that arrived elsewhere (a TLS listener of the test's own).
    pub fn serve_connection(&self, stream: impl Read + Write) {
        serve(stream, &self.shared);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Waits until `done` holds for the requests so far (failing after `timeout`).
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let started = Instant::now();
        loop {
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            assert!(
                started.elapsed() < timeout,
                "condition not met within {timeout:?}; received: {requests:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(mut stream: impl Read + Write, shared: &Mutex<Shared>) {
    // Head: up to the blank line.
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => data.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&data).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let (method, path) = (
        first.next().unwrap_or_default().to_string(),
        first.next().unwrap_or_default().to_string(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if stream.read_exact(&mut body).is_err() {
        return;
    }
    let (status, delay) = {
        let mut s = shared.lock().unwrap();
        s.requests.push(Request {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        (s.script.pop_front().unwrap_or(200), s.delay)
    };
    std::thread::sleep(delay);
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.flush();
}
