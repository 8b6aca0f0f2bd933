//! Per-store zstd dictionaries (#21): the first snapshot that brings 1 MiB
//! of new small data blobs (small files, SQLite page runs) trains a
//! dictionary from them, stores it as `dictionaries/1` and compresses every
//! later small data blob with it (pack header compression 2, dictionary
//! number in bytes 2..4). Checked with the real binary:
//!
//! - the dictionary object's layout, and that every blob compressed with
//!   it is a standard zstd frame of that dictionary (decoded here with the
//!   `zstd` crate alone, not cairn's reader);
//! - it pays (smaller blobs than plain zstd), on small files and databases;
//! - what is sampled and when (not big-file chunks, not dry runs, not runs
//!   with too little new data), races between hosts, a kill after the
//!   dictionary was written;
//! - a missing or damaged dictionary is named by verify and restore and
//!   never restores wrong bytes; encryption, copy, prune, repack and the
//!   upgrade of format 4 and 5 stores.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use cairn::pack::format::{self, ENTRY_LEN, TRAILER_LEN};
use common::*;

/// A run trains once it has collected this many bytes of small data blobs
/// (`compress::dictionary::SAMPLE_BYTES`; 4 MiB in the design, 1 MiB
/// as measured and committed).
const SAMPLE_BYTES: u64 = 1 << 20;
/// Data blobs of at most this many bytes are sampled and compressed with
/// the dictionary.
const SMALL_BLOB: u32 = 8 << 10;
/// Largest zstd dictionary cairn trains.
const MAX_DICTIONARY: usize = 112 << 10;
/// Bytes of a dictionary object before the zstd dictionary: `CAIRNDCT`,
/// version u32, BLAKE3 of the dictionary.
const DICTIONARY_HEADER: usize = 44;
/// zstd's dictionary magic number (little-endian at its start).
const ZSTD_DICTIONARY_MAGIC: u32 = 0xEC30_A437;
/// Pack header codes (store-format/pack.md).
const DATA: u8 = 0;
const ZSTD: u8 = 1;
const ZSTD_DICTIONARY: u8 = 2;

/// Files of a set big enough to train: 3000 of 2.5 KiB on average, ~7.5 MB.
const TRAINING_FILES: usize = 3000;

/// The vocabulary of benches/compare/datasets.sh, "small".
const GREEK: [&str; 12] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu",
];
/// Another vocabulary, for a store that must train a different dictionary.
const NATO: [&str; 12] = [
    "alfa", "bravo", "charlie", "echo", "foxtrot", "golf", "hotel", "india", "juliett", "kilo",
    "lima", "mike",
];

// --- data ------------------------------------------------------------------------

/// `n` text files of 1-4 KiB of random words of `words`, seeded, as
/// benches/compare/datasets.sh makes its "small" set (`dNNNN/fNNN.txt`,
/// 100 per directory), each starting with `marker`. Returns their size.
fn word_files(dir: &Path, n: usize, seed: u64, words: &[&str], marker: &str) -> u64 {
    let mut rng = Rng::new(seed);
    let mut total = 0;
    for i in 0..n {
        let size = 1024 + (rng.next_u64() % 3073) as usize;
        let text = words_text(&mut rng, words, marker, size);
        let path = dir.join(format!("d{:04}/f{:03}.txt", i / 100, i % 100));
        write_file(&path, text.as_bytes());
        total += size as u64;
    }
    total
}

/// `marker`, then random words of `words` separated by spaces, cut to `size`
/// bytes.
fn words_text(rng: &mut Rng, words: &[&str], marker: &str, size: usize) -> String {
    let mut text = String::with_capacity(size + 16);
    text.push_str(marker);
    while text.len() < size {
        text.push_str(words[(rng.next_u64() % words.len() as u64) as usize]);
        text.push(' ');
    }
    text.truncate(size);
    text
}

/// `word_files` big enough that one snapshot of them trains a dictionary
/// and then compresses a good part of them with it.
fn training_set(dir: &Path, seed: u64) -> u64 {
    let total = word_files(dir, TRAINING_FILES, seed, &GREEK, "");
    assert!(total > SAMPLE_BYTES * 3 / 2, "{total} bytes");
    total
}

/// A few small files, far less than a training sample.
fn few_files(dir: &Path, seed: u64) -> u64 {
    let total = word_files(dir, 200, seed, &GREEK, "");
    assert!(total < SAMPLE_BYTES * 3 / 4, "{total} bytes");
    total
}

/// The BLAKE3 of every file under `dir`: the blob ids of files smaller than
/// a chunk in an unencrypted store.
fn file_ids(dir: &Path) -> BTreeSet<[u8; 32]> {
    files_under(dir)
        .iter()
        .map(|p| *blake3::hash(&fs::read(p).unwrap()).as_bytes())
        .collect()
}

// --- store objects, local or in S3 ---------------------------------------------

