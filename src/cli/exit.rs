//! Exit codes, decided in one place. Documented in the README.
//!
//! A command stopped by a signal after cleaning up exits with 128 + the
//! signal's number (`cairn::interrupt` exits with the same codes itself
//! when nothing needs cleaning up).

use std::process::ExitCode;

use cairn::interrupt::Signal;

/// How `cairn` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done.
    Ok = 0,
    /// Something failed; the message says what.
    Error = 1,
    /// The command line was wrong (clap exits with this code itself; an
    /// empty retention policy also counts).
    Usage = 2,
    /// A snapshot was committed, but some files were left out (or a
    /// database could only be stored as plain bytes).
    Partial = 3,
    /// Damage was found (a restored database failed its integrity check).
    Damage = 4,
    /// SIGINT stopped the command (128 + 2, as a shell reports it).
    Interrupted = 130,
    /// SIGTERM stopped the command (128 + 15).
    Terminated = 143,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }
}

/// The exit code for a failed command: usage errors the library detects
/// (an empty retention policy) are 2, everything else 1.
pub fn for_error(e: &anyhow::Error) -> Exit {
    if e.downcast_ref::<cairn::retention::PolicyError>().is_some() {
        return Exit::Usage;
    }
    if let Some(cairn::restore::RestoreError::Interrupted { signal, .. }) = e.downcast_ref() {
        return match signal.0 {
            Signal::Interrupt => Exit::Interrupted,
            Signal::Terminate => Exit::Terminated,
        };
    }
    Exit::Error
}

/// An error and its causes on one line, without repeating a cause that the
/// message above it already quotes.
pub fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
