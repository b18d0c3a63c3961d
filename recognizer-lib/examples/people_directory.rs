//! Open a people directory in a temporary SQLite file, import academic records from an inline CSV,
//! enrol one person with a toy embedding and list everyone.
//!
//! Run with `cargo run -p rollcall-recognizer --example people_directory`.

use rollcall_recognizer::directory::records_csv::read_records_from;
use rollcall_recognizer::directory::sqlite::SqliteDirectory;
use rollcall_recognizer::directory::{EnrollmentSample, PeopleDirectory};

const RECORDS: &str = "\
person_id,name,student_id,programme,year
jean_dupont,\"Dupont, Jean\",S1001,MSc Artificial Intelligence,1
alice_smith,Alice Smith,S1002,BSc Physics,3
../etc,Path Trick,S1003,BSc Law,2
bob_stone,,S1004,BEng Civil,2
";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = std::env::temp_dir().join(format!("rollcall-example-{}", std::process::id()));
    let db_path = tmp.join("people.sqlite");
    let directory = SqliteDirectory::open(&db_path)?;
    println!("directory: {}", directory.path().display());

    let import = read_records_from(RECORDS.as_bytes(), "inline records")?;
    for rejected in &import.rejected {
        println!("rejected {rejected}");
    }
    let written = directory.upsert_records(&import.records)?;
    println!("imported {written} records");

    // A real enrolment stores the mean of per-image face embeddings (512-d for fr_feature).
    let samples = vec![
        EnrollmentSample {
            person_id: "alice_smith".into(),
            image: "alice_1.jpg".into(),
            embedding: vec![0.6, 0.8, 0.0],
        },
        EnrollmentSample {
            person_id: "alice_smith".into(),
            image: "alice_2.jpg".into(),
            embedding: vec![0.8, 0.6, 0.0],
        },
    ];
    directory.enroll("alice_smith", &[0.7, 0.7, 0.0], &samples)?;
    // Enrolling someone without a record creates them with a name derived from the id.
    directory.enroll("carol_jones", &[0.0, 0.0, 1.0], &[])?;
    directory.set_setting("match_threshold", "0.391")?;

    println!(
        "\n{:<12} {:<14} {:<8} {:<28} details",
        "person_id", "name", "images", "enrolled_at"
    );
    for person in directory.people()? {
        let details: Vec<String> = person
            .details
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "{:<12} {:<14} {:<8} {:<28} {}",
            person.person_id,
            person.name,
            person.image_count,
            person.enrolled_at.as_deref().unwrap_or("-"),
            details.join(" ")
        );
    }
    println!(
        "\ngallery: {} enrolled, version {}, threshold {}",
        directory.gallery()?.len(),
        directory.gallery_version()?,
        directory.setting("match_threshold")?.unwrap_or_default()
    );

    drop(directory);
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}
