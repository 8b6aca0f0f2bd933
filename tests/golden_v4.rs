//! The format-4 store in tests/fixtures/v4 (made once by make-v4.sh) must be
//! readable by every future cairn: its trees, which record owner names,
//! xattrs (a `user.` attribute and an ACL), holes and a hard link group,
//! re-encode to the same bytes, and its snapshots restore byte for byte with
//! that metadata (#16).
#![allow(clippy::unwrap_used)]

mod common;

use cairn::backend::Backend;
use cairn::crypt::Vault;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cairn::id::{BlobId, PackId, SnapshotId};
use cairn::pack::format::{self, BlobKind, TRAILER_LEN};
use cairn::pack::{BlobLocation, reader};
use cairn::snapshot;
use cairn::tree::{Content, Entry, Tree};
use common::meta::*;
use common::*;

const FIXTURE: &str = "tests/fixtures/v4";
const SOURCE: &str = "/tmp/cairn-fixture-v4/docs";
const FIRST: &str = "2ba9200089c943e21e39f35ecfcc0950cf65e28e57f1001b8613deb973d2cefe";
const SECOND: &str = "4a378364d948a0119e2cc15cf98438c5b67c22f84dc1cde02ed1f6c314008473";

/// Every tree blob in the fixture's packs, as stored (uncompressed).
fn tree_blobs() -> Vec<(BlobId, Vec<u8>)> {
    let mut trees = Vec::new();
    for path in files_under(&Path::new(FIXTURE).join("packs")) {
        let bytes = fs::read(&path).unwrap();
        let len = bytes.len() as u64;
        let trailer = format::decode_trailer(&bytes, len).unwrap();
        let data_len = len - TRAILER_LEN as u64 - u64::from(trailer.header_len);
        let header = &bytes[data_len as usize..bytes.len() - TRAILER_LEN];
        for e in format::decode_header(header, &trailer, data_len).unwrap() {
            if e.kind != BlobKind::Tree {
                continue;
            }
            let stored = &bytes[e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize];
            let at = BlobLocation::in_pack(PackId::of(&bytes), &e);
            trees.push((
                e.id,
                reader::decode_blob(
                    &Backend::local(Path::new(FIXTURE), 0o644),
                    &e.id,
                    &at,
                    stored.to_vec(),
                )
                .unwrap(),
            ));
        }
    }
    trees
}

/// Every entry of every tree in the fixture, with the tree's bytes.
fn all_entries() -> Vec<Entry> {
    tree_blobs()
        .into_iter()
        .flat_map(|(_, raw)| Tree::decode(&raw).unwrap().entries)
        .collect()
}

#[test]
fn every_v4_tree_re_encodes_byte_for_byte_and_records_every_format_4_field() {
    let trees = tree_blobs();
    assert!(trees.len() >= 6, "{} trees", trees.len());
    for (id, raw) in &trees {
        let tree = Tree::decode(raw).unwrap();
        assert_eq!(&tree.encode_json(), raw, "tree {id} re-encodes");
    }
    let entries = all_entries();
    let named = |n: &str| {
        entries
            .iter()
            .find(|e| e.name.as_bytes() == n.as_bytes())
            .unwrap()
    };
    // One hard link group, the same for its three names.
    let links = ["first", "second", "third"].map(|n| named(n).link());
    assert!(
        links[0].is_some() && links.iter().all(|l| *l == links[0]),
        "{links:?}"
    );
    assert_eq!(named("first").meta.uid, 65534);
    assert!(
        named("first").meta.user.is_some(),
        "an owner name is recorded"
    );
    assert!(named("tagged.txt").meta.user.is_some());
    // Two holes around 4 KiB of data at 4 MiB.
    let img = named("disk.img");
    assert_eq!(img.holes().len(), 2, "{:?}", img.holes());
    assert_eq!((img.holes()[0].offset, img.holes()[0].len), (0, 4 << 20));
    assert_eq!(img.data_size(), 4096);
    let xattr_names = |e: &Entry| -> Vec<Vec<u8>> {
        e.meta
            .xattrs
            .iter()
            .map(|x| x.name.as_bytes().to_vec())
            .collect()
    };
    assert_eq!(
        xattr_names(named("tagged.txt")),
        [&b"system.posix_acl_access"[..], b"user.mime_type"]
    );
    let other = named("other");
    assert!(matches!(other.content, Content::Dir { .. }));
    assert_eq!(other.meta.xattrs[0].value.as_bytes(), b"\x00binary\xff");
}

