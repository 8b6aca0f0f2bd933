//! Exit codes, decided in one place. Documented in the README.
//!
//! A command stopped by a signal after cleaning up exits with 128 + the
//! signal's number (`cairn::interrupt` exits with the same codes itself
//! when nothing needs cleaning up).

use std::io;
use std::process::ExitCode;

use cairn::interrupt::Signal;
use cairn::rawname::printable;

use super::stdout::StdoutError;

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
    /// The work was done and committed, but its report could not be
    /// written (stdout on a full disk, say); stderr names what was committed.
    Unreported = 5,
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

/// Attached (as context) to the failure of writing a command's report: the
/// command's work was done and would have ended with `exit`; `committed`
/// says what it committed, if anything (`snapshot 4acb031c`).
#[derive(Debug)]
pub struct Finished {
    /// The exit code the command would have had.
    pub exit: Exit,
    /// What is committed whatever the output, for the message.
    pub committed: Option<String>,
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.committed {
            Some(what) => write!(
                f,
                "{what} was committed, but its report could not be written"
            ),
            None => f.write_str("the report could not be written"),
        }
    }
}

/// How a failed command ends: its exit code, and the message for stderr
/// (after `cairn: `), if any.
///
/// A reader that went away (`cairn snapshots | head -1`) is a normal end:
/// no message, and the exit code the command had when it was cut off (0
/// while streaming; a finished command's own, e.g. 3 or 4). Any other
/// failure to write stdout is an error (1), or 5 once something was
/// committed: exit 1 promises that nothing was.
pub fn ending(e: &anyhow::Error) -> (Exit, Option<String>) {
    let Some(cause) = e.chain().find_map(StdoutError::find) else {
        let message = format!("error: {}", describe(e));
        return (for_error(e), Some(printable(&message).into_owned()));
    };
    let finished = e.downcast_ref::<Finished>();
    if cause.kind() == io::ErrorKind::BrokenPipe {
        return (finished.map_or(Exit::Ok, |f| f.exit), None);
    }
    match finished {
        Some(
            f @ Finished {
                committed: Some(_), ..
            },
        ) => (Exit::Unreported, Some(format!("{f}: {cause}"))),
        _ => (
            Exit::Error,
            Some(format!("error: cannot write to standard output: {cause}")),
        ),
    }
}

/// The exit code for a failed command: usage errors the library detects
/// (an empty retention policy, a list file that cannot be read) are 2,
/// everything else 1.
fn for_error(e: &anyhow::Error) -> Exit {
    if e.downcast_ref::<cairn::retention::PolicyError>().is_some()
        || e.downcast_ref::<cairn::capture::lists::ListError>()
            .is_some()
    {
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
