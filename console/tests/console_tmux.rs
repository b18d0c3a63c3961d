//! The operator console in a real terminal: tmux runs `rollcall console`, the test presses keys
//! and reads the screen with capture-pane, then checks the terminal was restored on quit.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    data_dir, models_present, people_directory_without_faces, send_signal, spooled_clips, text,
    tmux_present, Tmux,
};

/// `path` quoted for sh.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

#[test]
fn console_in_tmux_starts_a_session_shows_a_name_and_latency_and_restores_the_terminal() {
    let Some(data) = data_dir() else { return };
    if !models_present() || !tmux_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = common::obama_with_record(&data, dir.path());

    let video = data.join("videos/armbiantest_obama/obama.mp4");
    let stty = dir.path().join("stty.txt");
    let script = format!(
        "{bin} console --gpio off --db {db} --spool {spool} --source file:{video} --duration 8s; \
         echo \"exit=$?\" > {stty}; stty -a >> {stty}; sleep 120",
        bin = shell_quote(Path::new(env!("CARGO_BIN_EXE_rollcall"))),
        db = shell_quote(&db),
        spool = shell_quote(&dir.path().join("spool")),
        video = shell_quote(&video),
        stty = shell_quote(&stty),
    );
    let tmux = Tmux::new("console");
    tmux.start(100, 30, &script);

    // The service is up when the idle console invites to start.
    tmux.wait_for(
        &["idle: press s to start", "Session"],
        Duration::from_secs(60),
    );
    tmux.cmd(&["send-keys", "-t", "console", "s"]);
    let screen = tmux.wait_for(
        &["Barack Obama", "S-0044, Political Science, year 4", "p50 "],
        Duration::from_secs(60),
    );
    println!("{screen}");
    assert!(screen.contains("running"), "{screen}");

    // Help overlay, then away again.
    tmux.cmd(&["send-keys", "-t", "console", "?"]);
    tmux.wait_for(&["choose the source"], Duration::from_secs(10));
    tmux.cmd(&["send-keys", "-t", "console", "x"]);

    // Quit: the session drains, the console leaves the alternate screen, the shell's stty runs.
    tmux.cmd(&["send-keys", "-t", "console", "q"]);
    let started = Instant::now();
    while !std::fs::read_to_string(&stty).is_ok_and(|s| s.contains("speed")) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the console did not quit:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let settings = std::fs::read_to_string(&stty).unwrap();
    println!("{settings}");
    let flags: Vec<&str> = settings.split_whitespace().collect();
    for restored in ["icanon", "echo", "isig"] {
        assert!(
            flags.contains(&restored),
            "terminal left with -{restored}: {settings}"
        );
    }
    let after = tmux.screen();
    assert!(
        !after.contains("Function log"),
        "the console's screen is still shown after quitting:\n{after}"
    );
    assert!(
        after.contains("Barack Obama (barack_obama): seen in"),
        "the summary printed after quitting:\n{after}"
    );
}

