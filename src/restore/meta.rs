//! Giving restored entries their metadata: owner, extended attributes,
//! mode and mtime, in that order (a chown clears setuid bits and file
//! capabilities, so it goes first; xattrs hold the ACLs, whose mask the
//! mode then sets; the mtime is the last touch).
//!
//! Owners are mapped by name (as tar and rsync do): a file recorded as
//! owned by "alice" gets the id "alice" has on this host, and the
//! recorded id only if this host has no such user (or with
//! `--numeric-owner`). What this host or its file system does not allow
//! (a chown by a user other than root, `trusted.` xattrs without root,
//! xattrs on a file system without them) does not fail the entry: it is
//! counted by kind and reported once per kind ([`Skipped`]).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, Timestamps, UTIME_OMIT};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::owners::Accounts;
use crate::tree::{Meta, Timespec, Xattr};
use crate::xattrs::{self, At};

/// How owners are restored.
pub(super) struct OwnerMap {
    /// This host's accounts; `None` to restore numeric ids.
    accounts: Option<Accounts>,
}

impl OwnerMap {
    /// Owners by name on this host, or (`numeric`) by recorded id only.
    pub fn new(numeric: bool) -> Self {
        Self {
            accounts: (!numeric).then(Accounts::of_host),
        }
    }

    /// The uid and gid to give an entry recorded with `meta`.
    pub fn ids(&self, meta: &Meta) -> (u32, u32) {
        let Some(accounts) = &self.accounts else {
            return (meta.uid, meta.gid);
        };
        let uid = meta.user.as_ref().and_then(|n| accounts.uid_of(n));
        let gid = meta.group.as_ref().and_then(|n| accounts.gid_of(n));
        (uid.unwrap_or(meta.uid), gid.unwrap_or(meta.gid))
    }
}

/// Metadata that one entry did not get, by kind (see [`kind_of`]).
pub(super) type Misses = Vec<(&'static str, io::Error)>;

/// Metadata a restore could not apply, counted by kind.
#[derive(Debug, Default, Clone)]
pub struct Skipped {
    /// By kind (`owners`, `ACLs`, `user.* xattrs`, ...).
    pub kinds: BTreeMap<&'static str, SkippedKind>,
}

/// How many of one kind of metadata were not applied, and the first.
#[derive(Debug, Clone)]
pub struct SkippedKind {
    /// How many.
    pub count: u64,
    /// The first entry that did not get it.
    pub path: PathBuf,
    /// Why.
    pub cause: String,
}

impl Skipped {
    /// Adds what the entry at `path` did not get.
    pub(super) fn add(&mut self, path: &Path, misses: Misses) {
        for (kind, cause) in misses {
            self.kinds
                .entry(kind)
                .and_modify(|k| k.count += 1)
                .or_insert_with(|| SkippedKind {
                    count: 1,
                    path: path.to_owned(),
                    cause: cause.to_string(),
                });
        }
    }

    /// Whether everything was applied.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// How many were not applied, of every kind (`--strict-metadata`
    /// counts them as the items a partial restore left undone).
    pub fn total(&self) -> u64 {
        self.kinds.values().map(|k| k.count).sum()
    }
}

/// Which kind of metadata an xattr is, for counting what was skipped.
fn kind_of(xattr: &Xattr) -> &'static str {
    if xattr.name.as_bytes().starts_with(b"system.posix_acl_") {
        return "ACLs";
    }
    match xattr.namespace() {
        b"user" => "user.* xattrs",
        b"security" => "security.* xattrs (capabilities, labels)",
        b"trusted" => "trusted.* xattrs",
        _ => "other xattrs",
    }
}

/// Gives an open file or directory its owner, xattrs, mode and mtime;
/// returns what it did not get. Failing to set the mode or mtime fails it.
pub(super) fn apply_fd(fd: BorrowedFd<'_>, meta: &Meta, owners: &OwnerMap) -> io::Result<Misses> {
    let (uid, gid) = owners.ids(meta);
    let mut misses = Misses::new();
    let chowned = rustix::fs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    let owned = note_owner(&mut misses, chowned)?;
    set_xattrs(At::Fd(fd), &meta.xattrs, &mut misses);
    let mode = match owned {
        true => meta.mode,
        false => without_set_ids(meta.mode, &mut misses),
    };
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode as _))?;
    rustix::fs::futimens(fd, &mtime_only(meta.mtime))?;
    Ok(misses)
}

/// Gives the symlink `name` in `dir` its owner, xattrs and mtime (a
/// symlink has no mode of its own); returns what it did not get.
pub(super) fn apply_symlink(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    meta: &Meta,
    owners: &OwnerMap,
) -> io::Result<Misses> {
    let (uid, gid) = owners.ids(meta);
    let mut misses = Misses::new();
    let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    let chowned = rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW);
    note_owner(&mut misses, chowned)?;
    set_xattrs(At::Entry { dir, name }, &meta.xattrs, &mut misses);
    let times = mtime_only(meta.mtime);
    rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(misses)
}

/// A chown this process may not make (not root; an id outside its user
/// namespace) is a miss (`false`: the entry keeps the restoring user as
/// owner); any other failure fails the entry.
fn note_owner(misses: &mut Misses, chowned: rustix::io::Result<()>) -> io::Result<bool> {
    match chowned {
        Ok(()) => Ok(true),
        Err(e @ (Errno::PERM | Errno::INVAL)) => {
            misses.push(("owners", e.into()));
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// `mode` without its setuid and setgid bits (a miss when it had them):
/// on a file that kept the restoring user as owner they would run it with
/// that user's rights, not the recorded owner's (as tar does).
fn without_set_ids(mode: u32, misses: &mut Misses) -> u32 {
    const SET_IDS: u32 = 0o6000;
    if mode & SET_IDS != 0 {
        let why = "the recorded owner could not be given, so they were cleared";
        misses.push(("setuid and setgid bits", io::Error::other(why)));
    }
    mode & !SET_IDS
}

/// Sets each xattr; any that the file system or privileges refuse is a
/// miss of its kind.
fn set_xattrs(at: At<'_>, list: &[Xattr], misses: &mut Misses) {
    for xattr in list {
        if let Err(e) = xattrs::write(at, xattr) {
            misses.push((kind_of(xattr), e));
        }
    }
}

/// Sets the modification time and leaves the access time as it is.
fn mtime_only(t: Timespec) -> Timestamps {
    Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: t.sec,
            tv_nsec: i64::from(t.nsec),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rawname::RawName;

    #[test]
    fn owners_map_by_name_when_this_host_knows_it_else_by_id() {
        let map = OwnerMap {
            accounts: Some(Accounts::parse(
                b"alice:x:2001:2001::/:\n",
                b"staff:x:3001:\n",
            )),
        };
        let name = |s: &str| Some(RawName::from_bytes(s.as_bytes().to_vec()));
        let mut meta = Meta {
            uid: 1000,
            gid: 100,
            user: name("alice"),
            group: name("staff"),
            ..Meta::default()
        };
        assert_eq!(map.ids(&meta), (2001, 3001));
        meta.user = name("bob");
        meta.group = None;
        assert_eq!(map.ids(&meta), (1000, 100));
        meta.user = name("alice");
        assert_eq!(OwnerMap { accounts: None }.ids(&meta), (1000, 100));
    }
}
