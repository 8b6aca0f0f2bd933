//! What a walk leaves out on purpose: `--exclude` patterns (see
//! [`crate::pattern`]), the store itself, and the selection options restic,
//! borg and tar users rely on.
//!
//! - A directory holding a marker (`--exclude-if-present NAME`, or a valid
//!   `CACHEDIR.TAG` with `--exclude-caches`) is kept with only its markers
//!   in it, as GNU tar's `--exclude-caches` and `--exclude-tag` keep it: a
//!   restore recreates the directory, tagged, and an application finds its
//!   cache directory where it left it, empty.
//! - With `--one-file-system`, a directory on another device than its
//!   parent (a mount point) is kept empty, with its own metadata, as
//!   restic and tar keep it, and is not descended into. The walk never goes
//!   past such a directory, so its parent is always on the source's device.
//! - `--exclude-larger-than` leaves out regular files above the size.
//!
//! All of them apply below the sources: a path the user names is captured.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::handle::{DirHandle, FileStat, Kind};
use super::walk::{Walker, dir_entry};
use super::{CaptureError, walk};
use crate::pattern::Patterns;
use crate::xattrs::At;

/// The name of a cache directory tag (bford.info/cachedir).
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
/// What a valid `CACHEDIR.TAG` starts with, exactly.
pub const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// What the user asked to leave out.
#[derive(Debug, Clone, Default)]
pub struct ExcludeOptions {
    /// `--exclude` and `--exclude-file` patterns.
    pub patterns: Vec<String>,
    /// `--exclude-caches`.
    pub caches: bool,
    /// `--exclude-if-present` names.
    pub if_present: Vec<OsString>,
    /// `--exclude-larger-than`, in bytes.
    pub larger_than: Option<u64>,
    /// `--one-file-system`.
    pub one_file_system: bool,
}

/// Compiled exclusions.
#[derive(Debug)]
pub struct Excludes {
    patterns: Patterns,
    store: Option<(u64, u64)>,
    caches: bool,
    if_present: Vec<OsString>,
    larger_than: Option<u64>,
    one_file_system: bool,
}

impl Excludes {
    /// Compiles `options`; `store` is the store directory, never captured.
    pub fn new(options: &ExcludeOptions, store: Option<&Path>) -> Result<Self, CaptureError> {
        let patterns = Patterns::new(&options.patterns).map_err(|e| CaptureError::Exclude {
            pattern: e.pattern,
            cause: e.cause,
        })?;
        Ok(Self {
            patterns,
            store: store
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| (m.dev(), m.ino())),
            caches: options.caches,
            if_present: options.if_present.clone(),
            larger_than: options.larger_than,
            one_file_system: options.one_file_system,
        })
    }

    /// Whether `path` (whose last component is `name`) is excluded by a pattern.
    pub fn matches(&self, path: &Path, name: &OsStr) -> bool {
        self.patterns.matches(path, name)
    }

    /// Whether a directory is the store itself.
    pub fn is_store(&self, stat: &FileStat) -> bool {
        self.store == Some((stat.dev, stat.ino))
    }

    /// Whether an entry is a regular file above `--exclude-larger-than`.
    pub fn is_too_large(&self, stat: &FileStat) -> bool {
        stat.kind == Kind::File && self.larger_than.is_some_and(|limit| stat.size > limit)
    }

    /// Whether the subdirectory `stat` of `dir` is a mount point the walk
    /// must not cross. Asked only with `--one-file-system`: it costs an
    /// `fstat` of `dir`.
    pub fn is_mount_point(&self, dir: &DirHandle, stat: &FileStat) -> bool {
        self.one_file_system
            && stat.kind == Kind::Dir
            && dir
                .stat()
                .is_ok_and(|parent| self.crosses_mount(parent.dev, stat.dev))
    }

    /// Whether a directory on device `dev` in one on `parent` is a mount
    /// point not to cross, for a walk by path (the progress count).
    pub fn crosses_mount(&self, parent: u64, dev: u64) -> bool {
        self.one_file_system && parent != dev
    }

    /// The names of a directory that the walk takes: all of them, or for a
    /// directory that holds a marker, only its markers. `names` are sorted.
    pub fn names_to_take(&self, dir: &DirHandle, names: Vec<OsString>) -> Vec<OsString> {
        let has = |name: &OsStr| {
            names
                .binary_search_by(|n| n.as_bytes().cmp(name.as_bytes()))
                .is_ok()
        };
        let mut markers: Vec<OsString> =
            self.if_present.iter().filter(|m| has(m)).cloned().collect();
        let tag = OsStr::new(CACHEDIR_TAG);
        if self.caches
            && has(tag)
            && is_valid_cache_tag(dir, tag)
            && !markers.iter().any(|m| m == tag)
        {
            markers.push(tag.to_owned());
        }
        if markers.is_empty() {
            return names;
        }
        crate::capture::sources::sort_names(&mut markers);
        markers
    }
}

