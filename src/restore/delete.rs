//! `restore --overwrite --delete`: removing from the target what the
//! snapshot does not hold, so that a restore makes each restored directory
//! exactly what it was.
//!
//! Only directories at or below one of the snapshot's source paths, and
//! inside the `--include` paths, are cleaned: never the directories above a
//! source (a restore into `/` must not empty `/usr`), and never a path the
//! selection leaves out (`--exclude`), as restic's `--delete` spares them.
//! Temporary files of interrupted restores are left to `leftovers`.
//!
//! It is planned before anything is written ([`plan`], shown by
//! `--dry-run`) and carried out before the files are written
//! ([`remove`]), so that each directory's metadata, set last by the
//! restore, is not disturbed by a removal inside it. Every directory is
//! reached from the target through handles opened with `O_NOFOLLOW`: a
//! symlink in the target is removed as a link, never followed.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::RestoreError;
use super::leftovers::is_temp_name;
use super::plan::{Item, walk_selection};
use super::select::{Selection, Want};
use super::target::DirFd;
use crate::bound::MAX_DEPTH;
use crate::snapshot::Snapshot;
use crate::store::Store;
use crate::tree::Content;

/// Something in the target that the snapshot does not hold.
#[derive(Debug, Clone)]
pub struct Removal {
    /// Where it is, relative to the target.
    pub rel: PathBuf,
    /// Whether it is a directory (removed with everything in it).
    pub is_dir: bool,
}

/// What [`remove`] did.
#[derive(Debug, Default)]
pub struct Removed {
    /// What was removed, relative to the target (a directory with what
    /// was in it).
    pub removed: Vec<Removal>,
    /// What could not be removed, and why.
    pub failed: Vec<(PathBuf, String)>,
    /// Directories not cleaned, as planned ([`Plan::spared`]).
    pub spared: Vec<PathBuf>,
}

/// What `--delete` is to do.
#[derive(Debug, Default)]
pub struct Plan {
    /// What it removes.
    pub removals: Vec<Removal>,
    /// Directories it does not clean, relative to the target: another file
    /// system is mounted there (see `Finder::enter`).
    pub spared: Vec<PathBuf>,
}

/// Finds what `--delete` removes from `target` (opened as `root`, `None`
/// if nothing is there) for a restore of the `selection` of `snapshot`,
/// looking into the target directories that exist (nothing is written).
pub fn plan(
    store: &Store,
    snapshot: &Snapshot,
    selection: &Selection,
    target: &Path,
    root: Option<&DirFd>,
) -> Result<Plan, RestoreError> {
    let io_error = |rel: &Path| {
        let path = target.join(rel);
        move |source| RestoreError::Io { path, source }
    };
    let normalized = selection.normalized()?;
    let sources: Vec<PathBuf> = snapshot
        .record
        .paths
        .iter()
        .map(|p| p.as_path().to_owned())
        .collect();
    let root = root.cloned();
    let mut finder = Finder {
        selection: &normalized,
        sources: &sources,
        levels: Vec::new(),
        plan: Plan::default(),
    };
    let top = normalized
        .strip_prefix
        .clone()
        .unwrap_or_else(|| "/".into());
    let mut level = Level::new(PathBuf::new(), top, root);
    let beyond = finder.root_is_beyond_a_mount(&level, target);
    level.beyond_mount = beyond.map_err(io_error(Path::new("")))?;
    level.spared_said = level.beyond_mount;
    finder.levels.push(level);
    walk_selection(store, snapshot, selection, |item| {
        finder.visit(&item).map_err(io_error(&item.rel))
    })?;
    while let Some(level) = finder.levels.pop() {
        finder.finish(level).map_err(io_error(Path::new("")))?;
    }
    Ok(finder.plan)
}

/// A directory of the selection on the way down to the item at hand.
struct Level {
    /// Where it is in the target.
    rel: PathBuf,
    /// Where it is in the snapshot.
    source: PathBuf,
    /// The target's directory there, if there is one.
    fd: Option<DirFd>,
    /// The names the snapshot holds in it (and would write there).
    held: HashSet<OsString>,
    /// Whether it is in a file system mounted within what the snapshot
    /// captured (see `Finder::enter`).
    beyond_mount: bool,
    /// Whether that was said for it or a directory above it.
    spared_said: bool,
}

