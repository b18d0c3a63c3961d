//! The operator console: ratatui over crossterm, keyboard only, usable over SSH at 80x24.
//!
//! [`run`] starts the recognition service, takes the terminal (raw mode, alternate screen;
//! restored on quit, on error and on panic by ratatui's hook) and loops: feed the
//! [`state::ConsoleState`] from the running session (results, probe snapshot, pool), the log
//! feed and the GPIO button; draw the [`panels`]; handle a key. Sessions run on their own thread
//! ([`RecognitionService::spawn`]), so a slow frame never stalls capture.
//!
//! SIGTERM, SIGHUP and SIGINT (from `kill`; ctrl-c is a key here) quit like `q`: the session
//! drains and its report is written; a second signal restores the terminal and exits at once.
//! A terminal that goes away (SSH dropped) does the same as SIGHUP: the session finishes
//! without a screen. The exit status is then the signal's (see [`crate::signals`]).

mod attendance;
mod input;
mod logs;
pub mod panels;
pub mod source_picker;
pub mod state;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use rollcall_edge::source::SourceSpec;

use crate::plan::publish::{publish_lines, stats_since, Events};
use crate::plan::report::{failed_start_report_json, report_json, session_exit_code, write_report};
use crate::plan::CapturePlan;
use crate::service::{RecognitionService, RunningSession};
use input::TerminalInput;
use state::{ConsoleState, InputMode, Severity};

pub use logs::LogFeed;

/// How often the screen is refreshed when no key arrives.
const TICK: Duration = Duration::from_millis(100);

/// How the console starts.
#[derive(Debug, Default)]
pub struct ConsoleOptions {
    /// Start a session on the configured source at once.
    pub autostart: bool,
    /// Write each session's JSON report here (the last session's wins).
    pub report: Option<PathBuf>,
    /// Open the GPIO button and LED with these pins.
    #[cfg(feature = "gpio")]
    pub gpio: Option<rollcall_edge::gpio::GpioConfig>,
    /// AWS backend: the CloudWatch log group to tail (default: the Lambda's).
    pub log_group: Option<String>,
    /// What the Session panel says about GPIO when it is not used, and why.
    pub gpio_off_reason: String,
    /// Start-up warnings, shown in the status bar.
    pub warnings: Vec<String>,
    /// `--class`: take attendance of this roster (the attendance panel, marks).
    pub attendance: Option<crate::plan::attendance::AttendanceTaker>,
}

/// Run the console until the operator quits. The exit status is the last session's (non-zero
/// when clips were lost or the session failed), success when no session ran.
pub fn run(plan: CapturePlan, mut options: ConsoleOptions) -> Result<ExitCode> {
    // Warnings while the service starts (nobody enrolled, no log group...) are printed before
    // the console takes the screen: the status bar repeats them.
    let ring = crate::logs::ring::global();
    let before_start = ring.last_seq();
    eprintln!(
        "rollcall console: starting the {} backend...",
        plan.recognition.backend
    );
    let service = Arc::new(
        plan.start_service()
            .with_context(|| format!("cannot start the {} backend", plan.recognition.backend))?,
    );
    let logs = LogFeed::for_service(&service, options.log_group.as_deref())?;
    let events = Events::start(&plan.publish, &plan.device).context("cannot publish events")?;
    options.warnings.extend(
        ring.after(before_start)
            .into_iter()
            .filter(|captured| {
                captured
                    .line
                    .level
                    .is_some_and(|level| level <= crate::logs::LogLevel::Warn)
            })
            .map(|captured| captured.line.message),
    );
    let signals = {
        let spool = plan.spool_root.join(&plan.device);
        crate::signals::watch(
            &service.runtime(),
            |signal| tracing::info!("{}: quitting after the session drains", signal.name()),
            move |signal| {
                ratatui::restore();
                crate::logs::ring::mute_stderr(false);
                crate::plan::report::say_err(&format!(
                    "{} again: stopping now; unanswered clips stay in the spool {}",
                    signal.name(),
                    spool.display()
                ));
                crate::signals::exit_at_once(signal.exit_status());
            },
        )
        .context("cannot install the signal handlers")?
    };
    let mut console = Console::new(plan, service, options, logs, events, signals.clone());
    let input = TerminalInput::open().context("cannot open the terminal")?;
    let mut terminal = ratatui::try_init().context("cannot take over the terminal")?;
    crate::logs::ring::mute_stderr(true);
    let outcome = console.event_loop(&mut terminal, &input);
    ratatui::restore();
    crate::logs::ring::mute_stderr(false);
    outcome?;
    let exit = console.finish()?;
    Ok(signals.first().map_or(exit, |signal| signal.exit_code()))
}

