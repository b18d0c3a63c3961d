//! The operator console in a real terminal: tmux runs `rollcall console`, the test presses keys
//! and reads the screen with capture-pane, then checks the terminal was restored on quit.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{data_dir, example_photos, models_present, rollcall, text, tmux_present, Tmux};

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
    let photos = example_photos(&data, dir.path(), &[("barack_obama", "obama.jpg")]);
    let records = dir.path().join("records.csv");
    std::fs::write(
        &records,
        "person_id,name,student_id,programme,year\n\
         barack_obama,Barack Obama,S-0044,Political Science,4\n",
    )
    .unwrap();
    let db = dir.path().join("people.db");
    let out = rollcall(&[
        "enroll",
        "--photos",
        photos.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));

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
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "console",
        "-x",
        "100",
        "-y",
        "30",
        &script,
    ]);
    assert!(out.status.success(), "{}", text(&out));

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
