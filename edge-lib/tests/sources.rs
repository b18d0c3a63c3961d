//! Frame sources: real video files, error paths, the rpicam pipe (with a stand-in tool), an RTSP
//! camera served by a real RTSP server on loopback (killed, paused and restarted).

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rollcall_edge::segment::{ClipSegmenter, SegmentConfig};
use rollcall_edge::source::{
    open_source, CaptureError, FileSource, FrameSource, NetworkOptions, OutageLog, Pace,
    RpicamConfig, RpicamSource, SourceLink, SourceOptions, SourceSpec, V4l2Source,
};

fn fast() -> SourceOptions {
    SourceOptions {
        pace: Pace::Fast,
        ..Default::default()
    }
}

/// Reads a whole source through the segmenter; checks conservation and every clip.
fn segment_all(source: &mut dyn FrameSource) -> (u64, Vec<u32>) {
    let mut seg = ClipSegmenter::new(SegmentConfig::new("test-dev", "s1", source.fps())).unwrap();
    let mut frames = 0u64;
    let mut clips = Vec::new();
    while let Some(frame) = source.next_frame().unwrap() {
        assert_eq!(frame.index, frames);
        assert!(frame.is_well_formed());
        assert_eq!((frame.width, frame.height), source.size());
        frames += 1;
        clips.extend(seg.push(frame).unwrap());
    }
    clips.extend(seg.finish().unwrap());
    for clip in &clips {
        common::check_clip(clip);
    }
    let counts: Vec<u32> = clips.iter().map(|c| c.meta.frame_count).collect();
    assert_eq!(
        counts.iter().map(|&c| u64::from(c)).sum::<u64>(),
        frames,
        "frames lost or duplicated"
    );
    (frames, counts)
}

#[test]
fn file_source_reads_a_generated_h264_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let Some(video) = common::make_test_video(dir.path(), "320x240", 30, 2) else {
        return;
    };
    let spec = SourceSpec::parse(&format!("file:{}", video.display())).unwrap();
    let mut source = open_source(&spec, &fast()).unwrap();
    assert_eq!(source.size(), (320, 240));
    assert!((source.fps() - 30.0).abs() < 0.01, "{}", source.fps());
    assert!(source.describe().contains("testsrc.mp4"));
    let (frames, counts) = segment_all(source.as_mut());
    assert_eq!(frames, 60);
    assert_eq!(counts, vec![15, 15, 15, 15]);
}

#[test]
fn file_source_scales_to_the_requested_size_and_limits_frames() {
    let dir = tempfile::tempdir().unwrap();
    let Some(video) = common::make_test_video(dir.path(), "320x240", 30, 1) else {
        return;
    };
    let opts = SourceOptions {
        width: Some(161),
        height: Some(100),
        max_frames: Some(7),
        ..fast()
    };
    let mut source = FileSource::open(&video, &opts).unwrap();
    assert_eq!(source.size(), (160, 100));
    let mut n = 0;
    while let Some(f) = source.next_frame().unwrap() {
        assert_eq!(
            (f.width, f.height, f.data.len()),
            (160, 100, 160 * 100 * 3 / 2)
        );
        // testsrc is colourful: the RGB conversion sees more than grey.
        let rgb = f.to_rgb().unwrap();
        assert!(rgb.chunks(3).any(|p| p[0].abs_diff(p[2]) > 100));
        n += 1;
    }
    assert_eq!(n, 7);
}

#[test]
fn file_source_paces_in_real_time() {
    let dir = tempfile::tempdir().unwrap();
    let Some(video) = common::make_test_video(dir.path(), "64x48", 30, 1) else {
        return;
    };
    let opts = SourceOptions {
        max_frames: Some(10),
        ..Default::default()
    };
    let mut source = FileSource::open(&video, &opts).unwrap();
    let start = Instant::now();
    let mut stamps = Vec::new();
    while let Some(f) = source.next_frame().unwrap() {
        stamps.push(f.capture_ns);
    }
    // 10 frames at 30 fps: the last is due 300 ms after the first.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(280), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
    assert!(stamps[9] - stamps[0] >= 280_000_000);
}

