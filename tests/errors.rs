//! Every bad input, with its exit code and message, and proof that nothing
//! was written where nothing should be.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Runs `args` and asserts exit `code` with every one of `needles` on stderr.
fn fails(t: &TestEnv, args: &[&str], extra: &[&Path], code: i32, needles: &[&str]) -> String {
    let out = t.cairn(args).args(extra).assert().code(code);
    let err = stderr_of(out.get_output());
    for needle in needles {
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks {needle:?}:\n{err}"
        );
    }
    err
}

/// Asserts that the store commands `snapshot`, `snapshots` and `restore`
/// all fail with exit 1 and `needle`, leaving the store directory as it was.
fn every_command_refuses(t: &TestEnv, needle: &str) {
    let src = t.path("src");
    small_tree(&src, 1);
    let before = listing(&t.store);
    let target = t.path("target");
    fails(t, &["snapshot"], &[&src], 1, &[needle]);
    fails(t, &["snapshots"], &[], 1, &[needle]);
    fails(
        t,
        &["restore", "latest", "--target"],
        &[&target],
        1,
        &[needle],
    );
    assert_eq!(listing(&t.store), before, "the store was touched");
    assert!(!target.exists());
}

// --- sources ---------------------------------------------------------------

#[test]
fn a_missing_source_is_an_error_naming_it_and_nothing_is_written() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let missing = t.path("no such dir");
    let before = listing(&t.store);

    fails(
        &t,
        &["snapshot"],
        &[&src, &missing],
        1,
        &[missing.to_str().unwrap()],
    );
    assert_eq!(listing(&t.store), before);
    assert!(t.snapshots(&[]).is_empty());
}

#[test]
fn a_missing_source_does_not_create_the_default_store() {
    let t = TestEnv::new();
    let missing = t.path("gone");
    let out = t
        .cairn_without_store(["snapshot"])
        .arg(&missing)
        .assert()
        .code(1);
    assert!(stderr_of(out.get_output()).contains(missing.to_str().unwrap()));
    assert!(names(&t.home).is_empty(), "{:?}", names(&t.home));
}

/// One attempt at deleting `b_victim` while cairn reads `a_big`; `None` if
/// the deletion came too late (cairn had already captured it).
fn snapshot_while_deleting(t: &TestEnv, src: &Path) -> Option<std::process::Output> {
    let victim = src.join("b_victim");
    let (sec, nsec) = mtime_of(src);
    let child = t
        .command(["--json", "snapshot"])
        .arg(src)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !has_temp_file(&t.store.join("tmp")) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    fs::remove_file(&victim).unwrap();
    set_mtime(src, sec, nsec);
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        let snap = parse_json(&out.stdout);
        assert_eq!(
            summary(&snap, "files"),
            2,
            "exit 0 but a file is missing: {snap}"
        );
        return None;
    }
    Some(out)
}

#[test]
fn a_file_that_vanishes_during_the_walk_is_left_out_with_exit_3() {
    for attempt in 1..=3 {
        let t = TestEnv::with_store();
        let src = t.path("src");
        fs::create_dir(&src).unwrap();
        write_random_file(&src.join("a_big"), 1, 64 << 20);
        write_file(&src.join("b_victim"), b"short-lived");
        let Some(out) = snapshot_while_deleting(&t, &src) else {
            eprintln!("attempt {attempt}: the deletion lost the race");
            continue;
        };

        assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
        let err = stderr_of(&out);
        assert!(err.contains("warning") && err.contains("b_victim"), "{err}");
        let snap = parse_json(&out.stdout);
        assert_eq!(summary(&snap, "errors"), 1, "{snap}");
        let victim = src.join("b_victim");
        assert_eq!(snap["summary"]["left_out"], serde_json::json!([victim]));
        let listed = t.snapshots(&[]);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["id"], snap["id"]);
        assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
        return;
    }
    panic!("the deletion lost the race three times");
}

