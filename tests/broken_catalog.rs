//! A `catalog.db` that is no catalog (random bytes, a truncated file,
//! another SQLite database) is a cache gone bad: it is moved aside, rebuilt
//! from the packs, and the user is told where the old one went.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use common::*;

/// A store with two snapshots of a small tree; returns the source.
fn store_with_snapshots(t: &TestEnv) -> PathBuf {
    let src = t.path("src");
    small_tree(&src, 1);
    write_random_file(&src.join("big"), 2, 2 << 20);
    settle();
    t.snapshot(&[&src], &[]);
    write_random_file(&src.join("more"), 3, 1 << 20);
    settle();
    t.snapshot(&[&src], &[]);
    src
}

fn random_garbage(catalog: &Path) {
    fs::write(catalog, random_bytes(4, 64 << 10)).unwrap();
}

fn truncated(catalog: &Path) {
    let len = fs::metadata(catalog).unwrap().len();
    let file = fs::OpenOptions::new().write(true).open(catalog).unwrap();
    file.set_len(len / 2).unwrap();
}

fn wrong_schema(catalog: &Path) {
    fs::remove_file(catalog).unwrap();
    let conn = Connection::open(catalog).unwrap();
    conn.execute_batch(
        "CREATE TABLE packs (name TEXT); INSERT INTO packs VALUES ('x'); PRAGMA user_version = 1;",
    )
    .unwrap();
}

/// Files in the store's root whose names start with `catalog.db.broken-`.
fn set_aside(t: &TestEnv) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(&t.store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("catalog.db.broken-")
        })
        .collect();
    found.sort();
    found
}

/// Breaks the catalog with `damage`, then runs `first` (which must
/// succeed and say where the old catalog went), and checks that the store
/// works as before.
fn commands_survive(damage: fn(&Path), first: &[&str]) {
    let t = TestEnv::with_store();
    let src = store_with_snapshots(&t);
    let catalog = t.store.join("catalog.db");
    damage(&catalog);
    let broken = fs::read(&catalog).unwrap();

    let out = t.cairn(first).assert().success();
    let err = stderr_of(out.get_output());
    let aside = set_aside(&t);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(fs::read(&aside[0]).unwrap(), broken);
    assert!(err.contains(catalog.to_str().unwrap()), "{err}");
    assert!(err.contains(aside[0].to_str().unwrap()), "{err}");

    assert_eq!(t.snapshots(&[]).len(), 2);
    t.cairn(["verify"]).assert().success();
    assert_trees_equal(&src, &restored(&t.restore("latest"), &src));
    write_file(&src.join("new"), b"new");
    settle();
    t.snapshot(&[&src], &[]);
    assert_eq!(set_aside(&t).len(), 1);
}

// Regression: #14 item 12
#[test]
fn a_catalog_of_random_bytes_is_moved_aside_and_rebuilt() {
    commands_survive(random_garbage, &["snapshots"]);
}

// Regression: #14 item 12
#[test]
fn a_truncated_catalog_is_moved_aside_and_rebuilt() {
    commands_survive(truncated, &["snapshots"]);
}

// Regression: #14 item 12
#[test]
fn a_sqlite_database_of_another_schema_is_moved_aside_and_rebuilt() {
    commands_survive(wrong_schema, &["snapshots"]);
}

// Regression: #14 item 12
#[test]
fn repair_catalog_works_on_a_catalog_of_random_bytes() {
    commands_survive(random_garbage, &["repair", "catalog"]);
}

// Regression: #14 item 12
#[test]
fn a_snapshot_works_on_a_truncated_catalog() {
    let t = TestEnv::with_store();
    let src = store_with_snapshots(&t);
    truncated(&t.store.join("catalog.db"));
    write_file(&src.join("new"), b"new");
    settle();
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(set_aside(&t).len(), 1);
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
}
