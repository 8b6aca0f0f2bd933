//! The format-6 store in tests/fixtures/v6 (made once by make-v6.sh) must
//! be readable by every future cairn (#21). Its first snapshot trained the
//! store's compression dictionary, so its packs hold blobs of compression
//! 2 (zstd frames made with `dictionaries/1`) beside plain zstd and raw
//! ones. One test reads it with an independent reader written from
//! store-format/ alone (pack.md, dictionary.md, index.md, tree.md; the
//! `blake3` and `zstd` crates used directly, nothing of cairn's own code),
//! so the specification is proven complete; the others restore and verify
//! it with the binary. Both compare with the content make-v6.sh wrote,
//! made again here from the same seeds.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use common::spec::{Lcg, check_index_objects, records, rows, rows_of, u32_at};
use common::*;
use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/v6";
const SOURCE: &str = "/tmp/cairn-fixture-v6/docs";
const FIRST: &str = "1c5f6dc405361d9510d331eb49a8bbfb796f321c885ceacbb01e3cf60c722e45";
const SECOND: &str = "d3ce15bce371afa16e8aeb60e56b8dfc9c2329c53d0f98487f3b5b7bb476c4e0";

// --- the content make-v6.sh wrote -------------------------------------------------

/// make-v6.sh's files, from its generator (common::spec).
impl Lcg {
    /// File `i` (`dI/fNNN.txt`) of 2048 to 3072 bytes.
    fn file(&mut self, files: &mut Files, i: usize, marker: &str) {
        let size = 2048 + (self.next() % 1025) as usize;
        let path = PathBuf::from(format!("d{}/f{:03}.txt", i / 100, i % 100));
        files.insert(path, self.text(marker, size).into_bytes());
    }
}

/// File contents by path under the source directory (the database aside).
type Files = BTreeMap<PathBuf, Vec<u8>>;

/// The files of the first night, and those of the second.
fn nights() -> [Files; 2] {
    let mut first = Files::new();
    let mut rng = Lcg(60);
    for i in 0..600 {
        rng.file(&mut first, i, &format!("golden v6 file {i}: "));
    }
    let mut rng = Lcg(62);
    let noise = (0..1000).map(|_| (rng.next() & 0xff) as u8).collect();
    first.insert(PathBuf::from("noise.bin"), noise);
    let mut second = first.clone();
    let mut rng = Lcg(61);
    for i in 0..20 {
        rng.file(
            &mut second,
            i,
            &format!("golden v6 file {i}, second night: "),
        );
    }
    rng.file(&mut second, 600, "golden v6 file 600: ");
    [first, second]
}

// --- an independent reader, from store-format/ alone ------------------------------

/// `dictionaries/1`, checked as dictionary.md says: the zstd dictionary.
fn dictionary() -> Vec<u8> {
    let object = fs::read(Path::new(FIXTURE).join("dictionaries/1")).unwrap();
    assert_eq!(&object[..8], b"CAIRNDCT", "magic");
    assert_eq!(u32_at(&object, 8), 1, "layout version");
    let dictionary = &object[44..];
    assert_eq!(blake3::hash(dictionary).as_bytes(), &object[12..44]);
    assert_eq!(u32_at(dictionary, 0), 0xEC30_A437, "zstd dictionary magic");
    assert!(dictionary.len() <= 112 << 10, "{} bytes", dictionary.len());
    dictionary.to_vec()
}

/// How many blobs of each compression code the reader met.
#[derive(Debug, Default)]
struct Tally {
    raw: usize,
    zstd: usize,
    dictionary: usize,
}

/// Every blob of the fixture by id (hex), each decoded and checked as
/// pack.md and dictionary.md say.
struct Blobs {
    by_id: HashMap<String, Vec<u8>>,
    tally: Tally,
}

impl Blobs {
    fn read(dictionary: &[u8]) -> Self {
        let mut blobs = Self {
            by_id: HashMap::new(),
            tally: Tally::default(),
        };
        for path in files_under(&Path::new(FIXTURE).join("packs")) {
            blobs.read_pack(&path, dictionary);
        }
        blobs
    }

    /// pack.md, "Validation", steps 1 to 8.
    fn read_pack(&mut self, path: &Path, dictionary: &[u8]) {
        common::spec::read_pack(path, |entry, stored| {
            self.read_blob(entry, stored, dictionary)
        });
    }

