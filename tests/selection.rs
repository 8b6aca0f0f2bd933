//! What `snapshot` leaves out and takes in, as restic, borg and tar users
//! expect (#16): `--exclude-file`, `--exclude-caches`,
//! `--exclude-if-present`, `--one-file-system`, `--exclude-larger-than`,
//! `--files-from` and `--files-from-raw`, each with a case it includes and
//! one it excludes, checked on what a restore gives back; and `--dry-run`,
//! which reads no file content and writes nothing to the store.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use common::mount::Tmpfs;
use common::*;

/// The signature a valid `CACHEDIR.TAG` starts with (bford.info/cachedir).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Restores `snapshot` and returns where `src` landed.
fn restore_of(t: &TestEnv, snapshot: &Value, src: &Path) -> PathBuf {
    restored(&t.restore(id(snapshot)), src)
}

/// Every path below `dir`, relative to it, sorted (directories too).
fn all_paths(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for name in names(&d) {
            let path = d.join(&name);
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn exclude_file_patterns_leave_out_matches_and_skip_comments_and_blank_lines() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("keep.txt"), b"kept");
    write_file(&src.join("noise.log"), b"dropped by name");
    write_file(&src.join("sub/deep.log"), b"dropped by name, anywhere");
    write_file(&src.join("cache/x"), b"dropped by whole path");
    write_file(
        &src.join("other/cache/y"),
        b"kept: the path pattern is anchored",
    );
    let list = t.path("excludes.txt");
    let content = format!(
        "# comment lines are not patterns: keep.txt\n\n   \n*.log\n{}/cache\n",
        src.display()
    );
    write_file(&list, content.as_bytes());

    let snap = t.snapshot(&[&src], &["--exclude-file", list.to_str().unwrap()]);

    assert_eq!(
        all_paths(&restore_of(&t, &snap, &src)),
        ["keep.txt", "other", "other/cache", "other/cache/y", "sub"]
    );
}

#[test]
fn a_missing_exclude_file_is_a_usage_error_naming_it() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("a"), b"a");
    let missing = t.path("no-such-excludes.txt");
    let out = t
        .cairn(["snapshot", "--exclude-file"])
        .arg(&missing)
        .arg(&src)
        .assert()
        .code(2);
    let err = stderr_of(out.get_output());
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    assert!(t.snapshots(&[]).is_empty());
}

#[test]
fn exclude_caches_keeps_only_the_tag_of_a_directory_with_a_valid_cachedir_tag() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let mut tag = CACHEDIR_SIGNATURE.to_vec();
    tag.extend_from_slice(b"\n# This file is a cache directory tag.\n");
    write_file(&src.join("cache/CACHEDIR.TAG"), &tag);
    write_file(&src.join("cache/blob"), &random_bytes(1, 10_000));
    write_file(&src.join("cache/sub/more"), b"more cache");
    // Not a valid tag: the signature must start the file, exactly.
    write_file(
        &src.join("fake/CACHEDIR.TAG"),
        b"Signature: 0000 not the one\n",
    );
    write_file(&src.join("fake/data"), b"kept");
    write_file(&src.join("plain"), b"kept");

    let snap = t.snapshot(&[&src], &["--exclude-caches"]);
    let back = restore_of(&t, &snap, &src);
    assert_eq!(
        all_paths(&back),
        [
            "cache",
            "cache/CACHEDIR.TAG",
            "fake",
            "fake/CACHEDIR.TAG",
            "fake/data",
            "plain"
        ]
    );
    assert_eq!(fs::read(back.join("cache/CACHEDIR.TAG")).unwrap(), tag);

    let without = t.snapshot(&[&src], &[]);
    assert!(
        restore_of(&t, &without, &src)
            .join("cache/sub/more")
            .is_file()
    );
}

#[test]
fn exclude_if_present_keeps_only_the_marker_of_each_marked_directory() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("a/.nobackup"), b"");
    write_file(&src.join("a/secret"), b"dropped");
    write_file(&src.join("b/.skip-me"), b"");
    write_file(&src.join("b/sub/x"), b"dropped");
    write_file(&src.join("c/data"), b"kept");
    // A marker name deeper down marks only its own directory.
    write_file(&src.join("c/inner/.nobackup"), b"");
    write_file(&src.join("c/inner/y"), b"dropped");

    let snap = t.snapshot(
        &[&src],
        &[
            "--exclude-if-present",
            ".nobackup",
            "--exclude-if-present",
            ".skip-me",
        ],
    );
    assert_eq!(
        all_paths(&restore_of(&t, &snap, &src)),
        [
            "a",
            "a/.nobackup",
            "b",
            "b/.skip-me",
            "c",
            "c/data",
            "c/inner",
            "c/inner/.nobackup"
        ]
    );
}