/// The keys of the store's objects under `dir` (`"packs/"`), relative to
/// the store; none if there is no such directory.
fn keys(t: &TestEnv, dir: &str) -> BTreeSet<String> {
    if t.is_s3() {
        return t.s3().keys(dir).into_iter().map(|(k, _)| k).collect();
    }
    let base = t.store.join(dir);
    if !base.exists() {
        return BTreeSet::new();
    }
    files_under(&base)
        .iter()
        .map(|p| {
            p.strip_prefix(&t.store)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The bytes of object `key`.
fn get(t: &TestEnv, key: &str) -> Vec<u8> {
    if t.is_s3() {
        t.s3().get(key).unwrap_or_else(|| panic!("no object {key}"))
    } else {
        fs::read(t.store.join(key)).unwrap_or_else(|e| panic!("{key}: {e}"))
    }
}

/// Writes object `key` (over any object of that name).
fn put(t: &TestEnv, key: &str, bytes: &[u8]) {
    if t.is_s3() {
        t.s3().put(key, bytes);
    } else {
        fs::write(t.store.join(key), bytes).unwrap();
    }
}

/// Removes object `key`.
fn delete(t: &TestEnv, key: &str) {
    if t.is_s3() {
        t.s3().delete(key);
    } else {
        fs::remove_file(t.store.join(key)).unwrap();
    }
}

/// The store's dictionary numbers (names under `dictionaries/`), sorted.
fn dictionaries(t: &TestEnv) -> Vec<String> {
    keys(t, "dictionaries/")
        .iter()
        .map(|k| k.strip_prefix("dictionaries/").unwrap().to_owned())
        .collect()
}

/// The `version` of the store's `config.json`.
fn format_version(t: &TestEnv) -> u64 {
    parse_json(&get(t, "config.json"))["version"]
        .as_u64()
        .unwrap()
}

/// Asserts that `bytes` is a dictionary object (CAIRNDCT, version 1, the
/// BLAKE3 of the dictionary, a zstd dictionary of at most 112 KiB) and
/// returns the zstd dictionary.
fn dictionary_of(bytes: &[u8]) -> &[u8] {
    assert!(bytes.len() > DICTIONARY_HEADER + 8, "{} bytes", bytes.len());
    assert_eq!(&bytes[..8], b"CAIRNDCT", "magic");
    assert_eq!(u32_at(bytes, 8), 1, "version");
    let dictionary = &bytes[DICTIONARY_HEADER..];
    assert_eq!(
        &bytes[12..44],
        blake3::hash(dictionary).as_bytes(),
        "checksum"
    );
    assert_eq!(u32_at(dictionary, 0), ZSTD_DICTIONARY_MAGIC, "zstd magic");
    assert!(dictionary.len() <= MAX_DICTIONARY, "{}", dictionary.len());
    dictionary
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

// --- pack headers, read from their bytes -----------------------------------------

/// One entry of a plain pack header, as store-format/pack.md lays it out,
/// with its stored bytes.
#[derive(Debug, Clone)]
struct Entry {
    kind: u8,
    compression: u8,
    dictionary: u16,
    raw_len: u32,
    id: [u8; 32],
    stored: Vec<u8>,
}

impl Entry {
    /// A data blob small enough to be sampled and dictionary-compressed.
    fn is_small_data(&self) -> bool {
        self.kind == DATA && self.raw_len <= SMALL_BLOB
    }

    fn ratio(&self) -> f64 {
        self.stored.len() as f64 / f64::from(self.raw_len)
    }
}

/// The pack keys of the store.
fn pack_keys(t: &TestEnv) -> BTreeSet<String> {
    keys(t, "packs/")
        .into_iter()
        .filter(|k| k.ends_with(".pack"))
        .collect()
}

/// The entries of every pack of the store not in `before`.
fn entries_since(t: &TestEnv, before: &BTreeSet<String>) -> Vec<Entry> {
    pack_keys(t)
        .difference(before)
        .flat_map(|key| header_entries(&get(t, key)))
        .collect()
}

/// The entries of every pack of the store.
fn all_entries(t: &TestEnv) -> Vec<Entry> {
    entries_since(t, &BTreeSet::new())
}

/// The header entries of a plain (version 1) pack, from the raw bytes.
fn header_entries(pack: &[u8]) -> Vec<Entry> {
    let trailer = format::decode_trailer(pack, pack.len() as u64).unwrap();
    assert_eq!(trailer.version, format::VERSION, "a plain pack");
    let end = pack.len() - TRAILER_LEN;
    let header = &pack[end - trailer.header_len as usize..end];
    header
        .chunks_exact(ENTRY_LEN)
        .map(|e| {
            let stored_len = u32_at(e, 8) as usize;
            let offset = u64::from_le_bytes(e[12..20].try_into().unwrap()) as usize;
            Entry {
                kind: e[0],
                compression: e[1],
                dictionary: u16::from_le_bytes([e[2], e[3]]),
                raw_len: u32_at(e, 4),
                id: e[20..52].try_into().unwrap(),
                stored: pack[offset..offset + stored_len].to_vec(),
            }
        })
        .collect()
}

/// Asserts that every entry's (compression, dictionary) pair is one the
/// format allows: 0 and 1 with dictionary 0, 2 with a dictionary number
/// of the store, and 2 only for small data blobs.
fn assert_labels_valid(entries: &[Entry], numbers: &[u16]) {
    for e in entries {
        let ok = match e.compression {
            0 | ZSTD => e.dictionary == 0,
            ZSTD_DICTIONARY => e.is_small_data() && numbers.contains(&e.dictionary),
            _ => false,
        };
        assert!(
            ok,
            "entry kind {} of {} bytes: compression {} dictionary {}",
            e.kind, e.raw_len, e.compression, e.dictionary
        );
    }
}

/// Decodes every compression-2 entry of `entries` that names dictionary
/// `number` with the zstd crate and `dictionary` alone, and checks its
/// BLAKE3 against its id: the format is standard zstd. Returns how many.
fn decode_independently(entries: &[Entry], number: u16, dictionary: &[u8]) -> usize {
    let mut zstd = zstd::bulk::Decompressor::with_dictionary(dictionary).unwrap();
    let mine: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.compression == ZSTD_DICTIONARY && e.dictionary == number)
        .collect();
    for e in &mine {
        let raw = zstd.decompress(&e.stored, e.raw_len as usize).unwrap();
        assert_eq!(raw.len(), e.raw_len as usize);
        assert_eq!(blake3::hash(&raw).as_bytes(), &e.id, "a blob decoded wrong");
    }
    mine.len()
}

/// How many of `entries` are small data blobs stored with `compression`.
fn count_small(entries: &[Entry], compression: u8) -> usize {
    entries
        .iter()
        .filter(|e| e.is_small_data() && e.compression == compression)
        .count()
}

/// The mean stored/raw ratio of the small data blobs stored with
/// `compression`.
fn mean_ratio(entries: &[Entry], compression: u8) -> f64 {
    let ratios: Vec<f64> = entries
        .iter()
        .filter(|e| e.is_small_data() && e.compression == compression)
        .map(Entry::ratio)
        .collect();
    assert!(
        !ratios.is_empty(),
        "no small data blob of compression {compression}"
    );
    ratios.iter().sum::<f64>() / ratios.len() as f64
}

// --- commands --------------------------------------------------------------------

/// Restores `snapshot` and asserts that `source` came back exactly; removes
/// the restore.
fn assert_restores(t: &TestEnv, snapshot: &str, source: &Path) {
    let target = t.restore(snapshot);
    assert_trees_equal(source, &restored(&target, source));
    fs::remove_dir_all(target).unwrap();
}

fn assert_verifies(t: &TestEnv) {
    t.cairn(["verify", "--read-data"]).assert().success();
}

/// stdout and stderr of `out`, as text.
fn output_of(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that every file under `got` holds exactly the bytes of the same
/// file under `want`: a restore that meets damage may leave files out, but
/// never writes wrong bytes.
fn assert_no_wrong_bytes(want: &Path, got: &Path) {
    let Ok(meta) = fs::symlink_metadata(got) else {
        return;
    };
    if meta.is_dir() {
        for name in names(got) {
            assert_no_wrong_bytes(&want.join(&name), &got.join(&name));
        }
    } else if meta.is_file() {
        let wanted = fs::read(want)
            .unwrap_or_else(|e| panic!("{got:?} was restored, but {want:?} is not there ({e})"));
        assert!(
            fs::read(got).unwrap() == wanted,
            "{got:?} was restored with wrong bytes"
        );
    }
}

/// `cairn --json copy --to TARGET` from `t`'s store; the report.
/// A new store at `dir`, seen from another host.
fn new_store_at(t: &TestEnv, dir: &Path) -> TestEnv {
    t.cairn_without_store(["--store"])
        .arg(dir)
        .arg("init")
        .assert()
        .success();
    host_on(t, dir)
}

/// Another host's view of the local store at `store`.
fn host_on(t: &TestEnv, store: &Path) -> TestEnv {
    let mut there = t.second_host();
    there.store = store.to_owned();
    there
}

// --- the format ------------------------------------------------------------------

#[test]
fn new_stores_are_format_8_and_encrypted_ones_format_9() {
    assert_eq!(format_version(&TestEnv::with_store()), 8);
    assert_eq!(format_version(&TestEnv::with_encrypted_store()), 9);
}

#[test]
fn a_first_snapshot_of_small_files_trains_a_dictionary_and_later_snapshots_use_it() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    training_set(&src, 1);
    let first = t.snapshot(&[&src], &[]);
    assert_eq!(dictionaries(&t), ["1"]);
    let object = get(&t, "dictionaries/1");
    let dictionary = dictionary_of(&object);
    assert_restores(&t, id(&first), &src);
    assert_verifies(&t);

    // The same run already used it for what came after the sample.
    let entries = all_entries(&t);
    assert_labels_valid(&entries, &[1]);
    let used = decode_independently(&entries, 1, dictionary);
    assert!(used > 0, "no blob of the first run used the dictionary");

    // A later run of new small files compresses every one with it.
    let more = t.path("more");
    word_files(&more, 300, 2, &GREEK, "");
    let before = pack_keys(&t);
    let second = t.snapshot(&[&more], &[]);
    let new = entries_since(&t, &before);
    assert_labels_valid(&new, &[1]);
    let small = new.iter().filter(|e| e.is_small_data()).count();
    assert_eq!(small, 300, "one blob per new file");
    assert_eq!(
        count_small(&new, ZSTD_DICTIONARY),
        small,
        "every new small file is compressed with the dictionary"
    );
    assert_eq!(decode_independently(&new, 1, dictionary), small);
    assert_eq!(get(&t, "dictionaries/1"), object, "dictionaries/1 changed");
    assert_restores(&t, id(&second), &more);
    assert_restores(&t, id(&first), &src);
    assert_verifies(&t);
}

#[test]
fn blobs_compressed_with_the_dictionary_are_smaller_than_plain_zstd_ones() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    training_set(&src, 3);
    t.snapshot(&[&src], &[]);
    // The sample is plain zstd (and whatever was compressed while it was
    // trained), the rest of the same kind of files used the dictionary.
    let entries = all_entries(&t);
    let (plain, with) = (
        count_small(&entries, ZSTD),
        count_small(&entries, ZSTD_DICTIONARY),
    );
    let sampled: u64 = entries
        .iter()
        .filter(|e| e.is_small_data() && e.compression == ZSTD)
        .map(|e| u64::from(e.raw_len))
        .sum();
    assert!(
        sampled >= SAMPLE_BYTES - u64::from(SMALL_BLOB),
        "{sampled} bytes compressed without the dictionary, less than the sample"
    );
    let (ratio_plain, ratio_with) = (
        mean_ratio(&entries, ZSTD),
        mean_ratio(&entries, ZSTD_DICTIONARY),
    );
    eprintln!(
        "small files: {plain} blobs ({sampled} bytes) plain zstd, mean stored/raw {ratio_plain:.4}; \
         {with} with the dictionary, {ratio_with:.4} ({:.1}% smaller)",
        (1.0 - ratio_with / ratio_plain) * 100.0
    );
    assert!(ratio_with < ratio_plain, "{ratio_with} >= {ratio_plain}");
}

// --- SQLite ----------------------------------------------------------------------

/// A rollback-journal database of ~16 MiB: a table of rows with a number
/// and a text of words, and an index on the number.
fn word_database(db: &Path, seed: u64) {
    let mut conn = open_in_mode(db, "DELETE");
    conn.execute_batch(
        "CREATE TABLE items(id INTEGER PRIMARY KEY, sku INTEGER NOT NULL, body TEXT NOT NULL);
         CREATE INDEX items_sku ON items(sku);",
    )
    .unwrap();
    let mut rng = Rng::new(seed);
    let tx = conn.transaction().unwrap();
    for id in 1..=55_000i64 {
        let sku = (rng.next_u64() % 1_000_000) as i64;
        let body = words_text(&mut rng, &GREEK, "", 250);
        tx.execute(
            "INSERT INTO items(id, sku, body) VALUES (?1, ?2, ?3)",
            (id, sku, body),
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// Asserts that the database `got` has the bytes of `want`, but for the
/// three header counters SQLite's backup API (through which cairn captures
/// a database) bumps in its copy: the file change counter, the schema
/// cookie and the version-valid-for number.
fn assert_same_database_bytes(want: &Path, got: &Path) {
    let (mut want, mut got) = (fs::read(want).unwrap(), fs::read(got).unwrap());
    assert_eq!(got.len(), want.len(), "size");
    for counter in [24..28, 40..44, 92..96] {
        want[counter.clone()].fill(0);
        got[counter].fill(0);
    }
    let differ = (0..got.len()).filter(|&i| got[i] != want[i]).count();
    assert_eq!(differ, 0, "bytes differ from the original database");
}

#[test]
fn a_sqlite_database_restores_exactly_and_most_of_its_page_runs_use_the_dictionary() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    word_database(&db, 4);
    let size = fs::metadata(&db).unwrap().len();
    assert!(size >= 12 << 20, "{size} bytes");

    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(dictionaries(&t), ["1"]);
    let back = restored(&t.restore(id(&snap)), &src).join("app.db");
    cairn::database::integrity_check(&back).unwrap();
    assert_same_database_bytes(&db, &back);

    let entries = all_entries(&t);
    assert_labels_valid(&entries, &[1]);
    let runs = entries.iter().filter(|e| e.is_small_data()).count();
    let with = count_small(&entries, ZSTD_DICTIONARY);
    let (ratio_plain, ratio_with) = (
        mean_ratio(&entries, ZSTD),
        mean_ratio(&entries, ZSTD_DICTIONARY),
    );
    eprintln!(
        "database of {size} bytes: {with} of {runs} page runs with the dictionary; \
         mean stored/raw {ratio_plain:.4} plain, {ratio_with:.4} with ({:.1}% smaller)",
        (1.0 - ratio_with / ratio_plain) * 100.0
    );
    // Regression (#21): while one compressor trained, the others went on
    // without the dictionary, and on a fast run most of the database did.
    // Now only the sampled runs (and the odd incompressible one) go without.
    let sampled = (SAMPLE_BYTES / 4096) as usize;
    assert!(
        with + sampled + runs / 50 >= runs,
        "{with} of {runs} page runs used the dictionary"
    );
    assert!(ratio_with < ratio_plain, "{ratio_with} >= {ratio_plain}");
    let dictionary = get(&t, "dictionaries/1");
    assert_eq!(
        decode_independently(&entries, 1, dictionary_of(&dictionary)),
        with
    );
    assert_verifies(&t);
}

// --- what is sampled, and when -----------------------------------------------------

#[test]
fn runs_with_less_than_a_sample_of_new_small_blobs_make_no_dictionary_until_one_brings_enough() {
    let t = TestEnv::with_store();
    // Two runs of less than a sample each, more than one together.
    let (a, b) = (t.path("a"), t.path("b"));
    let mut together = 0;
    for (dir, seed) in [(&a, 5), (&b, 6)] {
        let size = word_files(dir, 250, seed, &GREEK, "");
        assert!(size < SAMPLE_BYTES, "{size}");
        together += size;
        t.snapshot(&[dir], &[]);
        assert_eq!(dictionaries(&t), Vec::<String>::new());
    }
    assert!(together > SAMPLE_BYTES, "{together}");
    assert_labels_valid(&all_entries(&t), &[]);
    let big = t.path("big");
    training_set(&big, 7);
    let snap = t.snapshot(&[&big], &[]);
    assert_eq!(dictionaries(&t), ["1"]);
    assert_restores(&t, id(&snap), &big);
}

#[test]
fn big_file_chunks_are_neither_sampled_nor_compressed_with_the_dictionary() {
    let t = TestEnv::with_store();
    // 12 MiB of words in one file: chunks of 256 KiB to 4 MiB.
    let text = |seed| words_text(&mut Rng::new(seed), &GREEK, "", 12 << 20);
    let big = t.path("big");
    write_file(&big.join("words.txt"), text(8).as_bytes());
    t.snapshot(&[&big], &[]);
    assert_eq!(
        dictionaries(&t),
        Vec::<String>::new(),
        "big-file chunks were sampled"
    );

    let small = t.path("small");
    training_set(&small, 9);
    t.snapshot(&[&small], &[]);
    assert_eq!(dictionaries(&t), ["1"]);

    // After it exists: a new big file, and files on both sides of 8 KiB.
    let later = t.path("later");
    write_file(&later.join("words.txt"), text(10).as_bytes());
    let mut rng = Rng::new(11);
    let at_limit = words_text(&mut rng, &GREEK, "", SMALL_BLOB as usize);
    let over = words_text(&mut rng, &GREEK, "", SMALL_BLOB as usize + 1);
    write_file(&later.join("at-limit.txt"), at_limit.as_bytes());
    write_file(&later.join("over-limit.txt"), over.as_bytes());
    let before = pack_keys(&t);
    let snap = t.snapshot(&[&later], &[]);
    let new = entries_since(&t, &before);
    assert_labels_valid(&new, &[1]);
    let of = |bytes: &str| {
        let id = *blake3::hash(bytes.as_bytes()).as_bytes();
        let e = new.iter().find(|e| e.id == id).unwrap();
        (e.compression, e.dictionary)
    };
    assert_eq!(
        of(&at_limit),
        (ZSTD_DICTIONARY, 1),
        "a blob of exactly 8 KiB"
    );
    assert_eq!(of(&over), (ZSTD, 0), "a blob of 8 KiB + 1");
    let chunks: Vec<&Entry> = new
        .iter()
        .filter(|e| e.kind == DATA && e.raw_len > SMALL_BLOB + 1)
        .collect();
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    assert!(chunks.iter().all(|e| e.compression == ZSTD));
    assert_restores(&t, id(&snap), &later);
}

#[test]
fn a_dry_run_snapshot_makes_no_dictionary() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    training_set(&src, 12);
    t.cairn(["snapshot", "--dry-run"])
        .arg(&src)
        .assert()
        .success();
    assert_eq!(dictionaries(&t), Vec::<String>::new());
    assert!(pack_keys(&t).is_empty());
}

// --- many hosts ------------------------------------------------------------------

/// The two hosts' first snapshots, started together into `a`'s empty store,
/// each of its own training set: one dictionary, both snapshots restore
/// (from either host) and the store verifies.
fn concurrent_first_snapshots_share_one_dictionary(a: TestEnv) {
    let b = a.second_host();
    let (src_a, src_b) = (a.path("a"), b.path("b"));
    training_set(&src_a, 13);
    training_set(&src_b, 14);
    let (child_a, child_b) = (a.spawn_snapshot(&src_a), b.spawn_snapshot(&src_b));
    let snapshots: Vec<String> = [child_a, child_b]
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", output_of(&out));
            id(&parse_json(&out.stdout)).to_owned()
        })
        .collect();
    assert_eq!(dictionaries(&a), ["1"]);
    let object = get(&a, "dictionaries/1");
    let entries = all_entries(&a);
    assert_labels_valid(&entries, &[1]);
    assert!(decode_independently(&entries, 1, dictionary_of(&object)) > 0);
    for host in [&a, &b] {
        assert_restores(host, &snapshots[0], &src_a);
        assert_restores(host, &snapshots[1], &src_b);
    }
    assert_verifies(&a);
}

#[test]
fn concurrent_first_snapshots_of_two_hosts_share_one_dictionary() {
    concurrent_first_snapshots_share_one_dictionary(TestEnv::with_store());
}

#[test]
fn concurrent_first_snapshots_of_two_hosts_share_one_dictionary_in_s3() {
    concurrent_first_snapshots_share_one_dictionary(TestEnv::with_s3());
}

#[test]
fn a_host_that_trains_after_another_host_made_the_dictionary_uses_that_one() {
    let a = TestEnv::with_store();
    let b = a.second_host();
    let (src_a, src_b) = (a.path("a"), b.path("b"));
    training_set(&src_a, 15);
    training_set(&src_b, 16);
    // b stops at its first file, before it has sampled anything, while a
    // trains and creates dictionaries/1. The release is a directory: the
    // stall point removes a release file at every hit, but cannot remove a
    // directory, so b then passes all its other files without stopping.
    let release = b.path("release");
    let mut child = b
        .command(["--json", "snapshot"])
        .arg(&src_b)
        .env("CAIRN_STALL_AT", "file-first-chunk:600")
        .env("CAIRN_STALL_RELEASE", &release)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let stalled = lines.any(|l| l.unwrap().contains("stall point file-first-chunk reached"));
    assert!(stalled, "b's snapshot ended before its first file");
    let stderr = thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let snap_a = a.snapshot(&[&src_a], &[]);
    let made = get(&a, "dictionaries/1");
    fs::create_dir(&release).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = stderr.join().unwrap().join("\n");
    assert!(out.status.success(), "{stderr}");
    let snap_b = parse_json(&out.stdout);

    assert_eq!(dictionaries(&a), ["1"]);
    assert_eq!(get(&a, "dictionaries/1"), made, "b replaced a's dictionary");
    let ids_b = file_ids(&src_b);
    let entries = all_entries(&a);
    assert_labels_valid(&entries, &[1]);
    let b_with = entries
        .iter()
        .filter(|e| ids_b.contains(&e.id) && e.compression == ZSTD_DICTIONARY)
        .count();
    assert!(b_with > 0, "b never used the dictionary a made");
    decode_independently(&entries, 1, dictionary_of(&made));
    assert_restores(&b, id(&snap_a), &src_a);
    assert_restores(&a, id(&snap_b), &src_b);
    assert_verifies(&b);
}

// --- a lost or damaged dictionary ------------------------------------------------

/// A store with a snapshot of a few small files taken before any
/// dictionary, then one that trained `dictionaries/1`.
struct Damaged {
    t: TestEnv,
    /// The few files and their snapshot (which needs no dictionary).
    early: (PathBuf, String),
    /// The training set and its snapshot.
    big: (PathBuf, String),
    /// `dictionaries/1` as it was made.
    object: Vec<u8>,
}

impl Damaged {
    fn new(seed: u64) -> Self {
        let t = TestEnv::with_store();
        let (early, big) = (t.path("early"), t.path("big"));
        few_files(&early, seed);
        let early_snap = t.snapshot(&[&early], &[]);
        assert_eq!(dictionaries(&t), Vec::<String>::new());
        training_set(&big, seed + 1);
        let big_snap = t.snapshot(&[&big], &[]);
        let object = get(&t, "dictionaries/1");
        Self {
            early: (early, id(&early_snap).to_owned()),
            big: (big, id(&big_snap).to_owned()),
            object,
            t,
        }
    }

    /// verify (with and without --read-data) exits 4 naming the
    /// dictionary; restoring the big snapshot fails naming it and writes
    /// no wrong bytes; the early snapshot restores; and with the
    /// dictionary put back, the store verifies again.
    fn assert_reported(&self, what: &str) {
        let t = &self.t;
        for args in [&["verify"][..], &["verify", "--read-data"]] {
            let out = t.cairn(args).assert().code(4);
            let text = output_of(out.get_output());
            assert!(text.contains("dictionaries/1"), "{what}: {args:?}: {text}");
        }
        let (big, big_snap) = &self.big;
        let target = t.fresh_dir("restore");
        let out = t
            .cairn(["restore", big_snap, "--target"])
            .arg(&target)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{what}: restore succeeded");
        let text = stderr_of(&out);
        assert!(text.contains("dictionaries/1"), "{what}: {text}");
        assert_no_wrong_bytes(big, &restored(&target, big));
        let (early, early_snap) = &self.early;
        assert_restores(t, early_snap, early);

        put(t, "dictionaries/1", &self.object);
        assert_verifies(t);
        assert_restores(t, big_snap, big);
    }
}

#[test]
fn a_missing_dictionary_is_named_by_verify_and_restore_and_older_snapshots_still_restore() {
    let d = Damaged::new(20);
    delete(&d.t, "dictionaries/1");
    d.assert_reported("missing");
}

#[test]
fn a_damaged_dictionary_is_named_by_verify_and_restore_and_older_snapshots_still_restore() {
    let d = Damaged::new(22);
    let mut bytes = d.object.clone();
    let inside = DICTIONARY_HEADER + (bytes.len() - DICTIONARY_HEADER) / 2;
    bytes[inside] ^= 0xff;
    put(&d.t, "dictionaries/1", &bytes);
    d.assert_reported("damaged");
}

#[test]
fn a_snapshot_into_a_store_whose_dictionary_is_damaged_writes_nothing_that_needs_it() {
    let d = Damaged::new(24);
    let t = &d.t;
    let mut bytes = d.object.clone();
    bytes[DICTIONARY_HEADER + 100] ^= 0xff;
    put(t, "dictionaries/1", &bytes);
    let more = t.path("more");
    word_files(&more, 300, 26, &GREEK, "");
    let out = t.cairn(["--json", "snapshot"]).arg(&more).output().unwrap();
    // The nightly job's output says so (it went on without).
    assert!(
        stderr_of(&out).contains("the compression dictionary dictionaries/1 does not check out"),
        "{}",
        stderr_of(&out)
    );
    // Refusing (naming the dictionary) or going on without it are both
    // fine; what was committed must restore while the damage is there.
    let committed = out
        .status
        .success()
        .then(|| id(&parse_json(&out.stdout)).to_owned());
    match &committed {
        Some(snap) => assert_restores(t, snap, &more),
        None => {
            assert!(
                stderr_of(&out).contains("dictionaries/1"),
                "{}",
                stderr_of(&out)
            );
            assert_eq!(t.snapshots(&[]).len(), 2);
        }
    }
    assert_eq!(
        get(t, "dictionaries/1"),
        bytes,
        "the damaged dictionary was replaced"
    );
    // Nothing was compressed with the damaged bytes: with the dictionary
    // repaired, every blob decodes.
    put(t, "dictionaries/1", &d.object);
    assert_verifies(t);
    if let Some(snap) = &committed {
        assert_restores(t, snap, &more);
    }
}

#[test]
fn a_snapshot_after_the_dictionary_was_lost_does_not_reuse_its_number() {
    let d = Damaged::new(27);
    let t = &d.t;
    delete(t, "dictionaries/1");
    let more = t.path("more");
    training_set(&more, 29);
    let out = t.cairn(["--json", "snapshot"]).arg(&more).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("the compression dictionary dictionaries/1 is missing"),
        "{}",
        stderr_of(&out)
    );
    assert_restores(t, id(&parse_json(&out.stdout)), &more);
    // The operator finds the lost dictionary (a copy of the store) and puts
    // it back: the old snapshots must be whole again, the new one too.
    assert!(
        !dictionaries(t).contains(&"1".to_owned()),
        "a new dictionaries/1 replaced the lost one, whose blobs now decode with the wrong dictionary"
    );
    put(t, "dictionaries/1", &d.object);
    assert_verifies(t);
    assert_restores(t, &d.big.1, &d.big.0);
}

