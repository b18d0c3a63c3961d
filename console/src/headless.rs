//! A capture session without the console (`session --headless`, the demo): one line per result,
//! progress lines, a summary, the JSON report.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rollcall_edge::session::SessionReport;
use rollcall_edge::source::Pace;

use crate::plan::publish::{publish_lines, Events};
use crate::plan::report::{
    outage_line, person_line, print_summary, progress_line, report_json, result_line, write_report,
};
use crate::plan::CapturePlan;

/// How long the end of a run waits for queued events to be delivered.
const PUBLISH_DRAIN: Duration = Duration::from_secs(10);

/// A session without the console: one line per result, progress every `progress` (zero:
/// never), a summary, and the JSON report written to `report_path`.
pub fn run(
    plan: &CapturePlan,
    report_path: Option<&Path>,
    progress: Duration,
) -> Result<SessionReport> {
    let service = Arc::new(
        plan.start_service()
            .with_context(|| format!("cannot start the {} backend", plan.recognition.backend))?,
    );
    let events = Events::start(&plan.publish, &plan.device).context("cannot publish events")?;
    let config_for_session = plan.session_config(&plan.source);
    let session_id = config_for_session.session_id.clone();
    println!(
        "session {session_id} on device {}: {} ({} pace) -> {}",
        plan.device,
        plan.source,
        match plan.pace {
            Pace::RealTime => "real-time",
            Pace::Fast => "fast",
        },
        service.describe()
    );
    for target in &plan.publish.targets {
        println!("publishing events to {target}");
    }
    let mut running = {
        let events = events.clone();
        service.spawn(config_for_session, move |got| events.on_result(got))?
    };
    {
        let stop = running.stop_flag();
        service.runtime().spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: finishing the session");
                stop.store(true, Ordering::Relaxed);
            }
        });
    }
    let mut last_progress = Instant::now();
    let mut introduced = std::collections::HashSet::new();
    // Per outage seen so far: whether its end was printed.
    let mut outages_shown: Vec<bool> = Vec::new();
    loop {
        for (i, outage) in running.probe.camera_offline().iter().enumerate() {
            if i == outages_shown.len() {
                outages_shown.push(false);
                if outage.end_ns.is_none() {
                    println!("{}; reconnecting", outage_line(outage));
                }
            }
            if outage.end_ns.is_some() && !outages_shown[i] {
                outages_shown[i] = true;
                println!("{}", outage_line(outage));
            }
        }
        match running.results.recv_timeout(Duration::from_millis(250)) {
            Ok(got) => {
                // Someone's academic record, the first time they show up in this session.
                for person in &got.result.people {
                    if introduced.insert(person.person_id.clone()) {
                        println!("{}", person_line(person));
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
                println!("{}{pool}", result_line(&got));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if !progress.is_zero() && last_progress.elapsed() >= progress {
            last_progress = Instant::now();
            eprintln!(
                "{}",
                progress_line(
                    &running.probe.snapshot(),
                    running.started.elapsed(),
                    plan.duration
                )
            );
        }
    }
    let report = running
        .join()
        .map_err(|e| anyhow::anyhow!(e))
        .with_context(|| format!("session on {}", plan.source))?;
    events.on_session_end(&report, &plan.device, &session_id);
    let published = events.shutdown(PUBLISH_DRAIN);
    let function = service.handler_stats();
    let pool = match Arc::try_unwrap(service) {
        Ok(service) => service.shutdown(),
        Err(_) => None,
    };
    print_summary(&report, pool.as_ref());
    for line in publish_lines(&published) {
        println!("{line}");
    }
    if let Some(function) = function {
        println!(
            "function: {} clip(s) processed, {} error result(s), {} redelivered, {} gallery load(s)",
            function.processed, function.errors, function.duplicates, function.gallery_loads
        );
    }
    let json = report_json(&report, plan, &session_id, pool.as_ref(), &published);
    if let Some(path) = report_path {
        write_report(path, &json)?;
    }
    Ok(report)
}
