//! `snapshot --dry-run`: what a snapshot would read, found by walking the
//! sources as a snapshot does (the same selection, through the same
//! directory handles) and comparing each file's metadata with the parent
//! snapshot, without opening a file or writing anything to the store.
//!
//! It is an estimate, and says what it cannot know without reading: a new
//! or changed file counts whole in `bytes_to_read`, although a snapshot
//! stores only its chunks the store does not hold yet, and a database is
//! compared by its file's metadata (its `-wal` and `-shm` files beside it
//! are not counted, as a snapshot does not store them).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::Serialize;

use super::change;
use super::excludes::Excludes;
use super::handle::{self, DirHandle, FileStat, Kind};
use super::report::{self, Reporter, Warning};
use super::sources::SourceNode;
use super::{CaptureError, Input, Plan};
use crate::database::SqliteMode;
use crate::id::SnapshotId;
use crate::rawname::RawName;
use crate::snapshot::MAX_LISTED_LEFT_OUT;
use crate::store::Store;
use crate::tree::{Entry, Tree};

/// What a snapshot would read.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DryRun {
    /// The snapshot compared against (none: every file is new).
    pub parent: Option<SnapshotId>,
    /// Regular files that would be in the snapshot.
    pub files: u64,
    /// Of those, files the parent does not have.
    pub files_new: u64,
    /// Files whose size, mtime, ctime or inode differ from the parent's.
    pub files_changed: u64,
    /// Files that would be taken from the parent without being read.
    pub files_unchanged: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Fifos, sockets and devices, which are not stored.
    pub skipped: u64,
    /// Paths that could not be looked at (they would be left out).
    pub errors: u64,
    /// The first of those.
    pub left_out: Vec<RawName>,
    /// Bytes of the new and changed files: what a snapshot would read.
    pub bytes_to_read: u64,
    /// Bytes of all the files.
    pub total_bytes: u64,
}

/// Walks `plan`'s sources and compares them with the snapshot a real run
/// would compare with, in `store` if there is one (a dry run against a
/// store that does not exist yet finds every file new).
pub fn dry_run(
    store: Option<&Store>,
    plan: &Plan,
    reporter: &dyn Reporter,
) -> Result<DryRun, CaptureError> {
    let Input::Paths(sources) = &plan.input else {
        // A stream is always read whole: nothing to compare.
        return Ok(DryRun {
            files: 1,
            files_new: 1,
            ..DryRun::default()
        });
    };
    let excludes = Excludes::new(&plan.options.excludes, store.map(Store::home))?;
    let paths = sources.recorded();
    let parent = match store {
        Some(store) => super::choose_parent(store, plan, &paths)?.map(|p| (store, p)),
        None => None,
    };
    let root = parent
        .as_ref()
        .and_then(|(store, p)| super::load_parent_root(store, p, reporter));
    let mut preview = Preview {
        store,
        excludes: &excludes,
        reporter,
        sqlite: plan.options.sqlite.mode,
        counts: DryRun {
            parent: parent.map(|(_, p)| p.id),
            ..DryRun::default()
        },
    };
    preview.layout(
        Path::new("/"),
        &sources.layout(),
        root.map(|r| r.tree).as_ref(),
    );
    Ok(preview.counts)
}

/// State of one dry-run walk.
struct Preview<'a> {
    store: Option<&'a Store>,
    excludes: &'a Excludes,
    reporter: &'a dyn Reporter,
    sqlite: SqliteMode,
    counts: DryRun,
}

