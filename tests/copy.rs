//! `cairn copy --to STORE`: off-site copies. A copy holds the same
//! snapshots (same ids) that restore byte for byte, moves only what the
//! target lacks, and a killed copy's rerun moves only the rest.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// A tree with a SQLite database, changed between snapshots.
fn tree_with_database(src: &Path, night: u64) {
    small_tree(src, night);
    let conn = open_in_mode(&src.join("app.db"), "wal");
    conn.execute_batch("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    for i in 0..50 {
        conn.execute(
            "INSERT INTO t (v) VALUES (?1)",
            [random_bytes(night * 100 + i, 2000)],
        )
        .unwrap();
    }
}

/// `cairn --json ARGS` on `t`'s environment, as JSON.
fn json_of(mut cmd: assert_cmd::Command) -> Value {
    let out = cmd.assert().success();
    parse_json(&out.get_output().stdout)
}

fn ids(t: &TestEnv) -> Vec<String> {
    let mut ids: Vec<String> = t.snapshots(&[]).iter().map(|s| id(s).to_owned()).collect();
    ids.sort();
    ids
}

#[test]
fn copy_local_to_s3_to_local_keeps_ids_and_bytes() {
    let local = TestEnv::with_store();
    let src = local.path("src");
    let mut nights = Vec::new();
    for night in 0..2 {
        tree_with_database(&src, night);
        settle();
        let snap = local.snapshot(&[&src], &["--tag", &format!("n{night}")]);
        nights.push((id(&snap).to_owned(), local.restore(id(&snap))));
    }
    let s3 = TestEnv::with_s3();
    let mut to_s3 = s3.cairn_without_store(["--json", "--store"]);
    to_s3
        .arg(&local.store)
        .arg("copy")
        .arg("--to")
        .arg(s3.store_arg());
    let report = json_of(to_s3);
    assert_eq!(report["snapshots_copied"], 2);
    assert!(report["blobs_copied"].as_u64().unwrap() > 0);

    let back = s3.path("back");
    let mut to_back = s3.cairn(["--json", "copy", "--to"]);
    to_back.arg(&back);
    assert_eq!(json_of(to_back)["snapshots_copied"], 2);

    let mut again = local.second_host();
    again.store = back;
    assert_eq!(ids(&again), ids(&local));
    assert_eq!(ids(&s3), ids(&local));
    for (snapshot, original) in &nights {
        let target = again.restore(snapshot);
        assert_trees_equal(&restored(original, &src), &restored(&target, &src));
    }
    again.cairn(["verify", "--read-data"]).assert().success();
}

#[test]
fn copy_again_moves_nothing() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    t.snapshot(&[&src], &[]);
    let target = t.path("offsite");
    let copy = || {
        let mut cmd = t.cairn(["--json", "copy", "--to"]);
        cmd.arg(&target);
        json_of(cmd)
    };
    assert_eq!(copy()["snapshots_copied"], 1);
    let second = copy();
    assert_eq!(second["snapshots_copied"], 0);
    assert_eq!(second["snapshots_present"], 1);
    assert_eq!(second["blobs_copied"], 0);
    // A new snapshot sharing most data: only its new blobs move.
    fs::write(src.join("new.txt"), b"one more file").unwrap();
    settle();
    t.snapshot(&[&src], &[]);
    let third = copy();
    assert_eq!(third["snapshots_copied"], 1);
    assert!(third["blobs_present"].as_u64().unwrap() > 0);
    // The new file's blob and the trees from it up to the root.
    assert!(third["blobs_copied"].as_u64().unwrap() <= 10, "{third}");
}

/// Copies started at once into a new local target: the ones that found no
/// store and lost the race to create it exited 1, "a cairn store already
/// exists". The store another copy just made is the target: they copy
/// into it.
#[test]
fn copies_racing_to_create_one_new_target_all_succeed() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 2);
    t.snapshot(&[&src], &[]);
    for round in 0..3 {
        let target = t.path(format!("offsite-{round}"));
        let copies: Vec<_> = (0..4)
            .map(|_| {
                t.command(["copy", "--to"])
                    .arg(&target)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for copy in copies {
            let out = copy.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", stderr_of(&out));
        }
        let copied = json_of({
            let mut cmd = t.cairn_without_store(["--json", "--store"]);
            cmd.arg(&target).arg("snapshots");
            cmd
        });
        assert_eq!(copied.as_array().unwrap().len(), 1, "{copied}");
    }
}

/// The target keeps the records a copy wrote in its catalog, as a
/// snapshot's commit does: one damaged there before anything listed the
/// target can be written back by `repair snapshots`.
#[test]
fn a_record_a_copy_wrote_and_that_was_damaged_is_written_back_on_the_target() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 3);
    let snap = id(&t.snapshot(&[&src], &[])).to_owned();
    let target = t.path("offsite");
    t.cairn(["copy", "--to"]).arg(&target).assert().success();
    let record = target.join(format!("snapshots/{snap}.json"));
    let bytes = fs::read(&record).unwrap();
    fs::write(&record, &bytes[..bytes.len() / 2]).unwrap();
    t.cairn_without_store(["--store"])
        .arg(&target)
        .args(["repair", "snapshots"])
        .assert()
        .success();
    assert_eq!(fs::read(&record).unwrap(), bytes);
}