#[test]
fn real_videos_from_the_shared_data() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let mut dirs: Vec<_> = std::fs::read_dir(data.join("videos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let mut tested = 0;
    for dir in dirs.iter().filter(|p| p.is_dir()) {
        let mut videos: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "mp4" || e == "mkv" || e == "webm" || e == "mov")
            })
            .collect();
        videos.sort();
        for video in videos {
            let mut source = FileSource::open(&video, &fast()).unwrap();
            let (w, h) = source.size();
            let fps = source.fps();
            let (frames, counts) = segment_all(&mut source);
            println!(
                "{}: {w}x{h} @ {fps:.2} fps, {frames} frames -> clips {counts:?}",
                video.display()
            );
            assert!(frames > 10, "{}", video.display());
            let per_clip = (f64::from(fps) * 0.5).round() as u32;
            assert!(
                counts[..counts.len() - 1].iter().all(|&c| c == per_clip),
                "{counts:?}"
            );
            tested += 1;
        }
    }
    assert!(
        tested > 0,
        "no video files under {}",
        data.join("videos").display()
    );
}

#[test]
fn missing_file_names_the_path() {
    let err = FileSource::open("/nonexistent/dir/clip.mp4", &fast())
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, CaptureError::FileOpen { .. }), "{msg}");
    assert!(msg.contains("/nonexistent/dir/clip.mp4"), "{msg}");
    let err = open_source(&SourceSpec::File("/nonexistent/x.mp4".into()), &fast())
        .err()
        .unwrap();
    assert!(err.to_string().contains("/nonexistent/x.mp4"));
}

#[test]
fn garbage_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.mp4");
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, garbage).unwrap();
    let err = FileSource::open(&path, &fast()).err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("garbage.mp4"), "{msg}");
    assert!(
        matches!(
            err,
            CaptureError::FileOpen { .. }
                | CaptureError::NoVideoStream { .. }
                | CaptureError::Decode { .. }
        ),
        "{msg}"
    );

    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let err = FileSource::open(&empty, &fast()).err().unwrap();
    assert!(err.to_string().contains("empty.mp4"), "{err}");

    let err = FileSource::open(dir.path(), &fast()).err().unwrap();
    assert!(err.to_string().contains("is a directory"), "{err}");
}

#[test]
fn audio_only_file_has_no_video_stream() {
    if !common::ffmpeg_cli() {
        println!("SKIP: the ffmpeg CLI is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.wav");
    let ok = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=0.5",
        ])
        .arg(&path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let err = FileSource::open(&path, &fast()).err().unwrap();
    assert!(matches!(err, CaptureError::NoVideoStream { .. }), "{err}");
    assert!(err.to_string().contains("tone.wav"), "{err}");
}

#[test]
fn missing_v4l2_device_names_the_device() {
    let err = V4l2Source::open("/dev/video99", &SourceOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, CaptureError::DeviceNotFound { .. }), "{err}");
    assert!(err.to_string().contains("/dev/video99"), "{err}");
    let err = open_source(
        &SourceSpec::parse("v4l2:/dev/video99").unwrap(),
        &SourceOptions::default(),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("/dev/video99"), "{err}");
}

#[test]
fn non_camera_v4l2_path_is_a_device_open_error() {
    // Exists but is not a V4L2 device: ffmpeg's v4l2 input refuses it.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("video0");
    std::fs::write(&fake, b"not a device").unwrap();
    let err = V4l2Source::open(&fake, &SourceOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, CaptureError::DeviceOpen { .. }), "{err}");
    assert!(err.to_string().contains("video0"), "{err}");
}

#[test]
fn missing_rpicam_tool_lists_what_was_tried() {
    let config = RpicamConfig {
        path_env: Some("".into()),
        ..Default::default()
    };
    let err = RpicamSource::open(&SourceOptions::default(), &config)
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, CaptureError::ToolNotFound { .. }), "{msg}");
    assert!(
        msg.contains("rpicam-vid") && msg.contains("libcamera-vid"),
        "{msg}"
    );
}