impl Level {
    fn new(rel: PathBuf, source: PathBuf, fd: Option<DirFd>) -> Self {
        Self {
            rel,
            source,
            fd,
            held: HashSet::new(),
            beyond_mount: false,
            spared_said: false,
        }
    }
}

/// The state of [`plan`]'s walk.
struct Finder<'a> {
    selection: &'a Selection,
    sources: &'a [PathBuf],
    levels: Vec<Level>,
    plan: Plan,
}

impl Finder<'_> {
    /// Notes `item` as held by its directory, and enters it if it is one.
    fn visit(&mut self, item: &Item) -> io::Result<()> {
        let parent = item.rel.parent().unwrap_or(Path::new(""));
        while self.levels.len() > 1 && self.levels.last().is_some_and(|l| l.rel != parent) {
            if let Some(level) = self.levels.pop() {
                self.finish(level)?;
            }
        }
        let name = item.rel.file_name().unwrap_or_default();
        let Some(level) = self.levels.last_mut() else {
            return Ok(());
        };
        level.held.insert(name.to_owned());
        // A database's side files are the restore's to remove (a stale
        // `-wal` is a conflict), not extras.
        if item.entry.database().is_some() {
            for suffix in crate::database::SIDE_SUFFIXES {
                level
                    .held
                    .insert(crate::database::side_file_name(name, suffix));
            }
        }
        if matches!(item.entry.content, Content::Dir { .. }) {
            let next = self.enter(item)?;
            self.levels.push(next);
        }
        Ok(())
    }

    /// The level of directory `item`, in the innermost one. A file system
    /// mounted inside what the snapshot captured is not cleaned: a `-x`
    /// snapshot kept its mount point empty, and one mounted since the
    /// snapshot holds what the snapshot never saw (the two look alike); a
    /// mount on the way down to a source is not inside.
    fn enter(&mut self, item: &Item) -> io::Result<Level> {
        let name = item.rel.file_name().unwrap_or_default();
        let mut next = Level::new(item.rel.clone(), item.source.clone(), None);
        let Some(level) = self.levels.last() else {
            return Ok(next);
        };
        if let Some(parent) = &level.fd {
            next.fd = open_dir_in(parent, name)?;
        }
        let crossed = match (&level.fd, &next.fd) {
            (Some(parent), Some(child)) => {
                !same_mount(parent, child)? && self.captured(&level.source)
            }
            _ => false,
        };
        next.beyond_mount = level.beyond_mount || crossed;
        next.spared_said = level.spared_said;
        if next.beyond_mount && !next.spared_said && self.cleans(&next.source) {
            self.plan.spared.push(next.rel.clone());
            next.spared_said = true;
        }
        Ok(next)
    }

    /// Once the walk has left `level`, everything the snapshot holds in it
    /// is known: the rest of what the target has there is to be removed,
    /// if the directory is one `--delete` cleans.
    fn finish(&mut self, level: Level) -> io::Result<()> {
        let Some(fd) = &level.fd else {
            return Ok(());
        };
        if !self.cleans(&level.source) || level.beyond_mount {
            return Ok(());
        }
        for name in names_in(fd)? {
            if level.held.contains(&name) || is_temp_name(name.as_bytes()) {
                continue;
            }
            if self.selection.wants(&level.source.join(&name)) != Want::Inside {
                continue;
            }
            let Some(kind) = kind_of(fd, &name)? else {
                continue;
            };
            self.plan.removals.push(Removal {
                rel: level.rel.join(&name),
                is_dir: kind == FileType::Directory,
            });
        }
        Ok(())
    }

    /// Whether the snapshot's directory `source` is one to clean: at or
    /// below a source path of the snapshot, and wholly selected.
    fn cleans(&self, source: &Path) -> bool {
        self.captured(source) && self.selection.wants(source) == Want::Inside
    }

    /// Whether the snapshot's directory `source` is at or below one of its
    /// source paths: part of what it captured.
    fn captured(&self, source: &Path) -> bool {
        self.sources.iter().any(|s| source.starts_with(s))
    }

    /// Whether the target itself, `root`, is a file system mounted inside
    /// what the snapshot captured: its directory in the snapshot is below a
    /// source, and its parent in the target is on another mount.
    fn root_is_beyond_a_mount(&mut self, root: &Level, target: &Path) -> io::Result<bool> {
        let (Some(fd), Some(above)) = (&root.fd, root.source.parent()) else {
            return Ok(false);
        };
        // Only in place: elsewhere the target's parent is not the parent
        // the snapshot's directory had (a restore onto a mounted disk).
        let in_place = std::fs::canonicalize(target).is_ok_and(|t| t == root.source);
        if !self.captured(above) || !in_place {
            return Ok(false);
        }
        // O_PATH: a parent the user may pass through but not read is fine.
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let parent: DirFd = Arc::new(rustix::fs::openat(fd, "..", flags, Mode::empty())?);
        let crossed = !same_mount(&parent, fd)?;
        if crossed {
            self.plan.spared.push(root.rel.clone());
        }
        Ok(crossed)
    }
}

