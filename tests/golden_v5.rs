//! The encrypted format-5 store in tests/fixtures/v5 (made once by
//! make-v5.sh, passphrase in tests/fixtures/v5-password) must be readable
//! by every future cairn (#18). One test reads it with an independent
//! decryptor written from store-format/encryption.md alone (argon2id,
//! XChaCha20-Poly1305, BLAKE3 and zstd used directly, nothing of cairn's
//! own code), so the specification is proven complete; the others restore
//! and verify it with the binary.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use common::*;
use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/v5";
const PASSWORD: &str = "tests/fixtures/v5-password";
const SOURCE: &str = "/tmp/cairn-fixture-v5/docs";
const FIRST: &str = "b8523fad838535e6cb989ac8f1b6c794d4824ec14657916b148f83da658a395d";
const SECOND: &str = "ec3c0fda4b3c0315ad8e6621afde6decf7f7802861c3b0147001f84f1e8d93a7";

/// The sub-keys of encryption.md, "Keys", for the fixture's master key.
struct Keys {
    id: [u8; 32],
    enc: XChaCha20Poly1305,
}

/// Opens an envelope (encryption.md, "Envelope").
fn open(key: &XChaCha20Poly1305, ad: &[u8], sealed: &[u8]) -> Vec<u8> {
    assert_eq!(sealed[0], 1, "scheme");
    let nonce = XNonce::from_slice(&sealed[1..25]);
    key.decrypt(
        nonce,
        Payload {
            msg: &sealed[25..],
            aad: ad,
        },
    )
    .unwrap()
}

/// encryption.md, "Key files" and "Key check".
fn unlock(config: &Value) -> Keys {
    let phrase = fs::read_to_string(PASSWORD).unwrap();
    let phrase = phrase.trim_end_matches('\n');
    let key_path = files_under(&Path::new(FIXTURE).join("keys")).remove(0);
    let file: Value = serde_json::from_slice(&fs::read(key_path).unwrap()).unwrap();
    let kdf = &file["kdf"];
    assert_eq!(kdf["algorithm"], "argon2id");
    let params = Params::new(
        kdf["memory_kib"].as_u64().unwrap() as u32,
        kdf["iterations"].as_u64().unwrap() as u32,
        kdf["parallelism"].as_u64().unwrap() as u32,
        Some(32),
    )
    .unwrap();
    let salt = hex::decode(kdf["salt"].as_str().unwrap()).unwrap();
    let mut kek = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(phrase.as_bytes(), &salt, &mut kek)
        .unwrap();
    let wrapped = hex::decode(file["wrapped"].as_str().unwrap()).unwrap();
    let master: [u8; 32] = open(
        &XChaCha20Poly1305::new(&kek.into()),
        b"cairn key\0full",
        &wrapped,
    )
    .try_into()
    .unwrap();
    let check = blake3::keyed_hash(
        &blake3::derive_key("cairn 2026-12-06 key check", &master),
        config["id"].as_str().unwrap().as_bytes(),
    );
    assert_eq!(config["encryption"]["key_check"], check.to_hex().as_str());
    Keys {
        id: blake3::derive_key("cairn 2026-12-06 id key", &master),
        enc: XChaCha20Poly1305::new(
            &blake3::derive_key("cairn 2026-12-06 encryption key", &master).into(),
        ),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Every blob of every pack, opened, decoded and checked against its
/// keyed id (encryption.md, "Packs (version 2)").
fn blobs(keys: &Keys) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    for path in files_under(&Path::new(FIXTURE).join("packs")) {
        let file = fs::read(&path).unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(blake3::hash(&file).to_hex().as_str(), name, "pack id");
        let trailer = &file[file.len() - 48..];
        assert_eq!(&trailer[40..], b"CAIRNPAK");
        assert_eq!(u32_at(trailer, 4), 2, "pack version");
        let header_len = u32_at(trailer, 0) as usize;
        let start = file.len() - 48 - header_len;
        let sealed = &file[start..file.len() - 48];
        assert_eq!(blake3::hash(sealed).as_bytes(), &trailer[8..40]);
        let header = open(&keys.enc, b"cairn pack header\0", sealed);
        for entry in header.chunks_exact(52) {
            let (kind, compression) = (entry[0], entry[1]);
            let raw_len = u32_at(entry, 4) as usize;
            let stored_len = u32_at(entry, 8) as usize;
            let offset = u64::from_le_bytes(entry[12..20].try_into().unwrap()) as usize;
            let id = &entry[20..52];
            let ad = [b"cairn blob\0".as_slice(), &[kind], id].concat();
            let inner = open(&keys.enc, &ad, &file[offset..offset + stored_len]);
            let raw = match compression {
                0 => inner,
                _ => zstd::decode_all(&inner[..]).unwrap(),
            };
            assert_eq!(raw.len(), raw_len);
            assert_eq!(blake3::keyed_hash(&keys.id, &raw).as_bytes(), id, "blob id");
            out.insert(hex::encode(id), raw);
        }
    }
    out
}

/// Every record, opened and checked against its keyed id.
fn records(keys: &Keys) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    for path in files_under(&Path::new(FIXTURE).join("snapshots")) {
        let id = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let ad = format!("cairn object\0snapshots/{id}.json");
        let plain = open(&keys.enc, ad.as_bytes(), &fs::read(&path).unwrap());
        assert_eq!(blake3::keyed_hash(&keys.id, &plain).to_hex().as_str(), id);
        out.insert(id, serde_json::from_slice(&plain).unwrap());
    }
    out
}

