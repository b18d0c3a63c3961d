//! SIGINT, SIGTERM and SIGHUP end a session the same way: the first one stops capture and lets
//! the session wait for its answers, write its report and say what happened; the second one
//! stops at once (the clips stay in the spool, on disk, for the next run). systemd, docker and
//! `timeout` send SIGTERM; a dropped SSH connection sends SIGHUP.
//!
//! Exit codes after a signal follow the shell's convention, 128 + the signal number: 130
//! (SIGINT), 143 (SIGTERM), 129 (SIGHUP), whether the session then drained or not.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

/// A signal that ends a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// ctrl-c or `kill -INT`.
    Int,
    /// `kill`, systemd, docker, `timeout`.
    Term,
    /// The terminal (SSH connection) went away.
    Hup,
}

impl Interrupt {
    /// `SIGINT`, `SIGTERM`, `SIGHUP`.
    pub fn name(self) -> &'static str {
        match self {
            Interrupt::Int => "SIGINT",
            Interrupt::Term => "SIGTERM",
            Interrupt::Hup => "SIGHUP",
        }
    }

    /// 128 + the signal number.
    pub fn exit_status(self) -> u8 {
        match self {
            Interrupt::Int => 130,
            Interrupt::Term => 143,
            Interrupt::Hup => 129,
        }
    }

    /// [`Interrupt::exit_status`] as an exit code.
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.exit_status())
    }
}

/// Ends the process at once with `code`, after flushing what was printed: the second signal's
/// "stop now".
///
/// Not `std::process::exit`: that runs the C runtime's exit handlers, which tear ONNX
/// Runtime's globals down under the workers still recognising clips; those then answered their
/// clips with errors ("GetElementType is not implemented"), and the answers removed clips that
/// should have stayed in the spool (CI saw it in `a_second_signal_stops_at_once_and_keeps_the_spool`).
/// `_exit` ends every thread where it stands; the spool and the queues are built to survive that.
pub fn exit_at_once(code: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes no pointers and does not return; nothing of this process runs after it.
    unsafe { libc::_exit(i32::from(code)) }
}

/// The first signal received, if any (the watcher records it).
#[derive(Clone, Default)]
pub struct Received(Arc<Mutex<Option<Interrupt>>>);

impl Received {
    /// The first signal, if one came.
    pub fn first(&self) -> Option<Interrupt> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Takes over SIGINT, SIGTERM and SIGHUP on `runtime`: the first one calls `on_first`, the
/// second `on_second` (which should end the process). Fails when the handlers cannot be
/// installed.
pub fn watch(
    runtime: &tokio::runtime::Handle,
    on_first: impl Fn(Interrupt) + Send + 'static,
    on_second: impl Fn(Interrupt) + Send + 'static,
) -> std::io::Result<Received> {
    use tokio::signal::unix::{signal, SignalKind};

    let received = Received::default();
    let (mut int, mut term, mut hup) = {
        let _entered = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        )
    };
    let record = received.clone();
    runtime.spawn(async move {
        loop {
            let got = tokio::select! {
                Some(()) = int.recv() => Interrupt::Int,
                Some(()) = term.recv() => Interrupt::Term,
                Some(()) = hup.recv() => Interrupt::Hup,
                else => return,
            };
            let first = {
                let mut slot = record.0.lock().unwrap_or_else(|p| p.into_inner());
                let first = slot.is_none();
                slot.get_or_insert(got);
                first
            };
            if first {
                on_first(got);
            } else {
                on_second(got);
            }
        }
    });
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_shell() {
        assert_eq!(Interrupt::Int.exit_status(), 128 + 2);
        assert_eq!(Interrupt::Hup.exit_status(), 128 + 1);
        assert_eq!(Interrupt::Term.exit_status(), 128 + 15);
        assert_eq!(Interrupt::Term.name(), "SIGTERM");
    }
}