// The next snapshot of the same files after the dictionary was lost reused
// every blob made with it (the catalog still listed them): it exited 0 and
// could not be restored; `repair snapshots` and `--force` did not help.
// Stored again, those blobs mend the earlier snapshots as well.
#[test]
fn after_the_dictionary_is_lost_the_next_snapshot_stores_its_data_again_and_restores() {
    let d = Damaged::new(33);
    let t = &d.t;
    let (big, big_snap) = &d.big;
    delete(t, "dictionaries/1");
    let out = t.cairn(["--json", "snapshot"]).arg(big).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let again = id(&parse_json(&out.stdout)).to_owned();
    assert_restores(t, &again, big);
    assert!(
        !dictionaries(t).contains(&"1".to_owned()),
        "a new dictionaries/1 replaced the lost one"
    );
    // The snapshot taken before the loss names the same blobs: it is
    // whole again too.
    assert_verifies(t);
    assert_restores(t, big_snap, big);
    // A catalog rebuilt from the index objects (another host's, in any
    // order) locates the copies made without the dictionary too, so a
    // prune keeps them rather than repack them away as spares.
    t.cairn(["repair", "catalog"]).assert().success();
    let catalog = cairn::catalog::Catalog::open(&t.store.join("catalog.db")).unwrap();
    for id in file_ids(big) {
        let at = catalog.locate(&cairn::id::BlobId::from_bytes(id)).unwrap();
        let at = at.unwrap_or_else(|| panic!("{} not cataloged", hex::encode(id)));
        assert!(
            !matches!(at.compression, cairn::compress::Compression::Dictionary(_)),
            "the catalog locates the copy that needs the lost dictionary"
        );
    }
    drop(catalog);
    t.cairn(["forget", big_snap.as_str()]).assert().success();
    t.cairn(["prune"]).assert().success();
    assert_verifies(t);
    assert_restores(t, &again, big);
    // The operator who finds the dictionary again loses nothing either.
    put(t, "dictionaries/1", &d.object);
    assert_verifies(t);
    assert_restores(t, &again, big);
}

