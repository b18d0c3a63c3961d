//! `lambda/template.yaml` passes cfn-lint with nothing to report, names its resources the way
//! `rollcall-protocol`'s `aws::Names` does (so the console and `rollcall worker` find them) and
//! hardens the bucket and the dead-letter queue as `rollcall aws provision` does.
//!
//! cfn-lint comes from `scripts/cfn-lint` (sourced by `scripts/test`: `ROLLCALL_CFN_LINT`, or
//! `cfn-lint` on PATH). Without it the test prints why it is skipped, unless
//! `ROLLCALL_REQUIRE_AWS=1`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use rollcall_protocol::aws::Names;

fn template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml")
}

fn cfn_lint() -> Option<PathBuf> {
    let candidate = std::env::var_os("ROLLCALL_CFN_LINT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cfn-lint"));
    if Command::new(&candidate)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
    {
        return Some(candidate);
    }
    assert!(
        !std::env::var("ROLLCALL_REQUIRE_AWS").is_ok_and(|v| v == "1"),
        "cfn-lint not found and ROLLCALL_REQUIRE_AWS=1 (`. scripts/cfn-lint` installs it)"
    );
    eprintln!("SKIPPED: cfn-lint not found (`. scripts/cfn-lint` installs it)");
    None
}

#[test]
fn template_passes_cfn_lint_without_findings() {
    let Some(cfn_lint) = cfn_lint() else { return };
    let out = Command::new(&cfn_lint)
        .arg("--format")
        .arg("parseable")
        .arg(template())
        .output()
        .expect("run cfn-lint");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "cfn-lint (exit {:?}) reports:\n{findings}",
        out.status.code()
    );
}

#[test]
fn template_names_match_the_code() {
    let text = std::fs::read_to_string(template()).unwrap();
    // The template's own placeholders through the code's naming rules.
    let names = Names::new("${Prefix}");
    for expected in [
        format!("QueueName: !Sub \"{}\"", names.events_queue()),
        format!("QueueName: !Sub \"{}\"", names.events_dlq()),
        format!("QueueName: !Sub \"{}\"", names.result_queue("${Device}")),
        format!("TableName: !Sub \"{}\"", names.table()),
        "AttributeName: pk".to_string(),
        format!("Value: {}", rollcall_protocol::aws::CLIPS_PREFIX),
        format!(
            "maxReceiveCount: {}",
            rollcall_recognizer::provision::MAX_RECEIVE_COUNT
        ),
        format!("LogGroupName: !Sub \"{}\"", names.lambda_log_group()),
        "ROLLCALL_AWS_PREFIX: !Ref Prefix".to_string(),
        "ROLLCALL_BUCKET:".to_string(),
        // The same hardening as `rollcall aws provision`.
        "BlockPublicAcls: true".to_string(),
        "RestrictPublicBuckets: true".to_string(),
        "SSEAlgorithm: AES256".to_string(),
        "ExpirationInDays: !Ref ClipRetentionDays".to_string(),
        format!(
            "Prefix: {}\n            ExpirationInDays: {}",
            rollcall_protocol::store::ANSWERS_PREFIX,
            rollcall_recognizer::provision::ANSWER_RETENTION_DAYS
        ),
        format!(
            "\"arn:${{AWS::Partition}}:s3:::${{Name}}/{}*\"",
            rollcall_protocol::store::ANSWERS_PREFIX
        ),
        format!(
            "Default: {}\n    MinValue: 1\n    Description: Clips are deleted",
            rollcall_recognizer::provision::DEFAULT_CLIP_RETENTION_DAYS
        ),
        format!(
            "MessageRetentionPeriod: {}",
            rollcall_recognizer::provision::DLQ_RETENTION_SECS
        ),
    ] {
        assert!(text.contains(&expected), "template.yaml lacks {expected:?}");
    }
}
