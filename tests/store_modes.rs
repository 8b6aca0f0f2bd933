//! Every file cairn creates in a store gets the store's mode, the mode of
//! its `config.json`: private to its owner unless an administrator opened
//! the store to a group.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

/// Every regular file under `dir` with its permission bits.
fn file_modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        if meta.is_dir() {
            out.extend(file_modes(&entry.path()));
        } else {
            out.push((entry.path(), meta.permissions().mode() & 0o7777));
        }
    }
    out
}

/// Asserts that every file of the store has `mode`, and that `names` are
/// among them.
fn assert_all_files_have(t: &TestEnv, mode: u32, names: &[&str]) {
    let modes = file_modes(&t.store);
    let wrong: Vec<_> = modes.iter().filter(|(_, m)| *m != mode).collect();
    assert!(wrong.is_empty(), "files not {mode:o}: {wrong:?}");
    for name in names {
        assert!(
            modes
                .iter()
                .any(|(p, _)| p.to_string_lossy().ends_with(name)),
            "no {name} in {modes:?}"
        );
    }
}

/// A source with a little data in it.
fn source(t: &TestEnv, seed: u64) -> PathBuf {
    let src = t.path(format!("src{seed}"));
    small_tree(&src, seed);
    src
}

/// Snapshots `src` stalled once its first pack is cataloged, while its
/// catalog connections (and so `-wal` and `-shm`) are open; runs `look`,
/// then lets it finish.
fn while_a_snapshot_runs(t: &TestEnv, src: &Path, look: impl FnOnce()) {
    let mut cmd = t.command(["snapshot"]);
    cmd.arg(src);
    let child = stall::spawn_stalled(cmd, "pack-cataloged", 3);
    look();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}

// Regression: #14 item 9
#[test]
fn every_file_of_a_new_store_is_readable_by_its_owner_only() {
    let t = TestEnv::with_store();
    let src = source(&t, 1);
    while_a_snapshot_runs(&t, &src, || {
        assert_all_files_have(
            &t,
            0o600,
            &[
                "config.json",
                "catalog.db",
                "catalog.db-wal",
                "catalog.db-shm",
            ],
        );
    });
    assert_all_files_have(&t, 0o600, &["catalog.db", "store.lock", ".pack", ".json"]);
}

// Regression: #14 item 9
#[test]
fn new_files_follow_a_store_mode_an_administrator_loosened() {
    let t = TestEnv::with_store();
    t.snapshot(&[source(&t, 1)], &[]);
    chmod(&t.store.join("config.json"), 0o640);
    fs::remove_file(t.store.join("catalog.db")).unwrap();

    while_a_snapshot_runs(&t, &source(&t, 2), || {
        for name in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
            let mode = fs::metadata(t.store.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o640, "{name}");
        }
    });
    let newest = t.snapshots(&[]).pop().unwrap();
    let record = t.store.join(format!("snapshots/{}.json", id(&newest)));
    assert_eq!(
        fs::metadata(record).unwrap().permissions().mode() & 0o777,
        0o640
    );

    t.cairn(["repair", "catalog"]).assert().success();
    let catalog = fs::metadata(t.store.join("catalog.db")).unwrap();
    assert_eq!(catalog.permissions().mode() & 0o777, 0o640);
}

// Regression: #14 item 9
#[test]
fn a_world_readable_catalog_left_by_an_older_cairn_is_made_private() {
    let t = TestEnv::with_store();
    t.snapshot(&[source(&t, 1)], &[]);
    chmod(&t.store.join("catalog.db"), 0o644);

    t.cairn(["snapshots"]).assert().success();
    assert_all_files_have(&t, 0o600, &["catalog.db"]);
}
