//! The format-1 store in tests/fixtures/v1 (made once by make-v1.sh) must be
//! readable by every future cairn, and re-encoding what it holds must give
//! back the same bytes, section by section.
#![allow(clippy::unwrap_used)]

use cairn::backend::Backend;
use cairn::crypt::Vault;
use predicates::prelude::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use cairn::id::{BlobId, PackId, SnapshotId};
use cairn::pack::format::{self, BlobKind, TRAILER_LEN};
use cairn::pack::{BlobLocation, reader};
use cairn::snapshot;
use cairn::tree::Tree;

const FIXTURE: &str = "tests/fixtures/v1";
const SOURCE: &str = "tmp/cairn-fixture-v1/docs";

/// A private copy of the fixture: opening a store creates its catalog.
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    copy_dir(Path::new(FIXTURE), &store);
    (dir, store)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn cairn(store: &Path) -> Command {
    let mut cmd = Command::cargo_bin("cairn").unwrap();
    cmd.arg("--store").arg(store).env("TZ", "UTC");
    cmd
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn big_txt() -> Vec<u8> {
    (1..=40000)
        .map(|i| format!("line {i:08} of a file long enough to span several chunks\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn the_v1_fixture_lists_its_three_snapshots_with_their_fields() {
    let (_dir, store) = fixture_copy();
    let out = cairn(&store)
        .args(["snapshots", "--json"])
        .assert()
        .success();
    let list: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let list = list.as_array().unwrap();
    let ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "812a85dbd6546621c5674307c1e76b69abe139452932eb465db894dd320eaeeb",
            "477911ab17719fdc6fe9163847f23104b8c9f1f5d83cef9994ba40204e4b79b5",
            "ca02307b93589a062daf9260e20708ff707232acac7bd4ac2f9b1b3a1517be65",
        ]
    );
    assert_eq!(list[0]["time"], "2026-01-02T04:00:00+00:00");
    assert_eq!(list[1]["time"], "2026-01-03T04:00:00+01:00");
    assert_eq!(list[0]["tags"], serde_json::json!(["golden"]));
    assert_eq!(list[0]["host"], "fixture");
    assert_eq!(
        list[0]["paths"],
        serde_json::json!(["/tmp/cairn-fixture-v1/docs"])
    );
    assert_eq!(list[1]["parent"], ids[0]);
    assert_eq!(list[2]["paths"], serde_json::json!(["/dump.sql"]));
}

#[test]
fn the_v1_fixture_restores_every_file_with_its_metadata() {
    let (dir, store) = fixture_copy();
    let target = dir.path().join("first");
    cairn(&store)
        .args(["restore", "812a85db", "--target"])
        .arg(&target)
        .assert()
        .success()
        .stderr(predicates::str::contains("rebuilt it from 6 packs"));
    let docs = target.join(SOURCE);
    assert_eq!(fs::read(docs.join("hello.txt")).unwrap(), b"hello, cairn\n");
    assert_eq!(fs::read(docs.join("empty.txt")).unwrap(), b"");
    assert_eq!(
        fs::read(docs.join("nested/deeper/big.txt")).unwrap(),
        big_txt()
    );
    let odd_name = std::ffi::OsStr::new(non_utf8_name());
    assert_eq!(fs::read(docs.join(odd_name)).unwrap(), b"not utf-8 name\n");
    assert_eq!(
        fs::read_link(docs.join("link")).unwrap(),
        Path::new("hello.txt")
    );
    assert!(docs.join("empty-dir").is_dir());
    let mode = |p: &str| fs::metadata(docs.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("hello.txt"), 0o600);
    assert_eq!(mode("nested"), 0o751);
    let meta = fs::metadata(docs.join("hello.txt")).unwrap();
    assert_eq!(
        (meta.mtime(), meta.mtime_nsec()),
        (1_767_323_045, 123_456_789)
    );

    let second = dir.path().join("second");
    cairn(&store)
        .args(["restore", "4779", "--target"])
        .arg(&second)
        .assert()
        .success();
    assert_eq!(
        fs::read(second.join(SOURCE).join("hello.txt")).unwrap(),
        b"hello again\n"
    );
    let third = dir.path().join("third");
    cairn(&store)
        .args(["restore", "latest", "--target"])
        .arg(&third)
        .assert()
        .success();
    assert_eq!(fs::read(third.join("dump.sql")).unwrap(), b"dump bytes\n");
}

/// `caf\xe9` as an OsStr, built from bytes.
fn non_utf8_name() -> &'static std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b"caf\xe9")
}

