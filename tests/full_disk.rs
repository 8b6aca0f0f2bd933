//! A store whose disk is full to the last block: reading and restoring
//! work, writes say the disk is full, and `forget --prune` frees space
//! (with the reserve `init` set aside for it).
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use common::mount::Tmpfs;
use common::*;

const MIB: u64 = 1 << 20;

/// A store on a 32 MiB tmpfs with three snapshots of `src`, each holding a
/// different 5 MiB file, and the tmpfs then filled to the last block.
struct FullStore {
    t: TestEnv,
    src: PathBuf,
    snaps: Vec<Value>,
}

fn full_store(keep_reserve: bool) -> Option<(FullStore, Tmpfs)> {
    let t = TestEnv::new();
    let mount = Tmpfs::mount(&t.store, "32M")?;
    t.cairn(["init"]).assert().success();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let mut snaps = Vec::new();
    for seed in 0..3 {
        write_random_file(&src.join("data"), seed, 5 * MIB);
        write_file(&src.join("notes.txt"), format!("night {seed}\n").as_bytes());
        settle();
        snaps.push(t.snapshot(&[&src], &[]));
    }
    if !keep_reserve {
        fs::remove_file(t.store.join("locks/reserve")).unwrap();
    }
    mount.fill("filler");
    Some((FullStore { t, src, snaps }, mount))
}

// Regression: #14 item 11
#[test]
fn reading_and_restoring_work_on_a_full_disk() {
    let Some((s, _mount)) = full_store(true) else {
        return;
    };
    let t = &s.t;
    assert_eq!(t.snapshots(&[]).len(), 3);
    t.cairn(["ls", "latest", "-R"]).assert().success();
    let notes = t
        .cairn(["cat", "latest"])
        .arg(s.src.join("notes.txt"))
        .assert()
        .success();
    assert_eq!(notes.get_output().stdout, b"night 2\n");
    t.cairn(["diff", id(&s.snaps[0]), id(&s.snaps[2])])
        .assert()
        .success();
    t.cairn(["find", "data"]).assert().success();
    t.cairn(["verify", "--read-data"]).assert().success();
    let target = t.restore("latest");
    assert_trees_equal(&s.src, &restored(&target, &s.src));
}

// Regression: #14 item 11
#[test]
fn a_snapshot_on_a_full_disk_says_the_disk_is_full() {
    let Some((s, _mount)) = full_store(true) else {
        return;
    };
    write_random_file(&s.src.join("more"), 9, MIB);
    let out = s.t.cairn(["snapshot"]).arg(&s.src).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains(s.t.store.to_str().unwrap()), "{err}");
    assert!(
        err.contains("is full") || err.contains("No space left on device"),
        "{err}"
    );
    assert_eq!(s.t.snapshots(&[]).len(), 3);
}

// Regression: #14 item 11
#[test]
fn forget_and_prune_free_space_on_a_full_disk() {
    let Some((s, mount)) = full_store(true) else {
        return;
    };
    let t = &s.t;
    let out = t
        .cairn(["forget", "--keep-last", "1", "--prune"])
        .assert()
        .success();
    let err = stderr_of(out.get_output());
    assert!(err.contains("reserve"), "{err}");
    assert!(mount.free_bytes() >= 8 * MIB, "{} free", mount.free_bytes());
    assert_eq!(t.snapshots(&[]).len(), 1);
    t.cairn(["verify", "--read-data"]).assert().success();
    let target = t.restore("latest");
    assert_trees_equal(&s.src, &restored(&target, &s.src));

    // The reserve is back for next time, and snapshots work again.
    let reserve = fs::metadata(t.store.join("locks/reserve")).unwrap();
    assert_eq!(reserve.len(), 4 * MIB);
    write_file(&s.src.join("notes.txt"), b"after\n");
    settle();
    t.snapshot(&[&s.src], &[]);
}

// Regression: #14 item 11
#[test]
fn without_a_reserve_forget_on_a_full_disk_says_the_disk_is_full() {
    let Some((s, _mount)) = full_store(false) else {
        return;
    };
    let out =
        s.t.cairn(["forget", "--keep-last", "1", "--prune"])
            .assert()
            .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("is full"), "{err}");
    assert!(
        !err.contains("Error code 4874") || err.contains("is full"),
        "{err}"
    );
    assert_eq!(s.t.snapshots(&[]).len(), 3);
}

// A dry run opened the store for reading, which never looked at the free
// space: on a nearly full disk it planned a repack the real prune, short
// of space, does not do.
#[test]
fn a_dry_run_prune_on_a_nearly_full_disk_plans_what_the_real_one_does() {
    let t = TestEnv::new();
    let Some(mount) = Tmpfs::mount(&t.store, "32M") else {
        return;
    };
    t.cairn(["init"]).assert().success();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    write_random_file(&src.join("a"), 1, 2 * MIB);
    write_random_file(&src.join("b"), 2, 2 * MIB);
    let first = t.snapshot(&[&src], &[]);
    fs::remove_file(src.join("b")).unwrap();
    t.snapshot(&[&src], &[]);
    t.cairn(["forget", id(&first)]).assert().success();
    let repacks = |args: &[&str]| {
        let out = t.cairn(["--json", "prune"]).args(args).assert().success();
        let plan = parse_json(&out.get_output().stdout);
        plan["repack"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(
        repacks(&["--dry-run"]),
        1,
        "with room, the half-used pack is repacked"
    );
    mount.fill("filler");
    assert_eq!(
        repacks(&["--dry-run"]),
        0,
        "short of space: no repack planned"
    );
}