#[test]
fn killed_copy_rerun_moves_only_the_rest() {
    let t = TestEnv::new();
    t.cairn(["init", "--pack-size", "1MiB"]).assert().success();
    let src = t.path("src");
    fs::create_dir_all(&src).unwrap();
    for k in 0..40 {
        write_random_file(&src.join(format!("f{k}")), k, 600_000);
    }
    t.snapshot(&[&src], &[]);
    let full = t.path("full");
    let mut whole = t.cairn(["--json", "copy", "--to"]);
    whole.arg(&full);
    let everything = json_of(whole)["blobs_copied"].as_u64().unwrap();

    let target = t.path("offsite");
    let mut killed = t.cairn(["copy", "--to"]);
    killed
        .arg(&target)
        .env("CAIRN_CRASH_AT", "copy-batch-done:1");
    killed.assert().failure();
    let mut again = t.cairn(["--json", "copy", "--to"]);
    again.arg(&target);
    let rerun = json_of(again);
    let (copied, present) = (
        rerun["blobs_copied"].as_u64().unwrap(),
        rerun["blobs_present"].as_u64().unwrap(),
    );
    assert!(present > 0, "the first batch was kept: {rerun}");
    assert_eq!(copied + present, everything, "{rerun}");
    let mut there = t.second_host();
    there.store = target;
    let snap = there.snapshots(&[]);
    let target = there.restore(id(&snap[0]));
    assert_trees_equal(&src, &restored(&target, &src));
}

#[test]
fn copy_into_a_store_of_other_chunking_says_so() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 3);
    t.snapshot(&[&src], &[]);
    let target = t.path("other");
    t.cairn_without_store(["--store"])
        .arg(&target)
        .args(["init", "--sqlite-page-run", "8KiB"])
        .assert()
        .success();
    let mut cmd = t.cairn(["copy", "--to"]);
    cmd.arg(&target);
    let out = cmd.assert().success();
    let err = stderr_of(out.get_output());
    assert!(err.contains("cuts files differently"), "{err}");
}

