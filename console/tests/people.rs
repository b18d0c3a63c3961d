//! `rollcall people import|list|show|remove` through the real binary: on the SQLite directory
//! (records with a bad row, enrolled and not-enrolled people, removal, unknown ids) and on
//! DynamoDB against a moto server (`. scripts/moto`; skipped with the reason printed without
//! `AWS_ENDPOINT_URL`, unless `ROLLCALL_REQUIRE_AWS=1`).

mod common;

use std::path::Path;
use std::process::Output;

use common::{
    aws_endpoint as endpoint, data_dir, enroll_examples, models_present, rollcall,
    rollcall_command, text,
};

/// Three good rows (one person, Lin-Manuel Miranda, will also be enrolled from a photo), one
/// row missing its name (line 4) and one with a bad id (line 6).
const RECORDS: &str = "person_id,name,student_id,programme,year\n\
                       lin_manuel_miranda,Lin-Manuel Miranda,S0001,BA Musical Theatre,3\n\
                       ada_lovelace,Ada Lovelace,S0002,BSc Mathematics,2\n\
                       bad_row,,S0003,BSc Physics,1\n\
                       alan_turing,\"Turing, Alan\",S0004,\"MSc Computing, Logic\",1\n\
                       ../escape,Evil,S0005,BSc,1\n";