#[test]
fn a_store_that_refuses_the_dictionary_still_takes_the_snapshot_and_says_why() {
    let t = TestEnv::with_store();
    // Nothing can be created under dictionaries/: a file stands there.
    fs::write(t.store.join("dictionaries"), b"not a directory").unwrap();
    let src = t.path("src");
    training_set(&src, 31);
    let out = t.cairn(["--json", "snapshot"]).arg(&src).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("could not store a compression dictionary")
            || err.contains("the compression dictionary cannot be read"),
        "{err}"
    );
    assert!(err.contains("stored without"), "{err}");
    assert_labels_valid(&all_entries(&t), &[]);
    assert_restores(&t, id(&parse_json(&out.stdout)), &src);
}

#[test]
fn repair_with_a_missing_dictionary_moves_no_intact_pack_aside() {
    let d = Damaged::new(28);
    let t = &d.t;
    delete(t, "dictionaries/1");
    let packs = pack_keys(t);
    let out = t.cairn(["repair", "snapshots"]).output().unwrap();
    // Whatever repair says, the packs are intact: once the operator puts
    // the lost dictionary back, nothing may be missing.
    let moved: Vec<String> = packs.difference(&pack_keys(t)).cloned().collect();
    assert!(
        moved.is_empty(),
        "repair moved intact packs aside for want of the dictionary: {moved:?}\n{}",
        output_of(&out)
    );
    put(t, "dictionaries/1", &d.object);
    assert_verifies(t);
    assert_restores(t, &d.big.1, &d.big.0);
}