#[test]
fn every_v1_pack_re_encodes_to_its_own_header_and_trailer_bytes() {
    for path in files_under(&Path::new(FIXTURE).join("packs")) {
        let bytes = fs::read(&path).unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(PackId::of(&bytes).to_hex(), name, "pack id of {name}");
        let len = bytes.len() as u64;
        let trailer = format::decode_trailer(&bytes, len).unwrap();
        let data_len = len - TRAILER_LEN as u64 - u64::from(trailer.header_len);
        let header = &bytes[data_len as usize..bytes.len() - TRAILER_LEN];
        let entries = format::decode_header(header, &trailer, data_len).unwrap();
        let tail = format::encode_tail(&entries);
        let split = tail.len() - TRAILER_LEN;
        assert_eq!(
            tail[..split],
            bytes[data_len as usize..bytes.len() - TRAILER_LEN],
            "header of {name}"
        );
        assert_eq!(
            tail[split..],
            bytes[bytes.len() - TRAILER_LEN..],
            "trailer of {name}"
        );
        for e in &entries {
            let stored = &bytes[e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize];
            let at = BlobLocation::in_pack(PackId::of(&bytes), e);
            let raw = reader::decode_blob(
                &Backend::local(Path::new(FIXTURE), 0o644),
                &e.id,
                &at,
                stored.to_vec(),
            )
            .unwrap();
            assert_eq!(BlobId::of(&raw), e.id);
            if e.kind == BlobKind::Tree {
                let tree = Tree::decode(&raw).unwrap();
                assert_eq!(tree.encode_json(), raw, "tree {} re-encodes", e.id);
            }
        }
    }
}

#[test]
fn every_v1_snapshot_record_re_encodes_to_its_own_bytes() {
    for path in files_under(&Path::new(FIXTURE).join("snapshots")) {
        let bytes = fs::read(&path).unwrap();
        let id: SnapshotId = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let snap = snapshot::decode(&Vault::plain(), &id, &bytes).unwrap();
        assert_eq!(snap.record.encode(), bytes, "record {id}");
    }
}

#[test]
fn the_v1_config_is_read_and_kept_byte_for_byte() {
    let bytes = fs::read(Path::new(FIXTURE).join("config.json")).unwrap();
    let config = cairn::store::Config::decode(&bytes).unwrap();
    assert_eq!(config.version, 1);
    assert_eq!(config.pack.target_size, 1 << 20);
    assert_eq!(config.encode(), bytes);
}

#[test]
fn a_snapshot_into_a_v1_store_upgrades_it_to_the_current_version_and_the_old_snapshots_still_restore()
 {
    let (dir, store) = fixture_copy();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("new.txt"), b"written by a newer cairn").unwrap();
    cairn(&store)
        .arg("snapshot")
        .arg(&src)
        .assert()
        .success()
        .stderr(predicates::str::contains("from format version 1 to 8"));
    let config =
        cairn::store::Config::decode(&fs::read(store.join("config.json")).unwrap()).unwrap();
    assert_eq!(config.version, cairn::store::config::FORMAT_VERSION);
    assert_eq!(config.sqlite(), cairn::store::SqliteConfig::default());
    let target = dir.path().join("old");
    cairn(&store)
        .args(["restore", "812a85db", "--target"])
        .arg(&target)
        .assert()
        .success();
    assert_eq!(
        fs::read(target.join(SOURCE).join("hello.txt")).unwrap(),
        b"hello, cairn\n"
    );
    // A second write finds it current and says nothing about formats.
    cairn(&store)
        .arg("snapshot")
        .arg(&src)
        .assert()
        .success()
        .stderr(predicates::str::contains("format version").not());
}