fn write_records(dir: &Path) -> String {
    let path = dir.join("people.csv");
    std::fs::write(&path, RECORDS).unwrap();
    path.to_str().unwrap().to_string()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

fn ids(list: &serde_json::Value) -> Vec<String> {
    list["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["person_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn import_list_show_remove_on_the_sqlite_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("people.db");
    let db = db.to_str().unwrap();
    let csv = write_records(tmp.path());

    let out = rollcall(&["people", "import", &csv, "--db", db]);
    let output = text(&out);
    println!("{output}");
    assert!(out.status.success(), "{output}");
    assert!(output.contains("line 4 rejected: missing name"), "{output}");
    assert!(output.contains("line 6 rejected"), "{output}");
    assert!(output.contains("3 imported, 2 rejected"), "{output}");

    let list = json(&rollcall(&["people", "list", "--json", "--db", db]));
    assert_eq!(
        ids(&list),
        ["ada_lovelace", "alan_turing", "lin_manuel_miranda"]
    );
    assert_eq!(list["count"], 3);
    let alan = &list["people"][1];
    assert_eq!(alan["name"], "Turing, Alan");
    assert_eq!(alan["details"]["programme"], "MSc Computing, Logic");
    assert_eq!(alan["enrolled"], false);
    assert_eq!(alan["enrolled_at"], serde_json::Value::Null);

    // The text table: one row per person, "no" for records without a face.
    let out = rollcall(&["people", "list", "--db", db]);
    let table = text(&out);
    println!("{table}");
    assert!(out.status.success(), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("alan_turing"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("Turing, Alan") && row.contains(" no ") && row.contains("student_id=S0004"),
        "{row}"
    );
    assert!(table.contains("3 people, 0 enrolled"), "{table}");

    // Enrol one of them from a photo (when the data set and models are here): the record is
    // kept and the person shows as enrolled, with the embedding described, not printed.
    let enrolled = data_dir().is_some() && models_present();
    if let (true, Some(data)) = (enrolled, data_dir()) {
        enroll_examples(
            &data,
            Path::new(db),
            &[("lin_manuel_miranda", "lin-manuel-miranda.png")],
        );
        let show = json(&rollcall(&[
            "people",
            "show",
            "lin_manuel_miranda",
            "--json",
            "--db",
            db,
        ]));
        assert_eq!(show["name"], "Lin-Manuel Miranda", "{show:#}");
        assert_eq!(show["details"]["student_id"], "S0001");
        assert_eq!(show["enrolled"], true);
        assert_eq!(show["image_count"], 1);
        assert!(show["enrolled_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(show["embedding"]["dim"], 512, "{show:#}");
        let norm = show["embedding"]["norm"].as_f64().unwrap();
        assert!(norm > 0.0, "{show:#}");
        assert_eq!(show["samples"][0]["image"], "lin-manuel-miranda.png");
        assert!(
            !show.to_string().contains("\"values\""),
            "no raw embedding: {show}"
        );
        let out = rollcall(&["people", "show", "lin_manuel_miranda", "--db", db]);
        let shown = text(&out);
        println!("{shown}");
        assert!(shown.contains("512-d, norm"), "{shown}");
        assert!(shown.contains("enrolled     yes"), "{shown}");
        let out = rollcall(&["people", "list", "--db", db]);
        assert!(text(&out).contains("yes (1 image)"), "{}", text(&out));
    }

    // A record without a face.
    let show = json(&rollcall(&[
        "people",
        "show",
        "ada_lovelace",
        "--json",
        "--db",
        db,
    ]));
    assert_eq!(show["enrolled"], false);
    assert_eq!(show["embedding"], serde_json::Value::Null);
    assert_eq!(show["samples"].as_array().unwrap().len(), 0);

    // Remove: gone from the list; removing or showing an unknown id fails clearly.
    let removed = if enrolled {
        "lin_manuel_miranda"
    } else {
        "ada_lovelace"
    };
    let out = rollcall(&["people", "remove", removed, "--db", db]);
    println!("{}", text(&out));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("removed {removed}")));
    let list = json(&rollcall(&["people", "list", "--json", "--db", db]));
    assert!(!ids(&list).contains(&removed.to_string()), "{list:#}");
    assert_eq!(list["count"], 2);

    for args in [
        ["people", "remove", "nobody_here"],
        ["people", "remove", removed],
        ["people", "show", "nobody_here"],
    ] {
        let out = rollcall_command()
            .args(args)
            .args(["--db", db])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("no person with id") && stderr.contains(args[2]),
            "{args:?}: {stderr}"
        );
    }
    let out = rollcall(&["people", "remove", "../x", "--db", db]);
    assert!(!out.status.success());
    assert!(text(&out).contains("invalid person id"), "{}", text(&out));

    // A file with nothing importable fails; a missing file names itself.
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "person_id,name\n,Nobody\n").unwrap();
    let out = rollcall(&["people", "import", bad.to_str().unwrap(), "--db", db]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("line 2 rejected"), "{}", text(&out));
    let missing = tmp.path().join("missing.csv");
    let out = rollcall(&["people", "import", missing.to_str().unwrap(), "--db", db]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(missing.to_str().unwrap()),
        "{}",
        text(&out)
    );
}

/// Run `rollcall` with its AWS resource names under `prefix`.
fn rollcall_aws(args: &[&str], prefix: &str) -> Output {
    rollcall_command()
        .args(args)
        .env("ROLLCALL_AWS_PREFIX", prefix)
        .output()
        .expect("run rollcall")
}

#[test]
fn import_list_show_remove_on_dynamodb() {
    if endpoint().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let prefix = format!("rc-people-{}", std::process::id());
    let out = rollcall_aws(&["aws", "provision", "--prefix", &prefix], &prefix);
    assert!(out.status.success(), "{}", text(&out));
    let csv = write_records(tmp.path());
    let table = format!("dynamodb:{prefix}-people");

    let out = rollcall_aws(&["people", "import", &csv, "--backend", "aws"], &prefix);
    let output = text(&out);
    println!("{output}");
    assert!(out.status.success(), "{output}");
    assert!(
        output.contains("3 imported, 2 rejected") && output.contains(&table),
        "{output}"
    );

    let list = json(&rollcall_aws(
        &["people", "list", "--json", "--backend", "aws"],
        &prefix,
    ));
    assert_eq!(list["directory"], table.as_str());
    assert_eq!(
        ids(&list),
        ["ada_lovelace", "alan_turing", "lin_manuel_miranda"]
    );
    assert_eq!(list["people"][1]["name"], "Turing, Alan");
    assert_eq!(list["people"][1]["enrolled"], false);

    let show = json(&rollcall_aws(
        &[
            "people",
            "show",
            "alan_turing",
            "--json",
            "--backend",
            "aws",
        ],
        &prefix,
    ));
    assert_eq!(show["details"]["programme"], "MSc Computing, Logic");
    assert_eq!(show["embedding"], serde_json::Value::Null);

    let out = rollcall_aws(
        &["people", "remove", "alan_turing", "--backend", "aws"],
        &prefix,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = rollcall_aws(
        &["people", "remove", "alan_turing", "--backend", "aws"],
        &prefix,
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no person with id"), "{}", text(&out));
    // ROLLCALL_BACKEND works like the flag.
    let out = rollcall_command()
        .args(["people", "list", "--json"])
        .env("ROLLCALL_AWS_PREFIX", &prefix)
        .env("ROLLCALL_BACKEND", "aws")
        .output()
        .unwrap();
    assert_eq!(ids(&json(&out)), ["ada_lovelace", "lin_manuel_miranda"]);
}
