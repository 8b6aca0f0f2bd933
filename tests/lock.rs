//! The store lock holds even when its file is deleted or replaced while a
//! command runs: a prune never runs beside a snapshot.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{self, File};
use std::path::Path;
use std::process::Child;

use common::*;

/// Starts `cairn ARGS [SRC]` stalled at `point` for `secs` seconds.
fn stalled(t: &TestEnv, args: &[&str], src: Option<&Path>, point: &str, secs: u32) -> Child {
    let mut cmd = t.command(args);
    cmd.args(src);
    stall::spawn_stalled(cmd, point, secs)
}

/// A store with one snapshot of `src`, and `src` changed since.
fn store_with_a_changed_source(t: &TestEnv) -> std::path::PathBuf {
    let src = t.path("src");
    small_tree(&src, 1);
    write_random_file(&src.join("big"), 2, 3 << 20);
    settle();
    t.snapshot(&[&src], &[]);
    write_random_file(&src.join("new"), 3, 1 << 20);
    settle();
    src
}

/// Runs `prune` while a snapshot of a changed `src` waits to publish its
/// record, after `meddle` did something to the lock file; prune must not
/// take the store exclusively, and the snapshot must commit whole.
fn prune_beside_a_stalled_snapshot(meddle: impl FnOnce(&Path)) {
    let t = TestEnv::with_store();
    let src = store_with_a_changed_source(&t);
    let snapshot = stalled(
        &t,
        &["--json", "snapshot"],
        Some(&src),
        "snapshot-record-written",
        6,
    );
    meddle(&t.store.join("locks/store.lock"));

    // Prune does not wait for the snapshot, and does not take the store
    // for itself: it works in two phases beside it.
    let out = t.cairn(["prune"]).assert().success();
    let said = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(said.contains("two-phase prune"), "{said}");

    let out = snapshot.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let snap = parse_json(&out.stdout);
    t.cairn(["verify"]).assert().success();
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
}

// Regression: #14 item 3
#[test]
fn a_deleted_lock_file_does_not_let_prune_run_beside_a_snapshot() {
    prune_beside_a_stalled_snapshot(|lock| fs::remove_file(lock).unwrap());
}

// Regression: #14 item 3
#[test]
fn a_lock_file_replaced_by_another_file_does_not_let_prune_run_beside_a_snapshot() {
    prune_beside_a_stalled_snapshot(|lock| {
        let other = lock.with_file_name("other");
        fs::write(&other, b"").unwrap();
        fs::rename(&other, lock).unwrap();
    });
}

// Regression: #14 item 3
#[test]
fn a_lock_file_replaced_between_open_and_lock_is_not_trusted() {
    // Prune opens the lock file, then stalls before locking it. Meanwhile
    // the file is replaced and the new one is locked shared, as a snapshot
    // by a cairn that locks only the file would: prune must see that the
    // file it locked is no longer the store's lock file.
    let t = TestEnv::with_store();
    let src = store_with_a_changed_source(&t);
    let prune = stalled(&t, &["prune"], None, "lock-opened", 4);
    let lock = t.store.join("locks/store.lock");
    fs::remove_file(&lock).unwrap();
    let held = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .unwrap();
    held.lock_shared().unwrap();

    let out = prune.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("two-phase prune"), "{said}");
    drop(held);
    t.cairn(["prune"]).assert().success();
    t.snapshot(&[&src], &[]);
}

#[test]
fn a_symlink_at_the_lock_path_is_refused() {
    let t = TestEnv::with_store();
    let lock = t.store.join("locks/store.lock");
    fs::remove_file(&lock).unwrap();
    let elsewhere = t.path("elsewhere");
    fs::write(&elsewhere, b"").unwrap();
    make_symlink(&elsewhere, &lock);

    let out = t.cairn(["snapshots"]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("locks/store.lock"), "{err}");
    assert!(err.contains("symbolic link"), "{err}");
}
