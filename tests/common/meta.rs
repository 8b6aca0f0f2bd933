//! Metadata beyond `stat` as a test sees it: extended attributes (ACLs
//! included), hard link groups, allocated blocks and the data regions of
//! sparse files, read straight from the file system; and a comparison of
//! two trees on all of it, with `rsync -aHAX --dry-run --itemize-changes`
//! on top when rsync is installed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process;

use rustix::fs::SeekFrom;

/// The xattrs of `path` itself (not following a symlink), by name.
pub fn xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut list = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut list[..]).unwrap();
    list.truncate(n);
    let mut out = BTreeMap::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = std::ffi::OsStr::new(std::str::from_utf8(name).unwrap());
        let mut value = vec![0u8; 65536];
        let n = rustix::fs::lgetxattr(path, name, &mut value[..]).unwrap();
        value.truncate(n);
        out.insert(name.as_encoded_bytes().to_vec(), value);
    }
    out
}

/// Sets xattr `name` of `path` itself (a symlink's own).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setting {name} on {path:?}: {e}"));
}

/// Whether this file system takes `user.` xattrs and POSIX ACLs on files
/// under `dir`; says why not when it does not.
pub fn supports_xattrs_and_acls(dir: &Path) -> bool {
    let probe = dir.join(".xattr-probe");
    fs::write(&probe, b"").unwrap();
    let flags = rustix::fs::XattrFlags::empty();
    let user = rustix::fs::setxattr(&probe, "user.probe", b"1", flags);
    let acl = rustix::fs::setxattr(
        &probe,
        "system.posix_acl_access",
        &acl(&[
            (1, 6, None),
            (2, 4, Some(65534)),
            (4, 4, None),
            (0x10, 4, None),
            (0x20, 4, None),
        ]),
        flags,
    );
    fs::remove_file(&probe).unwrap();
    if let Err(e) = user.and(acl) {
        eprintln!("skipped: the file system of {dir:?} takes no user xattrs or ACLs ({e})");
        return false;
    }
    true
}

/// A POSIX ACL in the kernel's xattr form (`system.posix_acl_access`):
/// entries of (tag, permissions, id); tags 1 user::, 2 user:ID, 4 group::,
/// 8 group:ID, 0x10 mask, 0x20 other (acl(5), libacl's acl_ea.h).
pub fn acl(entries: &[(u16, u16, Option<u32>)]) -> Vec<u8> {
    let mut bytes = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        bytes.extend_from_slice(&tag.to_le_bytes());
        bytes.extend_from_slice(&perm.to_le_bytes());
        bytes.extend_from_slice(&id.unwrap_or(u32::MAX).to_le_bytes());
    }
    bytes
}

/// The data regions of a file (`SEEK_DATA`/`SEEK_HOLE`), as (offset, len).
pub fn data_map(path: &Path) -> Vec<(u64, u64)> {
    let file = fs::File::open(path).unwrap();
    let size = file.metadata().unwrap().len();
    let mut regions = Vec::new();
    let mut pos = 0;
    while pos < size {
        let Ok(data) = rustix::fs::seek(&file, SeekFrom::Data(pos)) else {
            break;
        };
        let hole = rustix::fs::seek(&file, SeekFrom::Hole(data)).unwrap();
        regions.push((data, hole - data));
        pos = hole;
    }
    regions
}

/// Bytes allocated to `path` (`st_blocks` * 512).
pub fn allocated(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().blocks() * 512
}

/// What every entry under `root` has beyond `stat`: its xattrs, and for a
/// file with several names the other names it has under `root`.
#[derive(Debug, PartialEq, Eq)]
pub struct Extra {
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub links: Vec<PathBuf>,
}

/// [`Extra`] of every entry under `root`, by path relative to it.
pub fn extras(root: &Path) -> BTreeMap<PathBuf, Extra> {
    let mut by_inode: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    walk(root, root, &mut |rel, meta| {
        if meta.is_file() && meta.nlink() > 1 {
            by_inode.entry(meta.ino()).or_default().push(rel.to_owned());
        }
    });
    walk(root, root, &mut |rel, meta| {
        let links = match by_inode.get(&meta.ino()) {
            Some(names) if meta.is_file() => names.clone(),
            _ => Vec::new(),
        };
        let xattrs = xattrs(&root.join(rel));
        out.insert(rel.to_owned(), Extra { xattrs, links });
    });
    out
}

fn walk(root: &Path, dir: &Path, visit: &mut dyn FnMut(&Path, &fs::Metadata)) {
    for name in super::names(dir) {
        let path = dir.join(name);
        let meta = fs::symlink_metadata(&path).unwrap();
        visit(path.strip_prefix(root).unwrap(), &meta);
        if meta.is_dir() {
            walk(root, &path, visit);
        }
    }
}

/// Asserts that `b` is a faithful copy of `a`: what
/// [`super::assert_trees_equal`] compares, plus xattrs (ACLs included) and
/// hard links (the same names share an inode); and, when rsync is there,
/// that `rsync -aHAX --dry-run --itemize-changes` finds nothing to do.
pub fn assert_faithful_copy(a: &Path, b: &Path) {
    super::assert_trees_equal(a, b);
    let (want, got) = (extras(a), extras(b));
    for (rel, extra) in &want {
        assert_eq!(got.get(rel), Some(extra), "{rel:?} under {b:?}");
    }
    assert_eq!(got.len(), want.len());
    rsync_finds_nothing(a, b);
}

/// `rsync -aHAX --dry-run --itemize-changes A/ B/` lists nothing, if rsync
/// is installed (it is not part of the test dependencies).
fn rsync_finds_nothing(a: &Path, b: &Path) {
    let mut src = a.as_os_str().to_owned();
    src.push("/");
    let mut dst = b.as_os_str().to_owned();
    dst.push("/");
    let out = process::Command::new("rsync")
        .args(["-aHAX", "--dry-run", "--itemize-changes"])
        .arg(src)
        .arg(dst)
        .output();
    match out {
        Ok(out) => {
            assert!(out.status.success(), "rsync: {}", super::stderr_of(&out));
            let listed = String::from_utf8_lossy(&out.stdout);
            assert!(
                listed.trim().is_empty(),
                "rsync -aHAX finds changes:\n{listed}"
            );
        }
        Err(_) => {
            eprintln!("note: rsync is not installed; compared xattrs and hard links directly")
        }
    }
}