#[test]
fn an_unreadable_file_is_left_out_with_exit_3() {
    let t = TestEnv::new();
    let src = t.path("src");
    small_tree(&src, 1);
    let secret = src.join("secret");
    write_file(&secret, b"top secret");
    let run_as_nobody = is_root();
    let out = if run_as_nobody {
        // Root reads anything: run cairn as nobody, on a store nobody owns.
        chmod(&t.root, 0o777);
        chmod(&secret, 0o600);
        t.cairn_as_nobody(["init"]).assert().success();
        t.cairn_as_nobody(["--json", "snapshot"]).arg(&src).assert()
    } else {
        chmod(&secret, 0o000);
        t.cairn(["init"]).assert().success();
        t.cairn(["--json", "snapshot"]).arg(&src).assert()
    };

    let out = out.code(3);
    let err = stderr_of(out.get_output());
    assert!(err.contains(secret.to_str().unwrap()), "{err}");
    assert!(err.contains("ermission denied"), "{err}");
    let snap = parse_json(&out.get_output().stdout);
    assert_eq!(summary(&snap, "errors"), 1);
    let target = t.restore(id(&snap));
    let back = restored(&target, &src);
    assert!(!back.join("secret").exists());
    remove_keeping_dir_mtime(&secret);
    assert_trees_equal(&src, &back);
}

#[test]
fn fifos_and_sockets_are_skipped_with_a_warning() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let fifo = src.join("a fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let socket = src.join("a socket");
    let _listener = UnixListener::bind(&socket).unwrap();

    let out = t.cairn(["--json", "snapshot"]).arg(&src).assert().success();
    let err = stderr_of(out.get_output());
    for (path, kind) in [(&fifo, "fifo"), (&socket, "socket")] {
        let line = err
            .lines()
            .find(|l| l.contains(path.to_str().unwrap()))
            .unwrap_or_else(|| panic!("no warning about {path:?}:\n{err}"));
        assert!(line.contains("warning") && line.contains(kind), "{line}");
    }
    let snap = parse_json(&out.get_output().stdout);
    assert_eq!(summary(&snap, "skipped"), 2);
    assert_eq!(summary(&snap, "errors"), 0);
    let back = restored(&t.restore(id(&snap)), &src);
    remove_keeping_dir_mtime(&fifo);
    remove_keeping_dir_mtime(&socket);
    assert_trees_equal(&src, &back);
}

// --- stores ----------------------------------------------------------------

#[test]
fn an_empty_directory_is_not_a_store() {
    let t = TestEnv::new();
    fs::create_dir(&t.store).unwrap();
    every_command_refuses(&t, "not a cairn store");
}

#[test]
fn a_directory_without_config_json_is_not_a_store() {
    let t = TestEnv::new();
    write_file(&t.store.join("packs/ab/notes.txt"), b"mine");
    write_file(&t.store.join("catalog.db"), b"not a database");
    every_command_refuses(&t, "not a cairn store");
}

#[test]
fn a_corrupt_config_is_an_error_naming_config_json() {
    let t = TestEnv::with_store();
    fs::write(t.store.join("config.json"), b"{\"version\": 1, \"id\": ").unwrap();
    every_command_refuses(&t, "config.json");
}

#[test]
fn a_store_of_a_newer_format_version_is_refused_as_such() {
    let t = TestEnv::with_store();
    let path = t.store.join("config.json");
    let mut config: serde_json::Value = parse_json(&fs::read(&path).unwrap());
    config["version"] = 10.into();
    fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    every_command_refuses(&t, "version 10 is not supported");
}

#[test]
fn init_refuses_an_existing_store() {
    let t = TestEnv::with_store();
    let before = listing(&t.store);
    fails(&t, &["init"], &[], 1, &["already exists"]);
    assert_eq!(listing(&t.store), before);
}

#[test]
fn init_refuses_a_directory_with_other_content() {
    let t = TestEnv::new();
    write_file(&t.store.join("thesis.tex"), b"\\documentclass{article}");
    let before = listing(&t.store);
    fails(&t, &["init"], &[], 1, &["not empty"]);
    assert_eq!(listing(&t.store), before);
}