impl Preview<'_> {
    /// The directories leading to the sources, then the sources.
    fn layout(&mut self, path: &Path, node: &SourceNode, parent: Option<&Tree>) {
        if node.is_source {
            // Only when `/` itself is the source.
            match handle::stat_path(path).and_then(|s| DirHandle::open_path(path, &s)) {
                Ok(dir) => self.dir(path, &dir, parent),
                Err(e) => self.left_out(path, e),
            }
            return;
        }
        for (name, child) in &node.children {
            let child_path = path.join(name);
            let before = parent.and_then(|p| p.find(name.as_bytes()));
            let stat = match handle::stat_path(&child_path) {
                Ok(stat) => stat,
                Err(e) => {
                    self.left_out(&child_path, e);
                    continue;
                }
            };
            if child.is_source {
                self.source(&child_path, &stat, before);
            } else {
                let sub = self.subtree(before);
                self.layout(&child_path, child, sub.as_ref());
                self.counts.dirs += 1;
            }
        }
    }

    /// A path the user named, `stat`ed through any symlink.
    fn source(&mut self, path: &Path, stat: &FileStat, before: Option<&Entry>) {
        match stat.kind {
            Kind::Dir => self.subdir(path, stat, before, || DirHandle::open_path(path, stat)),
            Kind::File => {
                let wal_beside = super::database::wal_key(path).is_some();
                let name = path.file_name().unwrap_or_default();
                self.file((path, name, None), stat, before, wal_beside);
            }
            Kind::Special(kind) => self.skip(path, kind),
            Kind::Symlink => self.left_out(path, io::Error::other("symlink loop")),
        }
    }

    fn subdir(
        &mut self,
        path: &Path,
        stat: &FileStat,
        before: Option<&Entry>,
        open: impl FnOnce() -> io::Result<DirHandle>,
    ) {
        if self.excludes.is_store(stat) {
            return;
        }
        if crate::bound::depth_of(path) > crate::bound::MAX_DEPTH {
            let why = format!("nested deeper than {} directories", crate::bound::MAX_DEPTH);
            return self.left_out(path, io::Error::other(why));
        }
        let dir = match open() {
            Ok(dir) => dir,
            Err(e) => return self.left_out(path, e),
        };
        let sub = self.subtree(before);
        self.dir(path, &dir, sub.as_ref());
    }

    /// A directory and what the walk would take of it.
    fn dir(&mut self, path: &Path, dir: &DirHandle, parent: Option<&Tree>) {
        let names = match dir.names() {
            Ok(names) => names,
            Err(e) => return self.left_out(path, e),
        };
        self.counts.dirs += 1;
        let names = self.excludes.names_to_take(dir, names);
        for name in &names {
            let child = path.join(name);
            if self.excludes.matches(&child, name) || self.is_side_file(&names, name) {
                continue;
            }
            let before = parent.and_then(|p| p.find(name.as_bytes()));
            let wal_beside = has(&names, &side_name(name, "-wal"));
            self.child(dir, &child, name, before, wal_beside);
        }
    }

    fn child(
        &mut self,
        dir: &DirHandle,
        path: &Path,
        name: &OsStr,
        before: Option<&Entry>,
        wal_beside: bool,
    ) {
        let stat = match dir.lstat(name) {
            Ok(stat) => stat,
            Err(e) => return self.left_out(path, e),
        };
        if self.excludes.is_too_large(&stat) {
            return;
        }
        match stat.kind {
            Kind::Dir if self.excludes.is_mount_point(dir, &stat) => self.counts.dirs += 1,
            Kind::Dir => self.subdir(path, &stat, before, || dir.open_dir(name, &stat)),
            Kind::File => self.file((path, name, Some(dir)), &stat, before, wal_beside),
            Kind::Symlink => self.counts.symlinks += 1,
            Kind::Special(kind) => self.skip(path, kind),
        }
    }

    fn file(
        &mut self,
        at: (&Path, &OsStr, Option<&DirHandle>),
        stat: &FileStat,
        before: Option<&Entry>,
        wal_beside: bool,
    ) {
        self.counts.files += 1;
        self.counts.total_bytes += stat.size;
        match before {
            Some(prev) if self.unchanged(at, prev, stat, wal_beside) => {
                self.counts.files_unchanged += 1;
            }
            Some(_) => {
                self.counts.files_changed += 1;
                self.counts.bytes_to_read += stat.size;
            }
            None => {
                self.counts.files_new += 1;
                self.counts.bytes_to_read += stat.size;
            }
        }
    }

    /// The walk's own test (see `Walker::reusable`), without the check that
    /// the store still holds every chunk.
    fn unchanged(
        &self,
        (path, name, dir): (&Path, &OsStr, Option<&DirHandle>),
        prev: &Entry,
        stat: &FileStat,
        wal_beside: bool,
    ) -> bool {
        let auto = self.sqlite == SqliteMode::Auto;
        match prev.database() {
            Some(info) => {
                auto && change::unchanged_at_size(prev, stat, info.file_size)
                    && super::database::wal_key_of(path, name, dir) == info.wal
            }
            None => change::unchanged(prev, stat) && !(wal_beside && auto),
        }
    }

    /// Whether `name` looks like the `-wal`, `-shm` or `-journal` file of a
    /// database beside it (a snapshot does not store those; without reading
    /// the database, a file of that name beside its base is taken for one).
    fn is_side_file(&self, names: &[OsString], name: &OsStr) -> bool {
        self.sqlite == SqliteMode::Auto
            && crate::database::SIDE_SUFFIXES.iter().any(|suffix| {
                name.as_bytes()
                    .strip_suffix(suffix.as_bytes())
                    .is_some_and(|base| has(names, OsStr::from_bytes(base)))
            })
    }

    /// The parent's listing of a directory, if it had one that reads.
    fn subtree(&self, before: Option<&Entry>) -> Option<Tree> {
        let id = before?.subtree()?;
        match self.store?.load_tree(&id) {
            Ok(tree) => Some(tree),
            Err(e) => {
                self.reporter.warn(&Warning::Note {
                    message: format!(
                        "parent tree {id} unreadable, files below it count as changed: {e}"
                    ),
                });
                None
            }
        }
    }

    fn skip(&mut self, path: &Path, kind: &'static str) {
        self.counts.skipped += 1;
        self.reporter.warn(&Warning::Skipped {
            path: path.to_owned(),
            kind,
        });
    }

    fn left_out(&mut self, path: &Path, cause: io::Error) {
        self.counts.errors += 1;
        if self.counts.left_out.len() < MAX_LISTED_LEFT_OUT {
            self.counts.left_out.push(RawName::from_path(path));
        }
        self.reporter.warn(&report::left_out(path, cause));
    }
}

fn has(sorted: &[OsString], name: &OsStr) -> bool {
    sorted
        .binary_search_by(|n| n.as_bytes().cmp(name.as_bytes()))
        .is_ok()
}

fn side_name(name: &OsStr, suffix: &str) -> OsString {
    crate::database::side_file_name(name, suffix)
}
