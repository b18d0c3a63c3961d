//! Keys from the terminal, and noticing when the terminal hangs up.
//!
//! crossterm 0.28 spins forever on a hung-up terminal: its reader loops until a read says
//! "would block", but a hung-up tty answers every read with end-of-file or EIO at once. So
//! the console first waits on the terminal itself with poll(2): a hang-up (the SSH connection
//! or the tmux pane went away) is reported as an error, and crossterm reads only when there
//! is input.

use std::fs::File;
use std::io::{self, IsTerminal};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use crossterm::event::{self, Event, KeyEvent, KeyEventKind};

/// The terminal crossterm reads keys from: stdin when it is a terminal, else `/dev/tty`.
pub struct TerminalInput {
    /// `/dev/tty`, kept open when stdin is not the terminal.
    tty: Option<File>,
}

impl TerminalInput {
    /// The console's terminal; fails when there is none.
    pub fn open() -> io::Result<TerminalInput> {
        let tty = if io::stdin().is_terminal() {
            None
        } else {
            Some(File::open("/dev/tty")?)
        };
        Ok(TerminalInput { tty })
    }

    fn fd(&self) -> RawFd {
        self.tty
            .as_ref()
            .map_or(io::stdin().as_raw_fd(), |tty| tty.as_raw_fd())
    }

    /// Waits up to `timeout` for input and returns the key presses that arrived (none on a
    /// timeout or for other events: a resize needs only the next redraw). Fails when the
    /// terminal hung up or cannot be read.
    pub fn keys(&self, timeout: Duration) -> io::Result<Vec<KeyEvent>> {
        if !self.readable(timeout)? {
            return Ok(Vec::new());
        }
        let mut keys = Vec::new();
        // One read may bring several events (a paste, fast typing): take all crossterm holds.
        loop {
            if let Event::Key(key) = event::read()? {
                if key.kind == KeyEventKind::Press {
                    keys.push(key);
                }
            }
            if !event::poll(Duration::ZERO)? {
                return Ok(keys);
            }
        }
    }

    /// Whether the terminal has input within `timeout`; an error when it hung up.
    fn readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut poll = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd, its count is 1; the descriptor stays open meanwhile.
        let rc = unsafe { libc::poll(&mut poll, 1, millis) };
        if rc < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                // A signal (SIGWINCH, SIGTERM...) woke us: the caller's loop looks again.
                io::ErrorKind::Interrupted => Ok(false),
                _ => Err(error),
            };
        }
        if poll.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the terminal hung up",
            ));
        }
        Ok(poll.revents & libc::POLLIN != 0)
    }
}