    fn read_blob(&mut self, entry: &[u8], stored: &[u8], dictionary: &[u8]) {
        let (kind, compression) = (entry[0], entry[1]);
        let number = u16::from_le_bytes([entry[2], entry[3]]);
        let raw_len = u32_at(entry, 4) as usize;
        assert!(kind <= 1, "kind {kind}");
        let raw = match (compression, number) {
            (0, 0) => {
                self.tally.raw += 1;
                stored.to_vec()
            }
            (1, 0) => {
                self.tally.zstd += 1;
                frame_of(stored, raw_len);
                zstd::bulk::Decompressor::new()
                    .unwrap()
                    .decompress(stored, raw_len)
                    .unwrap()
            }
            (2, 1) => {
                self.tally.dictionary += 1;
                assert_eq!(kind, 0, "only data blobs use the dictionary");
                assert!(raw_len <= 64 << 10, "a blob of {raw_len} bytes");
                let id = frame_of(stored, raw_len).expect("a dictionary id in the frame");
                assert_eq!(id, u32_at(dictionary, 4), "the frame names the dictionary");
                assert!(
                    zstd::bulk::decompress(stored, raw_len).is_err(),
                    "a dictionary frame decodes only with its dictionary"
                );
                zstd::bulk::Decompressor::with_dictionary(dictionary)
                    .unwrap()
                    .decompress(stored, raw_len)
                    .unwrap()
            }
            other => panic!("compression and dictionary {other:?}"),
        };
        assert_eq!(raw.len(), raw_len);
        let id = &entry[20..52];
        assert_eq!(blake3::hash(&raw).as_bytes(), id, "blob id");
        self.by_id.insert(hex::encode(id), raw);
    }

