//! Paths longer than PATH_MAX: a file 30 directories deep under 200-byte
//! names (a path of about 6 KB) is captured, restored, listed, printed,
//! found, compared and written to a tar stream like any other.
//!
//! The kernel refuses such a path in any one system call, so the tests
//! build and compare the trees through directory handles, one component at
//! a time, exactly as cairn itself must.
// Regression: #14 item 4
#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags};

use common::*;

/// Directories between the source and the deepest file.
const DEPTH: usize = 30;

/// The 200-byte name of the directory at `level`.
fn long_name(level: usize) -> OsString {
    OsString::from(format!("{level:02}-{}", "d".repeat(197)))
}

/// The path of the deepest directory relative to the source.
fn deep_dir_rel() -> PathBuf {
    (0..DEPTH).map(long_name).collect()
}

fn open_dir(dir: impl AsFd, name: impl rustix::path::Arg) -> OwnedFd {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty()).unwrap()
}

/// Opens `rel` below `base` one component at a time (never the whole path).
fn open_below(base: &Path, rel: &Path) -> OwnedFd {
    let mut fd = open_dir(CWD, base);
    for name in rel.components() {
        fd = open_dir(&fd, name.as_os_str());
    }
    fd
}

fn write_at(dir: impl AsFd, name: &str, bytes: &[u8]) {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o640)).unwrap();
    std::fs::File::from(fd).write_all(bytes).unwrap();
}

fn read_at(dir: impl AsFd, name: &OsStr) -> Vec<u8> {
    let fd = rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty());
    let mut bytes = Vec::new();
    std::fs::File::from(fd.unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// `src/` holding 30 nested directories with long names; the deepest holds
/// `leaf` (`content`), a symlink and an empty directory, and a directory
/// halfway down holds a file too.
fn build_deep_tree(src: &Path, content: &[u8]) {
    std::fs::create_dir(src).unwrap();
    let mut fd = open_dir(CWD, src);
    for level in 0..DEPTH {
        let name = long_name(level);
        rustix::fs::mkdirat(&fd, &name, Mode::from_raw_mode(0o750)).unwrap();
        fd = open_dir(&fd, &name);
        if level == DEPTH / 2 {
            write_at(&fd, "halfway", b"half\n");
        }
    }
    write_at(&fd, "leaf", content);
    rustix::fs::symlinkat("leaf", &fd, "link").unwrap();
    rustix::fs::mkdirat(&fd, "empty", Mode::from_raw_mode(0o705)).unwrap();
}

/// The entry names of an open directory, sorted, without `.` and `..`.
fn names_at(dir: impl AsFd) -> Vec<OsString> {
    let mut names: Vec<OsString> = Dir::read_from(dir)
        .unwrap()
        .map(|e| OsStr::from_bytes(e.unwrap().file_name().to_bytes()).to_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    names.sort();
    names
}

/// Asserts that the trees under the open directories `a` and `b` are equal
/// (names, kinds, modes, owners, mtimes, bytes, link targets), walking both
/// through handles; `at` names the place for messages. Returns the number
/// of entries compared.
fn assert_same_below(a: &OwnedFd, b: &OwnedFd, at: &Path) -> usize {
    let names = names_at(a);
    assert_eq!(names, names_at(b), "entries of {at:?}");
    let mut compared = 0;
    for name in &names {
        let (sa, sb) = (
            rustix::fs::statat(a, name, AtFlags::SYMLINK_NOFOLLOW).unwrap(),
            rustix::fs::statat(b, name, AtFlags::SYMLINK_NOFOLLOW).unwrap(),
        );
        let path = at.join(name);
        let kind = FileType::from_raw_mode(sa.st_mode);
        assert_eq!(
            kind,
            FileType::from_raw_mode(sb.st_mode),
            "kind of {path:?}"
        );
        assert_eq!(
            (sa.st_uid, sa.st_gid, sa.st_mtime, sa.st_mtime_nsec),
            (sb.st_uid, sb.st_gid, sb.st_mtime, sb.st_mtime_nsec),
            "owner and mtime of {path:?}"
        );
        if kind != FileType::Symlink {
            assert_eq!(sa.st_mode, sb.st_mode, "mode of {path:?}");
        }
        compared += 1;
        match kind {
            FileType::RegularFile => {
                assert_eq!(read_at(a, name), read_at(b, name), "bytes of {path:?}")
            }
            FileType::Symlink => assert_eq!(
                rustix::fs::readlinkat(a, name, Vec::new()).unwrap(),
                rustix::fs::readlinkat(b, name, Vec::new()).unwrap(),
                "target of {path:?}"
            ),
            FileType::Directory => {
                compared += assert_same_below(&open_dir(a, name), &open_dir(b, name), &path)
            }
            other => panic!("{path:?} is a {other:?}"),
        }
    }
    compared
}

/// A store holding one snapshot of the deep tree; returns it with the
/// source, the content of the deepest file and the snapshot's id.
fn deep_snapshot() -> (TestEnv, PathBuf, Vec<u8>, String) {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let content = random_bytes(14, 300_000);
    build_deep_tree(&src, &content);
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&snap, "files"), 2, "{snap}");
    assert_eq!(summary(&snap, "errors"), 0, "{snap}");
    (t, src, content, id(&snap).to_owned())
}

