//! A real RTSP server on loopback for the network-camera tests: GStreamer's RTSP server
//! (Debian `gir1.2-gst-rtsp-server-1.0`, `python3-gi`, `gstreamer1.0-plugins-good`; installed by
//! scripts/setup) serving an H.264 MP4. It can be killed, paused (a stalled camera) and
//! restarted on the same port.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server script, passed to Python with `-c` (it needs nothing but its arguments).
const SCRIPT: &str = include_str!("rtsp_server.py");

/// Debian's Python has the GStreamer bindings; a Python from elsewhere (pyenv) usually not.
const PYTHONS: [&str; 2] = ["/usr/bin/python3", "python3"];

fn python_with_gst_rtsp() -> Option<&'static str> {
    PYTHONS.into_iter().find(|python| {
        Command::new(python)
            .args([
                "-c",
                "import gi; gi.require_version('GstRtspServer', '1.0'); \
                 from gi.repository import GstRtspServer",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// One RTSP server process serving `video` at `rtsp://127.0.0.1:<port>/cam`.
pub struct RtspServer {
    python: &'static str,
    video: PathBuf,
    login: Option<String>,
    port: u16,
    child: Option<Child>,
}

impl RtspServer {
    /// Starts a server on a free port, asking clients for `login` (`user:password`, HTTP Basic
    /// auth) when given; `None` (with the reason printed) when GStreamer's RTSP server is not
    /// installed, a failure when `ROLLCALL_REQUIRE_DATA=1` (CI).
    pub fn start(video: &Path, login: Option<&str>) -> Option<RtspServer> {
        let Some(python) = python_with_gst_rtsp() else {
            let msg = "GStreamer's RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) is not \
                       installed; scripts/setup installs it";
            assert!(
                std::env::var("ROLLCALL_REQUIRE_DATA").as_deref() != Ok("1"),
                "{msg}"
            );
            println!("SKIP: {msg}");
            return None;
        };
        let mut server = RtspServer {
            python,
            video: video.to_path_buf(),
            login: login.map(str::to_string),
            port: 0,
            child: None,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let mut child = Command::new(self.python)
            .arg("-c")
            .arg(SCRIPT)
            .arg(&self.video)
            .arg(self.port.to_string())
            .arg("/cam")
            .args(self.login.as_deref())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the RTSP server");
        let stdout = child.stdout.take().expect("server stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's port");
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("RTSP server did not start: {line:?}"));
        if self.port != 0 {
            assert_eq!(port, self.port, "restarted on another port");
        }
        self.port = port;
        self.child = Some(child);
    }

    /// `rtsp://[userinfo@]127.0.0.1:<port>/cam`.
    pub fn url(&self, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(info) => format!("rtsp://{info}@127.0.0.1:{}/cam", self.port),
            None => format!("rtsp://127.0.0.1:{}/cam", self.port),
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server at once (a camera losing power): its connections drop.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (retrying while the port is still being released).
    pub fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        loop {
            // The script exits with a message when it cannot listen; retry then.
            let probe = std::net::TcpListener::bind(("127.0.0.1", self.port));
            if probe.is_ok() {
                drop(probe);
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "port {} not free again",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.spawn();
    }

    /// Freezes the server process (a camera that hangs: connections stay open, nothing flows).
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused server run again.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("server running");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused process must run again to die of SIGKILL promptly everywhere.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill();
    }
}

/// Transcodes `input` into an MP4 the RTSP server streams well: H.264 without B-frames, a
/// keyframe every 0.5 s, no audio, looped `loops` extra times. `None` without the ffmpeg CLI.
pub fn rtsp_ready_video(input: &Path, output: &Path, loops: u32) -> Option<PathBuf> {
    let ffmpeg_cli = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ffmpeg_cli {
        println!("SKIP: the ffmpeg CLI is not installed");
        return None;
    }
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-stream_loop"])
        .arg(loops.to_string())
        .arg("-i")
        .arg(input)
        .args([
            "-an", "-c:v", "libx264", "-preset", "veryfast", "-g", "15", "-bf", "0", "-pix_fmt",
            "yuv420p",
        ])
        .arg(output)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed on {}", input.display());
    Some(output.to_path_buf())
}
