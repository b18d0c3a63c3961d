//! `rollcall enroll` at scale: parallel workers, progress on stderr, and resuming (people whose
//! photos did not change are skipped; a changed photo re-enrols only its person; `--force`
//! re-enrols everyone). Real photos from the data set's `faces/train`.

mod common;

use common::{data_dir, models_present, rollcall, text};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn enrolment_resumes_and_skips_people_whose_photos_did_not_change() {
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("people.db");
    let train = tmp.path().join("train");
    for person in ["att_s1", "att_s2", "att_s3", "att_s4"] {
        copy_dir(&data.join("faces/train").join(person), &train.join(person));
    }
    let enroll = |extra: &[&str]| {
        let mut args = vec![
            "enroll",
            "--photos",
            train.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = rollcall(&args);
        assert!(out.status.success(), "{}", text(&out));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (first, progress) = enroll(&["--workers", "2"]);
    assert!(
        first.contains("4 enrolled, 0 unchanged (skipped), 0 not enrolled"),
        "{first}"
    );
    // Not a terminal: plain progress lines, the last one complete.
    assert!(
        progress.contains("enrolling: 4/4 people (100.0 %)") && progress.contains("done"),
        "{progress}"
    );

    let (second, _) = enroll(&[]);
    assert!(
        second.contains("0 enrolled, 4 unchanged (skipped), 0 not enrolled"),
        "{second}"
    );
    assert!(!second.contains("att_s1: enrolled"), "{second}");

    // One changed photo (another of the same person's photos in its place): only that person.
    let folder = train.join("att_s3");
    let mut photos: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    photos.sort();
    std::fs::copy(&photos[0], &photos[1]).unwrap();
    let (third, _) = enroll(&[]);
    assert!(
        third.contains("1 enrolled, 3 unchanged (skipped), 0 not enrolled"),
        "{third}"
    );
    assert!(third.contains("att_s3: enrolled"), "{third}");

    // A new person is enrolled, the others skipped; --force re-embeds everyone.
    copy_dir(&data.join("faces/train/att_s5"), &train.join("att_s5"));
    let (fourth, _) = enroll(&[]);
    assert!(
        fourth.contains("1 enrolled, 4 unchanged (skipped), 0 not enrolled"),
        "{fourth}"
    );
    let (forced, _) = enroll(&["--force", "--workers", "1"]);
    assert!(
        forced.contains("5 enrolled, 0 unchanged (skipped), 0 not enrolled"),
        "{forced}"
    );

    let out = rollcall(&[
        "enroll",
        "--photos",
        train.to_str().unwrap(),
        "--workers",
        "0",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--workers"), "{}", text(&out));
}