/// Removes each of the removals `plan` lists from `target` (opened as
/// `root`; a directory with everything in it). Something already gone is
/// passed over; a failure is recorded and the rest goes on.
pub fn remove(target: &Path, root: Option<&DirFd>, plan: &Plan) -> Removed {
    let mut done = Removed {
        spared: plan.spared.clone(),
        ..Removed::default()
    };
    let Some(root) = root else {
        return done;
    };
    for removal in &plan.removals {
        match remove_one(root, &removal.rel) {
            Ok(true) => done.removed.push(removal.clone()),
            Ok(false) => {}
            Err(e) => done.failed.push((target.join(&removal.rel), e.to_string())),
        }
    }
    done
}

/// Removes `rel` below `root`; `false` if it was not there any more.
fn remove_one(root: &DirFd, rel: &Path) -> io::Result<bool> {
    let mut dir = Arc::clone(root);
    let parent = rel.parent().unwrap_or(Path::new(""));
    for component in parent.components() {
        let Component::Normal(name) = component else {
            return Err(io::Error::other("not a plain relative path"));
        };
        match open_dir_in(&dir, name)? {
            Some(next) => dir = next,
            None => return Ok(false),
        }
    }
    let name = rel.file_name().unwrap_or_default();
    match kind_of(&dir, name)? {
        None => Ok(false),
        Some(FileType::Directory) => remove_tree(&dir, name, 0).map(|()| true),
        Some(_) => unlink(&dir, name, AtFlags::empty()).map(|()| true),
    }
}

/// Removes directory `name` of `parent` with everything in it, never
/// following a symlink (a link is removed as a link).
fn remove_tree(parent: &DirFd, name: &OsStr, depth: u64) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!(
            "nested deeper than {MAX_DEPTH} directories"
        )));
    }
    let Some(dir) = open_dir_in(parent, name)? else {
        return Ok(());
    };
    if !same_mount(parent, &dir)? {
        return Err(io::Error::other(
            "a mount point: --delete does not remove what another file system holds",
        ));
    }
    // The names first: a directory changed while it is read may skip some.
    for child in names_in(&dir)? {
        match kind_of(&dir, &child)? {
            Some(FileType::Directory) => remove_tree(&dir, &child, depth + 1)?,
            Some(_) => unlink(&dir, &child, AtFlags::empty())?,
            None => {}
        }
    }
    unlink(parent, name, AtFlags::REMOVEDIR)
}

fn unlink(dir: &DirFd, name: &OsStr, flags: AtFlags) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, flags) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Opens directory `name` of `parent`, refusing a symlink; `None` if there
/// is no directory there.
fn open_dir_in(parent: &DirFd, name: &OsStr) -> io::Result<Option<DirFd>> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(parent, name, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(Arc::new(fd))),
        // Missing, not a directory, or a symlink (ELOOP with O_NOFOLLOW).
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether directories `a` and `b` are on the same mounted file system:
/// the same device, and the same mount id (a bind mount of the same device
/// differs only there). Only where neither statx (Linux 5.8) nor
/// `/proc/self/fdinfo` gives a mount id is the device all there is.
fn same_mount(a: &DirFd, b: &DirFd) -> io::Result<bool> {
    let (a, b) = (mount_of(a)?, mount_of(b)?);
    Ok(a.0 == b.0 && (a.1.is_none() || b.1.is_none() || a.1 == b.1))
}

