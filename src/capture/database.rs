//! The walk's handling of SQLite databases: a file that starts with the
//! SQLite header is captured as a consistent image (see
//! [`crate::database::image`]) cut into runs of whole pages, instead of
//! being read as bytes.
//!
//! What must hold: a database is stored either as a consistent image or,
//! when SQLite refuses the file, as its plain bytes with a warning; a busy
//! database is left out, never copied raw. Its `-wal`, `-shm` and
//! `-journal` files are not stored (their committed content is in the
//! image). An unchanged database is taken over from the parent only when
//! neither the file nor its `-wal` changed since its capture.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::CaptureError;
use super::change;
use super::handle::{self, DirHandle, FileStat, Kind};
use super::report::Warning;
use super::walk::{Walker, entry_meta};
use crate::database::image::{self, Image, ImageError, ImageRequest, RunsStopped};
use crate::database::{self, SqliteMode};
use crate::id::BlobId;
use crate::pack::BlobKind;
use crate::progress::Progress;
use crate::rawname::RawName;
use crate::snapshot::{DatabaseSummary, MAX_LISTED_LEFT_OUT};
use crate::store::StoreError;
use crate::tree::{Content, DatabaseInfo, Entry, SideFileKey};

/// How the capture treats databases.
#[derive(Debug, Clone, Copy)]
pub struct SqliteOptions {
    /// Detect and capture them, or store them raw.
    pub mode: SqliteMode,
    /// How long a busy database is retried.
    pub timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            mode: SqliteMode::Auto,
            timeout: Duration::from_secs(60),
        }
    }
}

/// A file being read, as the walk opened it.
pub(super) struct Opened<'a> {
    pub path: &'a Path,
    pub name: &'a OsStr,
    pub file: &'a File,
    pub stat: &'a FileStat,
    /// The directory the walk found it in; `None` for a path the user
    /// named (symlinks in it are followed).
    pub dir: Option<&'a DirHandle>,
}

/// Why a taken image could not be stored.
enum Unusable {
    /// Reading it failed.
    Read(io::Error),
    /// It changed while it was read directly: take it again with SQLite.
    Changed,
}

/// What became of a file that starts like a database.
pub(super) enum DbOutcome {
    /// Captured as a database.
    Captured(Box<Entry>),
    /// SQLite refused it: the caller stores its bytes.
    NotADatabase,
    /// Left out (already reported).
    LeftOut,
}

impl Walker<'_, '_> {
    /// Whether `file` should be captured as a database.
    pub(super) fn is_database(&self, file: &File) -> bool {
        if self.sqlite.mode == SqliteMode::Raw {
            return false;
        }
        let mut header = [0u8; database::HEADER_LEN];
        matches!(file.read_at(&mut header, 0), Ok(n) if database::looks_like_database(&header[..n]))
    }

    /// Captures an opened file that starts like a database.
    pub(super) fn capture_database(
        &mut self,
        opened: &Opened<'_>,
    ) -> Result<DbOutcome, CaptureError> {
        let started = Instant::now();
        self.databases_seen.insert(opened.path.to_owned());
        let wal = wal_key_of(opened.path, opened.name, opened.dir);
        let read_start = SystemTime::now();
        // A named source's directory: where the real file (past symlinks) is.
        let named_dir = match opened.dir {
            Some(_) => None,
            None => match DirHandle::containing(opened.path, opened.stat) {
                Ok(found) => Some(found),
                Err(e) => return Ok(self.db_left_out(opened.path, e)),
            },
        };
        let (dir, name) = match (&named_dir, opened.dir) {
            (Some((dir, name)), _) => (dir.as_fd(), name.as_os_str()),
            (None, Some(dir)) => (dir.as_fd(), opened.name),
            (None, None) => return Ok(DbOutcome::LeftOut),
        };
        let request = ImageRequest {
            path: opened.path,
            dir,
            name,
            file: opened.file,
            expected_len: opened.stat.size + wal.as_ref().map_or(0, |w| w.size),
            timeout: self.sqlite.timeout,
        };
        let before = self.sink.stats;
        let (image, chunks) = match self.image_and_chunks(&request)? {
            Ok(stored) => stored,
            Err(outcome) => return Ok(outcome),
        };
        self.note_database(DatabaseSummary {
            path: RawName::from_path(opened.path),
            size: image.len,
            page_size: image.page_size,
            chunks: chunks.len() as u64,
            chunks_new: self.sink.stats.data_new - before.data_new,
            bytes_new: self.sink.stats.data_new_bytes - before.data_new_bytes,
            unchanged: false,
            capture_secs: started.elapsed().as_secs_f64(),
        });
        let entry = database_entry(opened, &image, chunks, wal, read_start);
        Ok(DbOutcome::Captured(Box::new(entry)))
    }

