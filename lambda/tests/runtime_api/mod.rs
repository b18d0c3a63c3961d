//! The AWS Lambda Runtime API, served on loopback for a `bootstrap` started by a test or a
//! bench: what the Lambda service does for a custom runtime (`provided.al2023`), as documented
//! ("AWS Lambda runtime API", version 2018-06-01):
//!
//! - `GET /2018-06-01/runtime/invocation/next` -> the next event, with its request id
//!   (`Lambda-Runtime-Aws-Request-Id`), deadline, function ARN and trace id headers; held open
//!   until there is one;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` -> 202;
//! - `POST /2018-06-01/runtime/init/error` -> 202.
//!
//! The first `next` request marks the function as ready: its cold start is over. Plain HTTP/1.1
//! with keep-alive (the runtime client reuses its connection), bodies by `Content-Length` or
//! chunked. Shared by `tests/pi_emulation.rs` and `benches/cold_start.rs`, each using part of it.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the function answered for one event.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// `POST .../response`: the body.
    Response(String),
    /// `POST .../error`: the body (an error document).
    Error(String),
}

#[derive(Default)]
struct State {
    events: VecDeque<(String, String)>,
    answers: HashMap<String, Answer>,
    first_next: Option<Instant>,
    init_error: Option<String>,
    log: Vec<String>,
}

/// A Runtime API endpoint on `127.0.0.1`; serves until dropped (the test process ends it).
pub struct RuntimeApi {
    address: String,
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl RuntimeApi {
    /// Listen on a free loopback port.
    pub fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let address = listener.local_addr().expect("local address").to_string();
        let shared: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        RuntimeApi { address, shared }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Queue an event; returns its request id.
    pub fn push_event(&self, payload: &str) -> String {
        let (lock, ready) = &*self.shared;
        let mut state = lock.lock().unwrap();
        let id = format!("req-{:04}", state.events.len() + state.answers.len() + 1);
        state.events.push_back((id.clone(), payload.to_string()));
        ready.notify_all();
        id
    }

    /// When the function first asked for an event (its cold start ended), waiting at most
    /// `timeout`; `None` if it did not (see [`RuntimeApi::init_error`] and its own output).
    pub fn wait_ready(&self, timeout: Duration) -> Option<Instant> {
        self.wait(timeout, |s| {
            s.first_next.is_some() || s.init_error.is_some()
        })
        .and_then(|s| s.first_next)
    }

    /// The answer to request `id`, waiting at most `timeout`.
    pub fn wait_answer(&self, id: &str, timeout: Duration) -> Option<Answer> {
        self.wait(timeout, |s| s.answers.contains_key(id))
            .and_then(|s| s.answers.get(id).cloned())
    }

    /// The error the function reported during initialisation, if any.
    pub fn init_error(&self) -> Option<String> {
        self.shared.0.lock().unwrap().init_error.clone()
    }

    /// The requests served so far (`METHOD path`), for failure messages.
    pub fn log(&self) -> Vec<String> {
        self.shared.0.lock().unwrap().log.clone()
    }

    fn wait(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> Option<StateView> {
        let (lock, ready) = &*self.shared;
        let deadline = Instant::now() + timeout;
        let mut state = lock.lock().unwrap();
        while !done(&state) {
            let left = deadline.checked_duration_since(Instant::now())?;
            state = ready.wait_timeout(state, left).unwrap().0;
        }
        Some(StateView {
            first_next: state.first_next,
            answers: state.answers.clone(),
        })
    }
}

struct StateView {
    first_next: Option<Instant>,
    answers: HashMap<String, Answer>,
}

/// One connection: requests until the client closes it.
fn serve(stream: TcpStream, shared: &(Mutex<State>, Condvar)) {
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    while let Some((method, path, body)) = read_request(&mut reader) {
        let (lock, ready) = shared;
        lock.lock().unwrap().log.push(format!("{method} {path}"));
        let reply = if method == "GET" && path == "/2018-06-01/runtime/invocation/next" {
            let mut state = lock.lock().unwrap();
            state.first_next.get_or_insert_with(Instant::now);
            ready.notify_all();
            let (id, payload) = loop {
                if let Some(event) = state.events.pop_front() {
                    break event;
                }
                state = ready.wait(state).unwrap();
            };
            drop(state);
            let deadline_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() + 300_000)
                .unwrap_or(0);
            let headers = format!(
                "Lambda-Runtime-Aws-Request-Id: {id}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline_ms}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:rollcall-recognizer\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n"
            );
            http_response(200, &headers, &payload)
        } else if let Some(rest) = path.strip_prefix("/2018-06-01/runtime/invocation/") {
            let (id, kind) = rest.split_once('/').unwrap_or((rest, ""));
            let answer = match kind {
                "response" => Some(Answer::Response(body)),
                "error" => Some(Answer::Error(body)),
                _ => None,
            };
            match answer {
                Some(answer) if method == "POST" => {
                    lock.lock().unwrap().answers.insert(id.to_string(), answer);
                    ready.notify_all();
                    http_response(202, "", r#"{"status":"OK"}"#)
                }
                _ => http_response(404, "", "{}"),
            }
        } else if method == "POST" && path == "/2018-06-01/runtime/init/error" {
            lock.lock().unwrap().init_error = Some(body);
            ready.notify_all();
            http_response(202, "", r#"{"status":"OK"}"#)
        } else {
            http_response(404, "", "{}")
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn http_response(status: u16, headers: &str, body: &str) -> String {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        _ => "Not Found",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One request (method, path, body), or `None` when the connection ends.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, String)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut content_length = 0usize;
    let mut chunked = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().ok()?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(content_length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some((method, path, String::from_utf8_lossy(&body).into_owned()))
}

/// The environment Lambda gives a function, pointed at `api`.
pub fn lambda_environment(api: &RuntimeApi, memory_mb: u32) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", api.address().to_string()),
        (
            "AWS_LAMBDA_FUNCTION_NAME",
            "rollcall-recognizer".to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/rollcall-recognizer".to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef".to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
