//! A capture session without the console (`session --headless`, the demo): one line per result,
//! progress lines, a summary, the JSON report. SIGINT, SIGTERM and SIGHUP end it the same way
//! ([`crate::signals`]): capture stops, the answers are awaited, the summary and the report are
//! written; a second signal stops at once, leaving the unanswered clips in the spool.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rollcall_edge::session::SessionReport;
use rollcall_edge::source::Pace;

use crate::plan::publish::{publish_lines, Events};
use crate::plan::report::{
    camera_offline_line, failed_start_report_json, link_outage_line, person_line, progress_line,
    report_json, result_line, say, say_err, say_err_warning, summary_lines, write_report,
};
use crate::plan::CapturePlan;
use crate::signals::Interrupt;

/// How a headless session ended.
pub struct Outcome {
    /// What the session measured.
    pub report: SessionReport,
    /// The signal that ended it early, if one did.
    pub interrupted: Option<Interrupt>,
    /// The session's id.
    pub session_id: String,
}

/// How long the end of a run waits for queued events to be delivered.
const PUBLISH_DRAIN: Duration = Duration::from_secs(10);

/// How a headless session prints.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadlessOptions {
    /// A progress line this often (zero: never).
    pub progress: Duration,
    /// One JSON object per result on standard output (the human lines go to standard error).
    pub json_lines: bool,
}