    /// Takes the database's image and stores it. A database written while
    /// it was read directly is taken again through SQLite (its chunks
    /// stored so far are simply not referenced). The error side is what
    /// became of the file (already reported).
    #[allow(clippy::type_complexity)]
    fn image_and_chunks<'a>(
        &mut self,
        request: &ImageRequest<'a>,
    ) -> Result<Result<(Image<'a>, Vec<BlobId>), DbOutcome>, CaptureError> {
        let path = request.path;
        // Every page run is looked up, most of them present, in no order:
        // 2 MiB of catalog pages serve them as fast as 16 (a 500 MB
        // database on its 9th night: 0.93-0.96 s against 0.81-1.14 s), and
        // the 16 were 13 MiB of the snapshot's peak memory.
        let _cache = self
            .store
            .catalog()
            .small_cache_while()
            .map_err(StoreError::from)?;
        let mut image = match image::capture(self.store.scratch(), request) {
            Ok(image) => image,
            Err(e) => return Ok(Err(self.image_failed(path, e))),
        };
        loop {
            match self.store_image(&image)? {
                Ok(chunks) => return Ok(Ok((image, chunks))),
                Err(Unusable::Read(e)) => return Ok(Err(self.db_left_out(path, e))),
                Err(Unusable::Changed) => {}
            }
            image = match image::capture_busy(self.store.scratch(), request) {
                Ok(image) => image,
                Err(e) => return Ok(Err(self.image_failed(path, e))),
            };
        }
    }

    /// Reports why no image was taken.
    fn image_failed(&mut self, path: &Path, e: ImageError) -> DbOutcome {
        match e {
            ImageError::NotADatabase(why) => self.fall_back(path, &why),
            e => self.db_left_out(path, e),
        }
    }

    /// Whether the parent's database entry still describes the file: the
    /// file is unchanged and so is its `-wal` (commits in WAL mode touch
    /// only the `-wal`).
    pub(super) fn database_unchanged(
        &self,
        (path, name, dir): (&Path, &OsStr, Option<&DirHandle>),
        prev: &Entry,
        stat: &FileStat,
    ) -> bool {
        let Some(info) = prev.database() else {
            return false;
        };
        self.sqlite.mode == SqliteMode::Auto
            && change::unchanged_at_size(prev, stat, info.file_size)
            && wal_key_of(path, name, dir) == info.wal
    }

    /// Counts a database taken over from the parent.
    pub(super) fn note_unchanged_database(&mut self, path: &Path, entry: &Entry) {
        let Some(info) = entry.database() else {
            return;
        };
        self.databases_seen.insert(path.to_owned());
        self.note_database(DatabaseSummary {
            path: RawName::from_path(path),
            size: entry.meta.size,
            page_size: info.page_size,
            chunks: entry.chunks().map_or(0, |c| c.len() as u64),
            unchanged: true,
            ..DatabaseSummary::default()
        });
    }

    /// Whether `name` in `dir` (at `path`) is the `-wal`, `-shm` or
    /// `-journal` file of a database this walk has captured (or tried to),
    /// or of one it leaves out by a pattern or by size: not stored (alone,
    /// an excluded database's old `-wal` was restored beside the live one,
    /// which it corrupts). Only a regular file whose content looks like one
    /// counts; anything else with such a name is captured like any file.
    pub(super) fn is_side_file_of_database(
        &self,
        dir: &DirHandle,
        path: &Path,
        name: &OsStr,
    ) -> bool {
        let Some(db) = database::database_of_side_file(name) else {
            return false;
        };
        let db_path = path.with_file_name(db);
        if !self.databases_seen.contains(&db_path) && !self.excluded(dir, &db_path, db) {
            return false;
        }
        // A journal or -wal that vanished since the listing (a writer's
        // transaction ended) was a side file: skip it without a warning.
        let vanished = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        let stat = match dir.lstat(name) {
            Ok(stat) if stat.kind == Kind::File => stat,
            Ok(_) => return false,
            Err(e) => return vanished(&e),
        };
        let file = match dir.open_file(name, &stat) {
            Ok((file, _)) => file,
            Err(e) => return vanished(&e),
        };
        let mut head = [0u8; 16];
        let n = file.read_at(&mut head, 0).unwrap_or(0);
        database::is_side_file_content(name, &head[..n])
    }

    /// Whether the file `name` of `dir` (at `path`) is a database left out
    /// by an exclude pattern or `--exclude-larger-than` (its header is
    /// read: a plain file's `NAME-wal` stays a file of its own).
    fn excluded(&self, dir: &DirHandle, path: &Path, name: &OsStr) -> bool {
        let Ok(stat) = dir.lstat(name) else {
            return false;
        };
        let left_out = self.excludes.matches(path, name) || self.excludes.is_too_large(&stat);
        left_out
            && stat.kind == Kind::File
            && dir
                .open_file(name, &stat)
                .is_ok_and(|(file, _)| self.is_database(&file))
    }

    /// Cuts the image into page runs and stores them. The outer error stops
    /// the walk; the inner one says why the image could not be used.
    fn store_image(
        &mut self,
        image: &Image<'_>,
    ) -> Result<Result<Vec<BlobId>, Unusable>, CaptureError> {
        let run = database::run_len(image.page_size, self.page_run);
        let mut chunks = Vec::with_capacity((image.len as usize).div_ceil(run));
        let mut failed = None;
        let stored = image.for_each_run(run, |data| {
            self.summary.bytes_read += data.len() as u64;
            Progress::add(&self.progress.bytes, data.len() as u64);
            match self.sink.put(BlobKind::Data, data) {
                Ok(id) => {
                    chunks.push(id);
                    Ok(())
                }
                Err(e) => {
                    failed = Some(e);
                    Err(())
                }
            }
        });
        match stored {
            Ok(()) => Ok(Ok(chunks)),
            Err(RunsStopped::Sink(())) => Err(failed.unwrap_or(CaptureError::PipelineStopped)),
            Err(RunsStopped::Read(e)) => Ok(Err(Unusable::Read(e))),
            Err(RunsStopped::Changed) => Ok(Err(Unusable::Changed)),
        }
    }

    fn note_database(&mut self, summary: DatabaseSummary) {
        if self.summary.databases.len() < MAX_LISTED_LEFT_OUT {
            self.summary.databases.push(summary);
        }
    }

    fn fall_back(&mut self, path: &Path, why: &str) -> DbOutcome {
        self.databases_seen.remove(path);
        *self.summary.database_fallbacks.get_or_insert(0) += 1;
        let listed = self.summary.fallbacks.get_or_insert_with(Vec::new);
        if listed.len() < MAX_LISTED_LEFT_OUT {
            listed.push(crate::rawname::RawName::from_path(path));
        }
        self.reporter.warn(&Warning::StoredRaw {
            path: path.to_owned(),
            cause: why.to_owned(),
        });
        DbOutcome::NotADatabase
    }

    fn db_left_out(
        &mut self,
        path: &Path,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> DbOutcome {
        let cause = io::Error::other(cause);
        self.left_out::<()>(path, cause);
        DbOutcome::LeftOut
    }
}

