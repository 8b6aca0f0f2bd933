//! A snapshot reads its sources and leaves them as they were: the access
//! times of what it read stay (with `relatime` the first read of the day
//! writes every inode read back to the disk being protected), and files it
//! may read but not own are still read.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use filetime::FileTime;

/// An access time long before any modification time: `relatime` updates
/// such an atime at the next read.
const OLD_ATIME: i64 = 1_000_000_000;

fn age_access_time(path: &Path) {
    let mtime = FileTime::from_last_modification_time(&fs::metadata(path).unwrap());
    filetime::set_file_times(path, FileTime::from_unix_time(OLD_ATIME, 0), mtime).unwrap();
}

fn access_time(path: &Path) -> i64 {
    fs::symlink_metadata(path).unwrap().atime()
}

/// Whether reading an aged file here updates its access time (not on a
/// file system mounted `noatime`, where there is nothing to test).
fn reads_update_access_times(dir: &Path) -> bool {
    let probe = dir.join("probe");
    write_file(&probe, b"probe");
    age_access_time(&probe);
    fs::read(&probe).unwrap();
    let updated = access_time(&probe) != OLD_ATIME;
    fs::remove_file(&probe).unwrap();
    if !updated {
        eprintln!("skipped: reads do not update access times here");
    }
    updated
}

#[test]
fn a_snapshot_leaves_the_access_times_of_what_it_read_alone() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("dir/data"), &random_bytes(1, 300_000));
    write_file(&src.join("small"), b"a few bytes");
    if !reads_update_access_times(&t.root) {
        return;
    }
    let read = [
        src.join("dir/data"),
        src.join("small"),
        src.join("dir"),
        src.clone(),
    ];
    for path in &read {
        age_access_time(path);
    }
    // A progress display counts the sources beside the walk: so does it.
    let snap = t.snapshot(&[&src], &["--progress-interval", "1m"]);
    assert_eq!(summary(&snap, "files_new"), 2);
    for path in &read {
        assert_eq!(access_time(path), OLD_ATIME, "{}", path.display());
    }
}

#[test]
fn files_a_user_may_read_but_does_not_own_are_read_in_full() {
    // O_NOATIME is refused (EPERM) on another user's file: the snapshot
    // opens it as it always did.
    if !is_root() {
        eprintln!("skipped: needs root to make files of another owner");
        return;
    }
    let t = TestEnv::new();
    let src = t.path("src");
    write_file(&src.join("sub/shared"), &random_bytes(2, 200_000));
    write_file(&src.join("notes"), b"root's, readable by all");
    chmod(&t.root, 0o777);
    t.cairn_as_nobody(["init"]).assert().success();
    let out = t
        .cairn_as_nobody(["--json", "snapshot"])
        .arg(&src)
        .assert()
        .success();
    let snap = parse_json(&out.get_output().stdout);
    assert_eq!(summary(&snap, "files_new"), 2);
    assert_eq!(summary(&snap, "errors"), 0);
    let back = t.restore(id(&snap));
    assert_trees_equal(&src, &restored(&back, &src));
}

#[test]
fn a_live_database_read_through_sqlite_keeps_its_access_time() {
    // The walk's own descriptor is not SQLite's: a database an application
    // holds open is read through SQLite's opens, which updated it.
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir_all(&src).unwrap();
    let db = src.join("app.db");
    let app = rusqlite::Connection::open(&db).unwrap();
    app.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(x); INSERT INTO t VALUES (1);",
    )
    .unwrap();
    if !reads_update_access_times(&t.root) {
        return;
    }
    age_access_time(&db);
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&snap, "errors"), 0);
    assert_eq!(access_time(&db), OLD_ATIME);
    drop(app);
}
