//! `restore --exclude` beside `--include`, and `restore --overwrite
//! --delete`, which makes the restored directories exactly what the
//! snapshot holds: removing what it does not, only inside the restored
//! paths, never through a symlink (#16). `--dry-run` shows it first.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use common::*;

/// A source tree with logs, a subdirectory and a symlink; snapshotted.
fn source_and_snapshot(t: &TestEnv) -> (PathBuf, Value) {
    let src = t.path("src");
    write_file(&src.join("keep.txt"), b"kept");
    write_file(&src.join("app.log"), b"a log");
    write_file(&src.join("sub/deep.log"), b"a deep log");
    write_file(&src.join("sub/data"), &random_bytes(1, 20_000));
    write_file(&src.join("other/x"), b"x");
    make_symlink("keep.txt", &src.join("link"));
    let snap = t.snapshot(&[&src], &[]);
    (src, snap)
}

fn restore(t: &TestEnv, snap: &Value, target: &Path, extra: &[&str]) -> std::process::Output {
    t.cairn(["restore", id(snap), "--target"])
        .arg(target)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn restore_exclude_leaves_out_matching_names_anywhere_and_whole_paths() {
    let t = TestEnv::with_store();
    let (src, snap) = source_and_snapshot(&t);
    let target = t.fresh_dir("r");
    let sub = format!("{}/other", src.display());
    let out = restore(
        &t,
        &snap,
        &target,
        &["--exclude", "*.log", "--exclude", &sub],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));

    let back = restored(&target, &src);
    assert_eq!(names(&back), [raw(b"keep.txt"), raw(b"link"), raw(b"sub")]);
    assert_eq!(names(&back.join("sub")), [raw(b"data")]);
}

#[test]
fn restore_exclude_applies_to_tar_streams_too() {
    let t = TestEnv::with_store();
    let (_src, snap) = source_and_snapshot(&t);
    let tar = t.path("out.tar");
    t.cairn(["restore", id(&snap), "--exclude", "*.log", "--tar"])
        .arg(&tar)
        .assert()
        .success();
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(listing.contains("keep.txt"), "{listing}");
    assert!(!listing.contains(".log"), "{listing}");
}

/// Fills a restored copy of `src` in `target` with things the snapshot
/// does not hold; returns a directory outside the target that a symlink
/// among them points to.
fn litter(t: &TestEnv, back: &Path) -> PathBuf {
    let outside = t.path("outside");
    write_file(&outside.join("precious"), b"never touched");
    write_file(&back.join("stray.txt"), b"not in the snapshot");
    write_file(&back.join("sub/stray/deeper/file"), b"not in the snapshot");
    fs::create_dir_all(back.join("sub/empty-stray")).unwrap();
    make_symlink(&outside, &back.join("sub/to-outside"));
    outside
}