/// The tree entry of a captured database. Its change key is withheld (the
/// next snapshot captures again) if the file changed during the capture or
/// the file or its `-wal` changed too close to it (see `change`).
fn database_entry(
    opened: &Opened<'_>,
    image: &Image<'_>,
    chunks: Vec<BlobId>,
    wal: Option<SideFileKey>,
    read_start: SystemTime,
) -> Entry {
    let after = handle::fstat(opened.file).unwrap_or_else(|_| opened.stat.clone());
    let mut change = change::key_after_read(opened.stat, &after, read_start);
    if !wal_settled(wal.as_ref(), read_start) {
        change.ctime = None;
    }
    let info = DatabaseInfo {
        page_size: image.page_size,
        captured: change::as_timespec(read_start),
        file_size: opened.stat.size,
        wal,
    };
    Entry {
        name: RawName::from_os(opened.name),
        meta: entry_meta(opened.stat, image.len),
        content: Content::File {
            chunks,
            change,
            database: Some(info),
            link: None,
            holes: Vec::new(),
        },
    }
}

/// The `-wal` file of the database at `path` as it is now, if it is a
/// regular file that holds anything. An empty one is as good as none (no
/// commits are in it), and capturing creates one for a WAL database that
/// had none. SQLite keeps the `-wal` beside the real file when the
/// database is named through a symlink, so that is where it is looked for.
pub(super) fn wal_key(path: &Path) -> Option<SideFileKey> {
    let real = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).ok()?,
        _ => path.to_owned(),
    };
    let name = database::side_file_name(real.file_name()?, "-wal");
    side_key(handle::lstat_path(&real.with_file_name(name)).ok()?)
}

/// The `-wal` of the file `name` in `dir`, the directory the walk opened,
/// or (no `dir`) of the path the user named. Never by the walk's path: one
/// past PATH_MAX does not stat, and "no -wal" then matched the parent's
/// "no -wal", so commits only in the `-wal` went unseen.
pub(super) fn wal_key_of(
    path: &Path,
    name: &OsStr,
    dir: Option<&DirHandle>,
) -> Option<SideFileKey> {
    match dir {
        Some(dir) => side_key(dir.lstat(&database::side_file_name(name, "-wal")).ok()?),
        None => wal_key(path),
    }
}

/// The key of a side file as `stat` found it, if it holds anything.
fn side_key(stat: FileStat) -> Option<SideFileKey> {
    (stat.kind == Kind::File && stat.size > 0).then_some(SideFileKey {
        inode: stat.ino,
        size: stat.size,
        mtime: stat.mtime,
    })
}

/// Whether the `-wal` was last changed long enough before the capture that
/// a later change could not carry the same timestamps (see `change`).
fn wal_settled(wal: Option<&SideFileKey>, read_start: SystemTime) -> bool {
    wal.is_none_or(|w| change::settled(w.mtime, read_start))
}
