//! Reading a regular file that may change while it is read.
//!
//! A file written to during its read (a log appended to, a file truncated
//! or rewritten in place) yields bytes of no single moment: a 1 GB file cut
//! to 100 MB mid-read used to be stored as 179 MB of content, silently. So
//! the file's metadata is taken before and after each read (`fstat` on the
//! open file), and the read counts as whole only if size, mtime and ctime
//! stayed the same and exactly `size` bytes were read. A file that changed
//! is read once more from the start; if it changes again it is stored as
//! read, named in a warning, counted in the summary (`files_inconsistent`,
//! exit 3), and its change key is withheld, so the next snapshot reads it
//! again rather than trusting what was stored.
//!
//! The holes of a sparse file are found before each read and skipped (see
//! `sparse`); the read is whole if its data and holes add up to the size.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::CaptureError;
use super::change;
use super::handle::{self, FileStat};
use super::report::Warning;
use super::sparse::{self, DataReader};
use super::walk::Walker;
use crate::id::BlobId;
use crate::rawname::RawName;
use crate::snapshot::MAX_LISTED_LEFT_OUT;
use crate::tree::{ChangeKey, Hole, data_len};

/// A file's content as stored.
pub(super) struct FileRead {
    /// Its chunks.
    pub chunks: Vec<BlobId>,
    /// Its holes, which the chunks leave out.
    pub holes: Vec<Hole>,
    /// Bytes read plus the bytes of its holes.
    pub size: u64,
    /// Its metadata just before the read that was kept.
    pub stat: FileStat,
    /// What the next snapshot compares against.
    pub change: ChangeKey,
}

/// One read of the whole file, and whether the file held still during it.
struct Attempt {
    read: FileRead,
    held_still: bool,
}

/// The outer error stops the walk (the store failed); the inner one is the
/// source's, which only leaves the file out.
type Outcome<T> = Result<io::Result<T>, CaptureError>;

impl Walker<'_, '_> {
    /// Stores the content of `file` (at `path`, seen as `before` when it was
    /// opened, at `read_start`), reading it a second time if it changed
    /// during the first read.
    pub(super) fn read_consistently(
        &mut self,
        path: &Path,
        file: &File,
        before: FileStat,
        read_start: SystemTime,
    ) -> Outcome<FileRead> {
        let first = match self.read_once(file, before, read_start)? {
            Ok(attempt) => attempt,
            Err(e) => return Ok(Err(e)),
        };
        if first.held_still {
            return Ok(Ok(first.read));
        }
        let again = SystemTime::now();
        let before = match handle::fstat(file) {
            Ok(stat) => stat,
            Err(e) => return Ok(Err(e)),
        };
        let mut second = match self.read_once(file, before, again)? {
            Ok(attempt) => attempt,
            Err(e) => return Ok(Err(e)),
        };
        if !second.held_still {
            second.read.change.ctime = None;
            self.inconsistent(path);
        }
        Ok(Ok(second.read))
    }

    /// Reads `file` from its start into the store.
    fn read_once(
        &mut self,
        file: &File,
        before: FileStat,
        read_start: SystemTime,
    ) -> Outcome<Attempt> {
        let holes = sparse::holes(file, before.size);
        let stored = if holes.is_empty() {
            self.store_content(DataReader::to_end(file), before.size)?
        } else {
            let data = DataReader::new(file, before.size, &holes);
            self.store_content(data, data_len(before.size, &holes))?
        };
        let (chunks, read) = match stored {
            Ok(stored) => stored,
            Err(e) => return Ok(Err(e)),
        };
        let size = read + (before.size - data_len(before.size, &holes));
        // A file whose metadata cannot be read again is judged by what the
        // read itself saw.
        let after = handle::fstat(file).unwrap_or_else(|_| before.clone());
        let held_still = held_still(&before, &after, size);
        let change = change::key_after_read(&before, &after, read_start);
        Ok(Ok(Attempt {
            read: FileRead {
                chunks,
                holes,
                size,
                stat: before,
                change,
            },
            held_still,
        }))
    }

    /// Records that `path` was stored as read although it kept changing.
    fn inconsistent(&mut self, path: &Path) {
        self.summary.files_inconsistent += 1;
        if self.summary.inconsistent.len() < MAX_LISTED_LEFT_OUT {
            self.summary.inconsistent.push(RawName::from_path(path));
        }
        self.reporter.warn(&Warning::Inconsistent {
            path: path.to_owned(),
        });
    }
}

/// Whether a file seen as `before` and `after` a read of `read` bytes did
/// not change in between: same size, mtime and ctime, and neither a short
/// read nor a long one.
fn held_still(before: &FileStat, after: &FileStat, read: u64) -> bool {
    read == before.size
        && after.size == before.size
        && after.mtime == before.mtime
        && after.ctime == before.ctime
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::handle::stat_path;

    #[test]
    fn a_read_shorter_or_longer_than_the_size_seen_is_not_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"1234").unwrap();
        let stat = stat_path(&path).unwrap();
        assert!(held_still(&stat, &stat, 4));
        assert!(!held_still(&stat, &stat, 3));
        assert!(!held_still(&stat, &stat, 5));
    }

    #[test]
    fn a_change_of_size_mtime_or_ctime_during_the_read_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"1234").unwrap();
        let before = stat_path(&path).unwrap();
        let mut after = before.clone();
        after.mtime.nsec ^= 1;
        assert!(!held_still(&before, &after, 4));
        let mut after = before.clone();
        after.ctime.sec += 1;
        assert!(!held_still(&before, &after, 4));
        let mut after = before.clone();
        after.size = 3;
        assert!(!held_still(&before, &after, 4));
    }
}
