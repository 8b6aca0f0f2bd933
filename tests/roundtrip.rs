//! Snapshot, restore into a fresh directory, compare: every kind of entry,
//! name, mode and time the file system can hold comes back exactly.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown, lchown};
use std::path::Path;

use common::*;

/// Far past, pre-1970, far future and nanosecond times (sec, nsec).
const NANOS: (i64, u32) = (1_700_000_000, 123_456_789);
const Y1971: (i64, u32) = (31_536_000 + 17, 999_999_999);
const PRE_EPOCH: (i64, u32) = (-86_400 * 365 * 3 - 7, 250_000_001);
const Y2100: (i64, u32) = (4_102_444_800 + 59, 1);

/// Builds the awkward tree under `src`.
fn build_awkward_tree(src: &Path) {
    fs::create_dir_all(src.join("empty dir")).unwrap();
    write_file(&src.join("nested/a/b/c/deep.txt"), b"deep\n");
    fs::create_dir_all(src.join("nested/a/empty")).unwrap();
    write_file(&src.join("empty file"), b"");
    write_random_file(&src.join("big.bin"), 1, 10 << 20);
    // Around the smallest chunk (256 KiB), where small files take a shortcut.
    for (i, len) in [(256 << 10) - 1, 256 << 10, (256 << 10) + 1]
        .into_iter()
        .enumerate()
    {
        write_file(
            &src.join(format!("min-chunk {len}")),
            &random_bytes(20 + i as u64, len),
        );
    }
    write_file(&src.join("zeros.img"), &vec![0; 9 << 20]);
    write_file(
        &src.join("text.log"),
        &b"a line of log text\n".repeat(100_000),
    );

    write_file(&src.join("name with  spaces .txt"), b"spaces");
    write_file(&src.join("new\nline"), b"newline");
    write_file(&src.join(raw(b"caf\xe9")), b"latin-1 name");
    write_file(&src.join(raw(b"dir \xff\xfe")).join("inner"), b"inside");

    make_symlink("nested/a/b/c/deep.txt", &src.join("link relative"));
    make_symlink("does/not/exist", &src.join("link dangling"));
    make_symlink("/usr/share/absolute/target", &src.join("link absolute"));
    make_symlink(raw(b"odd \xe9\ntarget"), &src.join("link raw bytes"));

    for (name, mode) in [("mode751", 0o751), ("mode600", 0o600), ("setuid", 0o4755)] {
        write_file(&src.join(name), name.as_bytes());
        chmod(&src.join(name), mode);
    }
    write_file(&src.join("setgid dir/f"), b"g");
    chmod(&src.join("setgid dir"), 0o2775);
    write_file(&src.join("sticky dir/t"), b"t");
    chmod(&src.join("sticky dir"), 0o1777);
    write_file(&src.join("n".repeat(255)), b"longest name");
    if is_root() {
        write_file(&src.join("owned by others"), b"theirs");
        chown(src.join("owned by others"), Some(1234), Some(5678)).unwrap();
        make_symlink("owned by others", &src.join("link owned by others"));
        lchown(src.join("link owned by others"), Some(4321), Some(8765)).unwrap();
    }
    write_file(&src.join("read-only dir/one"), b"1");
    write_file(&src.join("read-only dir/two"), b"2");
    fs::create_dir(src.join("read-only dir/sub")).unwrap();

    set_mtime(&src.join("big.bin"), NANOS.0, NANOS.1);
    set_mtime(&src.join("empty file"), Y1971.0, Y1971.1);
    set_mtime(&src.join("mode600"), PRE_EPOCH.0, PRE_EPOCH.1);
    set_mtime(&src.join("setuid"), Y2100.0, Y2100.1);
    set_mtime(&src.join("link relative"), NANOS.0, 7);
    set_mtime(&src.join("nested/a/b/c"), PRE_EPOCH.0, 3);
    set_mtime(&src.join("nested/a/b"), Y2100.0, 0);
    set_mtime(&src.join("read-only dir"), Y1971.0, 42);
    set_mtime(&src.join("empty dir"), NANOS.0, 999_999_999);
    chmod(&src.join("read-only dir"), 0o555);
    chmod(src, 0o750);
    set_mtime(src, Y1971.0, 1);
}

