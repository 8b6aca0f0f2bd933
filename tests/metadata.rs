//! Metadata beyond `stat`, through the real binary on real files (#16):
//! hard links, extended attributes and POSIX ACLs, file capabilities,
//! owners (by name, numeric, another user's), restored into a directory
//! and through a tar stream extracted by GNU tar.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{self, Stdio};

use common::meta::*;
use common::*;

/// A tree with hard link groups (within a directory and across two),
/// `user.` xattrs on a file and a directory, an access ACL on a file and a
/// default ACL on a directory, and (as root) files owned by another user,
/// a `trusted.` xattr on a symlink and a file capability.
fn build_tree(src: &Path) {
    write_file(&src.join("a/x"), &random_bytes(1, 300_000));
    fs::hard_link(src.join("a/x"), src.join("a/y")).unwrap();
    fs::create_dir_all(src.join("b")).unwrap();
    fs::hard_link(src.join("a/x"), src.join("b/z")).unwrap();
    write_file(&src.join("b/pair1"), b"a second group");
    fs::hard_link(src.join("b/pair1"), src.join("c/pair2").tap_parent()).unwrap();
    write_file(&src.join("c/solo"), b"one name");
    set_xattr(&src.join("c/solo"), "user.mime_type", b"text/plain");
    set_xattr(&src.join("c/solo"), "user.binary", &[0, 1, 2, 255]);
    set_xattr(&src.join("c"), "user.dir", b"on a directory");
    let access = acl(&[
        (1, 6, None),
        (2, 4, Some(65534)),
        (4, 4, None),
        (0x10, 4, None),
        (0x20, 0, None),
    ]);
    set_xattr(&src.join("c/solo"), "system.posix_acl_access", &access);
    let default = acl(&[
        (1, 7, None),
        (4, 5, None),
        (8, 5, Some(65534)),
        (0x10, 5, None),
        (0x20, 5, None),
    ]);
    set_xattr(&src.join("c"), "system.posix_acl_default", &default);
    symlink("solo", src.join("c/link")).unwrap();
    if is_root() {
        rustix::fs::chown(src.join("b/pair1"), Some(uid(65534)), Some(gid(65534))).unwrap();
        rustix::fs::chown(src.join("c"), Some(uid(65534)), None).unwrap();
        set_xattr(
            &src.join("c/link"),
            "trusted.origin",
            b"kept on the link itself",
        );
        write_file(&src.join("bin/ping"), b"#!/bin/true\n");
        chmod(&src.join("bin/ping"), 0o755);
        set_xattr(
            &src.join("bin/ping"),
            "security.capability",
            &net_raw_capability(),
        );
    }
}

/// `security.capability` granting `cap_net_raw=ep` (VFS_CAP_REVISION_2:
/// magic with the effective bit, then permitted and inheritable words).
fn net_raw_capability() -> Vec<u8> {
    let mut cap = (0x0200_0000u32 | 1).to_le_bytes().to_vec();
    for word in [1u32 << 13, 0, 0, 0] {
        cap.extend_from_slice(&word.to_le_bytes());
    }
    cap
}

fn uid(n: u32) -> rustix::process::Uid {
    rustix::process::Uid::from_raw(n)
}

fn gid(n: u32) -> rustix::process::Gid {
    rustix::process::Gid::from_raw(n)
}

trait TapParent {
    fn tap_parent(self) -> Self;
}

impl TapParent for PathBuf {
    /// The path, after creating its parent directory.
    fn tap_parent(self) -> Self {
        fs::create_dir_all(self.parent().unwrap()).unwrap();
        self
    }
}

/// A source tree built by `build_tree`, in a store, settled so that its
/// files are read once; `None` (with the reason printed) where the file
/// system takes no xattrs or ACLs.
fn captured() -> Option<(TestEnv, PathBuf, serde_json::Value)> {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir_all(&src).unwrap();
    if !supports_xattrs_and_acls(&src) {
        return None;
    }
    build_tree(&src);
    settle();
    let snap = t.snapshot(&[&src], &[]);
    Some((t, src, snap))
}

#[test]
fn a_tree_with_hard_links_xattrs_acls_and_owners_restores_faithfully() {
    let Some((t, src, snap)) = captured() else {
        return;
    };
    // A hard-linked file is read and stored once, whatever its names.
    assert!(summary(&snap, "bytes_read") < 2 * 300_000, "{snap}");
    let target = t.restore(id(&snap));
    assert_faithful_copy(&src, &restored(&target, &src));
    let copy = restored(&target, &src);
    assert_eq!(fs::metadata(copy.join("a/x")).unwrap().nlink(), 3);
    if is_root() {
        assert_eq!(
            xattrs(&copy.join("bin/ping"))[&b"security.capability"[..]],
            net_raw_capability()
        );
        assert_eq!(fs::metadata(copy.join("b/pair1")).unwrap().uid(), 65534);
    }
}