// An init (or a copy creating its target) killed before it wrote a file
// leaves the store's empty directories and no config.json: every later
// init or copy refused the directory as "not empty" until it was removed
// by hand.
#[test]
fn init_takes_over_what_an_interrupted_init_left() {
    let t = TestEnv::new();
    for dir in ["packs/00", "packs/ff", "index", "snapshots", "locks"] {
        fs::create_dir_all(t.store.join(dir)).unwrap();
    }
    t.cairn(["init", "--no-encrypt"]).assert().success();
    let src = t.path("src");
    small_tree(&src, 2);
    let snap = t.snapshot(&[&src], &[]);
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
    // A file anywhere is someone's: still refused.
    let other = TestEnv::new();
    fs::create_dir_all(other.store.join("packs/00")).unwrap();
    write_file(&other.store.join("packs/00/notes.txt"), b"mine");
    fails(&other, &["init"], &[], 1, &["not empty"]);
}

// --- restore -----------------------------------------------------------------

/// A store with one snapshot of a small tree; returns the source and id.
fn snapshot_of_small_tree(t: &TestEnv) -> (PathBuf, String) {
    let src = t.path("src");
    small_tree(&src, 1);
    let snap = t.snapshot(&[&src], &[]);
    (src, id(&snap).to_owned())
}

/// Content, mtime and inode: whether a file was left alone.
fn stamp(path: &Path) -> (Vec<u8>, i64, i64, u64) {
    let m = fs::metadata(path).unwrap();
    (fs::read(path).unwrap(), m.mtime(), m.mtime_nsec(), m.ino())
}

#[test]
fn restore_refuses_existing_file_without_overwrite_and_writes_nothing() {
    let t = TestEnv::with_store();
    let (src, snap) = snapshot_of_small_tree(&t);
    let target = t.path("target");
    let dest = restored(&target, &src);
    write_file(&dest.join("a.txt"), b"my edits");
    let mine = dest.join("mine.txt");
    write_file(&mine, b"not in the snapshot");
    set_mtime(&mine, 1_000_000_000, 5);
    let mine_before = stamp(&mine);
    let before = listing(&target);

    let conflict = dest.join("a.txt");
    fails(
        &t,
        &["restore", &snap, "--target"],
        &[&target],
        1,
        &[conflict.to_str().unwrap(), "--overwrite"],
    );
    assert_eq!(listing(&target), before, "nothing may be written");

    t.cairn(["restore", &snap, "--overwrite", "--target"])
        .arg(&target)
        .assert()
        .success();
    assert_eq!(stamp(&mine), mine_before, "mine.txt was touched");
    remove_keeping_dir_mtime(&mine);
    assert_trees_equal(&src, &dest);
}

#[test]
fn restore_never_follows_a_symlink_in_the_target() {
    let t = TestEnv::with_store();
    let (src, snap) = snapshot_of_small_tree(&t);
    let outside = t.path("outside");
    write_file(&outside.join("sentinel"), b"keep");
    let target = t.path("target");
    fs::create_dir(&target).unwrap();
    make_symlink(&outside, &target.join("tmp"));
    let before = listing(&outside);

    fails(
        &t,
        &["restore", &snap, "--target"],
        &[&target],
        1,
        &["symlink"],
    );
    assert_eq!(listing(&outside), before);

    t.cairn(["restore", &snap, "--overwrite", "--target"])
        .arg(&target)
        .assert()
        .success();
    assert_eq!(
        listing(&outside),
        before,
        "restore wrote through the symlink"
    );
    assert!(fs::symlink_metadata(target.join("tmp")).unwrap().is_dir());
    assert_trees_equal(&src, &restored(&target, &src));
}

#[test]
fn restore_replaces_a_symlink_where_a_file_goes_without_writing_through_it() {
    let t = TestEnv::with_store();
    let (src, snap) = snapshot_of_small_tree(&t);
    let outside = t.path("outside.txt");
    write_file(&outside, b"keep me");
    let target = t.path("target");
    let dest = restored(&target, &src);
    fs::create_dir_all(&dest).unwrap();
    make_symlink(&outside, &dest.join("a.txt"));
    let before = stamp(&outside);

    fails(
        &t,
        &["restore", &snap, "--target"],
        &[&target],
        1,
        &["a.txt (symlink)"],
    );
    t.cairn(["restore", &snap, "--overwrite", "--target"])
        .arg(&target)
        .assert()
        .success();
    assert_eq!(stamp(&outside), before, "restore wrote through the symlink");
    assert_trees_equal(&src, &dest);
}