// --- encryption ------------------------------------------------------------------

#[test]
fn an_encrypted_store_trains_a_dictionary_that_reveals_nothing_of_the_samples() {
    let t = TestEnv::with_encrypted_store();
    let marker = format!("MARKER-{}", hex::encode(random_bytes(30, 12)));
    let src = t.path("src");
    let total = word_files(&src, TRAINING_FILES, 31, &GREEK, &marker);
    assert!(total > SAMPLE_BYTES * 3 / 2);
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(dictionaries(&t), ["1"]);
    assert_eq!(format_version(&t), 9);
    let needles: [&[u8]; 2] = [marker.as_bytes(), b"CAIRNDCT"];
    for path in files_under(&t.store) {
        let bytes = fs::read(&path).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{path:?} holds {}",
                String::from_utf8_lossy(needle)
            );
        }
    }
    assert_restores(&t, id(&snap), &src);
    assert_verifies(&t);
}

// --- copy ------------------------------------------------------------------------

#[test]
fn copy_into_a_store_without_a_dictionary_carries_it_identical() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    training_set(&src, 32);
    let snap = t.snapshot(&[&src], &[]);
    let offsite = t.path("offsite");
    assert_eq!(t.copy_to(&offsite, &[])["snapshots_copied"], 1);
    let there = host_on(&t, &offsite);
    assert_eq!(dictionaries(&there), ["1"]);
    assert_eq!(get(&there, "dictionaries/1"), get(&t, "dictionaries/1"));
    assert_eq!(format_version(&there), 8);
    assert_labels_valid(&all_entries(&there), &[1]);
    assert_restores(&there, id(&snap), &src);
    assert_verifies(&there);
}