#[test]
fn one_file_system_keeps_a_mount_point_empty_and_does_not_cross_it() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("here"), b"same file system");
    let Some(_mount) = Tmpfs::mount(&src.join("mnt"), "4M") else {
        return;
    };
    write_file(&src.join("mnt/there"), b"another file system");
    write_file(&src.join("mnt/deep/er"), b"another file system");

    for flag in ["--one-file-system", "-x"] {
        let snap = t.snapshot(&[&src], &[flag]);
        let back = restore_of(&t, &snap, &src);
        assert_eq!(all_paths(&back), ["here", "mnt"], "{flag}");
    }
    let crossing = t.snapshot(&[&src], &[]);
    assert_eq!(
        all_paths(&restore_of(&t, &crossing, &src)),
        ["here", "mnt", "mnt/deep", "mnt/deep/er", "mnt/there"]
    );
    // The mount point keeps the xattrs of what is mounted there, as every
    // directory does (it was recorded without them).
    common::meta::set_xattr(&src.join("mnt"), "trusted.mount", b"point");
    let snap = t.snapshot(&[&src], &["-x"]);
    let back = restore_of(&t, &snap, &src);
    let kept = common::meta::xattrs(&back.join("mnt"));
    assert_eq!(
        kept.get(&b"trusted.mount"[..]).map(Vec::as_slice),
        Some(&b"point"[..])
    );
}

#[test]
fn exclude_larger_than_leaves_out_only_files_above_the_size() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("small"), &random_bytes(2, 1000));
    write_file(&src.join("exactly"), &random_bytes(3, 1024));
    write_file(&src.join("dir/big"), &random_bytes(4, 1025));
    write_file(&src.join("dir/huge"), &random_bytes(5, 3 << 20));

    let snap = t.snapshot(&[&src], &["--exclude-larger-than", "1K"]);
    assert_eq!(
        all_paths(&restore_of(&t, &snap, &src)),
        ["dir", "exactly", "small"]
    );
    let out = t
        .cairn(["snapshot", "--exclude-larger-than", "lots"])
        .arg(&src)
        .assert()
        .code(2);
    assert!(stderr_of(out.get_output()).contains("lots"));
}

#[test]
fn files_from_makes_each_listed_path_a_source() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("one/a"), b"listed directory");
    write_file(&src.join("two.txt"), b"listed file");
    write_file(&src.join("three/b"), b"not listed");
    let list = t.path("list.txt");
    // Relative paths are taken from the current directory (the test root).
    write_file(&list, b"# the nightly list\nsrc/one\n\nsrc/two.txt\n");

    let snap = t.snapshot::<&str>(&[], &["--files-from", list.to_str().unwrap()]);
    let recorded: Vec<String> = [src.join("one"), src.join("two.txt")]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(snap["paths"], json!(recorded));
    assert_eq!(
        all_paths(&restore_of(&t, &snap, &src)),
        ["one", "one/a", "two.txt"]
    );
}

#[test]
fn files_from_raw_takes_nul_separated_paths_even_with_newlines_in_them() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let odd = src.join(raw(b"line\nbreak \xff"));
    write_file(&odd, b"an odd name");
    write_file(&src.join("plain"), b"listed");
    write_file(&src.join("unlisted"), b"not listed");
    let mut list = odd.as_os_str().as_bytes().to_vec();
    list.push(0);
    list.extend_from_slice(src.join("plain").as_os_str().as_bytes());
    list.push(0);
    let list_path = t.path("list.bin");
    write_file(&list_path, &list);

    let snap = t.snapshot::<&str>(&[], &["--files-from-raw", list_path.to_str().unwrap()]);
    let back = restore_of(&t, &snap, &src);
    assert_eq!(
        fs::read(back.join(raw(b"line\nbreak \xff"))).unwrap(),
        b"an odd name"
    );
    assert!(back.join("plain").is_file());
    assert!(!back.join("unlisted").exists());
}

#[test]
fn files_from_dash_reads_the_list_from_standard_input() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("listed"), b"in");
    write_file(&src.join("other"), b"out");
    let out = t
        .cairn(["--json", "snapshot", "--files-from", "-"])
        .write_stdin(format!("{}\n", src.join("listed").display()))
        .assert()
        .success();
    let snap = parse_json(&out.get_output().stdout);
    assert_eq!(all_paths(&restore_of(&t, &snap, &src)), ["listed"]);
}