#[test]
fn restore_never_replaces_a_directory_where_a_file_goes() {
    let t = TestEnv::with_store();
    let (src, snap) = snapshot_of_small_tree(&t);
    let target = t.path("target");
    let dest = restored(&target, &src);
    write_file(&dest.join("a.txt/inside"), b"precious");
    let before = listing(&target);

    for extra in [&[][..], &["--overwrite"][..]] {
        let out = t
            .cairn(["restore", &snap, "--target"])
            .arg(&target)
            .args(extra)
            .assert()
            .code(1);
        let err = stderr_of(out.get_output());
        assert!(err.contains(dest.join("a.txt").to_str().unwrap()), "{err}");
        assert_eq!(listing(&target), before, "{extra:?}: something was written");
    }
}

#[test]
fn a_snapshot_prefix_that_matches_nothing_is_an_error() {
    let t = TestEnv::with_store();
    let (_, snap) = snapshot_of_small_tree(&t);
    let absent = if snap.starts_with("0000") {
        "ffff"
    } else {
        "0000"
    };
    let target = t.path("target");
    let message = format!("no snapshot {absent}");
    fails(
        &t,
        &["restore", absent, "--target"],
        &[&target],
        1,
        &[&message],
    );
    assert!(!target.exists());
}

/// Writes copies of the record of `snap` that differ only in their host
/// until two ids share their first four hex digits; returns those two ids.
fn records_sharing_a_prefix(t: &TestEnv, snap: &str) -> [String; 2] {
    let dir = t.store.join("snapshots");
    let record = parse_json(&fs::read(dir.join(format!("{snap}.json"))).unwrap());
    let mut seen = std::collections::HashMap::new();
    for n in 0.. {
        let mut copy = record.clone();
        copy["host"] = format!("clone-{n}").into();
        let mut bytes = serde_json::to_vec_pretty(&copy).unwrap();
        bytes.push(b'\n');
        let id = blake3::hash(&bytes).to_hex().to_string();
        if let Some((other, other_bytes)) =
            seen.insert(id[..4].to_owned(), (id.clone(), bytes.clone()))
        {
            fs::write(dir.join(format!("{other}.json")), other_bytes).unwrap();
            fs::write(dir.join(format!("{id}.json")), bytes).unwrap();
            return [other, id];
        }
    }
    unreachable!()
}

#[test]
fn an_ambiguous_snapshot_prefix_lists_the_candidates() {
    let t = TestEnv::with_store();
    let (_, snap) = snapshot_of_small_tree(&t);
    let [one, two] = records_sharing_a_prefix(&t, &snap);
    assert_eq!(t.snapshots(&[]).len(), 3);

    let target = t.path("target");
    fails(
        &t,
        &["restore", &one[..4], "--target"],
        &[&target],
        1,
        &["ambiguous", &one, &two],
    );
    assert!(!target.exists());
    t.cairn(["restore", &one, "--target"])
        .arg(&target)
        .assert()
        .success();
}

#[test]
fn a_snapshot_prefix_shorter_than_four_digits_is_refused() {
    let t = TestEnv::with_store();
    let (_, snap) = snapshot_of_small_tree(&t);
    let target = t.path("target");
    fails(
        &t,
        &["restore", &snap[..3], "--target"],
        &[&target],
        2,
        &["too short"],
    );
    assert!(!target.exists());
}

#[test]
fn restore_latest_on_an_empty_store_says_there_are_no_snapshots() {
    let t = TestEnv::with_store();
    let target = t.path("target");
    fails(
        &t,
        &["restore", "latest", "--target"],
        &[&target],
        1,
        &["no snapshots"],
    );
    assert!(!target.exists());
}