/// The device of directory `dir`, and its mount id if the kernel tells.
fn mount_of(dir: &DirFd) -> io::Result<(u64, Option<u64>)> {
    use rustix::fs::StatxFlags;
    let device = rustix::fs::fstat(dir)?.st_dev;
    let statx = rustix::fs::statx(dir, c"", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID);
    let mount = statx
        .ok()
        .filter(|st| st.stx_mask & StatxFlags::MNT_ID.bits() != 0)
        .map(|st| st.stx_mnt_id)
        .or_else(|| mount_id_in_fdinfo(dir));
    Ok((device, mount))
}

/// The `mnt_id:` line of `/proc/self/fdinfo/FD` (Linux 3.15 on), for
/// kernels whose statx does not give it.
fn mount_id_in_fdinfo(dir: &DirFd) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", dir.as_raw_fd())).ok()?;
    let line = info.lines().find_map(|l| l.strip_prefix("mnt_id:"))?;
    line.trim().parse().ok()
}

/// What kind of thing `name` in `dir` is (not following a symlink).
fn kind_of(dir: &DirFd, name: &OsStr) -> io::Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode as _))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The names in directory `dir`, without `.` and `..`.
fn names_in(dir: &DirFd) -> io::Result<Vec<OsString>> {
    super::target::names(dir)?.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_tree_is_removed_without_following_a_symlink_out_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("precious"), b"p").unwrap();
        let target = dir.path().join("target");
        fs::create_dir_all(target.join("extra/deeper")).unwrap();
        fs::write(target.join("extra/deeper/f"), b"f").unwrap();
        std::os::unix::fs::symlink(&outside, target.join("extra/link")).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("toplink")).unwrap();
        let removals = [
            Removal {
                rel: "extra".into(),
                is_dir: true,
            },
            Removal {
                rel: "toplink".into(),
                is_dir: false,
            },
            Removal {
                rel: "gone-already".into(),
                is_dir: false,
            },
        ];
        let root = super::super::target::open_existing(&target).unwrap();
        let plan = Plan {
            removals: removals.to_vec(),
            spared: Vec::new(),
        };
        let done = remove(&target, root.as_ref(), &plan);
        assert_eq!(done.removed.len(), 2);
        assert!(done.failed.is_empty());
        assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
        assert_eq!(fs::read(outside.join("precious")).unwrap(), b"p");
    }

    #[test]
    fn a_symlink_on_the_way_to_a_removal_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim"), b"v").unwrap();
        let target = dir.path().join("target");
        fs::create_dir_all(&target).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("sub")).unwrap();
        let removals = [Removal {
            rel: "sub/victim".into(),
            is_dir: false,
        }];
        let root = super::super::target::open_existing(&target).unwrap();
        let plan = Plan {
            removals: removals.to_vec(),
            spared: Vec::new(),
        };
        let done = remove(&target, root.as_ref(), &plan);
        assert!(done.removed.is_empty());
        assert_eq!(fs::read(outside.join("victim")).unwrap(), b"v");
    }

    #[test]
    fn the_mount_id_in_fdinfo_is_the_one_statx_gives() {
        use rustix::fs::StatxFlags;
        for dir in ["/", "/proc", "/tmp"] {
            let Ok(Some(fd)) = super::super::target::open_existing(Path::new(dir)) else {
                continue;
            };
            let st = rustix::fs::statx(&fd, c"", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID).unwrap();
            if st.stx_mask & StatxFlags::MNT_ID.bits() == 0 {
                continue;
            }
            assert_eq!(mount_id_in_fdinfo(&fd), Some(st.stx_mnt_id), "{dir}");
        }
    }
}
