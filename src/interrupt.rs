//! Stopping cleanly on SIGINT and SIGTERM.
//!
//! A command with temporary files in flight (a restore writes each file
//! under a temporary name first) must not die where it stands: it would
//! leave them behind. Once [`catch_signals`] has run, the first SIGINT or
//! SIGTERM that arrives while a [`Cleanup`] guard is alive only records the
//! request; the code in flight polls [`check`] at safe points, removes what
//! it was writing and returns [`Interrupted`], and the command then exits
//! with 128 + the signal's number, as a shell reports a process the signal
//! killed. Outside such a section, or at a second signal, the process exits
//! at once with that code: nothing is in flight then, or the user insists.
//!
//! Signals belong to the whole process, so the state is process-wide.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

/// The number of the signal that asked to stop; 0 while none has.
static REQUESTED: AtomicUsize = AtomicUsize::new(0);
/// Whether a signal ends the process at once (no cleanup in progress).
static AT_ONCE: AtomicBool = AtomicBool::new(true);

/// A signal that asks a command to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`kill`, a service manager stopping a job).
    Terminate,
}

impl Signal {
    /// Its conventional name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }

    fn from_number(n: usize) -> Option<Self> {
        match i32::try_from(n).ok()? {
            SIGINT => Some(Self::Interrupt),
            SIGTERM => Some(Self::Terminate),
            _ => None,
        }
    }
}

/// The work stopped because a signal asked it to.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("interrupted by {}", .0.name())]
pub struct Interrupted(pub Signal);

/// Catches SIGINT and SIGTERM from now on, as described above.
pub fn catch_signals() -> io::Result<()> {
    for signal in [SIGINT, SIGTERM] {
        let code = 128 + signal;
        // The order matters: the exit is checked before the first signal
        // turns it on for the next one.
        signal_hook::flag::register_conditional_shutdown(signal, code, &AT_ONCE)?;
        signal_hook::flag::register(signal, &AT_ONCE)?;
        signal_hook::flag::register_usize(signal, &REQUESTED, signal as usize)?;
    }
    Ok(())
}

/// The signal that asked to stop, if one did.
pub fn requested() -> Option<Signal> {
    Signal::from_number(REQUESTED.load(Ordering::SeqCst))
}

/// `Err` once a signal has asked to stop: the caller removes what it has in
/// flight and returns.
pub fn check() -> Result<(), Interrupted> {
    match requested() {
        Some(signal) => Err(Interrupted(signal)),
        None => Ok(()),
    }
}

/// While alive, the first signal only asks to stop (see [`check`]).
#[must_use = "the cleanup section ends when the guard is dropped"]
pub struct Cleanup(());

impl Cleanup {
    /// Starts a section that cleans up after itself when asked to stop.
    pub fn start() -> Self {
        AT_ONCE.store(false, Ordering::SeqCst);
        Self(())
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        AT_ONCE.store(true, Ordering::SeqCst);
    }
}