#[test]
fn copy_refuses_its_own_store_and_a_damaged_snapshot() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 4);
    t.snapshot(&[&src], &[]);
    let mut own = t.cairn(["copy", "--to"]);
    own.arg(&t.store);
    let err = stderr_of(own.assert().code(1).get_output());
    assert!(err.contains("store being copied from"), "{err}");

    for pack in fs::read_dir(t.store.join("packs")).unwrap() {
        for file in fs::read_dir(pack.unwrap().path()).unwrap() {
            fs::remove_file(file.unwrap().path()).unwrap();
        }
    }
    t.cairn(["repair", "catalog"]).assert().success();
    let mut damaged = t.cairn(["copy", "--to"]);
    damaged.arg(t.path("offsite"));
    let err = stderr_of(damaged.assert().code(1).get_output());
    assert!(err.contains("is damaged"), "{err}");
    assert!(
        !t.path("offsite/snapshots").exists()
            || fs::read_dir(t.path("offsite/snapshots"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn a_wide_tree_in_s3_read_on_several_threads_from_a_cold_cache_copies_whole() {
    let s3 = TestEnv::with_s3();
    let src = s3.path("src");
    for d in 0..100 {
        for sub in ["x", "y"] {
            let file = src.join(format!("d{d:03}/{sub}/f"));
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            write_random_file(&file, 4 * d + 2 * u64::from(sub == "y") + 11, 3000);
        }
    }
    let snap = s3.snapshot(&[&src], &[]);
    // Another host: no tree pack cached, so the readers fetch them at once.
    let fresh = s3.second_host();
    let back = fresh.path("back");
    assert_eq!(fresh.copy_to(&back, &[])["snapshots_copied"], 1);

    let mut local = fresh.second_host();
    local.store = back;
    local.location = StoreLocation::Local;
    let target = local.restore(id(&snap));
    assert_trees_equal(&src, &restored(&target, &src));
    local.cairn(["verify", "--read-data"]).assert().success();
}

/// A store with one snapshot of `src`, copied whole to `offsite`, that
/// then lost its data pack.
fn a_store_that_lost_a_pack_kept_off_site() -> (TestEnv, PathBuf, String, PathBuf) {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 3);
    write_random_file(&src.join("big.bin"), 9, 200_000);
    let snap = id(&t.snapshot(&[&src], &[])).to_owned();
    let offsite = t.path("offsite");
    t.cairn(["copy", "--to"]).arg(&offsite).assert().success();
    fs::remove_file(packs_by_size(&t.store).pop().unwrap()).unwrap();
    (t, src, snap, offsite)
}

// The way back after damage when an off-site copy is whole: forget the
// damaged original, copy it back; it restores byte for byte.
#[test]
fn a_damaged_snapshot_forgotten_comes_back_whole_from_an_off_site_copy() {
    let (t, src, snap, offsite) = a_store_that_lost_a_pack_kept_off_site();
    t.cairn(["repair", "snapshots"]).assert().success();
    t.cairn(["forget", &snap]).assert().success();
    let mut back = t.cairn_without_store(["--json", "--store"]);
    back.arg(&offsite)
        .arg("copy")
        .arg(&snap)
        .arg("--to")
        .arg(&t.store);
    let report = json_of(back);
    assert_eq!(report["snapshots_copied"], 1, "{report}");
    assert_trees_equal(&src, &restored(&t.restore(&snap), &src));
    t.cairn(["verify", "--read-data"]).assert().success();
}

#[test]
fn a_copy_back_into_a_store_that_lost_a_pack_copies_what_the_pack_held() {
    // Without `repair snapshots` first, the store's catalog still named the
    // lost pack: the copy took its blobs as present, copied nothing, and
    // made a snapshot visible whose data was not there (exit 0).
    let (t, src, snap, offsite) = a_store_that_lost_a_pack_kept_off_site();
    t.cairn(["forget", &snap]).assert().success();
    let out = t
        .cairn_without_store(["--store"])
        .arg(&offsite)
        .arg("copy")
        .arg(&snap)
        .arg("--to")
        .arg(&t.store)
        .assert()
        .success();
    assert_trees_equal(&src, &restored(&t.restore(&snap), &src));
    t.cairn(["verify", "--read-data"]).assert().success();
    let err = stderr_of(out.get_output());
    assert!(err.contains("lacked 1 pack its catalog named"), "{err}");
}

#[test]
fn a_pack_another_run_writes_into_the_target_during_a_copy_is_not_taken_for_lost() {
    // The copy listed packs/ and then read its catalog: a snapshot on the
    // same host that wrote and cataloged a pack in between had that pack
    // dropped from the catalog as lost, and its snapshot failed to restore.
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 3);
    t.snapshot(&[&src], &[]);
    let offsite = t.path("offsite");
    t.cairn(["copy", "--to"]).arg(&offsite).assert().success();
    write_random_file(&src.join("later.bin"), 4, 50_000);
    t.snapshot(&[&src], &[]);
    let mut copy = t.command(["copy", "--to"]);
    copy.arg(&offsite);
    let copying = common::stall::spawn_stalled(copy, "copy-catalog-read", 3);
    let there = t.path("there");
    write_file(&there.join("direct.bin"), &random_bytes(5, 50_000));
    let direct = t
        .cairn_without_store(["--json", "--store"])
        .arg(&offsite)
        .arg("snapshot")
        .arg(&there)
        .assert()
        .success();
    let direct = parse_json(&direct.get_output().stdout);
    let out = copying.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("lacked"), "{}", stderr_of(&out));
    let back = t.fresh_dir("back");
    t.cairn_without_store(["--store"])
        .arg(&offsite)
        .args(["restore", id(&direct), "--target"])
        .arg(&back)
        .assert()
        .success();
    assert_trees_equal(&there, &restored(&back, &there));
}

#[test]
fn copy_checks_every_blob_and_refuses_a_pack_forged_to_check_out_against_its_name() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    write_random_file(&src.join("big.bin"), 9, 200_000);
    t.snapshot(&[&src], &[]);
    let data = packs_by_size(&t.store).pop().unwrap();
    let pack = data.file_stem().unwrap().to_str().unwrap().to_owned();
    // The file is stored raw (random bytes): byte 1000 is its content.
    let forged = forge_pack(&t, &pack, &[1000]);
    let out = t
        .cairn(["copy", "--to"])
        .arg(t.path("offsite"))
        .assert()
        .code(4);
    let err = stderr_of(out.get_output());
    assert!(err.contains(&format!("in pack {forged}")), "{err}");
    assert!(err.contains("does not match its id"), "{err}");
}