#[test]
fn copy_into_a_store_with_its_own_dictionary_adds_the_source_one_as_number_2() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    training_set(&src, 33);
    let snap = t.snapshot(&[&src], &[]);
    let source_dictionary = get(&t, "dictionaries/1");

    let offsite = t.path("offsite");
    let there = new_store_at(&t, &offsite);
    let own = there.path("own");
    word_files(&own, TRAINING_FILES, 34, &NATO, "");
    let own_snap = there.snapshot(&[&own], &[]);
    let own_dictionary = get(&there, "dictionaries/1");
    assert_ne!(own_dictionary, source_dictionary);

    let before = pack_keys(&there);
    assert_eq!(t.copy_to(&offsite, &[])["snapshots_copied"], 1);
    assert_eq!(dictionaries(&there), ["1", "2"]);
    assert_eq!(get(&there, "dictionaries/1"), own_dictionary);
    assert_eq!(get(&there, "dictionaries/2"), source_dictionary);
    // The copied blobs that used the source's dictionary 1 now name 2.
    let source_with: BTreeSet<[u8; 32]> = all_entries(&t)
        .into_iter()
        .filter(|e| e.compression == ZSTD_DICTIONARY)
        .map(|e| e.id)
        .collect();
    let copied = entries_since(&there, &before);
    assert_labels_valid(&copied, &[1, 2]);
    for e in copied.iter().filter(|e| source_with.contains(&e.id)) {
        assert_eq!((e.compression, e.dictionary), (ZSTD_DICTIONARY, 2));
    }
    let relabelled = decode_independently(&copied, 2, dictionary_of(&source_dictionary));
    assert_eq!(relabelled, source_with.len());
    assert_restores(&there, id(&snap), &src);
    assert_restores(&there, id(&own_snap), &own);
    assert_verifies(&there);
}

