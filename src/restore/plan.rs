//! Planning a restore: walking the selected part of a snapshot, and the
//! survey of what is in the way that a restore into a directory makes
//! before it walks again and writes as it goes.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use super::RestoreError;
use super::chain::Chain;
use super::select::{Selection, Want};
use super::target::{DirFd, Slot};
use crate::bound::Budget;
use crate::rawname::escaped;
use crate::snapshot::Snapshot;
use crate::store::{Store, StoreError};
use crate::tree::{Content, Entry};

/// Something already at a path the restore would write.
#[derive(Debug, Clone)]
pub struct Conflict {
    /// The path in the target.
    pub path: PathBuf,
    /// What is there ("file", "symlink", "directory", ...).
    pub existing: &'static str,
}

/// One thing to create.
#[derive(Debug, Clone)]
pub struct Item {
    /// Destination, relative to the target.
    pub rel: PathBuf,
    /// Where it is in the snapshot.
    pub source: PathBuf,
    /// What to put there.
    pub entry: Entry,
}

/// What a restore into a directory will meet, found by walking the whole
/// selection once before anything is written: every tree is readable, every
/// included path is there, and this is what is in the way. Nothing of the
/// walk is kept beyond that, so it costs no memory per file.
#[derive(Debug, Default)]
pub struct Survey {
    /// Existing paths that `--overwrite` would replace.
    pub conflicts: Vec<Conflict>,
    /// Existing directories where a file or link goes (never replaced).
    pub blockers: Vec<Conflict>,
    /// Files the selection holds.
    pub files: u64,
    /// Sum of their sizes.
    pub bytes: u64,
}

/// Walks the `selection` of `snapshot` depth first and hands `visit` every
/// entry in it with where it goes, each directory right before its
/// contents; then checks that every included path was met.
pub(super) fn walk_selection(
    store: &Store,
    snapshot: &Snapshot,
    selection: &Selection,
    mut visit: impl FnMut(Item) -> Result<(), RestoreError>,
) -> Result<(), RestoreError> {
    let selection = selection.normalized()?;
    let mut found = vec![false; selection.include.len()];
    // One read transaction for every lookup of the walk and of `visit`
    // (see Catalog::read_snapshot).
    let _consistent_reads = store.catalog().read_snapshot().map_err(StoreError::from)?;
    // Depth first, each directory's contents right after it (tar extracts
    // directory times correctly only so). Only the trees on the way down to
    // the current entry are held, not every directory still to visit.
    // Entries are counted as listings are read, and no directory deeper
    // than MAX_DEPTH is entered: a hostile store cannot make this run
    // without end (crate::bound).
    let mut budget = Budget::of(snapshot);
    let root = store.load_tree(&snapshot.record.tree)?;
    budget.spend(root.entries.len())?;
    let mut stack = vec![(PathBuf::from("/"), root.entries.into_iter())];
    while let Some((dir, entries)) = stack.last_mut() {
        let Some(entry) = entries.next() else {
            stack.pop();
            continue;
        };
        let source = dir.join(entry.name.as_path());
        // An included path that `--exclude` leaves out is there all the same.
        for (seen, include) in found.iter_mut().zip(&selection.include) {
            *seen |= *include == source;
        }
        let want = selection.wants(&source);
        if want == Want::Outside || (want == Want::Ancestor && entry.subtree().is_none()) {
            continue;
        }
        // Only a directory's path is needed after the visit: no copy per file.
        let below = entry.subtree().map(|sub| (sub, source.clone()));
        match selection.destination(&source) {
            Some(rel) => visit(Item { rel, source, entry })?,
            None if below.is_none() => {
                return Err(RestoreError::Selection(format!(
                    "{} is a file: --strip-prefix must be a directory above it",
                    escaped(&source)
                )));
            }
            None => {}
        }
        if let Some((sub, path)) = below {
            budget.enter(stack.len() as u64)?;
            let tree = store.load_tree(&sub).map_err(|e| RestoreError::Tree {
                path: path.clone(),
                source: Box::new(e),
            })?;
            budget.spend(tree.entries.len())?;
            stack.push((path, tree.entries.into_iter()));
        }
    }
    // `/` has no entry of its own: it is always there.
    let mut missing = selection.include.iter().zip(&found);
    if let Some((path, _)) = missing.find(|(p, seen)| !**seen && *p != Path::new("/")) {
        return Err(RestoreError::NotInSnapshot(path.clone()));
    }
    Ok(())
}

