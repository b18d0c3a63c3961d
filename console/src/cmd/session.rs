//! `rollcall session --source SRC`: a capture session, in the operator console or `--headless`.
//! Capture -> 0.5 s clips -> spool -> upload -> recognition -> result queue -> edge, with
//! end-to-end latency per clip. Embedded backend: the store, the autoscaling worker pool and the
//! result queue are in this process; AWS backend: S3 and the device's SQS queue, with the
//! function running in Lambda or `rollcall worker`.
//!
//! Exit status: 0 when every clip was answered; 1 when a clip was lost, is still in the spool,
//! or capture failed; 130 / 143 / 129 when SIGINT / SIGTERM / SIGHUP ended the session (after
//! it waited for the answers and wrote its report).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::cmd::console::OperatorArgs;
use crate::headless::HeadlessOptions;
use crate::plan::attendance::summary_line;
use crate::plan::durations::parse_duration_or_zero;
use crate::plan::report::{check_report_destination, say, say_err, session_exit_code};
use crate::settings::ConfigFile;
use rollcall_protocol::terminal_text::terminal_safe;

/// Run a capture session: the operator console, or `--headless` for scripts.
#[derive(Args, Debug)]
pub struct SessionArgs {
    /// Print one line per result, progress and a summary instead of the console UI.
    #[arg(long)]
    headless: bool,
    /// Headless: print a progress line this often (0 = never).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration_or_zero)]
    progress: Duration,
    /// Headless: one JSON object per result on standard output, for piping into other tools
    /// (the other lines go to standard error).
    #[arg(long, requires = "headless")]
    json_lines: bool,
    /// The console's flags (`rollcall console` takes the same) and the capture settings.
    #[command(flatten)]
    pub operator: OperatorArgs,
}

pub fn run(args: SessionArgs, config: &ConfigFile) -> Result<ExitCode> {
    if !args.headless {
        let (plan, options) = args.operator.console(true, config)?;
        return crate::tui::run(plan, options);
    }
    if let Some(path) = &args.operator.report {
        check_report_destination(path)?;
    }
    let plan = args.operator.capture.plan(config)?;
    // The roster is read first: a mistyped class fails before the camera starts.
    let attendance = args.operator.attendance.open(&plan)?;
    let outcome = crate::headless::run(
        &plan,
        args.operator.report.as_deref(),
        HeadlessOptions {
            progress: args.progress,
            json_lines: args.json_lines,
        },
    )?;
    if let Some(attendance) = attendance {
        let (stored, pruned) =
            attendance.store(&outcome.report, &outcome.session_id, &plan.device)?;
        // With --json-lines, standard output carries only the results.
        let tell = |line: &str| {
            if args.json_lines {
                say_err(line)
            } else {
                say(line)
            }
        };
        tell(&terminal_safe(&summary_line(&stored)));
        if pruned > 0 {
            tell(&format!(
                "{pruned} older session(s) of attendance removed (retention)"
            ));
        }
    }
    Ok(match outcome.interrupted {
        Some(signal) => signal.exit_code(),
        None => session_exit_code(&outcome.report),
    })
}