// --- usage -------------------------------------------------------------------

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let t = TestEnv::with_store();
    fails(
        &t,
        &["snapshot", "--frobnicate", "/tmp"],
        &[],
        2,
        &["--frobnicate"],
    );
    fails(
        &t,
        &["--frobnicate", "snapshots"],
        &[],
        2,
        &["--frobnicate"],
    );
}

#[test]
fn restore_without_target_is_a_usage_error() {
    let t = TestEnv::with_store();
    fails(&t, &["restore", "latest"], &[], 2, &["--target"]);
}

#[test]
fn a_bad_lock_wait_is_a_usage_error() {
    let t = TestEnv::with_store();
    fails(&t, &["--lock-wait", "soon", "snapshots"], &[], 2, &["soon"]);
}

#[test]
// Regression: a bad --time exited 1 (error) instead of 2 (usage).
fn a_bad_time_is_a_usage_error() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    fails(
        &t,
        &["snapshot", "--time", "last tuesday"],
        &[&src],
        2,
        &["--time"],
    );
    assert!(t.snapshots(&[]).is_empty());
}

// --- damage a command stops on -------------------------------------------------

/// A snapshot of one file of random bytes; the file's path.
fn one_file_snapshot(t: &TestEnv, seed: u64) -> PathBuf {
    let src = t.path("src");
    fs::create_dir_all(&src).unwrap();
    write_random_file(&src.join("f1"), seed, 150_000);
    t.snapshot(&[&src], &[]);
    src.join("f1")
}

// A restore whose snapshot's tree pack is gone, and a `cat` of a file
// whose data pack is gone, exited 1 (a machine's failure) with only the
// pack's path: the README promises 4 for lost data in the store.
#[test]
fn a_command_stopped_by_a_lost_pack_exits_4_and_says_what_to_run() {
    let t = TestEnv::with_store();
    let file = one_file_snapshot(&t, 5);
    let packs = packs_by_size(&t.store);
    let (trees, data) = (&packs[0], &packs[packs.len() - 1]);
    let hint = "`cairn verify` says what is lost";
    let moved = t.path("data.pack");
    fs::rename(data, &moved).unwrap();
    fails(&t, &["cat", "latest"], &[&file], 4, &[hint]);
    fs::rename(&moved, data).unwrap();
    fs::remove_file(trees).unwrap();
    let target = t.path("target");
    fails(
        &t,
        &["restore", "latest", "--target"],
        &[&target],
        4,
        &[hint],
    );
}

// In an encrypted store a blob altered on disk does not open with the key
// (a sealed blob): `cat` exited 1 as for a machine's failure.
#[test]
fn an_altered_blob_of_an_encrypted_store_stops_cat_with_exit_4() {
    let t = TestEnv::with_encrypted_store();
    let file = one_file_snapshot(&t, 6);
    let data = packs_by_size(&t.store).pop().unwrap();
    let mut bytes = fs::read(&data).unwrap();
    bytes[100] ^= 0x5a;
    fs::write(&data, bytes).unwrap();
    fails(
        &t,
        &["cat", "latest"],
        &[&file],
        4,
        &["`cairn verify` says what is lost"],
    );
}

// A duration past what a clock can add panicked (exit 101) when it was
// used: `--sqlite-timeout` as a database was met, `--progress-interval`
// after the snapshot had committed. A century is as long as any takes.
#[test]
fn a_duration_longer_than_a_century_is_taken_as_a_century_without_a_panic() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("a"), b"a");
    let db = rusqlite::Connection::open(src.join("app.db")).unwrap();
    db.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(db);
    let huge = "9223372036854775807s";
    for flag in ["--sqlite-timeout", "--progress-interval", "--lock-wait"] {
        let out = t
            .cairn(["snapshot", flag, huge])
            .arg(&src)
            .assert()
            .success();
        assert!(!stderr_of(out.get_output()).contains("panicked"));
    }
    assert_eq!(t.snapshots(&[]).len(), 3);
    t.cairn(["verify", "--budget", "99999999999999999999d"])
        .assert()
        .success();
}