#[test]
fn an_include_subset_links_within_itself_and_starts_an_outside_group_with_a_file() {
    let Some((t, src, snap)) = captured() else {
        return;
    };
    // b/z is the third name of a/x's file: without a/ it is a file.
    let only_b = t.fresh_dir("only-b");
    t.cairn(["restore", id(&snap), "--include"])
        .arg(src.join("b"))
        .arg("--target")
        .arg(&only_b)
        .assert()
        .success();
    let z = restored(&only_b, &src.join("b/z"));
    assert_eq!(fs::read(&z).unwrap(), fs::read(src.join("a/x")).unwrap());
    assert_eq!(fs::metadata(&z).unwrap().nlink(), 1);
    // Across two included directories, the group is whole again.
    let a_and_b = t.fresh_dir("a-and-b");
    t.cairn(["restore", id(&snap), "--include"])
        .arg(src.join("b"))
        .arg("--include")
        .arg(src.join("a"))
        .arg("--target")
        .arg(&a_and_b)
        .assert()
        .success();
    let x = fs::metadata(restored(&a_and_b, &src.join("a/x"))).unwrap();
    let z = fs::metadata(restored(&a_and_b, &src.join("b/z"))).unwrap();
    assert_eq!((x.ino(), x.nlink()), (z.ino(), 3));
}

#[test]
fn a_later_name_is_never_linked_to_an_old_file_where_its_first_name_failed() {
    // With --overwrite, a hard-linked file whose first name could not be
    // restored (its pack lost) left the old file at that name, and the
    // later name was made a link to it: said restored, showing the old
    // file's bytes, its own old content gone.
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("d1/a"), &random_bytes(7, 300_000));
    fs::create_dir_all(src.join("d2")).unwrap();
    fs::hard_link(src.join("d1/a"), src.join("d2/b")).unwrap();
    let snap = t.snapshot(&[&src], &[]);
    let target = t.fresh_dir("back");
    let a = restored(&target, &src.join("d1/a"));
    let b = restored(&target, &src.join("d2/b"));
    write_file(&a, b"old a");
    write_file(&b, b"old b, precious");
    fs::remove_file(packs_by_size(&t.store).pop().unwrap()).unwrap();
    let out = t
        .cairn(["restore", id(&snap), "--overwrite", "--target"])
        .arg(&target)
        .assert()
        .code(4);
    let err = stderr_of(out.get_output());
    assert_eq!(fs::read(&b).unwrap(), b"old b, precious", "{err}");
    assert_eq!(fs::metadata(&b).unwrap().nlink(), 1, "{err}");
    assert!(err.contains(b.to_str().unwrap()), "{err}");
}

#[test]
fn a_tar_stream_of_lost_data_exits_4_and_names_the_file_once() {
    // It exited 1, as for a bad option, and named the path twice.
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("a"), &random_bytes(8, 300_000));
    let snap = t.snapshot(&[&src], &[]);
    fs::remove_file(packs_by_size(&t.store).pop().unwrap()).unwrap();
    let out = t
        .cairn(["restore", id(&snap), "--tar", "-"])
        .assert()
        .code(4);
    let err = stderr_of(out.get_output());
    let a = src.join("a");
    assert_eq!(err.matches(a.to_str().unwrap()).count(), 1, "{err}");
}

/// `tar -x --xattrs --xattrs-include='*' --acls -p` of `stream` into `dir`,
/// as GNU tar does it; `false` (with the reason printed) without GNU tar.
fn gnu_untar(stream: &[u8], dir: &Path) -> bool {
    let gnu = process::Command::new("tar")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU tar"));
    if !gnu {
        eprintln!("skipped: GNU tar is not installed");
        return false;
    }
    fs::create_dir_all(dir).unwrap();
    let mut child = process::Command::new("tar")
        .args([
            "-x",
            "-p",
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "-f",
            "-",
            "-C",
        ])
        .arg(dir)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stream).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "tar -x: {}", stderr_of(&out));
    assert_eq!(stderr_of(&out), "", "GNU tar warned");
    true
}