/// Surveys the restore of the `selection` of `snapshot` into `target`,
/// opened as `root` (`None` if nothing is there).
pub fn survey(
    store: &Store,
    snapshot: &Snapshot,
    selection: &Selection,
    target: &Path,
    root: Option<&DirFd>,
) -> Result<Survey, RestoreError> {
    // Into a missing or empty target nothing can be in the way: no entry
    // needs looking at (one stat per file of a 100k-file restore).
    let root = match root.map(holds_anything).transpose() {
        Ok(Some(true)) => root.cloned(),
        Ok(_) => None,
        Err(source) => {
            let path = target.to_owned();
            return Err(RestoreError::Io { path, source });
        }
    };
    let check = root.is_some();
    let mut chain = Chain::new(root);
    let mut survey = Survey::default();
    walk_selection(store, snapshot, selection, |item| {
        if check {
            survey
                .look_at(&mut chain, &item)
                .map_err(|source| RestoreError::Io {
                    path: target.join(&item.rel),
                    source,
                })?
                .into_iter()
                .for_each(|(existing, side)| survey.record(target, &item, existing, side));
        }
        if matches!(item.entry.content, Content::File { .. }) {
            survey.files += 1;
            survey.bytes += item.entry.meta.size;
        }
        Ok(())
    })?;
    Ok(survey)
}

impl Survey {
    /// The error a restore stops with before it writes anything, if any:
    /// directories where files go, or (without `overwrite`) anything at
    /// all in the way.
    pub fn refusal(&self, overwrite: bool) -> Option<RestoreError> {
        if !self.blockers.is_empty() {
            return Some(RestoreError::Blocked {
                blockers: self.blockers.clone(),
            });
        }
        (!self.conflicts.is_empty() && !overwrite).then(|| RestoreError::Conflicts {
            conflicts: self.conflicts.clone(),
        })
    }
}

/// What a survey found at one place: the kind of thing there, and for a
/// database's side file the suffix of its name.
type Found = (FileType, Option<&'static str>);

impl Survey {
    /// Looks at the place of `item` through its parent directory's handle
    /// (a target directory that does not exist holds nothing in the way),
    /// and enters it in `chain` if it is a directory; returns what is there.
    fn look_at(&mut self, chain: &mut Chain<()>, item: &Item) -> io::Result<Vec<Found>> {
        chain.move_to(&item.rel, |_, ()| {})?;
        let Some(parent) = chain.parent() else {
            enter_dir(chain, item, None);
            return Ok(Vec::new());
        };
        let slot = Slot::new(
            DirFd::clone(parent),
            item.rel.file_name().unwrap_or_default(),
        );
        let kind = slot.kind()?;
        let mut found: Vec<Found> = kind.into_iter().map(|k| (k, None)).collect();
        // A database is restored without the -wal, -shm and -journal files
        // of whatever was there before (a stale -wal would corrupt it):
        // those are in the way too, removed only with --overwrite.
        if item.entry.database().is_some() {
            for suffix in crate::database::SIDE_SUFFIXES {
                if slot.has_sibling(suffix)? {
                    found.push((FileType::RegularFile, Some(suffix)));
                }
            }
        }
        let fd = match kind {
            Some(FileType::Directory) => Some(slot.open_dir()?),
            _ => None,
        };
        enter_dir(chain, item, fd);
        Ok(found)
    }

    /// Records `existing`, found where `item` goes (or, with a `side`
    /// suffix, beside it). Existing directories are fine for directories
    /// (restore merges into them).
    fn record(&mut self, target: &Path, item: &Item, existing: FileType, side: Option<&str>) {
        let path = target.join(&item.rel);
        if let Some(suffix) = side {
            let name = path.file_name().unwrap_or_default();
            let side = path.with_file_name(crate::database::side_file_name(name, suffix));
            self.conflicts.push(Conflict {
                path: side,
                existing: "side file of an older database",
            });
            return;
        }
        let is_dir_entry = matches!(item.entry.content, Content::Dir { .. });
        let conflict = |existing| Conflict { path, existing };
        match (existing == FileType::Directory, is_dir_entry) {
            (true, true) => {}
            (true, false) => self.blockers.push(conflict("directory")),
            (false, _) => self.conflicts.push(conflict(describe(existing))),
        }
    }
}

/// Enters `item` in `chain` if it is a directory, with its handle if the
/// target has a directory there (`None`: nothing below it can be in the way).
fn enter_dir(chain: &mut Chain<()>, item: &Item, fd: Option<DirFd>) {
    if matches!(item.entry.content, Content::Dir { .. }) {
        let name = item.rel.file_name().unwrap_or_default().to_owned();
        chain.enter(name, fd, ());
    }
}

/// Whether directory `dir` has any entry.
fn holds_anything(dir: &DirFd) -> io::Result<bool> {
    Ok(super::target::names(dir)?.next().transpose()?.is_some())
}

fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::Symlink => "symlink",
        FileType::RegularFile => "file",
        _ => "special file",
    }
}