#[test]
fn copy_never_gives_a_targets_lost_dictionary_number_to_the_sources() {
    // Found in review (#21): the target's dictionaries/1 is lost while its
    // blobs still name 1; a copy must not store the source's dictionary as
    // 1, or putting the original back would break the copied blobs.
    let t = TestEnv::with_store();
    let src = t.path("src");
    training_set(&src, 35);
    let snap = t.snapshot(&[&src], &[]);
    let offsite = t.path("offsite");
    let there = new_store_at(&t, &offsite);
    let own = there.path("own");
    word_files(&own, TRAINING_FILES, 36, &NATO, "");
    let own_snap = there.snapshot(&[&own], &[]);
    let own_dictionary = get(&there, "dictionaries/1");
    delete(&there, "dictionaries/1");

    t.copy_to(&offsite, &[]);
    assert_eq!(dictionaries(&there), ["2"], "the lost number was reused");
    assert_restores(&there, id(&snap), &src);
    put(&there, "dictionaries/1", &own_dictionary);
    assert_restores(&there, id(&own_snap), &own);
    assert_verifies(&there);
}

// --- prune and repack ------------------------------------------------------------

#[test]
fn prune_after_forgetting_every_snapshot_keeps_the_dictionary_for_the_next_one() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    training_set(&src, 35);
    let first = t.snapshot(&[&src], &[]);
    let object = get(&t, "dictionaries/1");
    t.cairn(["forget", id(&first)]).assert().success();
    t.cairn(["prune"]).assert().success();
    assert!(t.snapshots(&[]).is_empty());
    assert_eq!(dictionaries(&t), ["1"]);
    assert_eq!(get(&t, "dictionaries/1"), object);

    let more = t.path("more");
    word_files(&more, 300, 36, &GREEK, "");
    let snap = t.snapshot(&[&more], &[]);
    let entries = all_entries(&t);
    assert_eq!(count_small(&entries, ZSTD_DICTIONARY), 300);
    assert_eq!(
        decode_independently(&entries, 1, dictionary_of(&object)),
        300
    );
    assert_restores(&t, id(&snap), &more);
    assert_verifies(&t);
}

