//! Extended attributes (xattrs) of files, directories and symlinks: read
//! at capture, written at restore.
//!
//! Every namespace the process can list is read: `user.`, `security.`
//! (SELinux labels, file capabilities), `trusted.` (root only) and
//! `system.` (POSIX ACLs as `system.posix_acl_access` and
//! `system.posix_acl_default`). Files and directories are reached through
//! an open descriptor; a symlink, which cannot be opened, through its
//! directory's descriptor as `/proc/self/fd/N/NAME` with the calls that do
//! not follow a final symlink, so nothing is resolved by a path another
//! process could swap.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use rustix::fs::XattrFlags;
use rustix::io::Errno;

use crate::rawname::RawName;
use crate::tree::{MAX_XATTR_VALUE, Xattr};

/// Where the attributes are.
#[derive(Clone, Copy)]
pub enum At<'a> {
    /// An open file or directory.
    Fd(BorrowedFd<'a>),
    /// Entry `name` of the open directory `dir`, not followed if it is a
    /// symlink.
    Entry {
        /// The directory.
        dir: BorrowedFd<'a>,
        /// The entry's name in it.
        name: &'a OsStr,
    },
    /// A path the user named, followed through symlinks.
    Path(&'a Path),
}

/// How many times a list or value that grows between sizing and reading
/// it is tried again.
const ATTEMPTS: usize = 4;

/// The extended attributes at `at`, sorted by name. An attribute removed
/// while they are read is passed over; a file system without xattr
/// support has none.
pub fn read(at: At<'_>) -> io::Result<Vec<Xattr>> {
    let names = match sized(|buf| list(at, buf)) {
        Ok(names) => names,
        Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut xattrs = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        match sized(|buf| get(at, name, buf)) {
            Ok(value) => xattrs.push(Xattr {
                name: RawName::from_os(name),
                value: RawName::from_bytes(value),
            }),
            Err(Errno::NODATA) => {}
            Err(e) => return Err(named(name, e)),
        }
    }
    xattrs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(xattrs)
}

/// Sets `xattr` at `at` (creating or replacing it).
pub fn write(at: At<'_>, xattr: &Xattr) -> io::Result<()> {
    let (name, value) = (xattr.name.as_os_str(), xattr.value.as_bytes());
    let flags = XattrFlags::empty();
    let done = match at {
        At::Fd(fd) => rustix::fs::fsetxattr(fd, name, value, flags),
        At::Entry { dir, name: entry } => {
            rustix::fs::lsetxattr(proc_path(dir, entry), name, value, flags)
        }
        At::Path(path) => rustix::fs::setxattr(path, name, value, flags),
    };
    done.map_err(|e| named(name, e))
}

/// Reads something whose size can change between asking for it and
/// reading it: asks for the size (`fetch` with an empty buffer), reads
/// into a buffer of that size, and starts over if it grew meanwhile.
fn sized(fetch: impl Fn(&mut [u8]) -> Result<usize, Errno>) -> Result<Vec<u8>, Errno> {
    for _ in 0..ATTEMPTS {
        let len = fetch(&mut [])?;
        if len == 0 {
            return Ok(Vec::new());
        }
        // The kernel's own limit: no value or list is larger.
        let mut buf = vec![0u8; len.min(MAX_XATTR_VALUE)];
        match fetch(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::RANGE)
}

fn list(at: At<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    match (at, buf.is_empty()) {
        (At::Fd(fd), true) => rustix::fs::flistxattr_query(fd),
        (At::Fd(fd), false) => rustix::fs::flistxattr(fd, buf),
        (At::Entry { dir, name }, true) => rustix::fs::llistxattr_query(proc_path(dir, name)),
        (At::Entry { dir, name }, false) => rustix::fs::llistxattr(proc_path(dir, name), buf),
        (At::Path(path), true) => rustix::fs::listxattr_query(path),
        (At::Path(path), false) => rustix::fs::listxattr(path, buf),
    }
}

fn get(at: At<'_>, attr: &OsStr, buf: &mut [u8]) -> Result<usize, Errno> {
    match (at, buf.is_empty()) {
        (At::Fd(fd), true) => rustix::fs::fgetxattr_query(fd, attr),
        (At::Fd(fd), false) => rustix::fs::fgetxattr(fd, attr, buf),
        (At::Entry { dir, name }, true) => rustix::fs::lgetxattr_query(proc_path(dir, name), attr),
        (At::Entry { dir, name }, false) => rustix::fs::lgetxattr(proc_path(dir, name), attr, buf),
        (At::Path(path), true) => rustix::fs::getxattr_query(path, attr),
        (At::Path(path), false) => rustix::fs::getxattr(path, attr, buf),
    }
}

/// `/proc/self/fd/DIR/NAME`: entry `name` of the open directory `dir`,
/// for the xattr calls, which have no `*at` form.
fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> OsString {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.as_bytes());
    OsString::from_vec(path)
}

/// An error naming the attribute it concerns.
fn named(attr: &OsStr, e: Errno) -> io::Error {
    let e = io::Error::from(e);
    io::Error::new(
        e.kind(),
        format!("xattr {}: {e}", crate::rawname::escaped(attr)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn x(name: &str, value: &[u8]) -> Xattr {
        Xattr {
            name: RawName::from_bytes(name.as_bytes().to_vec()),
            value: RawName::from_bytes(value.to_vec()),
        }
    }

    #[test]
    fn attributes_written_to_a_file_read_back_sorted_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("f")).unwrap();
        let at = At::Fd(file.as_fd());
        assert_eq!(read(at).unwrap(), []);
        // ext4 holds the xattrs of a file in one block: stay well below it.
        let big = vec![7u8; 1000];
        for attr in [x("user.b", b"2\0"), x("user.a", &big)] {
            write(at, &attr).unwrap();
        }
        assert_eq!(read(at).unwrap(), [x("user.a", &big), x("user.b", b"2\0")]);
        let by_path = read(At::Path(&dir.path().join("f"))).unwrap();
        assert_eq!(by_path.len(), 2);
    }

    #[test]
    fn a_symlinks_own_attributes_are_read_through_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("target"), b"").unwrap();
        std::os::unix::fs::symlink("target", dir.path().join("link")).unwrap();
        let handle = std::fs::File::open(dir.path()).unwrap();
        let link = At::Entry {
            dir: handle.as_fd(),
            name: OsStr::new("link"),
        };
        let target = At::Path(&dir.path().join("target"));
        write(target, &x("user.t", b"on the target")).unwrap();
        // user.* is not allowed on symlinks: nothing of the target shows.
        assert_eq!(read(link).unwrap(), []);
        assert!(write(link, &x("user.l", b"")).is_err());
    }
}
