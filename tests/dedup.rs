//! Deduplication and change detection: unchanged files are not read,
//! changed files cost only their changed chunks, equal content is stored
//! once, and a change hidden behind an unchanged size and mtime is caught.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};

use common::*;

#[test]
fn a_second_snapshot_of_an_unchanged_tree_reads_nothing_and_adds_no_data() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    write_random_file(&src.join("big"), 2, 3 << 20);
    settle();

    let first = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&first, "files_new"), summary(&first, "files"));
    let second = t.snapshot(&[&src], &[]);

    assert_eq!(second["parent"], first["id"]);
    assert_eq!(summary(&second, "bytes_read"), 0, "{second}");
    assert_eq!(summary(&second, "data_blobs_new"), 0, "{second}");
    assert_eq!(
        summary(&second, "files_unchanged"),
        summary(&second, "files"),
        "{second}"
    );
    assert_eq!(summary(&second, "files"), 4);
    assert_trees_equal(&src, &restored(&t.restore(id(&second)), &src));
}

#[test]
fn one_changed_byte_in_a_large_file_adds_at_most_two_chunks() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let file = src.join("disk.img");
    write_random_file(&file, 3, 64 << 20);

    let first = t.snapshot(&[&src], &[]);
    let chunks = summary(&first, "data_blobs_new");
    assert!(chunks >= 16, "64 MiB in chunks of ~1 MiB: {first}");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
        .unwrap();
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, 32 << 20).unwrap();
    f.write_all_at(&[!byte[0]], 32 << 20).unwrap();
    drop(f);

    let second = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&second, "files_changed"), 1, "{second}");
    let new = summary(&second, "data_blobs_new");
    assert!((1..=2).contains(&new), "{new} new chunks: {second}");
    assert_trees_equal(&src, &restored(&t.restore(id(&second)), &src));
}

#[test]
fn the_same_content_under_several_names_is_stored_once() {
    let size = 6 << 20;
    let alone = TestEnv::with_store();
    let single = alone.path("single");
    fs::create_dir(&single).unwrap();
    write_random_file(&single.join("only"), 4, size);
    let chunks = summary(&alone.snapshot(&[&single], &[]), "data_blobs_new");
    assert!(chunks >= 3, "{chunks}");

    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir_all(src.join("left")).unwrap();
    fs::create_dir_all(src.join("right/deeper")).unwrap();
    write_random_file(&src.join("left/one"), 4, size);
    fs::copy(src.join("left/one"), src.join("left/two")).unwrap();
    fs::copy(src.join("left/one"), src.join("right/deeper/three")).unwrap();

    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&snap, "data_blobs_new"), chunks, "{snap}");
    assert_eq!(summary(&snap, "data_blobs_reused"), 2 * chunks, "{snap}");
    let stored = t.packs_size();
    assert!(
        stored > size && stored < size + size / 20,
        "packs hold {stored} bytes for one copy of {size}"
    );
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
}

#[test]
fn a_rewrite_that_keeps_size_and_mtime_is_still_detected() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let (in_place, replaced) = (src.join("in-place"), src.join("replaced"));
    write_file(&in_place, &random_bytes(7, 100_000));
    write_file(&replaced, &random_bytes(8, 100_000));
    write_file(&src.join("untouched"), b"same");
    settle();
    let first = t.snapshot(&[&src], &[]);
    let before = [&in_place, &replaced].map(|p| fs::metadata(p).unwrap());

    fs::write(&in_place, random_bytes(9, 100_000)).unwrap();
    let tmp = src.join(".tmp");
    fs::write(&tmp, random_bytes(10, 100_000)).unwrap();
    fs::rename(&tmp, &replaced).unwrap();
    for (path, meta) in [&in_place, &replaced].iter().zip(&before) {
        set_mtime(path, meta.mtime(), meta.mtime_nsec() as u32);
        let now = fs::metadata(path).unwrap();
        assert_eq!(
            (now.len(), now.mtime(), now.mtime_nsec()),
            (meta.len(), meta.mtime(), meta.mtime_nsec())
        );
    }

    let second = t.snapshot(&[&src], &[]);
    assert_eq!(second["parent"], first["id"]);
    assert_eq!(summary(&second, "files_changed"), 2, "{second}");
    assert_eq!(summary(&second, "files_unchanged"), 1, "{second}");
    assert_eq!(summary(&second, "bytes_read"), 200_000, "{second}");
    assert_trees_equal(&src, &restored(&t.restore(id(&second)), &src));
}