#[test]
fn an_awkward_tree_restores_exactly() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    build_awkward_tree(&src);

    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&snap, "errors"), 0, "{snap}");
    assert!(
        summary(&snap, "data_blobs_new") >= 3,
        "10 MiB spans chunks: {snap}"
    );
    let want = count_tree(&src);
    let ancestors = src.ancestors().count() as u64 - 2;
    let got = Counts {
        files: summary(&snap, "files"),
        dirs: summary(&snap, "dirs"),
        symlinks: summary(&snap, "symlinks"),
        bytes: summary(&snap, "total_bytes"),
    };
    assert_eq!(
        got,
        Counts {
            dirs: want.dirs + ancestors,
            ..want
        },
        "{snap}"
    );

    let target = t.fresh_dir("target");
    let out = t
        .cairn(["--json", "restore", id(&snap), "--target"])
        .arg(&target)
        .assert()
        .success();
    let outcome = parse_json(&out.get_output().stdout);
    assert_eq!(outcome["files"], want.files);
    assert_eq!(outcome["symlinks"], want.symlinks);
    assert_eq!(outcome["dirs"], want.dirs + ancestors);
    assert_eq!(outcome["bytes"], want.bytes);
    assert_eq!(outcome["failed"], serde_json::json!([]));
    assert_trees_equal(&src, &restored(&target, &src));
    let ro = restored(&target, &src).join("read-only dir");
    assert_eq!(
        fs::metadata(ro).unwrap().permissions().mode() & 0o7777,
        0o555
    );
}