#[test]
fn gnu_tar_extracts_the_same_tree_from_a_tar_stream() {
    let Some((t, src, snap)) = captured() else {
        return;
    };
    let out = t
        .cairn(["restore", id(&snap), "--tar", "-"])
        .assert()
        .success();
    let extracted = t.fresh_dir("untarred");
    if !gnu_untar(&out.get_output().stdout, &extracted) {
        return;
    }
    assert_faithful_copy(&src, &restored(&extracted, &src));
    // A subset whose first name of a group is outside it starts with a file.
    let out = t
        .cairn(["restore", id(&snap), "--tar", "-", "--include"])
        .arg(src.join("b"))
        .assert()
        .success();
    let subset = t.fresh_dir("untarred-b");
    assert!(gnu_untar(&out.get_output().stdout, &subset));
    let z = restored(&subset, &src.join("b/z"));
    assert_eq!(fs::read(&z).unwrap(), fs::read(src.join("a/x")).unwrap());
}

#[test]
fn unchanged_files_keep_their_xattrs_and_a_changed_xattr_is_seen() {
    let Some((t, src, _)) = captured() else {
        return;
    };
    let again = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&again, "files_changed"), 0, "{again}");
    let target = t.restore(id(&again));
    assert_faithful_copy(&src, &restored(&target, &src));
    // Setting an xattr changes only the ctime: the file is read again.
    set_xattr(&src.join("c/solo"), "user.mime_type", b"text/markdown");
    settle();
    let changed = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&changed, "files_changed"), 1, "{changed}");
    let target = t.restore(id(&changed));
    let solo = restored(&target, &src.join("c/solo"));
    assert_eq!(xattrs(&solo)[&b"user.mime_type"[..]], b"text/markdown");
}

/// The parent snapshot, rewritten as a record from before format 4 (no
/// `format`, under its new id): what an upgraded store's last snapshot is.
fn as_format_3_record(t: &TestEnv, snap: &serde_json::Value) {
    let old = t.store.join("snapshots").join(format!("{}.json", id(snap)));
    let text = fs::read_to_string(&old).unwrap();
    assert!(text.contains("  \"format\": 8,\n"), "{text}");
    let v3 = text.replace("  \"format\": 8,\n", "");
    let new_id = cairn::id::SnapshotId::of(v3.as_bytes()).to_hex();
    fs::write(t.store.join("snapshots").join(format!("{new_id}.json")), v3).unwrap();
    fs::remove_file(old).unwrap();
    for name in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = fs::remove_file(t.store.join(name));
    }
}

#[test]
fn after_a_parent_from_before_format_4_only_files_that_may_hold_xattrs_or_holes_are_read_again() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("plain"), b"no xattrs, no holes");
    write_file(&src.join("tagged"), b"has an xattr");
    let sparse = src.join("sparse");
    fs::File::create(&sparse).unwrap().set_len(4 << 20).unwrap();
    if rustix::fs::setxattr(
        src.join("tagged"),
        "user.tag",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .is_err()
    {
        eprintln!("skipped: no user xattrs here");
        return;
    }
    settle();
    let first = t.snapshot(&[&src], &[]);
    as_format_3_record(&t, &first);
    let next = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&next, "files_unchanged"), 1, "{next}");
    assert_eq!(summary(&next, "files_changed"), 2, "{next}");
    // Once the parent records them, nothing is read again.
    let third = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&third, "files_unchanged"), 3, "{third}");
    assert_eq!(summary(&third, "bytes_read"), 0, "{third}");
}

/// `t`'s cairn with `args`, run in a mount namespace of its own where
/// `/etc/passwd` and `/etc/group` are `passwd` and `group`: another host's
/// accounts. `None` (with the reason printed) where that is not allowed.
fn on_host_with(t: &TestEnv, passwd: &str, group: &str, args: &[&str]) -> Option<process::Output> {
    let dir = t.fresh_dir("accounts");
    fs::create_dir_all(&dir).unwrap();
    let (p, g) = (dir.join("passwd"), dir.join("group"));
    fs::write(&p, passwd).unwrap();
    fs::write(&g, group).unwrap();
    let base = t.command(args);
    let mut cmd = process::Command::new("unshare");
    cmd.current_dir(base.get_current_dir().unwrap());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let script =
        r#"mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@""#;
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(&p)
    .arg(&g)
    .arg(base.get_program())
    .args(base.get_args());
    let out = cmd.output().unwrap();
    if !out.status.success() && stderr_of(&out).contains("mount") {
        eprintln!(
            "skipped: cannot give a command its own /etc/passwd here: {}",
            stderr_of(&out)
        );
        return None;
    }
    Some(out)
}

