//! The format-3 store in tests/fixtures/v3 (made once by make-v3.sh) must be
//! readable by every future cairn: its catalog is built from its index
//! objects alone, every snapshot restores, and its index objects re-encode
//! to the same bytes.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use cairn::id::IndexId;
use cairn::index::format;
use common::*;

const FIXTURE: &str = "tests/fixtures/v3";

fn index_objects() -> Vec<(IndexId, Vec<u8>)> {
    let mut out: Vec<(IndexId, Vec<u8>)> = fs::read_dir(Path::new(FIXTURE).join("index"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let id = path.file_name().unwrap().to_str().unwrap().parse().unwrap();
            (id, fs::read(path).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_index_object_is_named_by_its_hash_and_reencodes_byte_for_byte() {
    let objects = index_objects();
    assert_eq!(objects.len(), 3);
    for (id, bytes) in objects {
        assert_eq!(IndexId::of(&bytes), id);
        assert_eq!(&bytes[..12], b"CAIRNIDX\x01\x00\x00\x00", "head of {id}");
        let packs = format::decode(&bytes, 0).unwrap();
        assert!(!packs.is_empty());
        assert_eq!(format::encode(&packs), bytes, "records of {id}");
    }
}

#[test]
fn the_v3_fixture_builds_its_catalog_from_index_objects_and_restores() {
    let t = TestEnv::new();
    copy_tree(Path::new(FIXTURE), &t.store);
    let out = t.cairn(["snapshots"]).assert().success();
    let err = stderr_of(out.get_output());
    assert!(err.contains("from 3 index objects"), "{err}");
    let list = t.snapshots(&[]);
    assert_eq!(list.len(), 3);
    t.cairn(["verify", "--read-data"]).assert().success();
    for snap in &list {
        let target = t.restore(id(snap));
        assert!(fs::read_dir(&target).unwrap().count() > 0);
    }
    let config = parse_json(&fs::read(t.store.join("config.json")).unwrap());
    assert_eq!(config["version"], 3);
}
