//! A store that cannot be written is still read: on a read-only mount, or
//! by a user other than its owner. Every reading command works (without
//! the lock, with a note), and every writing one fails naming the store
//! and the cause.
#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde_json::Value;

use common::mount::Tmpfs;
use common::*;

/// A source with a text file, a random file and a WAL database of `rows`
/// rows.
fn write_source(src: &Path, notes: &str, rows: i64) {
    fs::create_dir_all(src).unwrap();
    write_file(&src.join("notes.txt"), notes.as_bytes());
    write_random_file(&src.join("data.bin"), 7, 300_000);
    let conn = Connection::open(src.join("app.db")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT);",
    )
    .unwrap();
    conn.execute("DELETE FROM t", []).unwrap();
    for i in 0..rows {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i}")])
            .unwrap();
    }
}

/// A test world whose store is a tmpfs mounted at its store path, holding
/// two snapshots of `src` (the second after `notes.txt` changed).
struct World {
    t: TestEnv,
    src: PathBuf,
    snaps: Vec<Value>,
}

fn world_on_tmpfs() -> Option<(World, Tmpfs)> {
    let t = TestEnv::new();
    let mount = Tmpfs::mount(&t.store, "64M")?;
    t.cairn(["init"]).assert().success();
    let src = t.path("src");
    write_source(&src, "first\n", 10);
    settle();
    let first = t.snapshot(&[&src], &[]);
    write_source(&src, "second\n", 20);
    settle();
    let second = t.snapshot(&[&src], &[]);
    let world = World {
        t,
        src,
        snaps: vec![first, second],
    };
    Some((world, mount))
}

/// Runs `cairn ARGS` as `who` and returns its output.
type Run<'a> = &'a dyn Fn(&[OsString]) -> std::process::Output;

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

/// Runs every reading command, checks what each printed, and returns the
/// stderr of each.
fn every_reading_command_works(w: &World, run: Run<'_>, out_dir: &Path) -> Vec<String> {
    let mut errs = Vec::new();
    let mut ok = |a: Vec<OsString>| -> Vec<u8> {
        let out = run(&a);
        let err = stderr_of(&out);
        assert!(out.status.success(), "cairn {a:?} failed: {err}");
        errs.push(err);
        out.stdout
    };
    let src = w.src.to_str().unwrap();
    let listed = parse_json(&ok(args(&["--json", "snapshots"])));
    assert_eq!(listed.as_array().unwrap().len(), w.snaps.len());
    let ls = String::from_utf8(ok(args(&["ls", "latest", src, "-R"]))).unwrap();
    assert!(ls.contains("data.bin") && ls.contains("app.db"), "{ls}");
    let notes = ok(args(&["cat", "latest", &format!("{src}/notes.txt")]));
    assert_eq!(notes, b"second\n");
    let found = String::from_utf8(ok(args(&["find", "*.db"]))).unwrap();
    assert!(found.contains("app.db"), "{found}");
    let (a, b) = (id(&w.snaps[0]), id(&w.snaps[1]));
    let diff = String::from_utf8(ok(args(&["diff", a, b]))).unwrap();
    assert!(diff.contains("notes.txt"), "{diff}");
    ok(args(&["verify"]));
    ok(args(&["verify", "--read-data"]));
    ok(args(&["verify", "--sqlite"]));
    ok(args(&["policy", "show"]));
    let target = out_dir.join("restored");
    let mut restore = args(&["restore", "latest", "--target"]);
    restore.push(target.clone().into());
    ok(restore);
    assert_restored(&w.src, &target);
    let tar = out_dir.join("latest.tar");
    let mut to_tar = args(&["restore", "latest", "--tar"]);
    to_tar.push(tar.clone().into());
    ok(to_tar);
    assert!(fs::metadata(&tar).unwrap().len() > 300_000);
    errs
}

fn assert_restored(src: &Path, target: &Path) {
    let copy = restored(target, src);
    assert_eq!(fs::read(copy.join("notes.txt")).unwrap(), b"second\n");
    assert_eq!(
        fs::read(copy.join("data.bin")).unwrap(),
        fs::read(src.join("data.bin")).unwrap()
    );
    let conn = Connection::open(copy.join("app.db")).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 20);
}