struct Console {
    plan: CapturePlan,
    service: Arc<RecognitionService>,
    options: ConsoleOptions,
    state: ConsoleState,
    source: SourceSpec,
    session: Option<RunningSession>,
    logs: LogFeed,
    #[cfg(feature = "gpio")]
    gpio: Option<rollcall_edge::gpio::GpioPanel>,
    /// Quit once the running session has drained.
    quitting: bool,
    quit_now: bool,
    /// Signals received (SIGTERM...); the first one quits like `q`.
    signals: crate::signals::Received,
    signal_seen: bool,
    /// The terminal went away: no more drawing or keys, the session finishes without them.
    terminal_lost: bool,
    exit: ExitCode,
    summaries: Vec<String>,
    /// Sources of this process's sessions, newest first (the `o` picker lists them).
    recent_sources: Vec<String>,
    /// `--publish`: every result and each session's summary; counters when the current
    /// session started (a report holds its session's share).
    events: Events,
    events_at_start: Vec<rollcall_edge::publish::PublishStats>,
}

impl Console {
    fn new(
        plan: CapturePlan,
        service: Arc<RecognitionService>,
        options: ConsoleOptions,
        logs: LogFeed,
        events: Events,
        signals: crate::signals::Received,
    ) -> Console {
        let mut state = ConsoleState::new(
            plan.source.to_string(),
            service.backend().to_string(),
            service.describe(&plan.device),
            plan.device.clone(),
        );
        state.limit = plan.duration;
        state.grace = plan.grace;
        state.logs.origin = logs.origin();
        state.pool = service.pool_stats();
        state.attendance = options
            .attendance
            .as_ref()
            .map(attendance::AttendanceView::new);
        if !options.gpio_off_reason.is_empty() {
            state.gpio = options.gpio_off_reason.clone();
        }
        if !options.warnings.is_empty() {
            state.notify(Severity::Warning, options.warnings.join("; "));
        }
        #[cfg(feature = "gpio")]
        let gpio = match &options.gpio {
            None => None,
            Some(config) => match rollcall_edge::gpio::GpioPanel::open(config) {
                Ok(panel) => {
                    state.gpio = format!(
                        "button GPIO {} (start/stop), LED GPIO {}",
                        config.button_pin, config.led_pin
                    );
                    Some(panel)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "GPIO off");
                    state.gpio = format!("off: {e}");
                    state.notify(Severity::Warning, format!("GPIO off: {e}"));
                    None
                }
            },
        };
        Console {
            source: plan.source.clone(),
            plan,
            service,
            options,
            state,
            session: None,
            logs,
            #[cfg(feature = "gpio")]
            gpio,
            quitting: false,
            quit_now: false,
            signals,
            signal_seen: false,
            terminal_lost: false,
            exit: ExitCode::SUCCESS,
            summaries: Vec::new(),
            recent_sources: Vec::new(),
            events,
            events_at_start: Vec::new(),
        }
    }

    fn event_loop(
        &mut self,
        terminal: &mut ratatui::DefaultTerminal,
        input: &TerminalInput,
    ) -> Result<()> {
        if self.options.autostart {
            self.start_session();
        }
        loop {
            self.tick();
            if !self.terminal_lost {
                if let Err(e) = terminal.draw(|frame| panels::draw(frame, &self.state)) {
                    self.terminal_lost(&e);
                }
            }
            if self.quit_now {
                return Ok(());
            }
            if self.terminal_lost {
                std::thread::sleep(TICK);
                continue;
            }
            // Resize events need nothing but the redraw above.
            match input.keys(TICK) {
                Ok(keys) => keys.into_iter().for_each(|key| self.on_key(key)),
                Err(e) => self.terminal_lost(&e),
            }
        }
    }

    /// The terminal cannot be drawn on or read any more (SSH dropped): quit like SIGHUP.
    fn terminal_lost(&mut self, error: &std::io::Error) {
        tracing::warn!(%error, "the terminal is gone: finishing the session without it");
        self.terminal_lost = true;
        self.quit();
    }

    /// Bring the state up to date with the session, the logs, the button and the signals.
    fn tick(&mut self) {
        if !self.signal_seen {
            if let Some(signal) = self.signals.first() {
                self.signal_seen = true;
                self.quit();
                self.state.notify(
                    Severity::Warning,
                    format!(
                        "{}: quitting after the session drains (again: at once)",
                        signal.name()
                    ),
                );
            }
        }
        if let Some(session) = &self.session {
            while let Ok(got) = session.results.try_recv() {
                self.state.on_result(&got);
            }
            let snapshot = session.probe.snapshot();
            attendance::on_snapshot(&mut self.state, self.options.attendance.as_ref(), &snapshot);
            self.state.on_snapshot(snapshot, session.started.elapsed());
            if session.finished() {
                self.session_over();
            }
        }
        self.state.pool = self.service.pool_stats();
        match self.logs.poll() {
            Ok(lines) => self.state.logs.extend(lines),
            Err(e) => self
                .state
                .notify(Severity::Warning, format!("log tail: {e}")),
        }
        #[cfg(feature = "gpio")]
        if let Some(mut gpio) = self.gpio.take() {
            if gpio.button_pressed() {
                self.toggle_session();
            }
            gpio.set_led(self.state.known_in_view(rollcall_edge::source::now_ns()));
            self.gpio = Some(gpio);
        }
        if self.quitting && self.session.is_none() {
            self.quit_now = true;
        }
    }

    fn session_over(&mut self) {
        let Some(mut session) = self.session.take() else {
            return;
        };
        // Late results that arrived between the last drain and the end.
        while let Ok(got) = session.results.try_recv() {
            self.state.on_result(&got);
        }
        match session.join() {
            Ok(report) => {
                self.state.session_ended(Ok(&report));
                self.exit = session_exit_code(&report);
                self.events
                    .on_session_end(&report, &self.plan.device, &session.config.session_id);
                attendance::on_session_end(
                    &mut self.state,
                    self.options.attendance.as_ref(),
                    &report,
                    &session.config.session_id,
                    &self.plan.device,
                );
                if let Some(path) = &self.options.report {
                    let json = report_json(
                        &report,
                        &self.plan,
                        &session.config.session_id,
                        self.service.pool_stats().as_ref(),
                        &stats_since(&self.events.stats(), &self.events_at_start),
                        self.signals.first().map(|signal| signal.name()),
                    );
                    if let Err(e) = write_report(path, &json) {
                        self.state.notify(Severity::Error, format!("{e:#}"));
                    }
                }
            }
            Err(e) => {
                self.state.session_ended(Err(&e));
                self.state
                    .notify(Severity::Error, format!("session failed: {e}"));
                self.exit = ExitCode::FAILURE;
                if let Some(path) = &self.options.report {
                    let json = failed_start_report_json(
                        &self.plan,
                        &session.config.session_id,
                        &anyhow::anyhow!(e),
                    );
                    if let Err(e) = write_report(path, &json) {
                        tracing::warn!("{}", crate::errors::one_line(&e));
                    }
                }
            }
        }
        if let Some(outcome) = &self.state.last_outcome {
            tracing::info!("{outcome}");
            self.summaries.push(outcome.clone());
        }
    }

    fn toggle_session(&mut self) {
        match &self.session {
            Some(session) if !session.stopping() => {
                session.stop();
                self.state.draining(false);
                self.state
                    .notify(Severity::Info, "stopping: waiting for the last results");
            }
            Some(_) => self.state.notify(Severity::Info, "already stopping"),
            None => self.start_session(),
        }
    }

    fn start_session(&mut self) {
        let config = self.plan.session_config(&self.source);
        let session_id = config.session_id.clone();
        self.events_at_start = self.events.stats();
        let events = self.events.clone();
        match self.service.spawn(config, move |got| events.on_result(got)) {
            Ok(session) => {
                let spec = self.source.to_string();
                self.recent_sources.retain(|s| *s != spec);
                self.recent_sources.insert(0, spec);
                self.recent_sources.truncate(8);
                self.state.session_started(&session_id, self.plan.duration);
                self.state.source = self.source.to_string();
                self.state
                    .notify(Severity::Info, format!("session {session_id} started"));
                tracing::info!(session = %session_id, source = %self.source, "session started");
                self.session = Some(session);
            }
            Err(e) => {
                self.state.notify(
                    Severity::Error,
                    format!("cannot start: {}", crate::errors::one_line(&e)),
                );
                if let Some(path) = &self.options.report {
                    let json = failed_start_report_json(&self.plan, &session_id, &e);
                    if let Err(e) = write_report(path, &json) {
                        tracing::warn!("{}", crate::errors::one_line(&e));
                    }
                }
            }
        }
    }

    fn on_key(&mut self, key: KeyEvent) {
        let ctrl_c =
            key.modifiers.contains(KeyModifiers::CONTROL) && matches!(key.code, KeyCode::Char('c'));
        if ctrl_c {
            if self.quitting {
                self.quit_now = true;
            }
            self.quit();
            return;
        }
        match std::mem::replace(&mut self.state.mode, InputMode::Normal) {
            InputMode::Help | InputMode::Message => {}
            InputMode::Source(picker) => self.edit_source(key, picker),
            InputMode::Filter(text) => self.edit_filter(key, text),
            InputMode::Normal => match key.code {
                KeyCode::Char('q') => self.quit(),
                KeyCode::Char('s') => self.toggle_session(),
                KeyCode::Char('o') => {
                    let mut recent = self.recent_sources.clone();
                    recent.push(self.plan.source.to_string());
                    self.state.mode = InputMode::Source(source_picker::SourcePicker::open(
                        &self.source.to_string(),
                        &recent,
                    ));
                }
                KeyCode::Char('/') => {
                    self.state.mode = InputMode::Filter(self.state.logs.filter.clone());
                }
                KeyCode::Char('p') => self.state.logs.toggle_pause(),
                KeyCode::Char('c') => self.state.clear_people(),
                KeyCode::Char('a' | 'j' | 'k' | 'x' | 'm') => {
                    attendance::on_key(&mut self.state, self.options.attendance.as_ref(), key.code)
                }
                KeyCode::Char('e') if !self.state.status.is_empty() => {
                    self.state.mode = InputMode::Message;
                }
                KeyCode::Char('f') | KeyCode::End => self.state.logs.follow(),
                KeyCode::Up => self.state.logs.scroll_up(1),
                KeyCode::Down => self.state.logs.scroll_down(1),
                KeyCode::PageUp => {
                    let page = self.state.logs.page_rows();
                    self.state.logs.scroll_up(page);
                }
                KeyCode::PageDown => {
                    let page = self.state.logs.page_rows();
                    self.state.logs.scroll_down(page);
                }
                KeyCode::Home => self.state.logs.scroll_up(usize::MAX / 2),
                KeyCode::Char('?') | KeyCode::F(1) => self.state.mode = InputMode::Help,
                _ => {}
            },
        }
    }

    fn quit(&mut self) {
        self.quitting = true;
        match &self.session {
            Some(session) => {
                session.stop();
                self.state.draining(true);
                self.state.notify(
                    Severity::Info,
                    "quitting after the session drains (Ctrl-C again: at once)",
                );
            }
            None => self.quit_now = true,
        }
    }

    fn edit_source(&mut self, key: KeyEvent, mut picker: source_picker::SourcePicker) {
        match key.code {
            // The current source shows its URL redacted: choosing it keeps its password.
            KeyCode::Enter if picker.chosen() == self.source.to_string() => {}
            KeyCode::Enter => match source_picker::validate(picker.chosen()) {
                Ok(source) => {
                    self.state.notify(
                        Severity::Info,
                        if self.session.is_some() {
                            format!("source {source}: used by the next session")
                        } else {
                            format!("source {source}: press s to start")
                        },
                    );
                    self.source = source;
                    if self.session.is_none() {
                        self.state.source = self.source.to_string();
                    }
                }
                Err(e) => {
                    picker.error = Some(e);
                    self.state.mode = InputMode::Source(picker);
                }
            },
            KeyCode::Esc => {}
            KeyCode::Up => {
                picker.move_by(-1);
                self.state.mode = InputMode::Source(picker);
            }
            KeyCode::Down | KeyCode::Tab => {
                picker.move_by(1);
                self.state.mode = InputMode::Source(picker);
            }
            KeyCode::Backspace => {
                picker.backspace();
                self.state.mode = InputMode::Source(picker);
            }
            KeyCode::Char(c) => {
                picker.type_char(c);
                self.state.mode = InputMode::Source(picker);
            }
            _ => self.state.mode = InputMode::Source(picker),
        }
    }

    fn edit_filter(&mut self, key: KeyEvent, mut text: String) {
        match key.code {
            KeyCode::Enter => {
                self.state.logs.filter = text.trim().to_string();
            }
            KeyCode::Esc => {}
            KeyCode::Backspace => {
                text.pop();
                self.state.mode = InputMode::Filter(text);
            }
            KeyCode::Char(c) => {
                text.push(c);
                self.state.mode = InputMode::Filter(text);
            }
            _ => self.state.mode = InputMode::Filter(text),
        }
    }

    /// After the terminal is restored: say what happened, stop the service.
    fn finish(mut self) -> Result<ExitCode> {
        if let Some(mut session) = self.session.take() {
            // Quit at once (second ctrl-c): the session thread still drains before we go.
            session.stop();
            let _ = session.join();
            self.exit = ExitCode::FAILURE;
        }
        for line in &self.summaries {
            crate::plan::report::say(line);
        }
        for person in self.state.people_by_recency() {
            crate::plan::report::say(&format!(
                "  {} ({}): seen in {} clip(s), best similarity {:.3}",
                person.name, person.person_id, person.times_seen, person.best_similarity
            ));
        }
        drop(self.logs);
        for line in publish_lines(&self.events.shutdown(Duration::from_secs(5))) {
            crate::plan::report::say(&line);
        }
        if let Ok(service) = Arc::try_unwrap(self.service) {
            service.shutdown();
        }
        Ok(self.exit)
    }
}