#[test]
fn several_sources_restore_at_their_absolute_places() {
    let t = TestEnv::with_store();
    let (one, two) = (t.path("one"), t.path("x/y/two"));
    small_tree(&one, 1);
    small_tree(&two, 2);

    let snap = t.snapshot(&[&two, &one], &[]);
    let paths: Vec<&str> = snap["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(paths, [one.to_str().unwrap(), two.to_str().unwrap()]);

    let target = t.restore(id(&snap));
    assert_trees_equal(&one, &restored(&target, &one));
    assert_trees_equal(&two, &restored(&target, &two));
    assert!(!restored(&target, &t.path("x/y")).join("other").exists());
}

#[test]
fn a_single_file_source_restores_as_that_file() {
    let t = TestEnv::with_store();
    let file = t.path("dir/report.csv");
    write_file(&file, &random_bytes(5, 300_000));
    chmod(&file, 0o640);
    set_mtime(&file, NANOS.0, NANOS.1);
    write_file(&t.path("dir/not-this-one"), b"x");

    let snap = t.snapshot(&[&file], &[]);
    assert_eq!(summary(&snap, "files"), 1);
    let target = t.restore(id(&snap));

    let back = restored(&target, &file);
    assert_eq!(fs::read(&back).unwrap(), fs::read(&file).unwrap());
    let (want, got) = (fs::metadata(&file).unwrap(), fs::metadata(&back).unwrap());
    assert_eq!(got.permissions().mode() & 0o7777, 0o640);
    assert_eq!(got.modified().unwrap(), want.modified().unwrap());
    assert_eq!(names(back.parent().unwrap()), [raw(b"report.csv")]);
}

#[test]
fn standard_input_restores_as_the_named_file() {
    let t = TestEnv::with_store();
    let dump = random_bytes(6, 1_500_000);

    let out = t
        .cairn(["--json", "snapshot", "--stdin", "--stdin-name", "dump.sql"])
        .write_stdin(dump.clone())
        .assert()
        .success();
    let snap = parse_json(&out.get_output().stdout);
    assert_eq!(snap["paths"], serde_json::json!(["/dump.sql"]));
    assert_eq!(summary(&snap, "total_bytes"), dump.len() as u64);

    let target = t.restore(id(&snap));
    assert_eq!(names(&target), [raw(b"dump.sql")]);
    let back = target.join("dump.sql");
    assert_eq!(fs::read(&back).unwrap(), dump);
    assert_eq!(
        fs::metadata(&back).unwrap().permissions().mode() & 0o7777,
        0o600
    );
}

#[test]
fn empty_standard_input_restores_as_an_empty_file() {
    let t = TestEnv::with_store();
    let out = t
        .cairn(["--json", "snapshot", "--stdin", "--allow-empty"])
        .write_stdin("")
        .assert()
        .success();
    let snap = parse_json(&out.get_output().stdout);
    assert_eq!(snap["paths"], serde_json::json!(["/stdin"]));
    let target = t.restore(id(&snap));
    assert_eq!(fs::read(target.join("stdin")).unwrap(), b"");
}

#[test]
fn a_source_that_is_a_symlink_to_a_directory_is_captured_as_the_directory() {
    let t = TestEnv::with_store();
    let real = t.path("real");
    small_tree(&real, 3);
    let link = t.path("link");
    make_symlink(&real, &link);

    let snap = t.snapshot(&[&link], &[]);
    assert_eq!(summary(&snap, "symlinks"), 0);
    let target = t.restore(id(&snap));

    let back = restored(&target, &link);
    assert!(fs::symlink_metadata(&back).unwrap().is_dir());
    assert_trees_equal(&real, &back);
    assert!(!restored(&target, &real).exists());
}

#[test]
fn a_large_file_changed_in_scattered_places_restores_exactly() {
    // 32 MiB edited every 4 MiB: the latest snapshot's chunks alternate
    // between the first snapshot's packs and the second's, so the restore
    // reads many runs and decodes several batches ahead of the writer.
    let t = TestEnv::with_store();
    let file = t.path("data/big.bin");
    write_file(&file, &random_bytes(11, 32 << 20));
    t.snapshot(&[t.path("data")], &[]);
    let mut bytes = fs::read(&file).unwrap();
    for at in (1 << 20..bytes.len()).step_by(4 << 20) {
        bytes[at] ^= 0xff;
    }
    write_file(&file, &bytes);
    let snap = t.snapshot(&[t.path("data")], &[]);
    assert!(summary(&snap, "data_blobs_new") >= 5, "{snap}");
    assert!(summary(&snap, "data_blobs_reused") >= 5, "{snap}");

    let target = t.restore(id(&snap));
    assert!(fs::read(restored(&target, &file)).unwrap() == bytes);
}

#[test]
fn a_database_larger_than_an_early_sync_restores_byte_for_byte() {
    // About 41 MB: the restore syncs it in the background after the first
    // 32 MiB (restore/early_sync.rs) and once more at the end. A closed WAL
    // database is read in place, so its image is the file byte for byte.
    let t = TestEnv::with_store();
    let db = t.path("data/app.db");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE t(x BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 10000)
         INSERT INTO t SELECT randomblob(4000) FROM c;",
    )
    .unwrap();
    drop(conn);
    let original = fs::read(&db).unwrap();
    assert!(original.len() > 32 << 20, "{}", original.len());
    let snap = t.snapshot(&[t.path("data")], &[]);

    let target = t.fresh_dir("restore");
    t.cairn(["restore", id(&snap), "--check", "--target"])
        .arg(&target)
        .assert()
        .success();
    assert!(fs::read(restored(&target, &db)).unwrap() == original);
}

#[test]
fn a_tree_of_many_batches_restores_exactly() {
    // The restore hands files to the writers in batches of 4096 items while
    // it walks on (restore/execute.rs): 9,000 files and 900 symlinks over
    // nested directories span three batches, and every directory's mode and
    // mtime must still be set after everything inside it was written.
    let t = TestEnv::with_store();
    let src = t.path("src");
    let mut rng = Rng::new(17);
    for d in 0..30 {
        let dir = src.join(format!("d{d:02}")).join(format!("sub{}", d % 4));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..300 {
            let mut bytes = vec![0u8; (rng.next_u64() % 3000) as usize];
            rng.fill(&mut bytes);
            write_file(&dir.join(format!("f{f:03}")), &bytes);
            if f % 10 == 0 {
                make_symlink(format!("f{f:03}"), &dir.join(format!("l{f:03}")));
            }
        }
        chmod(&dir, 0o750);
        set_mtime(&dir, 1_600_000_000 + d, 7);
    }
    for d in 0..30 {
        set_mtime(&src.join(format!("d{d:02}")), 1_500_000_000 + d, 9);
    }
    set_mtime(&src, 1_400_000_000, 1);
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&snap, "files"), 9000, "{snap}");

    let target = t.restore(id(&snap));
    assert_trees_equal(&src, &restored(&target, &src));
}