/// Writes an executable stand-in for the camera tool that streams H.264 from ffmpeg's test
/// source, or exits with an error, into `dir/name`.
fn fake_tool(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut p = dir.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("PATH") {
        p.push(":");
        p.push(old);
    }
    p
}

#[test]
fn rpicam_pipe_decodes_the_tool_output_with_fallback() {
    if !common::ffmpeg_cli() {
        println!("SKIP: the ffmpeg CLI is not installed; cannot fake rpicam-vid");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Only the fallback name exists, and it checks it got the expected arguments.
    fake_tool(
        dir.path(),
        "libcamera-vid",
        r#"case "$*" in *"-t 0 -n --codec h264 --inline --width 320 --height 240 --framerate 30 -o -"*) ;; *) echo "bad args: $*" >&2; exit 2;; esac
exec ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc=size=320x240:rate=30 -t 2 -c:v libx264 -bf 0 -pix_fmt yuv420p -f h264 -"#,
    );
    let config = RpicamConfig {
        path_env: Some(path_with(dir.path())),
        ..Default::default()
    };
    let opts = SourceOptions {
        width: Some(320),
        height: Some(240),
        fps: Some(30.0),
        max_frames: Some(40),
        ..Default::default()
    };
    let mut source = RpicamSource::open(&opts, &config).unwrap();
    assert!(
        source.describe().contains("libcamera-vid"),
        "{}",
        source.describe()
    );
    assert_eq!(source.size(), (320, 240));
    let mut n = 0;
    while let Some(f) = source.next_frame().unwrap() {
        assert!(f.is_well_formed());
        n += 1;
    }
    assert_eq!(n, 40);
}

#[test]
fn rpicam_tool_failure_reports_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    fake_tool(
        dir.path(),
        "rpicam-vid",
        "echo 'ERROR: *** no cameras available ***' >&2; exit 1",
    );
    let config = RpicamConfig {
        path_env: Some(path_with(dir.path())),
        ..Default::default()
    };
    let err = RpicamSource::open(&SourceOptions::default(), &config)
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, CaptureError::Tool { .. }), "{msg}");
    assert!(msg.contains("rpicam-vid"), "{msg}");
    assert!(msg.contains("no cameras available"), "{msg}");
}