/// Whether `name` in `dir` is a regular file (not a symlink) starting with
/// the cache directory signature. One that cannot be read is not a tag:
/// the directory is captured whole, and the walk reports what it cannot read.
fn is_valid_cache_tag(dir: &DirHandle, name: &OsStr) -> bool {
    let Ok(stat) = dir.lstat(name) else {
        return false;
    };
    let Ok((file, _)) = dir.open_file(name, &stat) else {
        return false;
    };
    let mut start = Vec::with_capacity(CACHEDIR_SIGNATURE.len());
    let read = file
        .take(CACHEDIR_SIGNATURE.len() as u64)
        .read_to_end(&mut start);
    read.is_ok() && start == CACHEDIR_SIGNATURE
}

impl Walker<'_, '_> {
    /// A mount point with `--one-file-system`: an empty directory with the
    /// metadata of what is mounted there, xattrs and ACLs included.
    pub(super) fn mount_point(
        &mut self,
        (path, dir, name): (&Path, &DirHandle, &OsStr),
        stat: &FileStat,
    ) -> walk::Captured {
        let tree = self.put_tree(Vec::new())?;
        self.summary.dirs += 1;
        let mut entry = dir_entry(name, stat, tree);
        let at = At::Entry {
            dir: dir.as_fd(),
            name,
        };
        entry.meta.xattrs = self.xattrs_of(path, at);
        Ok(Some(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::handle::stat_path;
    use std::fs;

    fn open(dir: &Path) -> DirHandle {
        DirHandle::open_path(dir, &stat_path(dir).unwrap()).unwrap()
    }

    fn excludes(options: ExcludeOptions) -> Excludes {
        Excludes::new(&options, None).unwrap()
    }

    #[test]
    fn a_marked_directory_yields_only_its_markers() {
        let dir = tempfile::tempdir().unwrap();
        for name in [".nobackup", "a", "b", CACHEDIR_TAG] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        let h = open(dir.path());
        let names = h.names().unwrap();
        let marked = excludes(ExcludeOptions {
            if_present: vec![".nobackup".into()],
            ..Default::default()
        });
        assert_eq!(marked.names_to_take(&h, names.clone()), [".nobackup"]);
        // An empty CACHEDIR.TAG is no tag.
        let caches = excludes(ExcludeOptions {
            caches: true,
            ..Default::default()
        });
        assert_eq!(caches.names_to_take(&h, names.clone()).len(), 4);
        let mut tag = CACHEDIR_SIGNATURE.to_vec();
        tag.extend_from_slice(b"\n");
        fs::write(dir.path().join(CACHEDIR_TAG), tag).unwrap();
        assert_eq!(caches.names_to_take(&h, names), [CACHEDIR_TAG]);
    }

    #[test]
    fn a_symlink_named_like_a_tag_is_not_a_tag() {
        let dir = tempfile::tempdir().unwrap();
        let mut tag = CACHEDIR_SIGNATURE.to_vec();
        tag.extend_from_slice(b"\n");
        fs::write(dir.path().join("real"), tag).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join(CACHEDIR_TAG)).unwrap();
        let h = open(dir.path());
        assert!(!is_valid_cache_tag(&h, OsStr::new(CACHEDIR_TAG)));
    }
}
