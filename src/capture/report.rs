//! What a running capture tells its caller as it goes: warnings, and each
//! file as it is captured (for `-v`).

use std::path::{Path, PathBuf};

use crate::rawname::escaped;

/// Something the user should hear about that does not stop the snapshot.
#[derive(Debug, Clone)]
pub enum Warning {
    /// A file or directory could not be read and is not in the snapshot.
    LeftOut {
        /// The path.
        path: PathBuf,
        /// Why.
        cause: String,
    },
    /// A fifo, socket or device file, which cairn does not store.
    Skipped {
        /// The path.
        path: PathBuf,
        /// What kind of file it is.
        kind: &'static str,
    },
    /// A file that starts like a SQLite database but that SQLite refused:
    /// stored as plain bytes, not as a consistent image.
    StoredRaw {
        /// The path.
        path: PathBuf,
        /// SQLite's reason.
        cause: String,
    },
    /// A file that changed while it was read, twice: stored as read, which
    /// may be no state the file ever had.
    Inconsistent {
        /// The path.
        path: PathBuf,
    },
    /// A dump command that succeeded wrote on its standard error.
    CommandStderr {
        /// The command line.
        command: String,
        /// Its last lines on standard error.
        lines: Vec<String>,
    },
    /// Informational: something cairn decided on the user's behalf.
    Note {
        /// The message.
        message: String,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LeftOut { path, cause } => {
                write!(f, "{}: {cause}; left out of the snapshot", escaped(path))
            }
            Self::Skipped { path, kind } => write!(f, "{}: skipped {kind}", escaped(path)),
            Self::StoredRaw { path, cause } => write!(
                f,
                "{}: starts like a SQLite database but SQLite refused it ({cause}); stored as plain bytes, not as a consistent database image",
                escaped(path)
            ),
            Self::Inconsistent { path } => write!(
                f,
                "{}: changed while it was being read; stored as read, may be inconsistent",
                escaped(path)
            ),
            Self::CommandStderr { command, lines } => {
                write!(f, "`{command}` succeeded and said on its standard error")?;
                if lines.len() == super::command::TAIL_LINES {
                    write!(f, " (last {} lines)", lines.len())?;
                }
                f.write_str(":")?;
                lines.iter().try_for_each(|l| write!(f, "\n  {l}"))
            }
            Self::Note { message } => f.write_str(message),
        }
    }
}

/// How a captured file compares with the parent snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileChange {
    /// Not in the parent.
    New,
    /// Read again, and its content differs.
    Modified,
    /// Read again (its metadata changed), and its content is the same.
    Reread,
    /// Taken from the parent without being read.
    Unchanged,
}

/// Receives warnings while a capture runs.
pub trait Reporter: Sync {
    /// Called once per warning, as it happens.
    fn warn(&self, warning: &Warning);

    /// Called once per regular file captured (not for files left out), as
    /// it is done. Ignored unless a caller lists files.
    fn file(&self, _path: &Path, _change: FileChange) {}
}

pub(crate) fn left_out(path: &Path, cause: impl std::fmt::Display) -> Warning {
    Warning::LeftOut {
        path: path.to_owned(),
        cause: cause.to_string(),
    }
}
