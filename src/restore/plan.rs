//! Planning a restore: the list of directories, files and links to create,
//! where every blob is, and what already exists in the way.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::RestoreError;
use super::select::{Selection, Want};
use crate::id::BlobId;
use crate::pack::BlobLocation;
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
    /// Destination, relative to the target. (The path the user sees,
    /// [`RestorePlan::path_of`], is not kept: a plan holds every file of
    /// the snapshot, and a second path per file was a tenth of a 100k-file
    /// restore's memory.)
    pub rel: PathBuf,
    /// Where it is in the snapshot.
    pub source: PathBuf,
    /// What to put there.
    pub entry: Entry,
}

/// Everything a restore will do, computed before anything is written.
#[derive(Debug)]
pub struct RestorePlan {
    /// The target directory.
    pub target: PathBuf,
    /// Directories, parents before children.
    pub dirs: Vec<Item>,
    /// Regular files.
    pub files: Vec<Item>,
    /// Symbolic links.
    pub symlinks: Vec<Item>,
    /// Existing paths that `--overwrite` would replace.
    pub conflicts: Vec<Conflict>,
    /// Existing directories where a file or link goes (never replaced).
    pub blockers: Vec<Conflict>,
    /// Where each needed blob is; a blob absent here is missing from the store.
    pub locations: HashMap<BlobId, BlobLocation>,
    /// Sum of file sizes.
    pub bytes: u64,
}

/// Plans the restore of the `selection` of `snapshot` into `target`
/// (checking what is already there), or for a stream (`target` `None`:
/// items are named by their relative path).
pub fn plan(
    store: &Store,
    snapshot: &Snapshot,
    selection: &Selection,
    target: Option<&Path>,
) -> Result<RestorePlan, RestoreError> {
    let selection = selection.normalized()?;
    let mut plan = RestorePlan {
        target: target.map(Path::to_owned).unwrap_or_default(),
        dirs: Vec::new(),
        files: Vec::new(),
        symlinks: Vec::new(),
        conflicts: Vec::new(),
        blockers: Vec::new(),
        locations: HashMap::new(),
        bytes: 0,
    };
    // One read transaction for all the lookups below (see Catalog::read_snapshot).
    let _consistent_reads = store.catalog().read_snapshot().map_err(StoreError::from)?;
    // Into a missing or empty target nothing can be in the way: no entry
    // needs looking at (one stat per file of a 100k-file restore).
    let check = match target {
        Some(dir) => holds_anything(dir)?,
        None => false,
    };
    let mut found = vec![false; selection.include.len()];
    let root = store.load_tree(&snapshot.record.tree)?;
    let mut stack = vec![(PathBuf::from("/"), root)];
    while let Some((dir, tree)) = stack.pop() {
        for entry in tree.entries {
            let source = dir.join(entry.name.as_path());
            let want = selection.wants(&source);
            if want == Want::Outside || (want == Want::Ancestor && entry.subtree().is_none()) {
                continue;
            }
            for (seen, include) in found.iter_mut().zip(&selection.include) {
                *seen |= *include == source;
            }
            if let Some(sub) = entry.subtree() {
                let tree = store.load_tree(&sub).map_err(|e| RestoreError::Tree {
                    path: source.clone(),
                    source: Box::new(e),
                })?;
                stack.push((source.clone(), tree));
            }
            let Some(rel) = selection.destination(&source) else {
                if entry.subtree().is_none() {
                    return Err(RestoreError::Selection(format!(
                        "{} is a file: --strip-prefix must be a directory above it",
                        source.display()
                    )));
                }
                continue;
            };
            let item = Item { rel, source, entry };
            plan.add(store, item, check)?;
        }
    }
    // `/` has no entry of its own: it is always there.
    let mut missing = selection.include.iter().zip(&found);
    if let Some((path, _)) = missing.find(|(p, seen)| !**seen && *p != Path::new("/")) {
        return Err(RestoreError::NotInSnapshot(path.clone()));
    }
    // The stack visits depth-first but not in order; parents must come first.
    plan.dirs.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(plan)
}

impl RestorePlan {
    /// Where `item` goes as the user sees it: the target joined with its
    /// relative path (just the relative path for a stream).
    pub fn path_of(&self, item: &Item) -> PathBuf {
        self.target.join(&item.rel)
    }

    fn add(&mut self, store: &Store, item: Item, check: bool) -> Result<(), RestoreError> {
        if check {
            self.check_existing(&item)?;
            self.check_side_files(&item);
        }
        match &item.entry.content {
            Content::Dir { .. } => self.dirs.push(item),
            Content::Symlink { .. } => self.symlinks.push(item),
            Content::File { chunks, .. } => {
                for id in chunks {
                    if !self.locations.contains_key(id)
                        && let Some(at) = store.catalog().locate(id)?
                    {
                        self.locations.insert(*id, at);
                    }
                }
                self.bytes += item.entry.meta.size;
                self.files.push(item);
            }
        }
        Ok(())
    }

    /// Records what is already at the item's path. Existing directories are
    /// fine for directories (restore merges into them).
    fn check_existing(&mut self, item: &Item) -> Result<(), RestoreError> {
        let path = self.path_of(item);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // Missing, or below something that is not a directory (itself a conflict).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(());
            }
            Err(source) => {
                return Err(RestoreError::Io {
                    path: path.clone(),
                    source,
                });
            }
        };
        let is_dir_entry = matches!(item.entry.content, Content::Dir { .. });
        let conflict = |existing| Conflict {
            path: path.clone(),
            existing,
        };
        match (meta.is_dir(), is_dir_entry) {
            (true, true) => {}
            (true, false) => self.blockers.push(conflict("directory")),
            (false, _) => self.conflicts.push(conflict(describe(&meta))),
        }
        Ok(())
    }
}

impl RestorePlan {
    /// A database is restored without the `-wal`, `-shm` and `-journal`
    /// files of whatever was there before (a stale `-wal` would corrupt
    /// it): those are conflicts too, removed only with `--overwrite`.
    fn check_side_files(&mut self, item: &Item) {
        if item.entry.database().is_none() {
            return;
        }
        let path = self.path_of(item);
        let Some(name) = path.file_name() else {
            return;
        };
        for suffix in crate::database::SIDE_SUFFIXES {
            let side = path.with_file_name(crate::database::side_file_name(name, suffix));
            if fs::symlink_metadata(&side).is_ok() {
                self.conflicts.push(Conflict {
                    path: side,
                    existing: "side file of an older database",
                });
            }
        }
    }
}

/// Whether `dir` has any entry (or is something other than a directory,
/// which the per-entry checks then report); a missing one has none.
fn holds_anything(dir: &Path) -> Result<bool, RestoreError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Ok(true),
        Err(source) => Err(RestoreError::Io {
            path: dir.to_owned(),
            source,
        }),
    }
}

fn describe(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "symlink"
    } else if t.is_file() {
        "file"
    } else {
        "special file"
    }
}