/// Runs each writing command; each must fail naming the store and `cause`.
fn every_writing_command_fails(w: &World, run: Run<'_>, cause: &str) {
    let store = w.t.store.to_str().unwrap();
    let src = w.src.to_str().unwrap();
    for a in [
        vec!["snapshot", src],
        vec!["forget", "--keep-last", "1"],
        vec!["prune"],
        vec!["repair", "catalog"],
        vec!["policy", "set", "--keep-last", "3"],
        vec!["protect", "latest"],
    ] {
        let out = run(&args(&a));
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "cairn {a:?}: {err}");
        assert!(
            err.contains(store) && err.contains(cause),
            "cairn {a:?}: {err}"
        );
    }
}

fn as_root(t: &TestEnv) -> impl Fn(&[OsString]) -> std::process::Output + '_ {
    |a| t.cairn(a).output().unwrap()
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

// Regression: #14 item 10
#[test]
fn every_reading_command_works_on_a_read_only_mount_and_every_writer_fails() {
    let Some((w, mount)) = world_on_tmpfs() else {
        return;
    };
    mount.make_read_only();
    let run = as_root(&w.t);
    let out = w.t.fresh_dir("out");
    for err in every_reading_command_works(&w, &run, &out) {
        assert_eq!(
            count(&err, "read-only file system: reading it without a lock"),
            1,
            "{err}"
        );
    }
    every_writing_command_fails(&w, &run, "Read-only file system");
}

// Regression: #14 item 10
#[test]
fn verify_on_a_read_only_mount_says_its_ledger_was_not_updated() {
    let Some((w, mount)) = world_on_tmpfs() else {
        return;
    };
    mount.make_read_only();
    let out =
        w.t.cairn(["--json", "verify", "--read-data"])
            .assert()
            .success();
    let report = parse_json(&out.get_output().stdout);
    assert_eq!(report["ok"], true);
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains("ledger"), "{warnings}");
}

// Regression: #14 item 10
#[test]
fn a_missing_catalog_on_a_read_only_mount_is_rebuilt_privately_for_the_run() {
    let Some((w, mount)) = world_on_tmpfs() else {
        return;
    };
    fs::remove_file(w.t.store.join("catalog.db")).unwrap();
    mount.make_read_only();
    let run = as_root(&w.t);
    let out = w.t.fresh_dir("out");
    for err in every_reading_command_works(&w, &run, &out) {
        assert!(err.contains("for this run only"), "{err}");
    }
    assert!(!w.t.store.join("catalog.db").exists());
}

// Regression: #14 item 10
#[test]
fn commits_still_in_the_catalogs_wal_are_seen_on_a_read_only_mount() {
    let Some((w, mount)) = world_on_tmpfs() else {
        return;
    };
    // A snapshot killed right after its commit leaves its packs' catalog
    // rows in catalog.db-wal, not yet in catalog.db.
    write_source(&w.src, "third\n", 30);
    settle();
    let out =
        w.t.command(["snapshot"])
            .arg(&w.src)
            .env("CAIRN_CRASH_AT", "snapshot-committed")
            .output()
            .unwrap();
    assert!(!out.status.success());
    let wal = fs::metadata(w.t.store.join("catalog.db-wal")).unwrap();
    assert!(wal.len() > 0);
    mount.make_read_only();

    let notes =
        w.t.cairn(["cat", "latest"])
            .arg(w.src.join("notes.txt"))
            .assert()
            .success();
    assert_eq!(notes.get_output().stdout, b"third\n");
    let target = w.t.fresh_dir("out");
    w.t.cairn(["restore", "latest", "--target"])
        .arg(&target)
        .assert()
        .success();
}

// Regression: #14 item 10
#[test]
fn another_user_reads_a_world_readable_store_it_cannot_write() {
    if !is_root() {
        eprintln!("skipped: needs root to run cairn as another user");
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_source(&src, "first\n", 10);
    settle();
    let first = t.snapshot(&[&src], &[]);
    write_source(&src, "second\n", 20);
    settle();
    let second = t.snapshot(&[&src], &[]);
    chmod(&t.root, 0o755);
    let status = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&t.store)
        .status()
        .unwrap();
    assert!(status.success());
    let out = t.fresh_dir("out");
    fs::create_dir(&out).unwrap();
    chmod(&out, 0o777);
    let w = World {
        t,
        src,
        snaps: vec![first, second],
    };

    let run = |a: &[OsString]| w.t.cairn_as_nobody(a).output().unwrap();
    for err in every_reading_command_works(&w, &run, &out) {
        assert_eq!(count(&err, "is not writable by this user"), 1, "{err}");
        assert!(err.contains("prune"), "{err}");
    }
    every_writing_command_fails(&w, &run, "ermission denied");
}