#[test]
fn rpicam_tool_dying_mid_run_ends_with_an_error() {
    if !common::ffmpeg_cli() {
        println!("SKIP: the ffmpeg CLI is not installed; cannot fake rpicam-vid");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fake_tool(
        dir.path(),
        "rpicam-vid",
        "ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc=size=160x120:rate=30 -t 0.5 -c:v libx264 -bf 0 -pix_fmt yuv420p -f h264 -; echo 'camera unplugged' >&2; exit 3",
    );
    let config = RpicamConfig {
        path_env: Some(path_with(dir.path())),
        ..Default::default()
    };
    let opts = SourceOptions {
        width: Some(160),
        height: Some(120),
        ..Default::default()
    };
    let mut source = RpicamSource::open(&opts, &config).unwrap();
    let mut frames = 0;
    let err = loop {
        match source.next_frame() {
            Ok(Some(_)) => frames += 1,
            Ok(None) => panic!("a camera must not end quietly"),
            Err(e) => break e,
        }
    };
    assert_eq!(frames, 15);
    let msg = err.to_string();
    assert!(msg.contains("stream ended after 15 frames"), "{msg}");
    assert!(msg.contains("camera unplugged"), "{msg}");
    assert!(source.next_frame().unwrap().is_none());
}

/// Network-camera options for tests: a short read timeout and quick reconnection.
fn network_options() -> SourceOptions {
    SourceOptions {
        network: NetworkOptions {
            read_timeout: Duration::from_secs(2),
            reconnect_first: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(1),
            ..NetworkOptions::default()
        },
        ..Default::default()
    }
}

/// Reads frames (checking each one) until `outages` holds `outages_expected` outages, the last
/// one over, and then `n` more frames; returns the last frame.
fn read_through_outage(
    source: &mut dyn FrameSource,
    outages: &OutageLog,
    outages_expected: usize,
    n: usize,
) -> rollcall_edge::source::Frame {
    let mut after = 0;
    loop {
        let frame = source
            .next_frame()
            .expect("a dropped camera is no error")
            .expect("the camera came back before the test's time limit");
        assert!(frame.is_well_formed());
        assert_eq!((frame.width, frame.height), (320, 240));
        let list = outages.list();
        assert!(list.len() <= outages_expected, "{list:?}");
        if list.len() == outages_expected && list.last().is_none_or(|o| o.end_ns.is_some()) {
            after += 1;
            if after == n {
                return frame;
            }
        }
    }
}

#[test]
fn rtsp_camera_survives_a_server_restart_and_a_stall() {
    let dir = tempfile::tempdir().unwrap();
    let Some(video) = common::make_test_video(dir.path(), "320x240", 30, 30) else {
        return;
    };
    let Some(mut server) = common::rtsp::RtspServer::start(&video, Some("viewer:s3cr3t-pw")) else {
        return;
    };
    // A wrong password is refused at once, in words, without the password.
    let wrong = SourceSpec::parse(&server.url(Some("viewer:not-it"))).unwrap();
    let err = open_source(&wrong, &network_options())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("401 Unauthorized"), "{err}");
    assert!(
        err.contains("viewer:***@") && !err.contains("not-it"),
        "{err}"
    );
    // The right one (sent when the server asks) is never shown.
    let spec = SourceSpec::parse(&server.url(Some("viewer:s3cr3t-pw"))).unwrap();
    assert!(!format!("{spec} {spec:?}").contains("s3cr3t"));
    let mut source = open_source(&spec, &network_options()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let outages = OutageLog::new();
    // The deadline ends a test whose camera never comes back instead of hanging it.
    let deadline = Instant::now() + Duration::from_secs(90);
    source.link(SourceLink::new(
        Arc::clone(&stop),
        Some(deadline),
        outages.clone(),
    ));
    assert_eq!(source.size(), (320, 240));
    assert!((source.fps() - 30.0).abs() < 0.5, "{}", source.fps());
    let described = source.describe();
    assert!(
        described.contains("rtsp://viewer:***@127.0.0.1"),
        "{described}"
    );
    assert!(!described.contains("s3cr3t"), "{described}");

    // Frames arrive in real time, re-timed to the wall clock.
    let before = rollcall_edge::source::now_ns();
    let first = read_through_outage(source.as_mut(), &outages, 0, 30);
    assert!(first.capture_ns >= before);
    assert!(outages.is_empty());

    // The server dies; it comes back 1.5 s later on the same port.
    server.kill();
    let killed_at = Instant::now();
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        server.restart();
        server
    });
    let after = read_through_outage(source.as_mut(), &outages, 1, 10);
    let server = restarter.join().unwrap();
    assert!(killed_at.elapsed() >= Duration::from_millis(1500));
    assert!(after.index > first.index, "frame numbering goes on");
    let list = outages.list();
    assert_eq!(list.len(), 1, "{list:?}");
    let outage = &list[0];
    let end = outage.end_ns.expect("the outage ended");
    let offline = (end - outage.start_ns) as f64 / 1e9;
    assert!(
        (1.4..6.0).contains(&offline),
        "offline {offline} s: {outage:?}"
    );
    assert!(outage.failed_attempts >= 1, "{outage:?}");
    assert!(!outage.reason.contains("s3cr3t"));

    // The server hangs (no data, connection open): the read timeout (2 s) notices.
    server.pause();
    let paused_at = Instant::now();
    let resumer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(4));
        server.resume();
        server
    });
    read_through_outage(source.as_mut(), &outages, 2, 10);
    let mut server = resumer.join().unwrap();
    assert!(paused_at.elapsed() >= Duration::from_secs(4));
    let list = outages.list();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list[1].end_ns.is_some(), "{list:?}");

    // Offline while the session stops: the source ends promptly instead of reconnecting.
    server.kill();
    let stopper = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(800));
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let stopping = Instant::now();
    loop {
        match source.next_frame() {
            Ok(Some(_)) => continue, // frames still buffered before the drop
            Ok(None) => break,
            Err(e) => panic!("a dropped camera is no error: {e}"),
        }
    }
    stopper.join().unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "{:?}",
        stopping.elapsed()
    );
    let list = outages.list();
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(list[2].end_ns, None, "still offline when capture ended");
}