/// A session without the console: one line per result, progress lines, a summary, and the
/// JSON report written to `report_path` (also when the session cannot start: with `error`).
pub fn run(
    plan: &CapturePlan,
    report_path: Option<&Path>,
    options: HeadlessOptions,
) -> Result<Outcome> {
    let config_for_session = plan.session_config(&plan.source);
    let session_id = config_for_session.session_id.clone();
    let started = (|| -> Result<_> {
        let service =
            Arc::new(plan.start_service().with_context(|| {
                format!("cannot start the {} backend", plan.recognition.backend)
            })?);
        let events = Events::start(&plan.publish, &plan.device).context("cannot publish events")?;
        Ok((service, events))
    })();
    let (service, events) = match started {
        Ok(started) => started,
        Err(error) => return Err(failed_start(plan, &session_id, report_path, error)),
    };
    let say = |line: &str| {
        if options.json_lines {
            say_err(line)
        } else {
            say(line)
        }
    };
    say(&format!(
        "session {session_id} on device {}: {} ({} pace) -> {}",
        plan.device,
        plan.source,
        match plan.pace {
            Pace::RealTime => "real-time",
            Pace::Fast => "fast",
        },
        service.describe(&plan.device)
    ));
    for target in &plan.publish.targets {
        say(&format!("publishing events to {target}"));
    }
    let spawned = {
        let events = events.clone();
        service.spawn(config_for_session, move |got| events.on_result(got))
    };
    let mut running = match spawned {
        Ok(running) => running,
        Err(error) => return Err(failed_start(plan, &session_id, report_path, error)),
    };
    let signals = {
        let stop = running.stop_flag();
        let spool = running.config.spool_root.join(&plan.device);
        crate::signals::watch(
            &service.runtime(),
            move |signal| {
                say_err(&format!(
                    "interrupted by {}: finishing the session (a second signal stops at once)",
                    signal.name()
                ));
                stop.store(true, Ordering::Relaxed);
            },
            move |signal| {
                say_err(&format!(
                    "{} again: stopping now; unanswered clips stay in the spool {}",
                    signal.name(),
                    spool.display()
                ));
                crate::signals::exit_at_once(signal.exit_status());
            },
        )
        .context("cannot install the signal handlers")?
    };
    let mut last_progress = Instant::now();
    let mut introduced = std::collections::HashSet::new();
    // Per outage seen so far: whether its end was printed.
    let mut outages_shown: Vec<bool> = Vec::new();
    loop {
        for (i, outage) in running.probe.camera_offline().iter().enumerate() {
            if i == outages_shown.len() {
                outages_shown.push(false);
                if outage.end_ns.is_none() {
                    say(&format!("{}; reconnecting", camera_offline_line(outage)));
                }
            }
            if outage.end_ns.is_some() && !outages_shown[i] {
                outages_shown[i] = true;
                say(&camera_offline_line(outage));
            }
        }
        match running.results.recv_timeout(Duration::from_millis(250)) {
            Ok(got) => {
                // Someone's academic record, the first time they show up in this session.
                for person in &got.result.people {
                    if introduced.insert(person.person_id.clone()) {
                        say(&person_line(person));
                    }
                }
                let pool = service
                    .pool_stats()
                    .map(|p| {
                        format!(
                            "  [workers {} busy {} backlog {}]",
                            p.workers, p.busy, p.backlog
                        )
                    })
                    .unwrap_or_default();
                if options.json_lines {
                    say_json_line(&got);
                } else {
                    say(&format!("{}{pool}", result_line(&got)));
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if !options.progress.is_zero() && last_progress.elapsed() >= options.progress {
            last_progress = Instant::now();
            let snapshot = running.probe.snapshot();
            say_err(&progress_line(
                &snapshot,
                running.started.elapsed(),
                plan.duration,
            ));
            // The health line, in colour on a terminal, while the store or queue is away.
            if let Some(down) = link_outage_line(&snapshot.link, snapshot.spooled) {
                say_err_warning(&down);
            }
        }
    }
    // A session that could not open its source ends here (the error names the source).
    let report = match running.join() {
        Ok(report) => report,
        Err(e) => {
            return Err(failed_start(
                plan,
                &session_id,
                report_path,
                anyhow::anyhow!(e),
            ))
        }
    };
    events.on_session_end(&report, &plan.device, &session_id);
    let published = events.shutdown(PUBLISH_DRAIN);
    let function = service.handler_stats();
    let pool = match Arc::try_unwrap(service) {
        Ok(service) => service.shutdown(),
        Err(_) => None,
    };
    for line in summary_lines(&report, pool.as_ref()) {
        say(&line);
    }
    for line in publish_lines(&published) {
        say(&line);
    }
    if let Some(function) = function {
        say(&format!(
            "function: {} clip(s) processed, {} error result(s), {} redelivered, {} gallery load(s)",
            function.processed, function.errors, function.duplicates, function.gallery_loads
        ));
    }
    let interrupted = signals.first();
    let json = report_json(
        &report,
        plan,
        &session_id,
        pool.as_ref(),
        &published,
        interrupted.map(|signal| signal.name()),
    );
    if let Some(path) = report_path {
        write_report(path, &json)?;
    }
    Ok(Outcome {
        report,
        interrupted,
        session_id,
    })
}

/// The session could not start: its report says why (when one was asked for), and the error
/// goes back to the caller.
fn failed_start(
    plan: &CapturePlan,
    session_id: &str,
    report_path: Option<&Path>,
    error: anyhow::Error,
) -> anyhow::Error {
    if let Some(path) = report_path {
        let json = failed_start_report_json(plan, session_id, &error);
        if let Err(e) = write_report(path, &json) {
            say_err(&format!("error: {}", crate::errors::one_line(&e)));
        }
    }
    error
}

/// `--json-lines`: the result as the function sent it, with when it arrived and its
/// end-to-end latency, as one line of JSON on standard output.
fn say_json_line(got: &rollcall_edge::receive::ReceivedResult) {
    let mut json = serde_json::to_value(&got.result).unwrap_or(serde_json::Value::Null);
    if let Some(fields) = json.as_object_mut() {
        fields.insert(
            "received_at".into(),
            crate::plan::durations::rfc3339_ns(got.received_ns).into(),
        );
        fields.insert(
            "end_to_end_ms".into(),
            got.end_to_end.map(|d| d.as_secs_f64() * 1000.0).into(),
        );
    }
    say(&json.to_string());
}