#[test]
fn a_files_from_list_without_paths_is_a_usage_error_naming_it() {
    let t = TestEnv::with_store();
    let list = t.path("empty-list.txt");
    write_file(&list, b"# nothing tonight\n\n");
    let out = t
        .cairn(["snapshot", "--files-from"])
        .arg(&list)
        .assert()
        .code(2);
    assert!(stderr_of(out.get_output()).contains(list.to_str().unwrap()));
    assert!(t.snapshots(&[]).is_empty());
}

/// Every file under `dir` with its size and modification time: what a
/// write to the store would change. SQLite's own `-shm` and `-wal` files,
/// which a read-only reader of the catalog may create (empty) so that it
/// can read safely while a snapshot writes, are not the store's content.
fn fingerprint(dir: &Path) -> Vec<(String, u64, i64, i64)> {
    all_paths(dir)
        .into_iter()
        .filter(|p| !p.ends_with("catalog.db-shm") && !p.ends_with("catalog.db-wal"))
        .map(|p| {
            let meta = fs::symlink_metadata(dir.join(&p)).unwrap();
            use std::os::unix::fs::MetadataExt;
            (p, meta.len(), meta.mtime(), meta.mtime_nsec())
        })
        .collect()
}

#[test]
fn dry_run_counts_new_and_changed_files_and_writes_nothing_to_the_store() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("same"), &random_bytes(6, 5000));
    write_file(&src.join("changes"), b"before");
    write_file(&src.join("skip.tmp"), &random_bytes(7, 9999));
    settle();
    t.snapshot(&[&src], &["--exclude", "*.tmp"]);
    write_file(&src.join("changes"), b"after, and longer");
    write_file(&src.join("new/file"), &random_bytes(8, 3000));
    write_file(&src.join("new/also.tmp"), &random_bytes(9, 7777));
    let before = fingerprint(&t.store);

    let out = t
        .cairn(["--json", "snapshot", "--dry-run", "--exclude", "*.tmp"])
        .arg(&src)
        .assert()
        .success();
    let report = parse_json(&out.get_output().stdout);
    assert_eq!(report["dry_run"], json!(true));
    assert_eq!(report["files_new"], json!(1));
    assert_eq!(report["files_changed"], json!(1));
    assert_eq!(report["files_unchanged"], json!(1));
    assert_eq!(report["bytes_to_read"], json!(3000 + 17));
    assert_eq!(fingerprint(&t.store), before);

    let text = t
        .cairn(["snapshot", "--dry-run"])
        .arg(&src)
        .assert()
        .success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(text.contains("dry run"), "{text}");
    assert!(text.contains("3 new"), "{text}");
    assert_eq!(fingerprint(&t.store), before);
    assert_eq!(t.snapshots(&[]).len(), 1);
}

#[test]
fn dry_run_works_on_a_store_mounted_read_only_and_needs_no_lock() {
    let t = TestEnv::new();
    let Some(mount) = Tmpfs::mount(&t.store, "32M") else {
        return;
    };
    t.cairn(["init"]).assert().success();
    let src = t.path("src");
    small_tree(&src, 10);
    settle();
    t.snapshot(&[&src], &[]);
    write_file(&src.join("added"), b"12345");
    mount.make_read_only();

    let out = t
        .cairn(["--json", "snapshot", "--dry-run"])
        .arg(&src)
        .assert()
        .success();
    let report = parse_json(&out.get_output().stdout);
    assert_eq!(report["files_new"], json!(1));
    assert_eq!(report["bytes_to_read"], json!(5));
}

#[test]
fn dry_run_does_not_create_the_default_store() {
    let t = TestEnv::new();
    let src = t.path("src");
    small_tree(&src, 11);
    let out = t
        .cairn_without_store(["--json", "snapshot", "--dry-run"])
        .arg(&src)
        .assert()
        .success();
    let report = parse_json(&out.get_output().stdout);
    assert_eq!(report["files_new"], json!(3));
    assert!(!t.home.join(".local/share/cairn").exists());
}

#[test]
fn dry_run_applies_the_same_selection_as_a_snapshot() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("small"), b"12");
    write_file(&src.join("big"), &random_bytes(12, 5000));
    write_file(&src.join("c/.nobackup"), b"");
    write_file(&src.join("c/inside"), &random_bytes(13, 4000));
    let out = t
        .cairn([
            "--json",
            "snapshot",
            "--dry-run",
            "--exclude-larger-than",
            "1K",
            "--exclude-if-present",
            ".nobackup",
        ])
        .arg(&src)
        .assert()
        .success();
    let report = parse_json(&out.get_output().stdout);
    assert_eq!(report["files_new"], json!(2));
    assert_eq!(report["bytes_to_read"], json!(2));
}