#[test]
fn a_tree_with_paths_longer_than_path_max_restores_exactly() {
    let (t, src, _, snap) = deep_snapshot();
    assert!(src.join(deep_dir_rel()).as_os_str().len() > 6000);
    let target = t.fresh_dir("restore");
    t.cairn(["restore", &snap, "--target"])
        .arg(&target)
        .assert()
        .success();
    let restored = open_dir(CWD, restored(&target, &src));
    let compared = assert_same_below(&open_dir(CWD, &src), &restored, &src);
    assert_eq!(compared, DEPTH + 4, "every entry was compared");
}

#[test]
fn restoring_again_over_paths_longer_than_path_max_finds_them_in_the_way() {
    let (t, src, content, snap) = deep_snapshot();
    let target = t.fresh_dir("restore");
    let restore = || {
        let mut cmd = t.cairn(["restore", &snap, "--target"]);
        cmd.arg(&target);
        cmd
    };
    restore().assert().success();
    let deep = restored(&target, &src.join(deep_dir_rel()));
    write_at(
        open_below(&target, deep.strip_prefix(&target).unwrap()),
        "leaf",
        b"changed",
    );
    let out = restore().assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(
        err.contains("already exist") && err.contains("/leaf (file)"),
        "{err}"
    );
    assert!(
        err.contains(long_name(DEPTH - 1).to_str().unwrap()),
        "{err}"
    );
    restore().arg("--overwrite").assert().success();
    let leaf_dir = open_below(&target, deep.strip_prefix(&target).unwrap());
    assert_eq!(read_at(&leaf_dir, OsStr::new("leaf")), content);
    let restored = open_dir(CWD, restored(&target, &src));
    assert_same_below(&open_dir(CWD, &src), &restored, &src);
}

#[test]
fn ls_cat_and_find_show_paths_longer_than_path_max() {
    let (t, src, content, snap) = deep_snapshot();
    let leaf = src.join(deep_dir_rel()).join("leaf");
    let out = t.cairn(["ls", &snap, "-R"]).arg(&src).assert().success();
    let listed = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(listed.lines().any(|l| Path::new(l) == leaf), "{listed}");
    let out = t.cairn(["cat", &snap]).arg(&leaf).assert().success();
    assert!(
        out.get_output().stdout == content,
        "cat printed other bytes"
    );
    let out = t.cairn(["--json", "find", "leaf"]).assert().success();
    let found: Vec<_> = out
        .get_output()
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(parse_json)
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["path"].as_str().unwrap(), leaf.to_str().unwrap());
}