/// Waits until `path` exists and reads it; panics with the screen after `timeout`.
fn wait_for_file(path: &Path, timeout: Duration, tmux: &Tmux) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text;
            }
        }
        assert!(
            started.elapsed() < timeout,
            "{} not written after {timeout:?}:\n{}",
            path.display(),
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A console session on the test pattern in tmux, its pid in `<dir>/pid`, its exit status in
/// `<dir>/exit`, its report in `<dir>/report.json`.
fn console_session(dir: &Path, name: &str) -> (Tmux, u32) {
    let db = people_directory_without_faces(dir);
    let script = format!(
        "sh -c 'echo $$ > {pid}; exec {bin} console --gpio off --start --source test --duration 60s \
         --db {db} --spool {spool} --report {report}'; echo \"exit=$?\" > {exit}; sleep 60",
        pid = shell_quote(&dir.join("pid")),
        bin = shell_quote(Path::new(env!("CARGO_BIN_EXE_rollcall"))),
        db = shell_quote(&db),
        spool = shell_quote(&dir.join("spool")),
        report = shell_quote(&dir.join("report.json")),
        exit = shell_quote(&dir.join("exit")),
    );
    let tmux = Tmux::new(name);
    tmux.start(100, 30, &script);
    let pid = wait_for_file(&dir.join("pid"), Duration::from_secs(10), &tmux)
        .trim()
        .parse()
        .expect("pid");
    // Results are coming in (the latency panel has figures); a few more, then the test acts.
    tmux.wait_for(&["running", "p50 "], Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    (tmux, pid)
}

fn report(dir: &Path, tmux: &Tmux) -> serde_json::Value {
    let text = wait_for_file(&dir.join("report.json"), Duration::from_secs(60), tmux);
    serde_json::from_str(&text).expect("report JSON")
}

#[test]
fn sigterm_quits_the_console_after_the_drain_with_status_143() {
    if !models_present() || !tmux_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (tmux, pid) = console_session(dir.path(), "console-term");
    send_signal(pid, "TERM");
    let exit = wait_for_file(&dir.path().join("exit"), Duration::from_secs(60), &tmux);
    assert_eq!(exit.trim(), "exit=143", "{}", tmux.screen());
    let r = report(dir.path(), &tmux);
    assert_eq!(r["clips"]["lost"], 0, "{r:#}");
    assert_eq!(r["clips"]["spooled"], 0, "{r:#}");
    assert_eq!(r["clips"]["results"], r["clips"]["captured"], "{r:#}");
    assert!(spooled_clips(&dir.path().join("spool")).is_empty());
}

#[test]
fn a_console_whose_terminal_goes_away_still_finishes_its_session() {
    if !models_present() || !tmux_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (tmux, pid) = console_session(dir.path(), "console-hup");
    // The SSH connection drops: the terminal is gone and the console gets SIGHUP.
    let out = tmux.cmd(&["kill-server"]);
    assert!(out.status.success(), "{}", text(&out));
    let r = report(dir.path(), &tmux);
    assert_eq!(r["clips"]["lost"], 0, "{r:#}");
    assert_eq!(r["clips"]["spooled"], 0, "{r:#}");
    assert_eq!(r["clips"]["results"], r["clips"]["captured"], "{r:#}");
    let started = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the console did not exit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An AWS console session (moto) whose link to S3 and SQS goes through a proxy the test cuts:
/// the Session panel turns to "store unreachable since ..., N spooled, retrying", the status
/// bar's link message goes once the link is back, and quitting during a second outage shows
/// the drain's countdown and what Ctrl-C abandons; Ctrl-C then leaves the clips in the spool.
#[cfg(feature = "aws")]
#[test]
fn console_shows_an_outage_its_recovery_and_the_drain_countdown() {
    use common::proxy::BlackholeProxy;
    use std::net::ToSocketAddrs;

    let Some(endpoint) = common::aws_endpoint() else {
        return;
    };
    if !models_present() || !tmux_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("rc-tmux-outage-{}", std::process::id());
    let device = "cam-tmux-outage";
    common::provision(&prefix, device);
    let _worker = common::start_worker(&prefix, "300s");
    let upstream = endpoint
        .trim_start_matches("http://")
        .to_socket_addrs()
        .expect("moto address")
        .next()
        .unwrap();
    let proxy = BlackholeProxy::start(upstream);
    let spool = dir.path().join("spool");
    let script = format!(
        "env AWS_ENDPOINT_URL={url} ROLLCALL_AWS_PREFIX={prefix} {bin} console --gpio off --start \
         --backend aws --device {device} --source test --duration 300s --grace 20s \
         --spool {spool}; echo \"exit=$?\" > {exit}; sleep 60",
        url = proxy.url(),
        bin = shell_quote(Path::new(env!("CARGO_BIN_EXE_rollcall"))),
        spool = shell_quote(&spool),
        exit = shell_quote(&dir.path().join("exit")),
    );
    let tmux = Tmux::new("console-outage");
    tmux.start(100, 30, &script);
    tmux.wait_for(
        &["store and queue reachable", "p50 "],
        Duration::from_secs(90),
    );

    // First outage: the health line says so, in the Session panel.
    proxy.cut();
    let screen = tmux.wait_for(&["unreachable since", "retrying"], Duration::from_secs(90));
    println!("{screen}");
    assert!(screen.contains("spooled"), "{screen}");
    proxy.restore();
    let screen = tmux.wait_for(&["store and queue reachable"], Duration::from_secs(90));
    println!("{screen}");
    assert!(
        !screen.contains("unreachable since"),
        "the outage line stays after recovery:\n{screen}"
    );

    // Second outage, then quit: the drain counts down and says what Ctrl-C would abandon.
    proxy.cut();
    tmux.wait_for(&["unreachable since"], Duration::from_secs(90));
    tmux.cmd(&["send-keys", "-t", "console", "q"]);
    let first = tmux.wait_for(
        &["gives up in", "Ctrl-C again to abandon ("],
        Duration::from_secs(30),
    );
    println!("{first}");
    let seconds_left = |screen: &str| -> u64 {
        let at = screen.find("gives up in ").expect("countdown") + "gives up in ".len();
        screen[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("seconds")
    };
    std::thread::sleep(Duration::from_secs(3));
    let later = tmux.screen();
    println!("{later}");
    assert!(
        seconds_left(&later) < seconds_left(&first),
        "the countdown does not count down:\n{first}\n{later}"
    );
    // The line wraps in the panel: its end is on the next row.
    assert!(later.contains("in the spool)"), "{later}");
    tmux.cmd(&["send-keys", "-t", "console", "C-c"]);
    let exit = wait_for_file(&dir.path().join("exit"), Duration::from_secs(60), &tmux);
    assert_eq!(exit.trim(), "exit=1", "{}", tmux.screen());
    assert!(
        !spooled_clips(&spool).is_empty(),
        "the unanswered clips stay in the spool"
    );
}
