//! A store that lost or damaged parts of itself keeps working where it can
//! and says what it could not do. Regressions from the review of issue 2.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use cairn::id::PackId;
use cairn::pack::{BlobKind, reader};
use common::*;
use predicates::prelude::*;
fn catalog_files(store: &Path) -> Vec<PathBuf> {
    ["catalog.db", "catalog.db-wal", "catalog.db-shm"]
        .iter()
        .map(|n| store.join(n))
        .collect()
}

fn remove_catalog(store: &Path) {
    for f in catalog_files(store) {
        let _ = fs::remove_file(f);
    }
}

/// Every pack file in the store with the kind of its blobs.
fn packs(store: &Path) -> Vec<(PathBuf, BlobKind)> {
    let backend = cairn::backend::Backend::local(store, 0o600);
    let mut out = Vec::new();
    for dir in fs::read_dir(store.join("packs")).unwrap() {
        for file in fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let id: PackId = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            let (entries, _) = reader::read_header(&backend, &id).unwrap();
            out.push((path, entries[0].kind));
        }
    }
    out
}

// Regression: a rebuild was only triggered by a missing catalog.db, so an
// empty or half-built one was trusted and every blob looked missing.
#[test]
fn an_empty_catalog_file_is_rebuilt_from_the_packs() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 7);
    let snap = t.snapshot(&[&src], &[]);
    remove_catalog(&t.store);
    fs::write(t.store.join("catalog.db"), b"").unwrap();
    let target = t.fresh_dir("out");
    t.cairn(["restore", id(&snap), "--target"])
        .arg(&target)
        .assert()
        .success()
        .stderr(predicates::str::contains("rebuilt it from"));
    assert_trees_equal(&src, &restored(&target, &src));
}

// Regression: a stray file in packs/ made the rebuild fail, leaving a
// partial catalog that later opens trusted. (The rebuild reads the index
// objects now; verify names the stray.)
#[test]
fn a_stray_file_in_packs_is_reported_and_the_rebuild_completes() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 8);
    let snap = t.snapshot(&[&src], &[]);
    remove_catalog(&t.store);
    fs::write(t.store.join("packs/stray-file"), b"x").unwrap();
    let target = t.fresh_dir("out");
    t.cairn(["restore", id(&snap), "--target"])
        .arg(&target)
        .assert()
        .success();
    let verify = t.cairn(["verify"]).assert();
    let out = verify.get_output();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr_of(out));
    assert!(said.contains("packs/stray-file"), "{said}");
    assert_trees_equal(&src, &restored(&target, &src));
    // The rebuild finished: the next open does not rebuild again.
    t.cairn(["snapshots"])
        .assert()
        .success()
        .stderr(predicates::str::contains("rebuilt").not());
}

// Regression: an unchanged file took its parent's chunk list on trust, so
// a lost data pack spread into every later snapshot with exit 0.
#[test]
fn an_unchanged_file_whose_chunks_are_gone_is_read_again() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 9);
    settle();
    t.snapshot(&[&src], &[]);
    for (path, kind) in packs(&t.store) {
        if kind == BlobKind::Data {
            fs::remove_file(path).unwrap();
        }
    }
    remove_catalog(&t.store);
    let next = t.snapshot(&[&src], &[]);
    // Every byte is read again (an empty file has no chunk to lose).
    assert!(summary(&next, "bytes_read") > 0, "{next}");
    assert_eq!(
        summary(&next, "bytes_read"),
        summary(&next, "total_bytes"),
        "{next}"
    );
    let target = t.restore(id(&next));
    assert_trees_equal(&src, &restored(&target, &src));
}

// Regression: `latest` silently meant an older snapshot when the newest
// record was damaged, and naming the damaged one said "no snapshot".
#[test]
fn a_damaged_newest_record_is_named_not_silently_skipped() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 10);
    t.snapshot(&[&src], &["--time", "2026-01-01T00:00:00Z"]);
    let newest = t.snapshot(&[&src], &["--time", "2026-01-02T00:00:00Z"]);
    let record = t.store.join(format!("snapshots/{}.json", id(&newest)));
    let mut bytes = fs::read(&record).unwrap();
    bytes[10] ^= 0x01;
    fs::write(&record, bytes).unwrap();
    remove_catalog(&t.store);
    let target = t.fresh_dir("out");
    t.cairn(["restore", "latest", "--target"])
        .arg(&target)
        .assert()
        .success()
        .stderr(predicates::str::contains(id(&newest)))
        .stderr(predicates::str::contains("damaged"));
    t.cairn(["restore", &id(&newest)[..8], "--target"])
        .arg(t.fresh_dir("out2"))
        .assert()
        .code(1)
        .stderr(predicates::str::contains("is damaged"));
}

// Regression: an enormous --lock-wait overflowed Instant arithmetic.
#[test]
fn an_enormous_lock_wait_means_wait_without_end_not_a_panic() {
    let t = TestEnv::with_store();
    t.cairn(["snapshots", "--lock-wait", "9223372036854775807"])
        .assert()
        .success();
}

// Regression: --json with a non-UTF-8 path panicked after the restore.
#[test]
fn json_output_carries_non_utf8_paths_as_hex() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 11);
    let snap = t.snapshot(&[&src], &[]);
    let target = t.root.join(raw(b"out\xff"));
    let out = t
        .cairn(["restore", id(&snap), "--json", "--target"])
        .arg(&target)
        .assert()
        .success();
    let json = parse_json(&out.get_output().stdout);
    assert!(
        json["target"]["hex"]
            .as_str()
            .unwrap()
            .ends_with("6f7574ff")
    );
    assert_trees_equal(&src, &restored(&target, &src));
}

// A prefix that one readable and one damaged record share named the
// readable one without a word: `forget PREFIX`, meant for the damaged
// record, forgot the other snapshot. It is ambiguous.
#[test]
fn a_prefix_a_damaged_record_shares_is_ambiguous() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 12);
    let snap = t.snapshot(&[&src], &[]);
    let prefix = &id(&snap)[..6];
    let damaged = format!("{prefix}{}", "0".repeat(58));
    fs::write(
        t.store.join(format!("snapshots/{damaged}.json")),
        b"garbage",
    )
    .unwrap();
    let out = t.cairn(["forget", "--dry-run", prefix]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("ambiguous") && err.contains(&damaged), "{err}");
    assert_eq!(t.snapshots(&[]).len(), 1);
    // The whole id still names the readable one.
    t.cairn(["forget", "--dry-run", id(&snap)])
        .assert()
        .success();
}
