//! `rollcall session --source SRC`: a capture session, in the operator console or `--headless`.
//! Capture -> 0.5 s clips -> spool -> upload -> recognition -> result queue -> edge, with
//! end-to-end latency per clip. Embedded backend: the store, the autoscaling worker pool and the
//! result queue are in this process; AWS backend: S3 and the device's SQS queue, with the
//! function running in Lambda or `rollcall worker`.
//!
//! Exit status: 0 when every clip was answered; 1 when a clip was lost, is still in the spool,
//! or capture failed; 130 / 143 / 129 when SIGINT / SIGTERM / SIGHUP ended the session (after
//! it waited for the answers and wrote its report).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::plan::attendance::{summary_line, AttendanceArgs};
use crate::plan::durations::parse_duration_or_zero;
use crate::plan::report::say;
use crate::plan::report::{check_report_destination, session_exit_code};
use crate::plan::CaptureArgs;
use crate::settings::ConfigFile;
use rollcall_protocol::terminal_text::terminal_safe;

/// Run a capture session: the operator console, or `--headless` for scripts.
#[derive(Args, Debug)]
pub struct SessionArgs {
    /// Print one line per result, progress and a summary instead of the console UI.
    #[arg(long)]
    headless: bool,
    /// Write the session report (JSON) to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Headless: print a progress line this often (0 = never).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration_or_zero)]
    progress: Duration,
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub attendance: AttendanceArgs,
}

pub fn run(args: SessionArgs, config: &ConfigFile) -> Result<ExitCode> {
    if let Some(path) = &args.report {
        check_report_destination(path)?;
    }
    let plan = args.capture.plan(config)?;
    if !args.headless {
        let attendance = args.attendance.open(&plan)?;
        return crate::tui::run(
            plan,
            crate::tui::ConsoleOptions {
                autostart: true,
                report: args.report,
                attendance,
                ..crate::tui::ConsoleOptions::default()
            },
        );
    }
    // The roster is read first: a mistyped class fails before the camera starts.
    let attendance = args.attendance.open(&plan)?;
    let outcome = crate::headless::run(&plan, args.report.as_deref(), args.progress)?;
    if let Some(attendance) = attendance {
        let (stored, pruned) =
            attendance.store(&outcome.report, &outcome.session_id, &plan.device)?;
        say(&terminal_safe(&summary_line(&stored)));
        if pruned > 0 {
            say(&format!(
                "{pruned} older session(s) of attendance removed (retention)"
            ));
        }
    }
    Ok(match outcome.interrupted {
        Some(signal) => signal.exit_code(),
        None => session_exit_code(&outcome.report),
    })
}