#[test]
fn repack_moves_dictionary_compressed_blobs_unchanged() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    training_set(&src, 37);
    let old = t.snapshot(&[&src], &[]);
    // The last tenth of the files (all compressed with the dictionary) go.
    for dir in 27..30 {
        fs::remove_dir_all(src.join(format!("d{dir:04}"))).unwrap();
    }
    settle();
    let new = t.snapshot(&[&src], &[]);
    t.cairn(["forget", id(&old)]).assert().success();
    let packs = pack_keys(&t);
    let stored_before: BTreeMap<[u8; 32], (u8, u16, Vec<u8>)> = all_entries(&t)
        .into_iter()
        .map(|e| (e.id, (e.compression, e.dictionary, e.stored)))
        .collect();
    t.cairn(["prune", "--max-unused", "0"]).assert().success();
    assert!(pack_keys(&t) != packs, "nothing was repacked");

    let after = all_entries(&t);
    let moved = after
        .iter()
        .filter(|e| e.compression == ZSTD_DICTIONARY)
        .count();
    assert!(moved > 0, "no dictionary-compressed blob is left");
    for e in &after {
        let (compression, dictionary, stored) = &stored_before[&e.id];
        assert_eq!((e.compression, e.dictionary), (*compression, *dictionary));
        assert!(&e.stored == stored, "a repacked blob's bytes changed");
    }
    assert_restores(&t, id(&new), &src);
    assert_verifies(&t);
}

// --- older formats ---------------------------------------------------------------

/// Copies the golden fixture `name` into `t`'s store, restores `snapshots`
/// of it (restored from `source`), takes a snapshot of a training set, and
/// checks: the format is `version` now, a dictionary was made, and the old
/// snapshots restore as before and verify.
fn upgrade_fixture(t: &TestEnv, name: &str, source: &str, snapshots: [&str; 2], version: u64) {
    copy_tree(&Path::new("tests/fixtures").join(name), &t.store);
    let old = format_version(t);
    let before = snapshots.map(|s| t.restore(s));
    let src = t.path("src");
    training_set(&src, 40);
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(
        format_version(t),
        version,
        "after a snapshot into format {old}"
    );
    assert_eq!(dictionaries(t), ["1"]);
    for (snapshot, want) in snapshots.iter().zip(&before) {
        let got = t.restore(snapshot);
        let source = Path::new(source);
        assert_trees_equal(&restored(want, source), &restored(&got, source));
    }
    assert_restores(t, id(&snap), &src);
    assert_verifies(t);
}

#[test]
fn a_format_4_store_becomes_format_8_on_its_first_snapshot_and_its_old_snapshots_still_restore() {
    upgrade_fixture(
        &TestEnv::new(),
        "v4",
        "/tmp/cairn-fixture-v4/docs",
        [
            "2ba9200089c943e21e39f35ecfcc0950cf65e28e57f1001b8613deb973d2cefe",
            "4a378364d948a0119e2cc15cf98438c5b67c22f84dc1cde02ed1f6c314008473",
        ],
        8,
    );
}

#[test]
fn a_format_5_store_becomes_format_9_on_its_first_snapshot_and_its_old_snapshots_still_restore() {
    let mut t = TestEnv::new();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    t.password_file = Some(manifest.join("tests/fixtures/v5-password"));
    upgrade_fixture(
        &t,
        "v5",
        "/tmp/cairn-fixture-v5/docs",
        [
            "b8523fad838535e6cb989ac8f1b6c794d4824ec14657916b148f83da658a395d",
            "ec3c0fda4b3c0315ad8e6621afde6decf7f7802861c3b0147001f84f1e8d93a7",
        ],
        9,
    );
}

// --- crashes ---------------------------------------------------------------------

#[test]
fn a_snapshot_killed_after_it_wrote_the_dictionary_leaves_none_visible_and_the_next_reuses_it() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    training_set(&src.join("a-small"), 41);
    // Files walked after the small ones (names are walked in byte order),
    // so that the run goes on well after it made the dictionary.
    fs::create_dir(src.join("z-big")).unwrap();
    for i in 0..3u64 {
        write_random_file(&src.join(format!("z-big/{i}")), 42 + i, 64 << 20);
    }
    let dictionary = t.store.join("dictionaries/1");
    let mut child = t
        .command(["--quiet", "snapshot"])
        .arg(&src)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while !dictionary.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the snapshot ended ({status}) before dictionaries/1 appeared");
        }
        thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the snapshot ended before it was killed");
    let object = fs::read(&dictionary).unwrap();
    dictionary_of(&object);
    assert!(t.snapshots(&[]).is_empty(), "a killed snapshot is listed");

    let more = t.path("more");
    word_files(&more, 300, 45, &GREEK, "");
    let before = pack_keys(&t);
    let snap = t.snapshot(&[&src, &more], &[]);
    assert_eq!(dictionaries(&t), ["1"]);
    assert_eq!(fs::read(&dictionary).unwrap(), object);
    let new = entries_since(&t, &before);
    let ids = file_ids(&more);
    let fresh: Vec<&Entry> = new.iter().filter(|e| ids.contains(&e.id)).collect();
    assert_eq!(fresh.len(), 300);
    assert!(
        fresh
            .iter()
            .all(|e| (e.compression, e.dictionary) == (ZSTD_DICTIONARY, 1))
    );
    let target = t.restore(id(&snap));
    for source in [&src, &more] {
        assert_trees_equal(source, &restored(&target, source));
    }
    assert_verifies(&t);
}

// A prune that must move blobs made with a lost dictionary stops, as one
// that decodes each blob did, rather than copy unreadable bytes; with the
// dictionary put back it runs, and nothing was lost meanwhile.
#[test]
fn a_prune_that_would_repack_blobs_of_a_lost_dictionary_stops_until_it_is_back() {
    let d = Damaged::new(41);
    let t = &d.t;
    let (big, big_snap) = &d.big;
    for entry in files_under(big) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with("1.txt") || name.ends_with("3.txt") || name.ends_with("5.txt") {
            fs::remove_file(entry).unwrap();
        }
    }
    let kept = id(&t.snapshot(&[big], &[])).to_owned();
    t.cairn(["forget", big_snap.as_str()]).assert().success();
    delete(t, "dictionaries/1");
    let before = pack_keys(t);
    let out = t.cairn(["prune", "--max-unused", "0"]).assert().code(4);
    let text = output_of(out.get_output());
    assert!(text.contains("dictionaries/1"), "{text}");
    assert_eq!(
        pack_keys(t),
        before,
        "a prune that failed changed the packs"
    );
    put(t, "dictionaries/1", &d.object);
    t.cairn(["prune", "--max-unused", "0"]).assert().success();
    assert_ne!(pack_keys(t), before, "nothing was repacked");
    assert_verifies(t);
    assert_restores(t, &kept, big);
}