#[test]
fn restore_delete_makes_the_directory_exactly_what_the_snapshot_holds() {
    let t = TestEnv::with_store();
    let (src, snap) = source_and_snapshot(&t);
    let target = t.restore(id(&snap));
    let back = restored(&target, &src);
    let outside = litter(&t, &back);
    write_file(&back.join("keep.txt"), b"changed since");
    // Beside the restored source, not under it: never removed.
    write_file(&target.join("beside-the-source"), b"left alone");
    write_file(&back.parent().unwrap().join("next-to-src"), b"left alone");

    let out = t
        .cairn([
            "--json",
            "restore",
            id(&snap),
            "--overwrite",
            "--delete",
            "--target",
        ])
        .arg(&target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_trees_equal(&src, &back);
    assert_eq!(
        fs::read(outside.join("precious")).unwrap(),
        b"never touched"
    );
    assert!(target.join("beside-the-source").is_file());
    assert!(back.parent().unwrap().join("next-to-src").is_file());

    let report = parse_json(&out.stdout);
    let mut removed: Vec<String> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    removed.sort();
    let want: Vec<String> = [
        "stray.txt",
        "sub/empty-stray",
        "sub/stray",
        "sub/to-outside",
    ]
    .iter()
    .map(|p| back.join(p).display().to_string())
    .collect();
    assert_eq!(removed, want);
}

#[test]
fn restore_delete_lists_what_it_removed() {
    let t = TestEnv::with_store();
    let (src, snap) = source_and_snapshot(&t);
    let target = t.restore(id(&snap));
    let back = restored(&target, &src);
    write_file(&back.join("stray.txt"), b"not in the snapshot");
    let out = restore(&t, &snap, &target, &["--overwrite", "--delete"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("removed"), "{text}");
    assert!(
        text.contains(&back.join("stray.txt").display().to_string()),
        "{text}"
    );
    assert!(!back.join("stray.txt").exists());
}

#[test]
fn restore_delete_never_removes_outside_the_included_paths() {
    let t = TestEnv::with_store();
    let (src, snap) = source_and_snapshot(&t);
    let target = t.restore(id(&snap));
    let back = restored(&target, &src);
    write_file(&back.join("sub/stray"), b"inside the included path");
    write_file(&back.join("other/stray"), b"outside it");
    write_file(&back.join("stray"), b"above it");

    let include = src.join("sub");
    let out = restore(
        &t,
        &snap,
        &target,
        &[
            "--overwrite",
            "--delete",
            "--include",
            include.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!back.join("sub/stray").exists());
    assert!(back.join("other/stray").is_file());
    assert!(back.join("stray").is_file());
}

#[test]
fn restore_delete_keeps_what_exclude_leaves_out() {
    let t = TestEnv::with_store();
    let (src, snap) = source_and_snapshot(&t);
    let target = t.restore(id(&snap));
    let back = restored(&target, &src);
    write_file(&back.join("local.keep"), b"excluded from the restore");
    write_file(&back.join("stray"), b"removed");
    let out = restore(
        &t,
        &snap,
        &target,
        &["--overwrite", "--delete", "--exclude", "*.keep"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(back.join("local.keep").is_file());
    assert!(!back.join("stray").exists());
}

#[test]
fn restore_delete_with_strip_prefix_cleans_the_target_itself() {
    let t = TestEnv::with_store();
    let (src, snap) = source_and_snapshot(&t);
    let target = t.fresh_dir("stripped");
    write_file(&target.join("stray"), b"removed");
    let prefix = src.to_str().unwrap();
    let out = restore(
        &t,
        &snap,
        &target,
        &["--overwrite", "--delete", "--strip-prefix", prefix],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!target.join("stray").exists());
    // The target stands for the prefix, which a restore does not create:
    // it keeps its own metadata, and holds what the prefix held.
    assert_eq!(names(&target), names(&src));
    assert_trees_equal(&src.join("sub"), &target.join("sub"));
}

#[test]
fn restore_delete_requires_overwrite_and_a_target_directory() {
    let t = TestEnv::with_store();
    let (_src, snap) = source_and_snapshot(&t);
    let target = t.fresh_dir("r");
    let out = restore(&t, &snap, &target, &["--delete"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    t.cairn([
        "restore",
        id(&snap),
        "--overwrite",
        "--delete",
        "--tar",
        "-",
    ])
    .assert()
    .code(2);
    assert!(!target.exists());
}

#[test]
fn restore_dry_run_shows_what_would_be_replaced_and_removed_and_writes_nothing() {
    let t = TestEnv::with_store();
    let (src, snap) = source_and_snapshot(&t);
    let target = t.restore(id(&snap));
    let back = restored(&target, &src);
    write_file(&back.join("keep.txt"), b"changed since");
    write_file(&back.join("stray"), b"would be removed");
    fs::remove_file(back.join("sub/data")).unwrap();
    let before = listing(&target);

    let out = t
        .cairn([
            "--json",
            "restore",
            id(&snap),
            "--overwrite",
            "--delete",
            "--dry-run",
            "--target",
        ])
        .arg(&target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let report = parse_json(&out.stdout);
    assert_eq!(report["dry_run"], json!(true));
    assert_eq!(
        report["remove"],
        json!([back.join("stray").display().to_string()])
    );
    let replace = report["replace"].as_array().unwrap();
    assert!(replace.contains(&json!(back.join("keep.txt").display().to_string())));
    assert_eq!(listing(&target), before);
    assert_eq!(fs::read(back.join("stray")).unwrap(), b"would be removed");

    // Without --overwrite the dry run refuses as the restore would.
    let refused = restore(&t, &snap, &target, &["--dry-run"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr_of(&refused).contains("keep.txt"));
    assert_eq!(listing(&target), before);
}

#[test]
fn restore_dry_run_into_a_new_directory_creates_nothing() {
    let t = TestEnv::with_store();
    let (_src, snap) = source_and_snapshot(&t);
    let target = t.fresh_dir("new");
    let out = restore(&t, &snap, &target, &["--dry-run"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("dry run"), "{text}");
    assert!(text.contains("5 files"), "{text}");
    assert!(!target.exists());
}

#[test]
fn restore_delete_removes_nothing_when_the_restore_refuses() {
    let t = TestEnv::with_store();
    let (src, snap) = source_and_snapshot(&t);
    let target = t.restore(id(&snap));
    let back = restored(&target, &src);
    write_file(&back.join("stray"), b"kept: the restore refuses");
    // A directory where the snapshot has a file is never replaced.
    fs::remove_file(back.join("keep.txt")).unwrap();
    write_file(&back.join("keep.txt/inside"), b"a directory now");

    let out = restore(&t, &snap, &target, &["--overwrite", "--delete"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("keep.txt"));
    assert!(back.join("stray").is_file());
}

#[test]
fn restore_delete_never_empties_a_file_system_mounted_in_the_target() {
    // A `-x` snapshot keeps a mount point as an empty directory; restored
    // over the source with --delete, everything the file system mounted
    // there holds was "not in the snapshot" and was removed (over `/`:
    // `/dev`, `/run`, a separate `/home`). A mount point that appeared
    // since, which --delete would remove whole, is not entered either.
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("keep.txt"), b"kept");
    let Some(_data) = common::mount::Tmpfs::mount(&src.join("data"), "1M") else {
        return;
    };
    write_file(&src.join("data/important"), b"on another file system");
    let snap = t.snapshot(&[&src], &["-x"]);
    let Some(_scratch) = common::mount::Tmpfs::mount(&src.join("scratch"), "1M") else {
        return;
    };
    write_file(&src.join("scratch/notes"), b"mounted after the snapshot");
    write_file(&src.join("stray"), b"removed");
    let prefix = src.to_str().unwrap();
    let delete = ["--overwrite", "--delete", "--strip-prefix", prefix];
    let out = restore(&t, &snap, &src, &delete);
    let err = stderr_of(&out);
    assert!(!src.join("stray").exists(), "{err}");
    let important = fs::read(src.join("data/important")).unwrap();
    assert_eq!(important, b"on another file system");
    let notes = fs::read(src.join("scratch/notes")).unwrap();
    assert_eq!(notes, b"mounted after the snapshot");
    assert!(
        err.contains("scratch") && err.contains("mount point"),
        "{err}"
    );
    assert!(err.contains("does not clean inside it"), "{err}");
    // --json says so too, in a dry run and in a real one.
    for dry in [&["--dry-run"][..], &[][..]] {
        let mut args = vec!["--json", "restore", id(&snap), "--target", prefix];
        args.extend(delete.iter().chain(dry));
        // The real run exits 3: `scratch` is a mount point it cannot remove.
        let out = t.cairn(args).output().unwrap();
        let report = parse_json(&out.stdout);
        let data = src.join("data");
        assert_eq!(
            report["delete_spared"],
            json!([data.to_str().unwrap()]),
            "{report}"
        );
    }

    // Nor inside a mount a snapshot crossed into (it cannot tell that from
    // a disk mounted there since): left, and said.
    let crossed = t.snapshot(&[&src], &[]);
    write_file(&src.join("data/junk"), b"maybe someone's");
    let out = restore(&t, &crossed, &src, &delete);
    assert!(src.join("data/junk").exists(), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("does not clean inside it"));

    // Nor where the target itself is such a mount.
    let data = src.join("data");
    let inside = [
        "--overwrite",
        "--delete",
        "--strip-prefix",
        data.to_str().unwrap(),
    ];
    let out = restore(&t, &crossed, &data, &inside);
    assert!(src.join("data/junk").exists(), "{}", stderr_of(&out));

    // A source below a mount point, restored to where it was: the mount on
    // the way to it is not inside what --delete cleans, which goes on.
    let proj = src.join("data/proj");
    write_file(&proj.join("kept"), b"kept");
    let below = t.snapshot(&[&proj], &[]);
    write_file(&proj.join("junk"), b"not in the snapshot");
    let out = restore(&t, &below, Path::new("/"), &["--overwrite", "--delete"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!proj.join("junk").exists(), "{}", stderr_of(&out));
    assert!(proj.join("kept").exists());
}

#[test]
fn restore_delete_cleans_a_disk_mounted_as_the_target_of_a_restore_elsewhere() {
    // Restored onto a mounted disk (not in place), the target's own mount
    // says nothing of the snapshot: it was spared, stale files kept.
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("docs/a"), b"kept");
    let snap = t.snapshot(&[&src], &[]);
    let usb = t.path("usb");
    let Some(_usb) = common::mount::Tmpfs::mount(&usb, "1M") else {
        return;
    };
    write_file(&usb.join("stale"), b"removed");
    let docs = src.join("docs");
    let args = [
        "--overwrite",
        "--delete",
        "--strip-prefix",
        docs.to_str().unwrap(),
    ];
    let out = restore(&t, &snap, &usb, &args);
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(!usb.join("stale").exists(), "{err}");
    assert_eq!(fs::read(usb.join("a")).unwrap(), b"kept");
    assert!(!err.contains("does not clean"), "{err}");
}

#[test]
fn restore_delete_says_it_spares_a_mount_whose_mount_point_is_only_partly_selected() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("keep"), b"kept");
    let Some(_m) = common::mount::Tmpfs::mount(&src.join("m"), "1M") else {
        return;
    };
    let Some(_n) = common::mount::Tmpfs::mount(&src.join("m/n"), "1M") else {
        return;
    };
    write_file(&src.join("m/n/data"), b"kept");
    let snap = t.snapshot(&[&src], &[]);
    write_file(&src.join("m/n/junk"), b"maybe someone's");
    let n = src.join("m/n");
    let args = ["--overwrite", "--delete", "--include", n.to_str().unwrap()];
    let out = restore(&t, &snap, Path::new("/"), &args);
    let err = stderr_of(&out);
    assert!(src.join("m/n/junk").exists(), "{err}");
    assert!(err.contains("does not clean inside it"), "{err}");
}

#[test]
fn restore_delete_never_empties_a_bind_mount_in_what_it_removes() {
    // A bind mount of the same device is told by its mount id: by device
    // alone, --delete removed all in it before its rmdir failed.
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("keep.txt"), b"kept");
    let snap = t.snapshot(&[&src], &[]);
    let precious = t.path("precious");
    write_file(&precious.join("data"), b"bound elsewhere");
    let bound = src.join("extra/bp");
    fs::create_dir_all(&bound).unwrap();
    let Some(_bind) = common::mount::BindMount::mount(&precious, &bound) else {
        return;
    };
    let prefix = src.to_str().unwrap();
    let out = restore(
        &t,
        &snap,
        &src,
        &["--overwrite", "--delete", "--strip-prefix", prefix],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert_eq!(fs::read(precious.join("data")).unwrap(), b"bound elsewhere");
}

#[test]
fn a_target_swapped_for_a_symlink_during_a_restore_is_not_followed() {
    // Each step opened the target's path again: a directory swapped for a
    // symlink after the survey (by whoever may write its parent, restored
    // into by root) had --delete remove and the restore write where the
    // link pointed, "removed .../project/precious".
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("main.c"), b"int main;");
    let snap = t.snapshot(&[&src], &[]);
    let project = t.path("home/project");
    write_file(&project.join("scratch"), b"not in the snapshot");
    let outside = t.path("outside");
    write_file(&outside.join("precious"), b"keep me");
    let mut cmd = t.command([
        "restore",
        id(&snap),
        "--overwrite",
        "--delete",
        "--strip-prefix",
    ]);
    cmd.arg(&src).arg("--target").arg(&project);
    let running = common::stall::spawn_stalled(cmd, "restore-surveyed", 3);
    let moved = t.path("home/project.moved");
    fs::rename(&project, &moved).unwrap();
    make_symlink(&outside, &project);
    let out = running.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(fs::read(outside.join("precious")).unwrap(), b"keep me");
    assert!(!outside.join("main.c").exists());
    assert_eq!(fs::read(moved.join("main.c")).unwrap(), b"int main;");
    assert!(!moved.join("scratch").exists());
}