#[test]
fn owners_restore_by_name_on_a_host_where_the_ids_differ_and_by_id_with_numeric_owner() {
    if !running_as_root("to own files as other users") {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("alices"), b"owned by alice");
    write_file(&src.join("nameless"), b"owned by an id without a name");
    rustix::fs::chown(src.join("alices"), Some(uid(4242)), Some(gid(4300))).unwrap();
    rustix::fs::chown(src.join("nameless"), Some(uid(4999)), Some(gid(4999))).unwrap();
    let here = (
        "root:x:0:0::/root:/bin/sh\nalice:x:4242:4242::/:/bin/sh\n",
        "root:x:0:\nstaff:x:4300:\n",
    );
    let there = (
        "root:x:0:0::/root:/bin/sh\nbob:x:4242:4242::/:/bin/sh\nalice:x:5151:5151::/:/bin/sh\n",
        "root:x:0:\nstaff:x:5300:\n",
    );
    let Some(out) = on_host_with(
        &t,
        here.0,
        here.1,
        &["--json", "snapshot", src.to_str().unwrap()],
    ) else {
        return;
    };
    assert!(out.status.success(), "{}", stderr_of(&out));
    let snap = parse_json(&out.stdout);
    let ls = t
        .cairn(["ls", id(&snap), src.to_str().unwrap(), "--json"])
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&ls.get_output().stdout).contains("\"path\""));
    let by_name = t.fresh_dir("by-name");
    let restore = ["restore", id(&snap), "--target", by_name.to_str().unwrap()];
    let out = on_host_with(&t, there.0, there.1, &restore).unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let owner = |p: &Path| {
        let m = fs::metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(
        owner(&restored(&by_name, &src.join("alices"))),
        (5151, 5300)
    );
    assert_eq!(
        owner(&restored(&by_name, &src.join("nameless"))),
        (4999, 4999)
    );
    let numeric = t.fresh_dir("numeric");
    let restore = [
        "restore",
        id(&snap),
        "--numeric-owner",
        "--target",
        numeric.to_str().unwrap(),
    ];
    let out = on_host_with(&t, there.0, there.1, &restore).unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        owner(&restored(&numeric, &src.join("alices"))),
        (4242, 4300)
    );
}

#[test]
fn restoring_as_another_user_warns_once_per_kind_and_strict_metadata_exits_3() {
    if !running_as_root("to make files of other owners") {
        return;
    }
    let Some((t, _src, snap)) = captured() else {
        return;
    };
    let base = dir_for_nobody(&t);
    let target = base.join("r");
    let out = t
        .cairn_as_nobody(["restore", id(&snap), "--target", target.to_str().unwrap()])
        .assert()
        .success();
    let err = stderr_of(out.get_output());
    let owners: Vec<_> = err
        .lines()
        .filter(|l| l.contains("owners could not be restored"))
        .collect();
    assert_eq!(owners.len(), 1, "{err}");
    assert!(
        err.contains("trusted.* xattrs could not be restored"),
        "{err}"
    );
    assert!(err.contains("security.* xattrs"), "{err}");
    let strict = base.join("strict");
    t.cairn_as_nobody([
        "restore",
        id(&snap),
        "--strict-metadata",
        "--target",
        strict.to_str().unwrap(),
    ])
    .assert()
    .code(3);
}

