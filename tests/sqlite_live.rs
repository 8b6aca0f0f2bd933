//! Captures that overlap live writers, seen from the outside: a snapshot is
//! stalled after its first pack while the database is half read, and a
//! writer works meanwhile.
//!
//! - A WAL database is read in place inside one read transaction: commits
//!   and checkpoints made while its pages are being stored never reach the
//!   image, and no copy of it is made in the store's `tmp/`.
//! - A rollback-journal database is copied first: its writers wait only for
//!   the copy, not for the whole capture.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use rusqlite::Connection;

use common::*;

/// Rows of 4000 random bytes: about 24 MiB, two dozen packs of 1 MiB.
const ROWS: i64 = 6000;

/// A database of `ROWS` rows tagged 0, in `journal_mode`, closed again.
fn create_database(db: &Path, journal_mode: &str) {
    let conn = open_in_mode(db, journal_mode);
    conn.execute_batch(&format!(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, tag INTEGER NOT NULL, data BLOB NOT NULL);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {ROWS})
         INSERT INTO t SELECT i, 0, randomblob(4000) FROM c;"
    ))
    .unwrap();
}

/// A writer that does not wait: a lock held by cairn fails its commit.
fn impatient_writer(db: &Path) -> Connection {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::ZERO).unwrap();
    conn
}

/// A test root with `src/app.db` created in `journal_mode`, and a snapshot
/// of `src` stalled after its first pack (see below).
fn stalled_snapshot_of_database(journal_mode: &str) -> (TestEnv, PathBuf, PathBuf, Child) {
    let t = TestEnv::new();
    let src = t.path("src");
    std::fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    create_database(&db, journal_mode);
    let child = snapshot_stalled_after_first_pack(&t, &src);
    (t, src, db, child)
}

/// Starts `cairn snapshot SRC` in a store of 1 MiB packs and returns once
/// the third pack is uploaded: the snapshot then sleeps, holding whatever
/// it holds, with the database read only partly (chunks are single pages
/// and the pipeline between the walk and the pack writer holds only a few).
fn snapshot_stalled_after_first_pack(t: &TestEnv, src: &Path) -> Child {
    t.cairn(["init", "--pack-size", "1MiB"]).assert().success();
    let mut child = t
        .command(["--json", "snapshot"])
        .arg(src)
        .env("CAIRN_STALL_AT", "pack-published:3")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let stalled = lines.any(|l| l.unwrap().contains("stall point pack-published"));
    assert!(stalled, "the snapshot ended without stalling");
    // Keep draining stderr so the child never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Restores `snap` and opens its copy of `db` as an application would,
/// after checking that the restore's `integrity_check` passed.
fn restored_database(t: &TestEnv, snap: &str, db: &Path) -> Connection {
    let target = t.fresh_dir("restore");
    t.cairn(["restore", snap, "--target"])
        .arg(&target)
        .arg("--check")
        .assert()
        .success();
    let path = restored(&target, db.parent().unwrap()).join(db.file_name().unwrap());
    Connection::open(path).unwrap()
}

fn tag_counts(conn: &Connection) -> Vec<(i64, i64)> {
    let mut stmt = conn
        .prepare("SELECT tag, count(*) FROM t GROUP BY tag ORDER BY tag")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A connection that leaves commits in the `-wal` (no automatic
/// checkpoints) and has just made one: the database is not quiet, so the
/// capture goes through SQLite.
fn wal_holder(db: &Path) -> Connection {
    let conn = Connection::open(db).unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.execute("UPDATE t SET tag = 0 WHERE id = 1", [])
        .unwrap();
    conn
}

#[test]
fn a_wal_database_is_read_in_place_and_misses_commits_and_checkpoints_made_meanwhile() {
    let t = TestEnv::new();
    let src = t.path("src");
    std::fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    create_database(&db, "WAL");
    let _holder = wal_holder(&db);
    let child = snapshot_stalled_after_first_pack(&t, &src);
    assert!(
        !has_database_copy(&t.store.join("tmp")),
        "a copy of the database is in tmp/"
    );
    // Rewrite every row, pages not read yet included, and push the commit
    // into the database file as far as SQLite lets a checkpoint go.
    let writer = impatient_writer(&db);
    writer.execute("UPDATE t SET tag = 1", []).unwrap();
    let (busy, _, _): (i64, i64, i64) = writer
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0, "a passive checkpoint never reports busy");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let snap = parse_json(&out.stdout);

    let back = restored_database(&t, id(&snap), &db);
    assert_eq!(tag_counts(&back), [(0, ROWS)], "the image is not one state");
    let mode: String = back
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal", "restored in another journal mode than its own");

    // The next snapshot sees the commit.
    let next = t.snapshot(&[&src], &[]);
    let back = restored_database(&t, id(&next), &db);
    assert_eq!(tag_counts(&back), [(1, ROWS)]);
}

#[test]
fn a_rollback_journal_database_is_locked_only_while_it_is_copied() {
    let (t, _, db, child) = stalled_snapshot_of_database("DELETE");
    let writer = impatient_writer(&db);
    writer
        .execute("UPDATE t SET tag = 1 WHERE id % 2 = 0", [])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let snap = parse_json(&out.stdout);

    let back = restored_database(&t, id(&snap), &db);
    assert_eq!(tag_counts(&back), [(0, ROWS)]);
    assert!(
        !has_database_copy(&t.store.join("tmp")),
        "the copy was left in tmp/"
    );
}

// A quiet database is read straight from the file (issue #14 item 13); a
// writer that commits and checkpoints while it is read makes the capture
// start again through SQLite, so the image is still one committed state.
#[test]
fn a_quiet_database_written_while_it_is_read_directly_is_captured_as_one_state() {
    let t = TestEnv::new();
    let src = t.path("src");
    std::fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    create_database(&db, "WAL");
    settle();
    let child = snapshot_stalled_after_first_pack(&t, &src);
    let writer = impatient_writer(&db);
    writer.execute("UPDATE t SET tag = 1", []).unwrap();
    writer
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let snap = parse_json(&out.stdout);

    let back = restored_database(&t, id(&snap), &db);
    assert_eq!(tag_counts(&back), [(1, ROWS)], "the image is not one state");
}
