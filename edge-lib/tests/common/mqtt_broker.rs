//! A real MQTT broker on loopback for the publishing tests: mosquitto (Debian `mosquitto`,
//! installed by scripts/setup) with a password, optionally a TLS listener with a CA made for the
//! test (openssl), and `mosquitto_sub` (Debian `mosquitto-clients`) as an independent subscriber.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The broker's user and password.
pub const USER: &str = "edge";
pub const PASSWORD: &str = "mqtt-Pa55";

fn tool_present(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn run(command: &mut Command) {
    let out = command.output().expect("run a setup tool");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A mosquitto process with its own configuration in a temporary folder.
pub struct Mosquitto {
    child: Child,
    dir: tempfile::TempDir,
    /// Plain-text listener.
    pub port: u16,
    /// TLS listener (certificate for `localhost` and 127.0.0.1), when asked for.
    pub tls_port: Option<u16>,
}

impl Mosquitto {
    /// Starts a broker asking for [`USER`] / [`PASSWORD`]; `None` (with the reason printed)
    /// without mosquitto, mosquitto_sub or openssl, a failure under `ROLLCALL_REQUIRE_DATA=1`.
    pub fn start(tls: bool) -> Option<Mosquitto> {
        let missing: Vec<&str> = ["mosquitto", "mosquitto_passwd", "mosquitto_sub", "openssl"]
            .into_iter()
            .filter(|t| !tool_present(t))
            .collect();
        if !missing.is_empty() {
            let msg = format!("{missing:?} not installed (scripts/setup installs them)");
            assert!(
                std::env::var("ROLLCALL_REQUIRE_DATA").as_deref() != Ok("1"),
                "{msg}"
            );
            println!("SKIP: {msg}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        run(Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&passwd)
            .args([USER, PASSWORD]));
        let port = free_port();
        let mut config = format!(
            // `user root`: a broker started as root keeps reading the test's private folder.
            "user root\npersistence false\nallow_anonymous false\npassword_file {}\n\
             log_dest stderr\nlog_type error\nlistener {port} 127.0.0.1\n",
            passwd.display()
        );
        let tls_port = tls.then(|| {
            make_certificates(dir.path());
            let tls_port = free_port();
            let d = dir.path().display();
            config.push_str(&format!(
                "listener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
            ));
            tls_port
        });
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mosquitto");
        let broker = Mosquitto {
            child,
            dir,
            port,
            tls_port,
        };
        let started = Instant::now();
        for p in [Some(port), tls_port].into_iter().flatten() {
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "mosquitto did not listen on {p}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(broker)
    }

    /// `mqtt://edge:<password>@127.0.0.1:<port>/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("mqtt://{USER}:{PASSWORD}@127.0.0.1:{}/{prefix}", self.port)
    }

    /// `mqtts://...@localhost:<tls port>/<prefix>` (needs [`Mosquitto::ca_file`] trusted).
    pub fn tls_url(&self, prefix: &str) -> String {
        let port = self.tls_port.expect("started with TLS");
        format!("mqtts://{USER}:{PASSWORD}@localhost:{port}/{prefix}")
    }

    /// The CA that signed the broker's certificate (for `SSL_CERT_FILE`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The broker's certificate and key (PEM), for other TLS servers of the test.
    pub fn server_identity(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("server.pem"),
            self.dir.path().join("server.key"),
        )
    }

    /// Subscribes (`mosquitto_sub`, plain listener) to `filter` and collects what arrives.
    pub fn subscribe(&self, filter: &str) -> Subscription {
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-u", USER, "-P", PASSWORD, "-q", "1", "-t", filter])
            .args(["-F", "%r %q %t %p"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mosquitto_sub");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        {
            let messages = Arc::clone(&messages);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let mut parts = line.splitn(4, ' ');
                    let (Some(retained), Some(_qos), Some(topic)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    messages.lock().unwrap().push(Message {
                        retained: retained == "1",
                        topic: topic.to_string(),
                        payload: parts.next().unwrap_or_default().to_string(),
                    });
                }
            });
        }
        // Give the subscription a moment to reach the broker.
        std::thread::sleep(Duration::from_millis(300));
        Subscription { child, messages }
    }

    /// Kills the broker (its clients see the connection drop).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One message a subscriber received.
#[derive(Clone, Debug)]
pub struct Message {
    pub topic: String,
    pub retained: bool,
    pub payload: String,
}

impl Message {
    /// The payload as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.topic, self.payload))
    }
}

/// A running `mosquitto_sub`.
pub struct Subscription {
    child: Child,
    messages: Arc<Mutex<Vec<Message>>>,
}

impl Subscription {
    /// Everything received so far.
    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the messages so far (failing after `timeout`).
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&[Message]) -> bool) -> Vec<Message> {
        let started = Instant::now();
        loop {
            let messages = self.messages();
            if done(&messages) {
                return messages;
            }
            assert!(
                started.elapsed() < timeout,
                "condition not met within {timeout:?}; received: {messages:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for `localhost` / 127.0.0.1 signed by it, in `dir`.
fn make_certificates(dir: &Path) {
    let ossl = |args: &[&str]| {
        run(Command::new("openssl").current_dir(dir).args(args));
    };
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=rollcall test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    ossl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    ossl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
}