#[test]
fn an_unreachable_camera_is_a_clear_error_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        format!("rtsp://admin:hunter2@127.0.0.1:{port}/live"),
        format!("http://admin:hunter2@127.0.0.1:{port}/video.mjpg"),
    ] {
        let spec = SourceSpec::parse(&url).unwrap();
        let err = open_source(&spec, &network_options()).err().unwrap();
        let msg = err.to_string();
        assert!(matches!(err, CaptureError::StreamOpen { .. }), "{msg}");
        assert!(msg.contains("admin:***@127.0.0.1"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}

#[test]
fn http_mjpeg_camera_without_a_frame_rate_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let Some(video) = common::make_test_video(dir.path(), "320x240", 30, 20) else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/cam.mjpg");
    // ffmpeg as a one-client HTTP server of a multipart JPEG stream (no timing in it), at 30 fps.
    let mut server = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(&video)
        .args(["-an", "-f", "mpjpeg", "-q:v", "5", "-listen", "1", &url])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("start ffmpeg");
    let spec = SourceSpec::parse(&url).unwrap();
    let started = Instant::now();
    let opened = loop {
        match open_source(&spec, &network_options()) {
            Ok(source) => break Ok(source),
            // Refused until ffmpeg listens.
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => break Err(e),
        }
    };
    let mut source = opened.expect("the MJPEG stream opens");
    assert_eq!(source.size(), (320, 240));
    // ffmpeg guesses 25 for such streams; the arrivals say 30.
    assert!(
        (26.0..34.0).contains(&source.fps()),
        "{}",
        source.describe()
    );
    let mut last = 0;
    for i in 0..45 {
        let frame = source.next_frame().unwrap().expect("frames");
        assert_eq!(frame.index, i);
        assert!(frame.is_well_formed());
        assert!(frame.capture_ns >= last);
        last = frame.capture_ns;
    }
    drop(source);
    let _ = server.kill();
    let _ = server.wait();
}

/// A static file server on loopback for `root` (GET only, one thread per connection): enough
/// for ffmpeg's HLS client. Returns the port; the server lives as long as the test process.
fn serve_files(root: &Path) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let root = root.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let root = root.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                // Skip the headers.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let name = path.trim_start_matches('/');
                let mut stream = stream;
                match (name.contains(".."), std::fs::read(root.join(name))) {
                    (false, Ok(body)) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(&body);
                    }
                    _ => {
                        let _ = stream.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                }
            });
        }
    });
    port
}

#[test]
fn hls_playlist_over_http_is_read_like_a_camera() {
    let dir = tempfile::tempdir().unwrap();
    let Some(video) = common::make_test_video(dir.path(), "320x240", 30, 4) else {
        return;
    };
    let hls = dir.path().join("hls");
    std::fs::create_dir(&hls).unwrap();
    // One-second segments, as a camera's or a media server's HLS output.
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(&video)
        .args([
            "-c:v",
            "libx264",
            "-g",
            "30",
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_list_size",
            "0",
        ])
        .arg(hls.join("stream.m3u8"))
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not write the HLS playlist");
    let port = serve_files(&hls);
    let spec = SourceSpec::parse(&format!("http://127.0.0.1:{port}/stream.m3u8")).unwrap();
    let mut source = open_source(&spec, &network_options()).expect("the HLS playlist opens");
    assert_eq!(source.size(), (320, 240));
    let mut last = 0;
    // Past the first segment boundary: the next segments are fetched too.
    for i in 0..75 {
        let frame = source.next_frame().unwrap().expect("frames");
        assert_eq!(frame.index, i);
        assert!(frame.is_well_formed());
        assert!(frame.capture_ns >= last);
        last = frame.capture_ns;
    }
}