#[test]
fn every_v4_snapshot_record_and_index_object_re_encodes_to_its_own_bytes() {
    for path in files_under(&Path::new(FIXTURE).join("snapshots")) {
        let bytes = fs::read(&path).unwrap();
        let id: SnapshotId = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let snap = snapshot::decode(&Vault::plain(), &id, &bytes).unwrap();
        assert_eq!(snap.record.format, Some(4), "record {id}");
        assert_eq!(snap.record.encode(), bytes, "record {id}");
    }
    for path in files_under(&Path::new(FIXTURE).join("index")) {
        let bytes = fs::read(&path).unwrap();
        let packs = cairn::index::format::decode(&bytes, 0).unwrap();
        assert_eq!(cairn::index::format::encode(&packs), bytes, "{path:?}");
    }
    let bytes = fs::read(Path::new(FIXTURE).join("config.json")).unwrap();
    let config = cairn::store::Config::decode(&bytes).unwrap();
    assert_eq!(config.version, 4);
    assert_eq!(config.encode(), bytes);
}

/// The fixture's first snapshot restored by the binary, with the source
/// path it restores to.
fn restore_first(t: &TestEnv) -> PathBuf {
    copy_tree(Path::new(FIXTURE), &t.store);
    let list = t.snapshots(&[]);
    let ids: Vec<&str> = list.iter().map(id).collect();
    assert_eq!(ids, [FIRST, SECOND]);
    let target = t.restore(FIRST);
    restored(&target, Path::new(SOURCE))
}

#[test]
fn the_v4_fixture_restores_its_bytes_hard_links_and_holes() {
    let t = TestEnv::new();
    let docs = restore_first(&t);
    let text = b"one file, two names\n";
    for name in ["links/first", "links/second", "other/third"] {
        assert_eq!(fs::read(docs.join(name)).unwrap(), text, "{name}");
    }
    let first = fs::metadata(docs.join("links/first")).unwrap();
    let third = fs::metadata(docs.join("other/third")).unwrap();
    assert_eq!((first.ino(), first.nlink()), (third.ino(), 3));
    let img = docs.join("disk.img");
    let mut want = vec![0u8; 8 << 20];
    let data = b"data in the middle of a sparse file\n".repeat(100);
    want[4 << 20..(4 << 20) + data.len()].copy_from_slice(&data);
    assert!(fs::read(&img).unwrap() == want, "disk.img differs");
    assert_eq!(data_map(&img), [(4 << 20, 4096)]);
    assert!(
        allocated(&img) <= 8192,
        "{} bytes allocated",
        allocated(&img)
    );
    assert_eq!(mtime_of(&img), (1_767_323_045, 123_456_789));
    t.cairn(["verify", "--read-data"]).assert().success();
}

#[test]
fn the_v4_fixture_restores_its_xattrs_acls_and_owners() {
    let t = TestEnv::new();
    fs::create_dir_all(&t.root).unwrap();
    if !supports_xattrs_and_acls(&t.root) {
        return;
    }
    let docs = restore_first(&t);
    let tagged = xattrs(&docs.join("tagged.txt"));
    assert_eq!(tagged[&b"user.mime_type"[..]], b"text/plain");
    let acl = acl(&[
        (1, 6, None),
        (2, 4, Some(65534)),
        (4, 4, None),
        (0x10, 4, None),
        (0x20, 4, None),
    ]);
    assert_eq!(tagged[&b"system.posix_acl_access"[..]], acl);
    assert_eq!(
        xattrs(&docs.join("other"))[&b"user.note"[..]],
        b"\x00binary\xff"
    );
    if is_root() {
        // Recorded by name ("nobody" where the fixture was made): the id
        // that name has here, which is 65534 on every Linux host we know.
        let meta = fs::metadata(docs.join("other/third")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    }
    // The second snapshot changed the file's content, not its xattrs.
    let second = t.restore(SECOND);
    let tagged = restored(&second, Path::new(SOURCE)).join("tagged.txt");
    assert_eq!(fs::read(&tagged).unwrap(), b"tagged again\n");
    assert_eq!(xattrs(&tagged)[&b"user.mime_type"[..]], b"text/plain");
}