/// Deletes the catalog row of the blob holding `content` (one chunk), as
/// a writer that ignores cairn's lock would.
fn delete_blob_row(t: &TestEnv, content: &[u8]) {
    let conn = rusqlite::Connection::open(t.store.join("catalog.db")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    let deleted = conn
        .execute(
            "DELETE FROM blobs WHERE id = ?1",
            [&blake3::hash(content).as_bytes()[..]],
        )
        .unwrap();
    assert_eq!(deleted, 1);
}

/// The next snapshot of `src` reads again the one 100,000-byte file whose
/// chunk lost its row, stores it, and restores everything exactly.
fn assert_lost_file_stored_again(t: &TestEnv, src: &std::path::Path) {
    let next = t.snapshot(&[src], &[]);
    assert_eq!(summary(&next, "data_blobs_new"), 1, "{next}");
    assert_eq!(summary(&next, "bytes_read"), 100_000, "{next}");
    assert_trees_equal(src, &restored(&t.restore(id(&next)), src));
}

#[test]
fn a_chunk_whose_catalog_row_any_writer_deleted_is_stored_again() {
    // SQLite counts deleted blob rows with a trigger, so even a writer that
    // knows nothing of the count (an older cairn, the sqlite3 shell) makes
    // the next snapshot look the parent's chunks up instead of trusting them.
    let t = TestEnv::with_store();
    let src = t.path("src");
    let lost = random_bytes(3, 100_000);
    write_file(&src.join("lost"), &lost);
    write_file(&src.join("kept"), &random_bytes(4, 100_000));
    settle();
    t.snapshot(&[&src], &[]);
    delete_blob_row(&t, &lost);

    assert_lost_file_stored_again(&t, &src);
}

#[test]
fn a_row_deleted_while_a_snapshot_runs_fails_that_snapshot_and_the_next_stores_it_again() {
    // The deletion lands after the second snapshot reused the chunk, so that
    // snapshot's trees reference it. Regression: #14 item 3: it must not
    // commit a record naming a chunk the store no longer has (it used to,
    // and was only left unmarked as intact); and the third must store the
    // lost chunk again instead of reusing it.
    let t = TestEnv::with_store();
    let src = t.path("src");
    let lost = random_bytes(5, 100_000);
    write_file(&src.join("lost"), &lost);
    settle();
    t.snapshot(&[&src], &[]);
    write_file(&src.join("new"), &random_bytes(6, 100_000));
    settle();

    // The second snapshot stalls once its one pack is cataloged, after the
    // walk that reused `lost`.
    let second = t
        .command(["snapshot"])
        .arg(&src)
        .env("CAIRN_STALL_AT", "pack-cataloged:3")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let packs = |t: &TestEnv| -> i64 {
        rusqlite::Connection::open(t.store.join("catalog.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM packs", [], |r| r.get(0))
            .unwrap()
    };
    let before = packs(&t);
    let started = std::time::Instant::now();
    while packs(&t) == before {
        assert!(started.elapsed().as_secs() < 30, "the pack never came");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    delete_blob_row(&t, &lost);
    let out = second.wait_with_output().unwrap();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&blake3::hash(&lost).to_hex().to_string()),
        "{stderr}"
    );
    assert_eq!(t.snapshots(&[]).len(), 1, "nothing was committed");

    // `new` was read again, its chunk kept from the failed run; `lost` stored.
    let next = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&next, "data_blobs_new"), 1, "{next}");
    assert_eq!(summary(&next, "bytes_read"), 200_000, "{next}");
    assert_trees_equal(&src, &restored(&t.restore(id(&next)), &src));
}

#[test]
fn unchanged_files_are_recognised_after_directories_removed_since_the_parent() {
    // The walk takes the parent's trees from a helper reading them ahead in
    // the parent's order, passing over those of directories gone since.
    let t = TestEnv::with_store();
    let src = t.path("src");
    for dir in ["a", "b", "c"] {
        for sub in ["x", "y"] {
            let path = src.join(dir).join(sub);
            fs::create_dir_all(&path).unwrap();
            for f in 0..3 {
                fs::write(path.join(format!("f{f}")), format!("{dir}/{sub}/{f}\n")).unwrap();
            }
        }
    }
    settle();
    t.snapshot(&[&src], &[]);
    fs::remove_dir_all(src.join("b")).unwrap();
    fs::write(src.join("c/y/f1"), "changed after the removed directory\n").unwrap();
    settle();

    let second = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&second, "files"), 12, "{second}");
    assert_eq!(summary(&second, "files_changed"), 1, "{second}");
    assert_eq!(summary(&second, "files_unchanged"), 11, "{second}");
    assert_trees_equal(&src, &restored(&t.restore(id(&second)), &src));
}
