//! What a snapshot stores must be what it says: never a record whose data
//! a concurrent remover took away, never a file that changed while it was
//! read passed off as whole; and `verify` beside a running snapshot tells
//! its in-flight files from what interrupted runs left.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use common::stall::Stalled;
use common::*;

/// The pack files under `packs/`, as store-relative paths.
fn pack_files(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in fs::read_dir(store.join("packs")).unwrap() {
        for f in fs::read_dir(dir.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

/// Removes every pack the catalog now lists, rows first then files, as a
/// prune that found them all dead would: a remover that ignores the store
/// lock. Returns the blob ids (hex) that went with them.
fn remove_all_packs_as_prune_would(t: &TestEnv) -> Vec<String> {
    let mut conn = rusqlite::Connection::open(t.store.join("catalog.db")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    let tx = conn.transaction().unwrap();
    let blobs: Vec<String> = tx
        .prepare("SELECT id FROM blobs")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|id| hex::encode(id.unwrap()))
        .collect();
    tx.execute("DELETE FROM blobs", []).unwrap();
    tx.execute("DELETE FROM packs", []).unwrap();
    tx.commit().unwrap();
    for pack in pack_files(&t.store) {
        fs::remove_file(pack).unwrap();
    }
    blobs
}

// Regression: #14 item 3
#[test]
fn a_snapshot_whose_reused_data_was_removed_meanwhile_commits_nothing_and_says_so() {
    // Once with a parent whose unchanged files and subtrees are reused
    // without lookups, once with --force, where every chunk is looked up
    // early in the run and the lookup is all that vouches for it.
    for extra in [&[][..], &["--force"][..]] {
        let t = TestEnv::with_store();
        let src = t.path("src");
        small_tree(&src, 1);
        write_random_file(&src.join("kept.bin"), 2, 600_000);
        settle();
        let first = t.snapshot(&[&src], &[]);
        write_random_file(&src.join("new.bin"), 3, 300_000);
        settle();

        // The second snapshot stalls once every blob of its run is stored;
        // meanwhile a remover that ignored the lock (a deleted lock file,
        // a future lock-free prune) forgets the first snapshot and deletes
        // every pack, the second's own new pack included.
        let mut cmd = t.command(["--json", "snapshot"]);
        cmd.args(extra).arg(&src);
        let mut second = Stalled::spawn(&t, cmd, "capture-walked");
        second.wait_for_stall();
        fs::remove_file(t.store.join(format!("snapshots/{}.json", id(&first)))).unwrap();
        let removed = remove_all_packs_as_prune_would(&t);
        let (status, _, stderr) = second.finish();

        assert_eq!(status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(stderr.contains("nothing was committed"), "{stderr}");
        assert!(
            stderr.contains("removed data this snapshot reused"),
            "{stderr}"
        );
        let named = stderr
            .split("blob ")
            .nth(1)
            .map(|rest| &rest[..64.min(rest.len())])
            .unwrap_or_default();
        assert!(
            removed.iter().any(|b| b == named),
            "names a removed blob: {stderr}"
        );
        assert!(
            fs::read_dir(t.store.join("snapshots"))
                .unwrap()
                .next()
                .is_none(),
            "no record was published"
        );

        // The next run stores everything again and is whole.
        let third = t.snapshot(&[&src], &[]);
        assert_trees_equal(&src, &restored(&t.restore(id(&third)), &src));
        t.cairn(["verify", "--read-data"]).assert().success();
    }
}

/// A sparse file of `len` bytes whose first 4 MiB are random.
fn write_sparse_file(path: &Path, len: u64) {
    write_random_file(path, 7, 4 << 20);
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn truncate(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

// Regression: #14 item 5
#[test]
fn a_file_truncated_during_each_of_two_reads_is_stored_as_read_with_a_warning_and_exit_3() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let big = src.join("big");
    fs::create_dir(&src).unwrap();
    write_sparse_file(&big, 200 << 20);
    write_file(&src.join("calm"), b"calm\n");
    settle();

    let mut cmd = t.command(["--json", "snapshot"]);
    cmd.arg(&src);
    let mut run = Stalled::spawn(&t, cmd, "file-first-chunk");
    // `big` sorts first: the first read of it stalls after one chunk and
    // the file shrinks under it; so does the second read.
    run.wait_for_stall();
    truncate(&big, 20 << 20);
    run.go_on();
    run.wait_for_stall();
    truncate(&big, 10 << 20);
    let (status, stdout, stderr) = run.finish();

    assert_eq!(status.code(), Some(3), "{stderr}");
    let warning = format!(
        "{}: changed while it was being read; stored as read, may be inconsistent",
        big.display()
    );
    assert!(stderr.contains(&warning), "{stderr}");
    let snap = parse_json(&stdout);
    assert_eq!(summary(&snap, "files_inconsistent"), 1, "{snap}");
    assert_eq!(
        snap["summary"]["inconsistent"],
        serde_json::json!([big.to_str().unwrap()])
    );
    assert_eq!(summary(&snap, "files"), 2, "{snap}");

    // Its change key is not trusted: the next snapshot reads it again.
    settle();
    let next = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&next, "files_changed"), 1, "{next}");
    assert_eq!(summary(&next, "files_unchanged"), 1, "{next}");
    // Only its data is read, not the hole after it (#16).
    let data: u64 = common::meta::data_map(&big).iter().map(|r| r.1).sum();
    assert_eq!(summary(&next, "bytes_read"), data, "{next}");
    assert!(
        next["summary"].get("files_inconsistent").is_none(),
        "{next}"
    );
    assert_trees_equal(&src, &restored(&t.restore(id(&next)), &src));
}

// Regression: #14 item 5
#[test]
fn a_file_truncated_during_its_first_read_only_is_read_again_and_stored_whole() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let big = src.join("big");
    fs::create_dir(&src).unwrap();
    write_sparse_file(&big, 200 << 20);
    settle();

    let mut cmd = t.command(["--json", "snapshot"]);
    cmd.arg(&src);
    let mut run = Stalled::spawn(&t, cmd, "file-first-chunk");
    run.wait_for_stall();
    truncate(&big, 20 << 20);
    let (status, stdout, stderr) = run.finish();

    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("changed while"), "{stderr}");
    let snap = parse_json(&stdout);
    assert!(
        snap["summary"].get("files_inconsistent").is_none(),
        "{snap}"
    );
    assert_eq!(summary(&snap, "total_bytes"), 20 << 20, "{snap}");
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
}

// Regression: #14 item 16
#[test]
fn verify_beside_a_running_snapshot_does_not_call_its_files_left_by_interrupted_runs() {
    let t = TestEnv::new();
    t.cairn(["init", "--pack-size", "1MiB"]).assert().success();
    let src = t.path("src");
    small_tree(&src, 4);
    settle();
    t.snapshot(&[&src], &[]);
    // `a/` comes first: its tree opens a tree pack (a temporary file in
    // tmp/) before `b/big` fills and publishes a data pack.
    write_file(&src.join("a/small"), b"small\n");
    fs::create_dir(src.join("b")).unwrap();
    write_random_file(&src.join("b/big"), 5, 3 << 20);
    settle();

    let mut cmd = t.command(["snapshot"]);
    cmd.arg(&src);
    let mut run = Stalled::spawn(&t, cmd, "pack-published");
    run.wait_for_stall();
    assert!(has_temp_file(&t.store.join("tmp")), "a pack is in flight");
    let during = parse_json(
        &t.cairn(["--json", "verify"])
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    let (status, _, stderr) = run.finish();
    assert!(status.success(), "{stderr}");

    let warnings = during["warnings"].to_string();
    assert!(during["ok"].as_bool().unwrap(), "{during}");
    assert!(!warnings.contains("interrupted"), "{warnings}");
    assert!(!warnings.contains("tmp/"), "{warnings}");
    assert!(
        warnings
            .contains("not referenced by any snapshot yet (a running snapshot may commit them)"),
        "{warnings}"
    );

    let after = parse_json(
        &t.cairn(["--json", "verify"])
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(after["warnings"], serde_json::json!([]), "{after}");
}