#[test]
fn restoring_as_another_user_clears_setuid_and_setgid_bits_it_cannot_back_with_the_owner() {
    // The chown of a root-owned setuid file fails for nobody, and the mode
    // was set whole: a setuid-nobody binary (a user's setuid shell
    // restored by another gave that user's rights away).
    if !running_as_root("to make files of other owners") {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    for (name, mode) in [("su", 0o4755), ("sg", 0o2755), ("plain", 0o755)] {
        write_file(&src.join(name), b"#!/bin/sh\n");
        chmod(&src.join(name), mode);
    }
    let snap = t.snapshot(&[&src], &[]);
    let base = dir_for_nobody(&t);
    let target = base.join("r");
    let out = t
        .cairn_as_nobody(["restore", id(&snap), "--target", target.to_str().unwrap()])
        .assert()
        .success();
    let err = stderr_of(out.get_output());
    let mode = |back: &Path, name: &str| {
        let restored = restored(back, &src.join(name));
        fs::metadata(restored).unwrap().mode() & 0o7777
    };
    let modes = ["su", "sg", "plain"].map(|name| mode(&target, name));
    assert_eq!(modes, [0o755; 3], "{err}");
    assert!(err.contains("setuid and setgid bits"), "{err}");
    // As root the owner is given, and the bits with it.
    let as_root = t.restore(id(&snap));
    let modes = ["su", "sg"].map(|name| mode(&as_root, name));
    assert_eq!(modes, [0o4755, 0o2755]);
}

#[test]
fn a_directory_the_target_refuses_fails_alone_and_the_rest_is_restored() {
    // The first directory that could not be made stopped the whole restore
    // (exit 1): the files already queued were never written, and nothing
    // after it was restored.
    if !running_as_root("to make files of other owners") {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("a/first"), b"before");
    write_file(&src.join("ro/newsub/deep/x"), b"below the refused one");
    write_file(&src.join("z/last"), b"after");
    let snap = t.snapshot(&[&src], &[]);
    let target = dir_for_nobody(&t);
    fs::create_dir(target.join("ro")).unwrap();
    rustix::fs::chown(target.join("ro"), Some(uid(65534)), Some(gid(65534))).unwrap();
    chmod(&target.join("ro"), 0o555);
    let out = t
        .cairn_as_nobody(["restore", id(&snap), "--overwrite", "--strip-prefix"])
        .arg(&src)
        .arg("--target")
        .arg(&target)
        .assert()
        .code(3);
    let err = stderr_of(out.get_output());
    assert_eq!(
        fs::read(target.join("a/first")).unwrap(),
        b"before",
        "{err}"
    );
    assert_eq!(fs::read(target.join("z/last")).unwrap(), b"after", "{err}");
    assert!(!target.join("ro/newsub").exists(), "{err}");
    let refused = target.join("ro/newsub");
    assert!(err.contains(refused.to_str().unwrap()), "{err}");
    assert!(err.contains("nothing below it was restored"), "{err}");
}

#[test]
fn restore_delete_in_place_below_a_directory_the_user_may_only_pass_through() {
    // --delete looks at the target's parent to tell whether the target is
    // a mount: opened for reading, a parent of mode 0711 stopped the whole
    // restore of a user who may pass through it ("Permission denied").
    if !running_as_root("to make files of other owners") {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    let target = src.join("p/t");
    write_file(&target.join("file"), b"restored");
    let snap = t.snapshot(&[&src], &[]);
    dir_for_nobody(&t);
    chmod(&src, 0o755);
    chmod(&src.join("p"), 0o711);
    rustix::fs::chown(&target, Some(uid(65534)), Some(gid(65534))).unwrap();
    fs::remove_file(target.join("file")).unwrap();
    write_file(&target.join("stray"), b"removed");
    rustix::fs::chown(target.join("stray"), Some(uid(65534)), Some(gid(65534))).unwrap();
    let t_arg = target.to_str().unwrap();
    let args = [
        "restore",
        id(&snap),
        "--overwrite",
        "--delete",
        "--strip-prefix",
        t_arg,
    ];
    let out = t
        .cairn_as_nobody(args)
        .args(["--target", t_arg])
        .assert()
        .success();
    let err = stderr_of(out.get_output());
    assert_eq!(fs::read(target.join("file")).unwrap(), b"restored", "{err}");
    assert!(!target.join("stray").exists(), "{err}");
}

/// Whether the test runs as root, which it needs `to` do something;
/// says it is skipped if not.
fn running_as_root(to: &str) -> bool {
    let root = is_root();
    if !root {
        eprintln!("skipped: needs root {to}");
    }
    root
}

/// A new directory owned by nobody, with `t`'s store made readable to
/// every user: where a restore as nobody goes.
fn dir_for_nobody(t: &TestEnv) -> PathBuf {
    chmod(&t.root, 0o755);
    copy_tree_readable(&t.store);
    let dir = t.fresh_dir("nobody");
    fs::create_dir_all(&dir).unwrap();
    rustix::fs::chown(&dir, Some(uid(65534)), Some(gid(65534))).unwrap();
    dir
}

/// Makes the store readable by every user (for a restore as nobody).
fn copy_tree_readable(store: &Path) {
    let status = process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(store)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_options_of_a_restore_into_a_directory_are_refused_with_tar() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("f"), b"x");
    let snap = t.snapshot(&[&src], &[]);
    // A tar stream carries ids and names both; its reader chooses
    // (`tar -x --numeric-owner`), as it chooses holes and strictness.
    for option in ["--numeric-owner", "--sparse", "--strict-metadata"] {
        let out = t
            .cairn(["restore", id(&snap), "--tar", "-", option])
            .assert()
            .code(2);
        let err = stderr_of(out.get_output());
        assert!(err.contains(option) && err.contains("--tar"), "{err}");
    }
}
