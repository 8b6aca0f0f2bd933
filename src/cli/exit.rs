//! Exit codes, decided in one place ([`ending`]). Documented in the README.
//!
//! Commands return the library's [`Outcome`] (done, partial, damage) or an
//! error; nothing else decides an exit code. A command stopped by a signal
//! after cleaning up exits with 128 + the signal's number
//! (`cairn::interrupt` exits with the same codes itself when nothing needs
//! cleaning up).

use std::io;
use std::process::ExitCode;

use cairn::interrupt::Signal;
use cairn::outcome::Outcome;
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
    /// empty retention policy, a bad pattern or profile also count).
    Usage = 2,
    /// The work was committed, but some items are not in it or not whole
    /// (files left out of a snapshot, items a restore could not write), or
    /// a step after a committed one failed (the prune of a `forget
    /// --prune`).
    Partial = 3,
    /// Damage was found (by verify, or in a restored database).
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

/// The exit code of a command whose work ended with `outcome`.
fn of(outcome: &Outcome) -> Exit {
    match outcome {
        Outcome::Done => Exit::Ok,
        Outcome::Partial { .. } => Exit::Partial,
        Outcome::Damage { .. } => Exit::Damage,
    }
}

/// Attached (as context) to the failure of writing a command's report: the
/// command's work was done and ended with `outcome`; `committed` says what
/// it committed, if anything (`snapshot 4acb031c`).
#[derive(Debug)]
pub struct Finished {
    /// How the command's work ended.
    pub outcome: Outcome,
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

/// Attached (as context) to the failure of a step that came after a
/// committed one (the prune of a `forget --prune` whose forget was
/// committed): exit 1 promises that nothing was committed, so such a
/// failure exits 3, partial, or 4 when the step met damage; the message
/// names what was committed and the command that runs the failed step
/// again.
#[derive(Debug)]
pub struct AfterCommit {
    /// What was committed (`forgetting snapshot 4acb031c`).
    pub committed: String,
    /// The step that failed (`the prune after it`).
    pub failed: &'static str,
    /// The command that runs it again (`cairn prune`).
    pub again: &'static str,
}

impl std::fmt::Display for AfterCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was committed; only {} failed (`{}` runs it again)",
            self.committed, self.failed, self.again
        )
    }
}

/// How a command ends: its exit code, and the message for stderr (after
/// `cairn: `), if any. The one place that decides exit codes.
///
/// A reader that went away (`cairn snapshots | head -1`) is a normal end:
/// no message, and the exit code the command had when it was cut off (0
/// while streaming; a finished command's own, e.g. 3 or 4). Any other
/// failure to write stdout is an error (1), or 5 once something was
/// committed: exit 1 promises that nothing was.
pub fn ending(result: &anyhow::Result<Outcome>) -> (Exit, Option<String>) {
    match result {
        Ok(outcome) => (of(outcome), None),
        Err(e) => failed(e),
    }
}

fn failed(e: &anyhow::Error) -> (Exit, Option<String>) {
    let Some(cause) = e.chain().find_map(StdoutError::find) else {
        let exit = for_error(e);
        let mut message = format!("error: {}", describe(e));
        if exit == Exit::Damage {
            message
                .push_str(" (the store lacks data this needs: `cairn verify` says what is lost)");
        }
        return (exit, Some(printable(&message).into_owned()));
    };
    let finished = e.downcast_ref::<Finished>();
    if cause.kind() == io::ErrorKind::BrokenPipe {
        return (finished.map_or(Exit::Ok, |f| of(&f.outcome)), None);
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
/// (an empty retention policy, a pattern that does not compile, a list
/// file that cannot be read, a configuration file or profile that cannot
/// be used) are 2, damage 4, a step failed after a committed one
/// ([`AfterCommit`]) 3, everything else 1.
fn for_error(e: &anyhow::Error) -> Exit {
    if is_usage(e) {
        return Exit::Usage;
    }
    use cairn::restore::RestoreError::{Interrupted, TarInterrupted};
    if let Some(Interrupted { signal, .. } | TarInterrupted { signal, .. }) = e.downcast_ref() {
        return match signal.0 {
            Signal::Interrupt => Exit::Interrupted,
            Signal::Terminate => Exit::Terminated,
        };
    }
    if is_damage(e) {
        return Exit::Damage;
    }
    if e.downcast_ref::<AfterCommit>().is_some() {
        return Exit::Partial;
    }
    Exit::Error
}

/// Whether a command stopped on damaged or lost data in the store (a tree
/// pack gone, a blob the catalog lacks): exit 4 as for damage a restore or
/// verify meets on the way, not 1 as for a machine's failure.
fn is_damage(e: &anyhow::Error) -> bool {
    use cairn::browse::BrowseError;
    use cairn::pack::PackError;
    use cairn::repack::RepackError;
    use cairn::restore::RestoreError;
    use cairn::store::StoreError;
    e.chain().any(|cause| {
        cause
            .downcast_ref::<RestoreError>()
            .is_some_and(RestoreError::is_damage)
            || cause
                .downcast_ref::<BrowseError>()
                .is_some_and(BrowseError::is_damage)
            || cause
                .downcast_ref::<StoreError>()
                .is_some_and(StoreError::is_damage)
            || cause
                .downcast_ref::<PackError>()
                .is_some_and(PackError::is_damage)
            || cause
                .downcast_ref::<RepackError>()
                .is_some_and(RepackError::is_damage)
    })
}

fn is_usage(e: &anyhow::Error) -> bool {
    use cairn::capture::CaptureError;
    e.downcast_ref::<cairn::retention::PolicyError>().is_some()
        || e.downcast_ref::<cairn::browse::find::PatternError>()
            .is_some()
        || e.downcast_ref::<cairn::pattern::PatternError>().is_some()
        || e.downcast_ref::<cairn::capture::lists::ListError>()
            .is_some()
        || e.downcast_ref::<super::Usage>().is_some()
        || e.downcast_ref::<cairn::profile::ConfigError>().is_some()
        || matches!(
            e.downcast_ref::<CaptureError>(),
            Some(
                CaptureError::Exclude { .. } | CaptureError::Label(..) | CaptureError::StdinName(_)
            )
        )
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