#[test]
fn diff_names_a_changed_file_below_a_path_longer_than_path_max() {
    let (t, src, _, first) = deep_snapshot();
    // A new size: seen as changed without waiting for timestamps to settle.
    write_at(open_below(&src, &deep_dir_rel()), "leaf", b"changed");
    let second = id(&t.snapshot(&[&src], &[])).to_owned();
    let out = t
        .cairn(["--json", "diff", &first, &second])
        .assert()
        .success();
    let diff = parse_json(&out.get_output().stdout);
    let modified = diff["modified"].as_array().unwrap();
    let leaf = src.join(deep_dir_rel()).join("leaf");
    assert!(
        modified.iter().any(|e| e["path"] == leaf.to_str().unwrap()),
        "{diff}"
    );
}

#[test]
fn a_tar_stream_holds_paths_longer_than_path_max_whole() {
    let (t, src, content, snap) = deep_snapshot();
    let tar = t.path("deep.tar");
    t.cairn(["restore", &snap, "--tar"])
        .arg(&tar)
        .assert()
        .success();
    let leaf = src.join(deep_dir_rel()).join("leaf");
    let want = leaf.strip_prefix("/").unwrap();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    let mut found = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap() == want {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            assert!(bytes == content, "the tar holds other bytes");
            found += 1;
        }
    }
    assert_eq!(found, 1, "{want:?} is in the tar once");
}

/// Renames the directories `from[i]` (each inside the one before, the
/// first inside `top`) to `to[i]`, one level at a time through handles.
fn rename_chain(top: &Path, from: &[OsString], to: &[OsString]) {
    let mut fd = open_dir(CWD, top);
    for (old, new) in from.iter().zip(to) {
        rustix::fs::renameat(&fd, old, &fd, new).unwrap();
        fd = open_dir(&fd, new);
    }
}

/// Long names given to a chain of short ones, given back when dropped (a
/// mount below can only be unmounted by a path the kernel takes).
struct Lengthened<'a> {
    top: &'a Path,
    short: Vec<OsString>,
    long: Vec<OsString>,
}

impl Drop for Lengthened<'_> {
    fn drop(&mut self) {
        rename_chain(self.top, &self.long, &self.short);
    }
}

// A WAL database's `-wal` was looked for by path: past PATH_MAX the stat
// failed, "no -wal" matched "no -wal" of the parent, and commits that only
// touched the `-wal` were missed: the database reported unchanged, stale.
#[test]
fn a_wal_database_below_a_path_longer_than_path_max_is_seen_to_change() {
    let t = TestEnv::with_store();
    let (src, short_dir) = (t.path("src"), t.path("db"));
    std::fs::create_dir_all(&short_dir).unwrap();
    let conn = rusqlite::Connection::open(short_dir.join("app.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "wal").unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    conn.execute("INSERT INTO t VALUES (2)", []).unwrap();
    let short: Vec<OsString> = (0..DEPTH).map(|l| OsString::from(l.to_string())).collect();
    let deep: PathBuf = short.iter().collect();
    std::fs::create_dir_all(src.join(&deep).join("mnt")).unwrap();
    let Some(_mounted) = common::mount::BindMount::mount(&short_dir, &src.join(&deep).join("mnt"))
    else {
        return;
    };
    let long: Vec<OsString> = (0..DEPTH).map(long_name).collect();
    rename_chain(&src, &short, &long);
    let _lengthened = Lengthened {
        top: &src,
        short,
        long,
    };
    let db = src.join(deep_dir_rel()).join("mnt/app.db");
    let rows = |snapshot: &serde_json::Value| {
        let out = t.path("out.db");
        let bytes = t.cairn(["cat", id(snapshot)]).arg(&db).output().unwrap();
        assert!(bytes.status.success(), "{}", stderr_of(&bytes));
        std::fs::write(&out, &bytes.stdout).unwrap();
        let copy = rusqlite::Connection::open(&out).unwrap();
        copy.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    // The database file settled: its next change would show in its times.
    settle();
    let first = t.snapshot(&[&src], &[]);
    assert_eq!(rows(&first), 2);
    for x in 3..=10 {
        conn.execute("INSERT INTO t VALUES (?1)", [x]).unwrap();
    }
    settle();
    let second = t.snapshot(&[&src], &[]);
    assert_eq!(rows(&second), 10, "the commits in the -wal");
}
