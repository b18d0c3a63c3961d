//! Attendance end to end: rosters, `session --class` on the real Obama video, the stored
//! decision (JSON and CSV), operator corrections, and `people remove --erase` leaving nothing
//! that names the person in any table (SQLite here; DynamoDB on moto below). Skipped (with
//! the reason printed) without the data set, the models or moto, unless required.

mod common;

use std::path::Path;

use common::{
    aws_endpoint, data_dir, enroll_examples, models_present, rollcall, rollcall_aws, text, unique,
};

/// Obama appears in every clip of this video; Biden and Lin-Manuel Miranda never.
const CLASS: [(&str, &str); 3] = [
    ("barack_obama", "obama.jpg"),
    ("joe_biden", "biden.jpg"),
    ("lin_manuel_miranda", "lin-manuel-miranda.png"),
];

fn obama_video(data: &Path) -> String {
    format!(
        "file:{}",
        data.join("videos/armbiantest_obama/obama.mp4").display()
    )
}

/// `attendance show SESSION --format json`, parsed.
fn show_json(db: &str, session: &str) -> serde_json::Value {
    let out = ok(&[
        "attendance",
        "show",
        session,
        "--format",
        "json",
        "--db",
        db,
    ]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn ok(args: &[&str]) -> String {
    let out = rollcall(args);
    let output = text(&out);
    assert!(out.status.success(), "{args:?}: {output}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A headless session of class `class` on the Obama video, with `extra` flags.
fn class_session(data: &Path, tmp: &Path, db: &str, class: &str, extra: &[&str]) -> String {
    let source = obama_video(data);
    let spool = tmp.join("spool");
    let mut args = vec![
        "session",
        "--headless",
        "--source",
        &source,
        "--pace",
        "fast",
        "--duration",
        "end",
        "--grace",
        "60s",
        "--db",
        db,
        "--spool",
        spool.to_str().unwrap(),
        "--class",
        class,
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

/// Every text cell of every table of the SQLite file that contains `needle`, as
/// `table: value`.
fn sqlite_mentions(db: &Path, needle: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(tables.iter().any(|t| t == "attendance"), "{tables:?}");
    let mut found = Vec::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                let text = match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                    _ => continue,
                };
                if text.contains(needle) {
                    found.push(format!("{table}: {text}"));
                }
            }
        }
    }
    found
}

#[test]
fn a_class_session_on_the_obama_video_marks_obama_present_and_the_others_absent() {
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db_path = tmp.path().join("people.db");
    enroll_examples(&data, &db_path, &CLASS);
    let db = db_path.to_str().unwrap();
    // The roster from a CSV (the records format), with one row naming nobody enrolled.
    let csv = tmp.path().join("class.csv");
    std::fs::write(
        &csv,
        "person_id,name\nbarack_obama,Barack Obama\njoe_biden,Joe Biden\nlin_manuel_miranda,Lin\nnobody_here,Nobody\n",
    )
    .unwrap();
    let imported = ok(&[
        "class",
        "import",
        "pol-101",
        csv.to_str().unwrap(),
        "--db",
        db,
    ]);
    assert!(imported.contains("nobody_here"), "{imported}");
    assert!(imported.contains("3 on the roster"), "{imported}");
    let roster = ok(&["class", "list", "pol-101", "--json", "--db", db]);
    let roster: serde_json::Value = serde_json::from_str(&roster).unwrap();
    assert_eq!(roster["members"].as_array().unwrap().len(), 3, "{roster}");

    let session = class_session(&data, tmp.path(), db, "pol-101", &[]);
    // No face images stay behind: every clip left the spool once answered.
    assert_eq!(
        common::spooled_clips(&tmp.path().join("spool")),
        Vec::<std::path::PathBuf>::new()
    );
    assert!(
        session.contains("class pol-101: 1 present of 3"),
        "{session}"
    );

    let a = show_json(db, "latest");
    let status = |id: &str| {
        a["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["person_id"] == id)
            .unwrap_or_else(|| panic!("no row for {id}: {a:#}"))
            .clone()
    };
    let obama = status("barack_obama");
    assert_eq!(obama["status"], "present", "{a:#}");
    assert!(obama["clips"].as_u64().unwrap() >= 2, "{a:#}");
    assert!(obama["best_similarity"].as_f64().unwrap() > 0.3, "{a:#}");
    assert!(obama["first_seen"].as_str().unwrap() <= obama["last_seen"].as_str().unwrap());
    for absent in ["joe_biden", "lin_manuel_miranda"] {
        let row = status(absent);
        assert_eq!(row["status"], "absent", "{a:#}");
        assert_eq!(row["clips"], 0, "{a:#}");
    }
    assert_eq!(a["rows"].as_array().unwrap().len(), 3, "no visitors: {a:#}");
    assert_eq!(a["class"], "pol-101");

    let csv = ok(&[
        "attendance",
        "show",
        "latest",
        "--format",
        "csv",
        "--db",
        db,
    ]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "header + one row per roster member: {csv}");
    assert!(
        lines[0].starts_with("session_id,class,person_id,name,status"),
        "{csv}"
    );
    assert!(
        lines[1].contains(",barack_obama,Barack Obama,present,"),
        "{csv}"
    );

    // A correction keeps the decision and says who, when and why; a formula-like reason
    // stays text in the CSV-free JSON and the session is listed.
    let session_id = a["session_id"].as_str().unwrap().to_string();
    ok(&[
        "attendance",
        "mark",
        &session_id,
        "joe_biden",
        "present",
        "--reason",
        "=came late, sat outside the camera",
        "--operator",
        "registrar",
        "--db",
        db,
    ]);
    let marked: serde_json::Value = show_json(db, &session_id);
    let biden = marked["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["person_id"] == "joe_biden")
        .unwrap()
        .clone();
    assert_eq!(biden["status"], "present", "{marked:#}");
    assert_eq!(biden["decided"], "absent", "{marked:#}");
    let correction = &marked["corrections"][0];
    assert_eq!(correction["operator"], "registrar");
    assert_eq!(correction["from"], "absent");
    assert!(correction["at"].as_str().unwrap().ends_with('Z'));
    let list = ok(&[
        "attendance",
        "list",
        "--class",
        "pol-101",
        "--json",
        "--db",
        db,
    ]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["session_id"], session_id.as_str(), "{list:#}");
    assert_eq!(list[0]["corrections"], 1, "{list:#}");

    // Erasure: nothing in any table names Obama afterwards.
    ok(&[
        "attendance",
        "mark",
        "latest",
        "barack_obama",
        "absent",
        "--reason",
        "check",
        "--db",
        db,
    ]);
    assert!(!sqlite_mentions(&db_path, "barack_obama").is_empty());
    let erased = ok(&["people", "remove", "barack_obama", "--erase", "--db", db]);
    assert!(
        erased.contains("1 class roster entry, 1 attendance row(s), 1 correction(s)"),
        "{erased}"
    );
    assert_eq!(
        sqlite_mentions(&db_path, "barack_obama"),
        Vec::<String>::new()
    );
    // The others are untouched.
    let after: serde_json::Value = show_json(db, &session_id);
    assert_eq!(after["rows"].as_array().unwrap().len(), 2, "{after:#}");
}

#[test]
fn a_person_seen_in_one_clip_only_is_unconfirmed() {
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db_path = tmp.path().join("people.db");
    enroll_examples(&data, &db_path, &CLASS[..1]);
    let db = db_path.to_str().unwrap();
    ok(&["class", "add", "c", "barack_obama", "--db", db]);
    // One 5 s clip covers the whole 4 s video: Obama is seen in exactly one clip.
    let session = class_session(&data, tmp.path(), db, "c", &["--clip-ms", "5000"]);
    assert!(session.contains("1 unconfirmed"), "{session}");
    let a: serde_json::Value = show_json(db, "latest");
    assert_eq!(a["rows"][0]["clips"], 1, "{a:#}");
    assert_eq!(a["rows"][0]["status"], "unconfirmed", "{a:#}");
    assert_eq!(a["confirm_clips"], 2, "{a:#}");
}

#[test]
fn sessions_refuse_a_class_without_a_roster_before_capturing() {
    let tmp = tempfile::tempdir().unwrap();
    let db = common::people_directory_without_faces(tmp.path());
    let out = rollcall(&[
        "session",
        "--headless",
        "--source",
        "test",
        "--duration",
        "1s",
        "--db",
        db.to_str().unwrap(),
        "--class",
        "nobody-101",
        "--spool",
        tmp.path().join("spool").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("class \"nobody-101\" has nobody on its roster"),
        "{}",
        text(&out)
    );
    let out = rollcall(&["class", "add", "c", "ghost", "--db", db.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("ghost"), "{}", text(&out));
    let out = rollcall(&["attendance", "show", "latest", "--db", db.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no attendance stored"),
        "{}",
        text(&out)
    );
}

/// Every item of every DynamoDB table of `prefix` whose text names `needle`.
fn dynamodb_mentions(prefix: &str, needle: &str) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = rollcall_protocol::aws::load_config().await;
        let client = aws_sdk_dynamodb::Client::new(&config);
        let tables = client.list_tables().send().await.unwrap();
        let mut found = Vec::new();
        let mut scanned = 0;
        for table in tables.table_names() {
            if !table.starts_with(prefix) {
                continue;
            }
            scanned += 1;
            let items = client.scan().table_name(table).send().await.unwrap();
            for item in items.items() {
                let text = format!("{item:?}");
                if text.contains(needle) {
                    found.push(format!("{table}: {text}"));
                }
            }
        }
        assert!(scanned > 0, "no table of {prefix}");
        found
    })
}

#[test]
fn erasure_on_dynamodb_leaves_no_item_naming_the_person() {
    if aws_endpoint().is_none() {
        return;
    }
    use rollcall_recognizer::directory::attendance::{
        AttendanceBook, AttendanceRow, AttendanceStatus, SessionAttendance,
    };
    use rollcall_recognizer::directory::dynamodb::DynamoDirectory;
    use rollcall_recognizer::directory::{EnrollmentSample, PeopleDirectory, PersonRecord};

    let prefix = unique("erase");
    common::provision(&prefix, "cam-1");
    let dir = DynamoDirectory::connect(&format!("{prefix}-people")).unwrap();
    let sample = |id: &str, v: [f32; 3]| EnrollmentSample {
        person_id: id.into(),
        image: format!("{id}.jpg"),
        embedding: v.to_vec(),
    };
    for (id, v) in [("ann_lee", [1.0, 0.0, 0.0]), ("bob_ray", [0.0, 1.0, 0.0])] {
        let mut record = PersonRecord::new(id).unwrap();
        record
            .details
            .insert("student_id".into(), format!("S-{id}"));
        dir.upsert_records(&[record]).unwrap();
        dir.enroll(id, &v, &[sample(id, v)]).unwrap();
    }
    dir.add_to_class("bio-1", &["ann_lee".into(), "bob_ray".into()])
        .unwrap();
    let row = |id: &str, status| AttendanceRow {
        person_id: id.into(),
        name: id.into(),
        status,
        decided: None,
        clips: 2,
        best_similarity: Some(0.6),
        first_seen_ns: Some(1),
        last_seen_ns: Some(2),
    };
    dir.store_attendance(&SessionAttendance {
        session_id: "s-1".into(),
        class: "bio-1".into(),
        device: "cam-1".into(),
        started_at: "2026-01-01T08:00:00Z".into(),
        ended_at: "2026-01-01T09:00:00Z".into(),
        confirm_clips: 2,
        rows: vec![
            row("ann_lee", AttendanceStatus::Present),
            row("bob_ray", AttendanceStatus::Present),
        ],
        corrections: vec![],
    })
    .unwrap();
    let marked = rollcall_aws(
        &[
            "attendance",
            "mark",
            "s-1",
            "ann_lee",
            "absent",
            "--reason",
            "stranger",
            "--backend",
            "aws",
        ],
        &prefix,
    );
    assert!(marked.status.success(), "{}", text(&marked));
    assert!(!dynamodb_mentions(&prefix, "ann_lee").is_empty());

    let out = rollcall_aws(
        &["people", "remove", "ann_lee", "--erase", "--backend", "aws"],
        &prefix,
    );
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert!(
        output.contains("1 class roster entry, 1 attendance row(s), 1 correction(s)"),
        "{output}"
    );
    assert_eq!(dynamodb_mentions(&prefix, "ann_lee"), Vec::<String>::new());
    assert_eq!(dir.roster("bio-1").unwrap(), vec!["bob_ray"]);
    assert_eq!(dir.attendance("s-1").unwrap().unwrap().rows.len(), 1);
    assert!(dir.person("bob_ray").unwrap().is_some());
}

#[test]
fn people_without_consent_are_not_enrolled_and_never_named() {
    let Some(data) = data_dir() else { return };
    if !models_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db_path = tmp.path().join("people.db");
    let db = db_path.to_str().unwrap();
    let photos = common::example_photos(&data, tmp.path(), &CLASS);
    let records = tmp.path().join("records.csv");
    std::fs::write(
        &records,
        "person_id,name,consent\nbarack_obama,Barack Obama,yes\njoe_biden,Joe Biden,yes\nlin_manuel_miranda,Lin,\n",
    )
    .unwrap();
    let enrolled = ok(&[
        "enroll",
        "--photos",
        photos.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
        "--require-consent",
        "--db",
        db,
    ]);
    assert!(
        enrolled.contains("not enrolled lin_manuel_miranda: no consent"),
        "{enrolled}"
    );
    let people: serde_json::Value =
        serde_json::from_str(&ok(&["people", "list", "--json", "--db", db])).unwrap();
    let is_enrolled = |id: &str| {
        people["people"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["person_id"] == id && p["enrolled"] == true)
    };
    assert!(
        is_enrolled("barack_obama") && !is_enrolled("lin_manuel_miranda"),
        "{people:#}"
    );
    ok(&[
        "class",
        "add",
        "pol",
        "barack_obama",
        "joe_biden",
        "--db",
        db,
    ]);

    // Obama withdraws consent after his enrolment: his face is no longer named.
    std::fs::write(
        &records,
        "person_id,name,consent\nbarack_obama,Barack Obama,withdrawn\n",
    )
    .unwrap();
    ok(&["people", "import", records.to_str().unwrap(), "--db", db]);
    let session = class_session(&data, tmp.path(), db, "pol", &[]);
    assert!(
        !session.contains("Barack Obama 0."),
        "named without consent: {session}"
    );
    assert!(session.contains("unknown"), "{session}");
    let a: serde_json::Value = show_json(db, "latest");
    assert_eq!(a["counts"]["present"], 0, "{a:#}");
    assert_eq!(a["counts"]["absent"], 2, "{a:#}");
}