/// The content of `name` in the tree `tree` (a top-level walk down `path`).
fn content(blobs: &HashMap<String, Vec<u8>>, tree: &str, path: &[&str]) -> Vec<u8> {
    let listing: Value = serde_json::from_slice(&blobs[tree]).unwrap();
    let entry = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == path[0])
        .unwrap_or_else(|| panic!("no {} in {listing}", path[0]));
    match &path[1..] {
        [] => entry["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| blobs[c.as_str().unwrap()].clone())
            .collect(),
        rest => content(blobs, entry["tree"].as_str().unwrap(), rest),
    }
}

#[test]
fn an_independent_decryptor_written_from_the_specification_reads_the_v5_fixture() {
    let config: Value =
        serde_json::from_slice(&fs::read(Path::new(FIXTURE).join("config.json")).unwrap()).unwrap();
    assert_eq!(config["version"], 5);
    let keys = unlock(&config);
    let blobs = blobs(&keys);
    let records = records(&keys);
    assert_eq!(records.len(), 2);
    let first = &records[FIRST];
    assert_eq!(first["host"], "fixture");
    let mut path: Vec<&str> = SOURCE.trim_start_matches('/').split('/').collect();
    path.push("notes.txt");
    let notes = content(&blobs, first["tree"].as_str().unwrap(), &path);
    assert_eq!(notes, b"golden v5 marker: the first night\n");
    let notes = content(&blobs, records[SECOND]["tree"].as_str().unwrap(), &path);
    assert_eq!(notes, b"golden v5 marker: the second night\n");
}

#[test]
fn the_v5_fixture_holds_no_plaintext() {
    for path in files_under(Path::new(FIXTURE)) {
        let bytes = fs::read(&path).unwrap();
        for needle in [
            &b"golden v5 marker"[..],
            b"notes.txt",
            b"SQLite format 3",
            b"golden row",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{path:?} holds {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[test]
fn the_v5_fixture_restores_and_verifies_with_its_passphrase_only() {
    let t = TestEnv::new();
    copy_tree(Path::new(FIXTURE), &t.store);
    let password = fs::canonicalize(PASSWORD).unwrap();
    let with_password = |args: &[&str]| {
        let mut cmd = t.cairn(["--password-file"]);
        cmd.arg(&password).args(args);
        cmd
    };
    let out = with_password(&["--json", "snapshots"]).assert().success();
    let ids: Vec<String> = parse_json(&out.get_output().stdout)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| id(s).to_owned())
        .collect();
    assert_eq!(ids, [FIRST, SECOND]);
    for (snapshot, night) in [(FIRST, "first"), (SECOND, "second")] {
        let target = t.path(night);
        with_password(&["restore", snapshot, "--target"])
            .arg(&target)
            .assert()
            .success();
        let docs = restored(&target, Path::new(SOURCE));
        let want = format!("golden v5 marker: the {night} night\n");
        assert_eq!(fs::read_to_string(docs.join("notes.txt")).unwrap(), want);
        assert_eq!(
            fs::read_link(docs.join("link")).unwrap(),
            Path::new("notes.txt")
        );
        let db = rusqlite::Connection::open(docs.join("app.db")).unwrap();
        let rows: i64 = db
            .query_row("select count(*) from t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 200);
    }
    with_password(&["verify", "--read-data"]).assert().success();
    let wrong = t.path("wrong");
    write_file(&wrong, b"not the passphrase\n");
    let out = t
        .cairn(["--password-file"])
        .arg(&wrong)
        .arg("snapshots")
        .assert()
        .code(1);
    assert!(stderr_of(out.get_output()).contains("wrong password for store"));
}