    /// The files under the directory `path` (from the root `/`) of the
    /// tree `tree`, by path below it (tree.md).
    fn files(&self, tree: &str, path: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut tree = tree.to_owned();
        for name in path.iter().skip(1) {
            tree = self.entry(&tree, name.to_str().unwrap())["tree"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        let mut out = BTreeMap::new();
        self.collect(&tree, Path::new(""), &mut out);
        out
    }

    fn entry(&self, tree: &str, name: &str) -> Value {
        let listing: Value = serde_json::from_slice(&self.by_id[tree]).unwrap();
        let entries = listing["entries"].as_array().unwrap();
        entries.iter().find(|e| e["name"] == name).unwrap().clone()
    }

    fn collect(&self, tree: &str, at: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let listing: Value = serde_json::from_slice(&self.by_id[tree]).unwrap();
        for e in listing["entries"].as_array().unwrap() {
            let path = at.join(e["name"].as_str().unwrap());
            match e["type"].as_str().unwrap() {
                "dir" => self.collect(e["tree"].as_str().unwrap(), &path, out),
                "file" => {
                    assert!(e.get("holes").is_none(), "{path:?} has holes");
                    let content: Vec<u8> = e["chunks"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .flat_map(|c| self.by_id[c.as_str().unwrap()].clone())
                        .collect();
                    assert_eq!(content.len() as u64, e["size"].as_u64().unwrap());
                    out.insert(path, content);
                }
                other => panic!("{path:?} is a {other}"),
            }
        }
    }
}

/// The dictionary id a zstd frame's header declares, after checking that
/// it declares its content size as `raw_len` (layout.md).
fn frame_of(frame: &[u8], raw_len: usize) -> Option<u32> {
    let size = zstd::zstd_safe::get_frame_content_size(frame).unwrap();
    assert_eq!(size, Some(raw_len as u64), "declared content size");
    zstd::zstd_safe::get_dict_id_from_frame(frame).map(u32::from)
}

/// `got` holds exactly `want` and a database `app.db` with `rows` rows;
/// the database is checked by its content, not its bytes (it is an image
/// made through SQLite, tree.md).
fn assert_night(got: &mut Files, want: &Files, rows_then: usize, scratch: &Path) {
    let image = got.remove(Path::new("app.db")).expect("app.db");
    let db = scratch.join("app.db");
    fs::write(&db, image).unwrap();
    assert_eq!(rows_of(&db), rows(63, rows_then));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (path, content) in want {
        assert!(got[path] == *content, "{path:?} differs");
    }
}

#[test]
fn an_independent_reader_written_from_the_specification_reads_the_v6_fixture() {
    let config: Value =
        serde_json::from_slice(&fs::read(Path::new(FIXTURE).join("config.json")).unwrap()).unwrap();
    assert_eq!(config["version"], 6);
    assert!(config.get("encryption").is_none());
    let dictionary = dictionary();
    let blobs = Blobs::read(&dictionary);
    let tally = &blobs.tally;
    assert!(
        tally.dictionary >= 50 && tally.zstd >= 50 && tally.raw >= 1,
        "{tally:?}"
    );
    assert_eq!(
        check_index_objects(Path::new(FIXTURE)),
        files_under(&Path::new(FIXTURE).join("packs")).len()
    );
    let records = records(Path::new(FIXTURE));
    assert_eq!(records.keys().collect::<Vec<_>>(), [FIRST, SECOND]);
    let scratch = tempfile::tempdir().unwrap();
    let [first, second] = nights();
    for (id, want, rows_then) in [(FIRST, &first, 2000), (SECOND, &second, 2500)] {
        let record = &records[id];
        assert_eq!(record["host"], "fixture");
        assert_eq!(record["format"], 6);
        let mut got = blobs.files(record["tree"].as_str().unwrap(), Path::new(SOURCE));
        assert_night(&mut got, want, rows_then, scratch.path());
    }
}

#[test]
fn the_v6_fixture_restores_both_nights_and_verifies_with_its_data_read() {
    let t = TestEnv::new();
    copy_tree(Path::new(FIXTURE), &t.store);
    let ids: Vec<String> = t.snapshots(&[]).iter().map(|s| id(s).to_owned()).collect();
    assert_eq!(ids, [FIRST, SECOND]);
    let [first, second] = nights();
    for (snapshot, want, rows_then) in [(FIRST, &first, 2000), (SECOND, &second, 2500)] {
        let docs = restored(&t.restore(snapshot), Path::new(SOURCE));
        let mut got: Files = files_under(&docs)
            .into_iter()
            .map(|p| {
                let content = fs::read(&p).unwrap();
                (p.strip_prefix(&docs).unwrap().to_owned(), content)
            })
            .collect();
        let scratch = t.fresh_dir("scratch");
        fs::create_dir(&scratch).unwrap();
        assert_night(&mut got, want, rows_then, &scratch);
    }
    t.cairn(["verify", "--read-data"]).assert().success();
    assert_store_keeps_the_fixture_dictionary(&t, 6);
}

#[test]
fn a_new_snapshot_into_the_v6_fixture_compresses_with_its_dictionary_and_trains_none() {
    let t = TestEnv::new();
    copy_tree(Path::new(FIXTURE), &t.store);
    let before: Vec<PathBuf> = files_under(&t.store.join("packs"));
    let mut files = Files::new();
    let mut rng = Lcg(65);
    for i in 0..100 {
        rng.file(&mut files, i, &format!("a third night, file {i}: "));
    }
    let src = t.path("third");
    for (path, content) in &files {
        write_file(&src.join(path), content);
    }
    let snap = t.snapshot(&[&src], &[]);
    let mut blobs = Blobs {
        by_id: HashMap::new(),
        tally: Tally::default(),
    };
    for pack in files_under(&t.store.join("packs")) {
        if !before.contains(&pack) {
            blobs.read_pack(&pack, &dictionary());
        }
    }
    assert!(blobs.tally.dictionary >= 90, "{:?}", blobs.tally);
    assert_store_keeps_the_fixture_dictionary(&t, 8);
    let restored_dir = restored(&t.restore(id(&snap)), &src);
    for (path, content) in &files {
        assert!(
            fs::read(restored_dir.join(path)).unwrap() == *content,
            "{path:?}"
        );
    }
}

/// The store `t` holds the fixture's dictionary, unchanged, and no other
/// dictionary, and its config is the fixture's but for the format
/// `version`: reading leaves it at 6, a snapshot upgrades it to 8 (binary
/// trees) and changes nothing else in it.
fn assert_store_keeps_the_fixture_dictionary(t: &TestEnv, version: u64) {
    let dictionaries: Vec<PathBuf> = files_under(&t.store.join("dictionaries"));
    assert_eq!(dictionaries, [t.store.join("dictionaries/1")]);
    let name = "dictionaries/1";
    assert_eq!(
        fs::read(t.store.join(name)).unwrap(),
        fs::read(Path::new(FIXTURE).join(name)).unwrap(),
        "{name}"
    );
    let config = |dir: &Path| parse_json(&fs::read(dir.join("config.json")).unwrap());
    let (mut now, was) = (config(&t.store), config(Path::new(FIXTURE)));
    assert_eq!(now["version"], version, "{now}");
    now["version"] = was["version"].clone();
    assert_eq!(now, was);
}

/// The pack of the v6 fixture that holds the second night's changed files
/// (found by removing each pack in turn: losing it leaves trees to rewrite).
const SECOND_NIGHTS_PACK: &str =
    "22/228d3c1d3fe860715924be1ad03e4ab3d11d6cd6ee41ddb3b819a6f2c8ef85dd.pack";

#[test]
fn repair_upgrades_the_v6_fixture_only_when_it_writes_new_trees() {
    let t = TestEnv::new();
    copy_tree(Path::new(FIXTURE), &t.store);
    let version = || parse_json(&fs::read(t.store.join("config.json")).unwrap())["version"].clone();
    // Nothing lost: nothing written, the store stays readable by older cairn.
    t.cairn(["repair", "snapshots"]).assert().success();
    assert_eq!(version(), 6);
    fs::remove_file(t.store.join("packs").join(SECOND_NIGHTS_PACK)).unwrap();
    t.cairn(["repair", "snapshots", "--dry-run"])
        .assert()
        .success();
    assert_eq!(version(), 6, "a dry run upgraded the store");
    let out = t
        .cairn(["--json", "repair", "snapshots"])
        .assert()
        .success();
    let err = stderr_of(out.get_output());
    assert!(err.contains("from format version 6 to 8"), "{err}");
    assert_eq!(version(), 8);
    let report = parse_json(&out.get_output().stdout);
    assert_eq!(report["upgraded_from"], 6, "{report}");
    let repaired = report["snapshots"][0]["new"].as_str().unwrap().to_owned();
    let docs = restored(&t.restore(&repaired), Path::new(SOURCE));
    let [_, second] = nights();
    let mut kept = 0;
    for path in files_under(&docs) {
        let rel = path.strip_prefix(&docs).unwrap();
        if let Some(want) = second.get(rel) {
            assert!(fs::read(&path).unwrap() == *want, "{rel:?}");
            kept += 1;
        }
    }
    assert!(kept > 500, "only {kept} files restored");
}
