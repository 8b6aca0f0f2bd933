//! Verify: an untouched store checks out at every depth; each kind of
//! damage (a flipped byte in a data blob, a tree blob, a pack header or a
//! snapshot record; a truncated, deleted or swapped pack) is found at the
//! depth that can see it, exits 4 and names the pack or record, the
//! snapshots and the exact paths it costs, while everything else still
//! restores byte for byte; the ledger, subsets and budgets read what they
//! say; `--snapshot` restricts; `--sqlite` runs integrity_check.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

// --- the store under test ------------------------------------------------------

/// Files of the source tree, relative to it: (path, seed, size, in which
/// snapshots). Every file is below the chunker's 256 KiB minimum, so each
/// file is one data blob whose id is the BLAKE3 of its bytes.
const FILES: &[(&str, u64, u64, [bool; 3])] = &[
    ("docs/readme.txt", 1, 3_000, [true, true, true]),
    ("docs/shared.bin", 2, 100_000, [true, true, true]),
    ("docs/old.bin", 3, 50_000, [true, false, false]),
    ("media/m1.bin", 4, 40_000, [true, true, true]),
    // m2 and n3 have the same size, so their packs do too.
    ("media/m2.bin", 5, 80_000, [false, true, true]),
    ("notes/n3.bin", 6, 80_000, [false, false, true]),
];

/// The plain-file directories of the source (the database lives in `db/`).
const DIRS: &[&str] = &["docs", "media", "notes"];

/// One blob as a pack header describes it (pack.md).
#[derive(Debug, Clone)]
struct Entry {
    kind: u8,
    compression: u8,
    stored_len: u64,
    offset: u64,
    id: String,
}

/// A store with three snapshots of a small tree and a SQLite database:
///
/// - s1: docs/{readme.txt, shared.bin, old.bin}, media/m1.bin, db/app.db
/// - s2: old.bin gone, media/m2.bin added
/// - s3: notes/n3.bin added
///
/// which gives six packs: one data pack and one tree pack per snapshot.
/// The data packs are P1 (everything of s1), P2 (m2.bin) and P3 (n3.bin).
struct Fixture {
    t: TestEnv,
    /// The source tree (as it is at s3).
    src: PathBuf,
    /// Snapshot ids, oldest first.
    ids: [String; 3],
    /// Copies of the source as each snapshot took it.
    at: [PathBuf; 3],
    /// Every pack of the pristine store: id -> its header entries.
    packs: BTreeMap<String, Vec<Entry>>,
}

impl Fixture {
    fn new() -> Self {
        let t = TestEnv::with_store();
        let src = t.path("src");
        let mut ids = Vec::new();
        let mut at = Vec::new();
        for k in 0..3 {
            for (rel, seed, len, present) in FILES {
                let path = src.join(rel);
                if present[k] && !path.exists() {
                    fs::create_dir_all(path.parent().unwrap()).unwrap();
                    write_random_file(&path, *seed, *len);
                } else if !present[k] && path.exists() {
                    fs::remove_file(&path).unwrap();
                }
            }
            if k == 0 {
                make_database(&src.join("db/app.db"), 300);
            }
            let snap = t.snapshot(&[&src], &[]);
            ids.push(id(&snap).to_owned());
            let copy = t.path(format!("at-{k}"));
            copy_tree(&src, &copy);
            at.push(copy);
        }
        let packs = read_packs(&t.store);
        let f = Self {
            t,
            src,
            ids: ids.try_into().unwrap(),
            at: at.try_into().unwrap(),
            packs,
        };
        assert_eq!(f.packs.len(), 6, "one data and one tree pack per snapshot");
        let kinds: Vec<u8> = f.packs.values().map(|e| e[0].kind).collect();
        assert_eq!(kinds.iter().filter(|k| **k == 1).count(), 3, "{kinds:?}");
        let data: BTreeSet<String> = ["docs/shared.bin", "media/m2.bin", "notes/n3.bin"]
            .iter()
            .map(|rel| f.pack_of_file(rel).0)
            .collect();
        assert_eq!(data.len(), 3, "P1, P2 and P3 are distinct");
        f
    }

    /// Copies the pristine store to a new directory for one case.
    fn copy(&self, name: &str) -> PathBuf {
        let to = self.t.path(name);
        copy_tree(&self.t.store, &to);
        to
    }

    /// The absolute path of `rel` in the source, as verify names it.
    fn abs(&self, rel: &str) -> String {
        self.src.join(rel).to_str().unwrap().to_owned()
    }

    /// The blob id of the file `rel` (of whichever snapshot holds it).
    fn blob_of(&self, rel: &str) -> String {
        let copy = self.at.iter().find(|c| c.join(rel).exists()).unwrap();
        blake3::hash(&fs::read(copy.join(rel)).unwrap())
            .to_hex()
            .to_string()
    }

    /// The pack holding `blob` and its entry there.
    fn locate(&self, blob: &str) -> (String, Entry) {
        self.packs
            .iter()
            .find_map(|(pack, entries)| {
                let e = entries.iter().find(|e| e.id == blob)?;
                Some((pack.clone(), e.clone()))
            })
            .unwrap_or_else(|| panic!("no pack holds blob {blob}"))
    }

    /// The pack holding the data of the file `rel`, and its entry there.
    fn pack_of_file(&self, rel: &str) -> (String, Entry) {
        self.locate(&self.blob_of(rel))
    }

    /// The tree blob of s1's `docs` directory (the only tree listing old.bin).
    fn docs_tree_of_s1(&self) -> (String, Entry) {
        let mut found = Vec::new();
        for (pack, entries) in &self.packs {
            let bytes = fs::read(pack_path(&self.t.store, pack)).unwrap();
            for e in entries.iter().filter(|e| e.kind == 1) {
                let stored = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
                let raw = match e.compression {
                    0 => stored.to_vec(),
                    _ => zstd::stream::decode_all(stored).unwrap(),
                };
                // Names are bytes in the tree, in its binary form and in JSON.
                if raw.windows(7).any(|w| w == b"old.bin") {
                    found.push((pack.clone(), e.clone()));
                }
            }
        }
        assert_eq!(found.len(), 1, "{found:?}");
        found.pop().unwrap()
    }

    /// `cairn --store STORE --json verify ARGS`: exit code and report.
    fn verify(&self, store: &Path, args: &[&str]) -> Run {
        let mut cmd = self.t.command_without_store(["--store"]);
        cmd.arg(store).args(["--json", "verify"]).args(args);
        run(cmd)
    }

    /// Restores `paths` (relative to the source) of snapshot `k` from
    /// `store` and asserts they equal the source as s`k` took it.
    fn assert_restores(&self, store: &Path, k: usize, paths: &[&str]) {
        let target = self.t.fresh_dir("restore");
        let mut cmd = self.t.command_without_store(["--store"]);
        cmd.arg(store)
            .args(["restore", &self.ids[k], "--target"])
            .arg(&target);
        for rel in paths {
            cmd.arg("--include").arg(self.src.join(rel));
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "restoring {paths:?} of s{} failed: {}",
            k + 1,
            stderr_of(&out)
        );
        for rel in paths {
            assert_trees_equal(
                &self.at[k].join(rel),
                &restored(&target, &self.src.join(rel)),
            );
        }
    }

    /// Restores every plain-file directory of every snapshot.
    fn assert_all_restore(&self, store: &Path) {
        for k in 0..3 {
            self.assert_restores(store, k, &self.dirs_of(k));
        }
    }

    /// The plain-file directories snapshot `k` holds.
    fn dirs_of(&self, k: usize) -> Vec<&'static str> {
        DIRS.iter()
            .copied()
            .filter(|d| self.at[k].join(d).exists())
            .collect()
    }

    /// `snapshot -> paths` for a set of (snapshot index, source-relative paths).
    fn expect(&self, list: &[(usize, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        list.iter()
            .map(|(k, paths)| {
                let paths = paths.iter().map(|p| self.abs(p)).collect();
                (self.ids[*k].clone(), paths)
            })
            .collect()
    }

    /// Restores every plain-file directory of the snapshots `ks`.
    fn assert_all_restore_from(&self, store: &Path, ks: &[usize]) {
        for &k in ks {
            self.assert_restores(store, k, &self.dirs_of(k));
        }
    }

    /// After losing `media/m2.bin`'s pack: snapshot 0 restores whole, and
    /// each of `later` restores everything but `media/m2.bin`.
    fn assert_all_but_m2_restore(&self, store: &Path, later: &[usize]) {
        self.assert_all_restore_from(store, &[0]);
        for &k in later {
            let mut paths = vec!["docs", "media/m1.bin"];
            if k == 2 {
                paths.push("notes");
            }
            self.assert_restores(store, k, &paths);
        }
    }

    /// `verify ARGS` that must fail to run (exit 1); its stderr.
    fn verify_fails(&self, store: &Path, args: &[&str]) -> String {
        let out = self
            .t
            .command_without_store(["--store"])
            .arg(store)
            .arg("verify")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        stderr_of(&out)
    }
}

/// A small rollback-journal database with a table of `rows` rows and an index.
fn make_database(path: &Path, rows: usize) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t (v);",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..rows {
        tx.execute("INSERT INTO t (v) VALUES (?1)", [format!("value-{i:04}")])
            .unwrap();
    }
    tx.commit().unwrap();
}

/// `STORE/packs/XX/ID.pack`.
fn pack_path(store: &Path, id: &str) -> PathBuf {
    store.join(pack_key(id))
}

/// `packs/XX/ID.pack`, as verify names a pack.
fn pack_key(id: &str) -> String {
    format!("packs/{}/{id}.pack", &id[..2])
}

/// Every pack under `store/packs` with its header entries.
fn read_packs(store: &Path) -> BTreeMap<String, Vec<Entry>> {
    let mut out = BTreeMap::new();
    for dir in fs::read_dir(store.join("packs")).unwrap() {
        for file in fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            let id = name.strip_suffix(".pack").unwrap().to_owned();
            out.insert(id, header_of(&path));
        }
    }
    out
}

/// Decodes a pack's header (pack.md): trailer last 48 bytes, entries of 52.
fn header_of(path: &Path) -> Vec<Entry> {
    let bytes = fs::read(path).unwrap();
    let n = bytes.len();
    let trailer = &bytes[n - 48..];
    assert_eq!(&trailer[40..], b"CAIRNPAK", "{path:?}");
    let header_len = u32::from_le_bytes(trailer[..4].try_into().unwrap()) as usize;
    bytes[n - 48 - header_len..n - 48]
        .chunks_exact(52)
        .map(|e| Entry {
            kind: e[0],
            compression: e[1],
            stored_len: u64::from(u32::from_le_bytes(e[8..12].try_into().unwrap())),
            offset: u64::from_le_bytes(e[12..20].try_into().unwrap()),
            id: hex::encode(&e[20..52]),
        })
        .collect()
}

/// Where a pack's header starts (it ends where the 48-byte trailer begins).
fn header_start(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap();
    let n = bytes.len();
    let header_len = u32::from_le_bytes(bytes[n - 48..n - 44].try_into().unwrap()) as usize;
    (n - 48 - header_len) as u64
}

/// Inverts the byte at `offset` of `path` in place.
fn flip(path: &Path, offset: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= 0xff;
    file.write_all_at(&byte, offset).unwrap();
}

/// Removes `catalog.db` and its side files.
fn remove_catalog(store: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(store.join(format!("catalog.db{suffix}")));
    }
}

// --- running verify and reading its report ----------------------------------------

/// What one `verify --json` run gave.
struct Run {
    code: i32,
    report: Value,
    stderr: String,
}

impl Run {
    /// The field `name` as a number.
    fn n(&self, name: &str) -> u64 {
        self.report[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no number {name} in {}", self.report))
    }

    /// Asserts exit 0 and a clean report.
    fn assert_clean(&self) {
        assert_eq!(self.code, 0, "{}\n{}", self.report, self.stderr);
        assert_eq!(self.report["ok"], true, "{}", self.report);
        assert_eq!(self.damage().len(), 0, "{}", self.report);
    }

    /// Asserts exit 4 and `ok: false`.
    fn assert_damaged(&self) {
        assert_eq!(self.code, 4, "{}\n{}", self.report, self.stderr);
        assert_eq!(self.report["ok"], false, "{}", self.report);
        assert!(!self.damage().is_empty(), "{}", self.report);
    }

    fn damage(&self) -> &Vec<Value> {
        self.report["damage"].as_array().unwrap()
    }

    /// The one damage entry of `kind` with `key`.
    fn find(&self, kind: &str, key: &str) -> &Value {
        let hits: Vec<&Value> = self
            .damage()
            .iter()
            .filter(|d| d["kind"] == kind && d["key"] == key)
            .collect();
        assert_eq!(hits.len(), 1, "want one {kind} {key} in {:#}", self.report);
        hits[0]
    }

    /// Every snapshot any damage names, with the paths named for it.
    fn all_affected(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for d in self.damage() {
            for (snap, paths) in affected(d) {
                out.entry(snap).or_default().extend(paths);
            }
        }
        out
    }

    fn warnings(&self) -> Vec<String> {
        self.report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_owned())
            .collect()
    }
}

/// Runs a `verify --json` command; 0 and 4 must come with a report.
fn run(mut cmd: std::process::Command) -> Run {
    let out = cmd.output().unwrap();
    let code = out.status.code().unwrap();
    let stderr = stderr_of(&out);
    assert!(
        code == 0 || code == 4,
        "verify exited {code}: {stderr}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Run {
        code,
        report: parse_json(&out.stdout),
        stderr,
    }
}

/// A damage entry's `affected`: snapshot id -> paths (a directory may be
/// named with a trailing `/`; that is dropped here).
fn affected(damage: &Value) -> BTreeMap<String, BTreeSet<String>> {
    damage["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["more_paths"], 0, "{a}");
            assert!(a["time"].is_string(), "{a}");
            let paths = a["paths"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let p = p.as_str().unwrap();
                    p.strip_suffix('/').unwrap_or(p).to_owned()
                })
                .collect();
            (a["snapshot"].as_str().unwrap().to_owned(), paths)
        })
        .collect()
}

// --- an untouched store -------------------------------------------------------------

#[test]
fn an_untouched_store_verifies_clean_at_every_depth_and_verify_changes_nothing_but_the_ledger() {
    let f = Fixture::new();
    let store = &f.t.store;
    let before = (
        listing(&store.join("packs")),
        listing(&store.join("snapshots")),
    );

    let structure = f.verify(store, &[]);
    structure.assert_clean();
    assert_eq!(structure.n("snapshots"), 3);
    assert_eq!(structure.n("packs"), 6);
    assert_eq!(structure.n("packs_read"), 0);
    assert_eq!(structure.n("bytes_read"), 0);
    assert_eq!(structure.n("databases_checked"), 0);
    assert!(structure.n("trees") >= 6, "{}", structure.report);
    assert!(structure.warnings().is_empty(), "{}", structure.report);
    assert_eq!(structure.report["ledger"]["packs_never_verified"], 6);
    assert!(structure.report["ledger"]["oldest_verification_age_secs"].is_null());

    let data = f.verify(store, &["--read-data", "--sqlite"]);
    data.assert_clean();
    assert_eq!(data.n("packs_read"), 6);
    assert_eq!(data.n("packs_left_unread"), 0);
    assert_eq!(
        data.n("bytes_read"),
        f.t.packs_size(),
        "every byte of every pack"
    );
    // One database, unchanged in all three snapshots: checked once.
    assert_eq!(data.n("databases_checked"), 1);
    assert_eq!(data.report["ledger"]["packs_never_verified"], 0);
    assert!(data.report["duration_secs"].is_f64());
    assert!(data.report["read_secs"].is_f64());

    // --sqlite wrote its images to tmp/ and removed them.
    let again = f.verify(store, &[]);
    again.assert_clean();
    assert!(again.warnings().is_empty(), "{}", again.report);
    let after = (
        listing(&store.join("packs")),
        listing(&store.join("snapshots")),
    );
    assert_eq!(before, after, "verify must not touch packs or records");

    // The human form says the same.
    let out = f.t.cairn(["verify", "--read-data"]).assert().code(0);
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("ok: no damage found"), "{text}");
}

#[test]
fn leftovers_in_tmp_and_an_unreferenced_pack_are_warnings_not_damage() {
    no_core_dumps();
    let f = Fixture::new();
    let store = f.copy("leftovers");
    fs::write(store.join("tmp/leftover"), b"half a pack").unwrap();
    let extra = f.t.path("extra");
    fs::create_dir(&extra).unwrap();
    write_random_file(&extra.join("x.bin"), 99, 30_000);
    let mut crash = f.t.command_without_store(["--store"]);
    crash
        .arg(&store)
        .arg("snapshot")
        .arg(&extra)
        .env("CAIRN_CRASH_AT", "pack-published");
    let out = crash.output().unwrap();
    assert!(!out.status.success(), "the snapshot was to crash");
    assert_eq!(
        read_packs(&store).len(),
        7,
        "one pack published, not cataloged"
    );

    for args in [&[][..], &["--read-data"][..]] {
        let r = f.verify(&store, args);
        r.assert_clean();
        assert_eq!(r.n("snapshots"), 3);
        assert_eq!(
            r.n("packs"),
            6,
            "the unreferenced pack is not a cataloged one"
        );
        let warnings = r.warnings().join("\n");
        assert!(warnings.contains("not in the catalog"), "{warnings}");
        assert!(warnings.contains("tmp/"), "{warnings}");
    }
    let out =
        f.t.command_without_store(["--store"])
            .arg(&store)
            .arg("verify")
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr_of(&out).contains("warning"), "{}", stderr_of(&out));
}

/// A planted sparse pack whose trailer claims a 4 GiB header (a valid
/// length for the file, which takes no disk space): verify allocated the
/// 4 GiB to read it, and under a memory limit aborted (exit 134). A pack
/// holds at most 2^20 blobs, so a longer header is damage, read or not.
#[test]
fn a_planted_pack_claiming_a_huge_header_is_damage_not_an_allocation() {
    no_core_dumps();
    let f = Fixture::new();
    let store = f.copy("huge-header");
    let header_len: u32 = 52 * 82_595_524;
    let name = "ee".repeat(32);
    let path = store.join("packs/ee").join(format!("{name}.pack"));
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = fs::File::create(&path).unwrap();
    file.set_len(u64::from(header_len) + 48).unwrap();
    let mut trailer = header_len.to_le_bytes().to_vec();
    trailer.extend(1u32.to_le_bytes());
    trailer.extend([0u8; 32]);
    trailer.extend(b"CAIRNPAK");
    file.write_all_at(&trailer, u64::from(header_len)).unwrap();
    let mut cmd = f.t.command_without_store(["--store"]);
    cmd.arg(&store).arg("verify");
    let out = with_memory_limit(cmd, 1 << 20);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(
        said.contains(&format!("DAMAGED pack packs/ee/{name}")),
        "{said}"
    );
    assert!(said.contains("more blobs than any pack holds"), "{said}");
}

#[test]
fn a_lost_catalog_is_rebuilt_and_the_store_verifies_clean() {
    let f = Fixture::new();
    let store = f.copy("no-catalog");
    remove_catalog(&store);
    let r = f.verify(&store, &[]);
    r.assert_clean();
    assert!(r.stderr.contains("rebuilt"), "{}", r.stderr);
    assert_eq!(r.n("snapshots"), 3);
    assert_eq!(r.n("packs"), 6);
    let data = f.verify(&store, &["--read-data", "--sqlite"]);
    data.assert_clean();
    assert_eq!(data.n("packs_read"), 6);
    assert!(
        !data.stderr.contains("rebuilt"),
        "rebuilt once: {}",
        data.stderr
    );
}

// --- damaged blobs --------------------------------------------------------------------

#[test]
fn a_flipped_byte_in_a_data_blob_is_found_by_read_data_and_named_down_to_the_file() {
    let f = Fixture::new();
    let store = f.copy("data-blob");
    let (pack, entry) = f.pack_of_file("docs/shared.bin");
    flip(
        &pack_path(&store, &pack),
        entry.offset + entry.stored_len / 2,
    );

    // Headers still agree: the structure check cannot see it.
    f.verify(&store, &[]).assert_clean();

    let r = f.verify(&store, &["--read-data"]);
    r.assert_damaged();
    assert_eq!(r.damage().len(), 1, "{:#}", r.report);
    let d = r.find("pack", &pack_key(&pack));
    assert_eq!(d["blobs_lost"], 1, "{d}");
    assert!(!d["cause"].as_str().unwrap().is_empty());
    let shared: &[&str] = &["docs/shared.bin"];
    assert_eq!(
        affected(d),
        f.expect(&[(0, shared), (1, shared), (2, shared)])
    );

    // Everything else restores, from every snapshot.
    f.assert_restores(&store, 0, &["docs/readme.txt", "docs/old.bin", "media"]);
    f.assert_restores(&store, 1, &["docs/readme.txt", "media"]);
    f.assert_restores(&store, 2, &["docs/readme.txt", "media", "notes"]);
}

#[test]
fn a_flipped_byte_in_a_tree_blob_names_the_snapshot_and_the_directory() {
    let f = Fixture::new();
    let store = f.copy("tree-blob");
    let (pack, entry) = f.docs_tree_of_s1();
    assert_eq!(f.packs[&pack][0].kind, 1, "a tree pack");
    flip(
        &pack_path(&store, &pack),
        entry.offset + entry.stored_len / 2,
    );

    for args in [&[][..], &["--read-data"][..]] {
        let r = f.verify(&store, args);
        r.assert_damaged();
        let hit = r.all_affected();
        assert_eq!(
            hit.keys().collect::<Vec<_>>(),
            vec![&f.ids[0]],
            "only s1 has this tree: {:#}",
            r.report
        );
        // The path named is the directory or one above it.
        let docs = f.abs("docs");
        for p in &hit[&f.ids[0]] {
            assert!(
                docs == *p || docs.starts_with(&format!("{p}/")),
                "{p} is not at or above {docs}"
            );
        }
        if args.is_empty() {
            assert!(
                r.damage().iter().any(|d| d["key"] == entry.id),
                "the tree blob is named: {:#}",
                r.report
            );
        } else {
            assert!(
                r.damage().iter().any(|d| d["key"] == pack_key(&pack)),
                "the tree pack is named: {:#}",
                r.report
            );
        }
    }

    f.assert_restores(&store, 0, &["media"]);
    f.assert_all_restore_from(&store, &[1, 2]);
}

#[test]
fn a_damaged_tree_blob_is_counted_and_attributed_in_the_same_damage_entry() {
    // With --read-data a flipped tree blob shows up twice: as the tree that
    // does not read and as the pack whose content is wrong. Whichever entry
    // counts the lost blob must also name who needs it.
    let f = Fixture::new();
    let store = f.copy("tree-blob-consistent");
    let (pack, entry) = f.docs_tree_of_s1();
    flip(
        &pack_path(&store, &pack),
        entry.offset + entry.stored_len / 2,
    );
    let r = f.verify(&store, &["--read-data"]);
    r.assert_damaged();
    for d in r.damage() {
        let lost = d["blobs_lost"].as_u64().unwrap();
        let named = !d["affected"].as_array().unwrap().is_empty();
        assert_eq!(
            lost > 0,
            named,
            "an entry that loses blobs names the snapshots needing them, and only such an entry does: {:#}",
            r.report
        );
    }
    f.assert_restores(&store, 0, &["media"]);
    let lost: u64 = r
        .damage()
        .iter()
        .map(|d| d["blobs_lost"].as_u64().unwrap())
        .sum();
    assert_eq!(lost, 1, "one tree blob lost, counted once: {:#}", r.report);
}

// --- damaged packs ----------------------------------------------------------------------

#[test]
fn a_flipped_byte_in_a_pack_header_is_found_by_the_structure_check() {
    let f = Fixture::new();
    let store = f.copy("header");
    let (pack, _) = f.pack_of_file("media/m2.bin");
    let path = pack_path(&store, &pack);
    flip(&path, header_start(&path) + 30);

    let r = f.verify(&store, &[]);
    r.assert_damaged();
    assert_eq!(r.damage().len(), 1, "{:#}", r.report);
    let d = r.find("pack", &pack_key(&pack));
    assert!(d["cause"].as_str().unwrap().contains("header"), "{d}");
    let m2: &[&str] = &["media/m2.bin"];
    assert_eq!(affected(d), f.expect(&[(1, m2), (2, m2)]));

    f.assert_all_but_m2_restore(&store, &[1, 2]);
}

#[test]
fn a_damaged_header_over_intact_blobs_is_reported_but_loses_no_blob_once_the_data_is_read() {
    let f = Fixture::new();
    let store = f.copy("header-read");
    let (pack, _) = f.pack_of_file("media/m2.bin");
    let path = pack_path(&store, &pack);
    flip(&path, header_start(&path) + 30);

    let r = f.verify(&store, &["--read-data"]);
    r.assert_damaged();
    let d = r.find("pack", &pack_key(&pack));
    assert_eq!(
        d["blobs_lost"], 0,
        "the blob reads where the catalog says: {d}"
    );
    // ...and indeed every snapshot restores whole.
    f.assert_all_restore(&store);
}

#[test]
fn a_truncated_pack_is_named_with_the_paths_it_takes_down() {
    let f = Fixture::new();
    let store = f.copy("truncated");
    let (pack, _) = f.pack_of_file("notes/n3.bin");
    let path = pack_path(&store, &pack);
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let r = f.verify(&store, &[]);
    r.assert_damaged();
    assert_eq!(r.damage().len(), 1, "{:#}", r.report);
    let d = r.find("pack", &pack_key(&pack));
    assert_eq!(d["blobs_lost"], 1, "{d}");
    assert_eq!(affected(d), f.expect(&[(2, &["notes/n3.bin"])]));

    f.verify(&store, &["--read-data"]).assert_damaged();
    f.assert_all_restore_from(&store, &[0, 1]);
    f.assert_restores(&store, 2, &["docs", "media"]);
}

#[test]
fn a_deleted_pack_is_named_with_the_paths_it_takes_down() {
    let f = Fixture::new();
    let store = f.copy("deleted");
    let (pack, _) = f.pack_of_file("media/m2.bin");
    fs::remove_file(pack_path(&store, &pack)).unwrap();

    for args in [&[][..], &["--read-data"][..]] {
        let r = f.verify(&store, args);
        r.assert_damaged();
        assert_eq!(r.damage().len(), 1, "{:#}", r.report);
        let d = r.find("pack", &pack_key(&pack));
        assert!(d["cause"].as_str().unwrap().contains("missing"), "{d}");
        assert_eq!(d["blobs_lost"], 1, "{d}");
        let m2: &[&str] = &["media/m2.bin"];
        assert_eq!(affected(d), f.expect(&[(1, m2), (2, m2)]));
    }

    f.assert_all_but_m2_restore(&store, &[1, 2]);
}

#[test]
fn a_pack_replaced_by_another_pack_of_the_same_size_is_caught_by_its_header() {
    let f = Fixture::new();
    let store = f.copy("swapped");
    let (p2, _) = f.pack_of_file("media/m2.bin");
    let (p3, _) = f.pack_of_file("notes/n3.bin");
    let (path2, path3) = (pack_path(&store, &p2), pack_path(&store, &p3));
    assert_eq!(
        fs::metadata(&path2).unwrap().len(),
        fs::metadata(&path3).unwrap().len(),
        "same size, so only the header can tell"
    );
    fs::copy(&path3, &path2).unwrap();

    let r = f.verify(&store, &[]);
    r.assert_damaged();
    assert_eq!(r.damage().len(), 1, "{:#}", r.report);
    let d = r.find("pack", &pack_key(&p2));
    assert_eq!(d["blobs_lost"], 1, "{d}");
    let m2: &[&str] = &["media/m2.bin"];
    assert_eq!(affected(d), f.expect(&[(1, m2), (2, m2)]));

    let data = f.verify(&store, &["--read-data"]);
    data.assert_damaged();
    let d = data.find("pack", &pack_key(&p2));
    assert_eq!(affected(d), f.expect(&[(1, m2), (2, m2)]));

    f.assert_all_but_m2_restore(&store, &[1, 2]);
}

#[test]
fn a_pack_whose_header_does_not_decode_is_named_by_verify_after_a_catalog_rebuild() {
    // A rebuilt catalog knows the pack from its index object, whatever its
    // header says. verify must still name the damaged pack file: by its
    // header at the structure level (its blobs cannot be vouched for), by
    // its hash with --read-data, where every blob in it checks out and so
    // nothing is lost.
    let f = Fixture::new();
    let store = f.copy("header-no-catalog");
    let (pack, _) = f.pack_of_file("media/m2.bin");
    let path = pack_path(&store, &pack);
    flip(&path, header_start(&path) + 30);
    remove_catalog(&store);

    let first = f.verify(&store, &[]);
    first.assert_damaged();
    let m2: &[&str] = &["media/m2.bin"];
    assert_eq!(first.all_affected(), f.expect(&[(1, m2), (2, m2)]));

    let r = f.verify(&store, &["--read-data"]);
    r.assert_damaged();
    let key = pack_key(&pack);
    let named = r.damage().iter().any(|d| d["key"] == key.as_str())
        || r.warnings().iter().any(|w| w.contains(&key));
    assert!(named, "{key} is not named in {:#}", r.report);
    f.assert_all_restore_from(&store, &[0, 1, 2]);
}

// --- damaged records ---------------------------------------------------------------------

#[test]
fn a_flipped_byte_in_a_snapshot_record_is_found_whether_or_not_the_catalog_holds_a_good_copy() {
    let f = Fixture::new();
    for drop_catalog in [false, true] {
        let store = f.copy(if drop_catalog {
            "record-no-catalog"
        } else {
            "record"
        });
        let key = format!("snapshots/{}.json", f.ids[1]);
        let path = store.join(&key);
        let len = fs::metadata(&path).unwrap().len();
        flip(&path, len / 2);
        if drop_catalog {
            remove_catalog(&store);
        }

        let r = f.verify(&store, &[]);
        r.assert_damaged();
        if drop_catalog {
            assert!(r.stderr.contains("rebuilt"), "{}", r.stderr);
        }
        assert_eq!(r.damage().len(), 1, "{:#}", r.report);
        let d = r.find("record", &key);
        assert!(!d["cause"].as_str().unwrap().is_empty());
        assert_eq!(r.n("snapshots"), 2, "the two readable ones");

        f.verify(&store, &["--read-data"]).assert_damaged();
        f.assert_all_restore_from(&store, &[0, 2]);
    }
}

#[test]
fn a_record_cut_short_in_the_store_is_warned_about_by_every_listing_from_the_catalogs_copy() {
    let t = TestEnv::with_store();
    let (_, snap, path) = listed_snapshot(&t, 5);
    let key = format!("snapshots/{snap}.json");
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

    let out = t.cairn(["--json", "snapshots"]).assert().success();
    let err = stderr_of(out.get_output());
    assert!(err.contains(&key), "{err}");
    assert!(err.contains("not the record this host checked"), "{err}");
    // Still listed, from the copy that hashes to its id: this host can
    // restore it.
    let listed = parse_json(&out.get_output().stdout);
    assert!(listed.to_string().contains(&snap), "{listed}");
    t.cairn(["verify"]).assert().code(4);
}

// --- the ledger, subsets and budgets ------------------------------------------------------

#[test]
fn a_full_read_fills_the_ledger_and_max_age_then_reads_nothing() {
    let f = Fixture::new();
    let store = &f.t.store;
    let first = f.verify(store, &["--read-data"]);
    first.assert_clean();
    assert_eq!(first.n("packs_read"), 6);
    assert_eq!(first.report["ledger"]["packs_never_verified"], 0);
    let age = first.report["ledger"]["oldest_verification_age_secs"]
        .as_u64()
        .unwrap();
    assert!(age < 60, "{age}");

    for args in [
        &["--read-data", "--max-age", "30d"][..],
        &["--max-age", "30d"][..],
    ] {
        let r = f.verify(store, args);
        r.assert_clean();
        assert_eq!(r.n("packs_read"), 0, "{args:?}: {}", r.report);
        assert_eq!(r.n("bytes_read"), 0);
        assert_eq!(r.n("packs_left_unread"), 0);
        assert_eq!(r.report["ledger"]["packs_never_verified"], 0);
    }
    // Without --max-age everything is read again.
    assert_eq!(f.verify(store, &["--read-data"]).n("packs_read"), 6);
}

#[test]
fn a_zero_budget_reads_nothing_and_says_how_many_packs_were_left() {
    let f = Fixture::new();
    for args in [
        &["--budget", "0s"][..],
        &["--read-data", "--budget", "0s"][..],
    ] {
        let r = f.verify(&f.t.store, args);
        r.assert_clean();
        assert_eq!(r.n("packs_read"), 0, "{args:?}");
        assert_eq!(r.n("bytes_read"), 0);
        assert_eq!(r.n("packs_left_unread"), 6);
        assert_eq!(r.report["ledger"]["packs_never_verified"], 6);
    }
    // A budget that is not spent reads everything.
    let r = f.verify(&f.t.store, &["--budget", "10m"]);
    assert_eq!(r.n("packs_read"), 6);
    assert_eq!(r.n("packs_left_unread"), 0);
}

#[test]
fn the_slices_of_read_data_subset_read_every_pack_exactly_once() {
    let f = Fixture::new();
    for m in 1..=4u32 {
        let store = f.copy(&format!("slices-{m}"));
        let mut total = 0;
        for n in 1..=m {
            let r = f.verify(&store, &["--read-data-subset", &format!("{n}/{m}")]);
            r.assert_clean();
            total += r.n("packs_read");
        }
        assert_eq!(total, 6, "slices n/{m} together");
        // Each pack was read by some slice, so none is left unverified.
        let r = f.verify(&store, &[]);
        assert_eq!(r.report["ledger"]["packs_never_verified"], 0, "{m}");
    }
}

#[test]
fn a_percentage_subset_reads_about_that_share_of_the_packs() {
    let f = Fixture::new();
    let half = f.verify(&f.t.store, &["--read-data-subset", "50%"]);
    half.assert_clean();
    let read = half.n("packs_read");
    assert!((2..=4).contains(&read), "{read} of 6");
    assert_eq!(half.report["ledger"]["packs_never_verified"], 6 - read);
    assert_eq!(
        f.verify(&f.t.store, &["--read-data-subset", "100%"])
            .n("packs_read"),
        6
    );
    for bad in ["0/3", "4/3", "150%", "half"] {
        f.t.cairn(["verify", "--read-data-subset", bad])
            .assert()
            .code(2);
    }
}

#[test]
fn a_pack_found_damaged_leaves_the_ledger_and_is_read_again_by_the_next_max_age_run() {
    let f = Fixture::new();
    let store = f.copy("ledger-damage");
    f.verify(&store, &["--read-data"]).assert_clean();
    let (pack, entry) = f.pack_of_file("media/m2.bin");
    flip(&pack_path(&store, &pack), entry.offset + 10);

    // Verified a moment ago: --max-age does not read it again, yet.
    let skipped = f.verify(&store, &["--max-age", "30d"]);
    assert_eq!(skipped.n("packs_read"), 0);

    let full = f.verify(&store, &["--read-data"]);
    full.assert_damaged();
    assert_eq!(full.report["ledger"]["packs_never_verified"], 1);
    let again = f.verify(&store, &["--max-age", "30d"]);
    again.assert_damaged();
    assert_eq!(again.n("packs_read"), 1, "only the damaged pack");
    let d = again.find("pack", &pack_key(&pack));
    let m2: &[&str] = &["media/m2.bin"];
    assert_eq!(affected(d), f.expect(&[(1, m2), (2, m2)]));
    f.assert_all_but_m2_restore(&store, &[2]);
}

// --- --snapshot ----------------------------------------------------------------------------

#[test]
fn restricting_to_a_snapshot_ignores_damage_only_other_snapshots_need() {
    let f = Fixture::new();
    let store = f.copy("restrict");
    let (pack, entry) = f.pack_of_file("media/m2.bin");
    flip(
        &pack_path(&store, &pack),
        entry.offset + entry.stored_len / 2,
    );

    let s1 = f.verify(&store, &["--read-data", "--snapshot", &f.ids[0]]);
    s1.assert_clean();
    assert_eq!(s1.n("snapshots"), 1);

    let s2 = f.verify(&store, &["--read-data", "--snapshot", &f.ids[1][..8]]);
    s2.assert_damaged();
    assert_eq!(s2.n("snapshots"), 1);
    let d = s2.find("pack", &pack_key(&pack));
    assert_eq!(affected(d), f.expect(&[(1, &["media/m2.bin"])]));

    let both = f.verify(
        &store,
        &[
            "--read-data",
            "--snapshot",
            &f.ids[0],
            "--snapshot",
            "latest",
        ],
    );
    both.assert_damaged();
    assert_eq!(both.n("snapshots"), 2);
    assert_eq!(both.all_affected(), f.expect(&[(2, &["media/m2.bin"])]));

    f.assert_all_restore_from(&store, &[0]);
    f.assert_restores(&store, 1, &["docs", "media/m1.bin"]);

    let unknown = f.verify_fails(&store, &["--snapshot", "ffffffff"]);
    assert!(unknown.contains("ffffffff"), "{unknown}");
}

#[test]
fn restricting_to_a_snapshot_ignores_a_missing_pack_only_other_snapshots_need() {
    let f = Fixture::new();
    let store = f.copy("restrict-missing");
    let (pack, _) = f.pack_of_file("notes/n3.bin");
    fs::remove_file(pack_path(&store, &pack)).unwrap();

    let s3 = f.verify(&store, &["--snapshot", &f.ids[2]]);
    s3.assert_damaged();
    assert_eq!(s3.all_affected(), f.expect(&[(2, &["notes/n3.bin"])]));

    // s1 needs nothing from that pack: nothing of s1 is damaged.
    let s1 = f.verify(&store, &["--snapshot", &f.ids[0]]);
    s1.assert_clean();
    f.assert_all_restore_from(&store, &[0, 1]);
}

#[test]
fn restricting_to_a_snapshot_ignores_a_damaged_blob_it_does_not_need_in_a_pack_it_shares() {
    // P1 holds old.bin (s1 only) and shared.bin (all three). Damage to
    // old.bin's bytes costs s2 nothing.
    let f = Fixture::new();
    let store = f.copy("restrict-shared");
    let (pack, entry) = f.pack_of_file("docs/old.bin");
    assert_eq!(pack, f.pack_of_file("docs/shared.bin").0);
    flip(
        &pack_path(&store, &pack),
        entry.offset + entry.stored_len / 2,
    );

    let s1 = f.verify(&store, &["--read-data", "--snapshot", &f.ids[0]]);
    s1.assert_damaged();
    assert_eq!(s1.all_affected(), f.expect(&[(0, &["docs/old.bin"])]));

    let s2 = f.verify(&store, &["--read-data", "--snapshot", &f.ids[1]]);
    assert!(s2.all_affected().is_empty(), "{:#}", s2.report);
    s2.assert_clean();
    f.assert_all_restore_from(&store, &[1, 2]);
}

// --- --sqlite ------------------------------------------------------------------------------

/// A store with two snapshots of a directory holding a database whose index
/// is corrupt (SQLite opens it and copies it; integrity_check fails) and a
/// plain file; the second snapshot adds a file and holds the database
/// unchanged. Returns the env, the directory, the snapshot ids and a copy
/// of the directory as s2 took it.
fn store_with_a_corrupt_database() -> (TestEnv, PathBuf, [String; 2], PathBuf) {
    let t = TestEnv::with_store();
    let dir = t.path("app");
    let db = dir.join("bad.db");
    make_database(&db, 50);
    corrupt_index(&db);
    write_random_file(&dir.join("plain.bin"), 7, 20_000);
    let s1 = t.snapshot(&[&dir], &[]);
    let dbs = s1["summary"]["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), 1, "captured as a database: {s1}");
    assert_eq!(s1["summary"]["database_fallbacks"], 0, "{s1}");
    write_random_file(&dir.join("later.bin"), 8, 30_000);
    let s2 = t.snapshot(&[&dir], &[]);
    let copy = t.path("app-at-s2");
    copy_tree(&dir, &copy);
    let ids = [id(&s1).to_owned(), id(&s2).to_owned()];
    (t, dir, ids, copy)
}

/// Rewrites one key in the leaf page of index `t_v` so the index no longer
/// matches the table; SQLite still opens and reads the file.
fn corrupt_index(db: &Path) {
    let (root, page_size): (i64, i64) = {
        let conn = rusqlite::Connection::open(db).unwrap();
        let root = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 't_v'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let size = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        (root, size)
    };
    let mut bytes = fs::read(db).unwrap();
    // 50 short keys: the index is its root page alone.
    let start = ((root - 1) * page_size) as usize;
    let at = bytes[start..start + page_size as usize]
        .windows(10)
        .position(|w| w == b"value-0025")
        .unwrap();
    bytes[start + at + 5] = b'X';
    fs::write(db, &bytes).unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_ne!(
        check, "ok",
        "the corruption must be one integrity_check sees"
    );
}

/// `cairn --json verify ARGS` in `t`'s store.
fn verify_in(t: &TestEnv, args: &[&str]) -> Run {
    run(t.command(["--json", "verify"].iter().chain(args)))
}

#[test]
fn sqlite_a_database_that_fails_integrity_check_is_reported_with_its_snapshot_and_path() {
    let (t, dir, ids, copy) = store_with_a_corrupt_database();
    // Its blobs are intact: only --sqlite can tell.
    verify_in(&t, &["--read-data"]).assert_clean();

    let r = verify_in(&t, &["--sqlite"]);
    r.assert_damaged();
    assert_eq!(
        r.n("databases_checked"),
        1,
        "one image, held unchanged twice"
    );
    assert_eq!(r.damage().len(), 1, "{:#}", r.report);
    let path = dir.join("bad.db").to_str().unwrap().to_owned();
    let d = r.find("database", &path);
    assert!(
        d["cause"].as_str().unwrap().contains("integrity_check"),
        "{d}"
    );
    let hit = affected(d);
    assert!(hit.get(&ids[0]).is_some_and(|p| p.contains(&path)), "{d}");

    // The plain files restore byte for byte.
    let target = t.fresh_dir("restore");
    t.cairn(["restore", &ids[1], "--target"])
        .arg(&target)
        .arg("--include")
        .arg(dir.join("plain.bin"))
        .arg("--include")
        .arg(dir.join("later.bin"))
        .assert()
        .success();
    for name in ["plain.bin", "later.bin"] {
        assert_trees_equal(&copy.join(name), &restored(&target, &dir.join(name)));
    }
}

#[test]
fn sqlite_a_damaged_database_is_named_in_every_snapshot_that_holds_it() {
    // Checking an image once is fine, but every snapshot holding it holds
    // the damage, as every snapshot needing a lost blob is named.
    let (t, dir, ids, _) = store_with_a_corrupt_database();
    let r = verify_in(&t, &["--sqlite"]);
    r.assert_damaged();
    let path = dir.join("bad.db").to_str().unwrap().to_owned();
    let want: BTreeMap<String, BTreeSet<String>> = ids
        .iter()
        .map(|id| (id.clone(), BTreeSet::from([path.clone()])))
        .collect();
    assert_eq!(r.all_affected(), want, "{:#}", r.report);
}

/// A pack a prune deleted and a snapshot rerun after a kill wrote again
/// (same bytes, same name) is missing when verify's pass looks and there
/// when it checks what it found: on a local store too, where a prune
/// beside snapshots runs shared, in two phases. Was: reported as damage
/// (exit 4) on a store that was whole, once in a torture run.
#[test]
fn a_pack_missing_during_the_pass_and_there_again_after_it_is_no_damage_locally() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("a.bin"), &random_bytes(5, 200_000));
    settle();
    t.snapshot(&[&src], &[]);
    let pack = read_packs(&t.store).into_keys().next().unwrap();
    let path = pack_path(&t.store, &pack);
    let aside = t.path("aside.pack");
    // With its data read, the pack's cause reads "missing; <why>": it was
    // not taken for missing, and the recheck never ran.
    for args in [&["verify"][..], &["verify", "--read-data"]] {
        fs::rename(&path, &aside).unwrap();
        let mut verify = common::stall::Stalled::spawn(&t, t.command(args), "verify-pass-done");
        verify.wait_for_stall();
        fs::rename(&aside, &path).unwrap();
        let (status, stdout, stderr) = verify.finish();
        let out = format!("{}{stderr}", String::from_utf8_lossy(&stdout));
        assert_eq!(status.code(), Some(0), "{args:?}: {out}");
        assert!(out.contains("written again by a rerun snapshot"), "{out}");
    }
}

/// A store of one snapshot per file of `files`; the packs each added,
/// largest (its data pack) first.
fn one_snapshot_per_file(t: &TestEnv, src: &Path, files: &[&str]) -> Vec<Vec<PathBuf>> {
    let mut packs = Vec::new();
    for (seed, name) in files.iter().enumerate() {
        let before: BTreeSet<String> = read_packs(&t.store).into_keys().collect();
        write_file(&src.join(name), &random_bytes(seed as u64 + 5, 200_000));
        settle();
        t.snapshot(&[src], &[]);
        let after: BTreeSet<String> = read_packs(&t.store).into_keys().collect();
        let mut new: Vec<PathBuf> = (after.difference(&before))
            .map(|id| pack_path(&t.store, id))
            .collect();
        // The data pack first: the largest.
        new.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
        packs.push(new);
    }
    packs
}

/// Runs `verify` while `packs[0]` and `packs[1]` take turns being missing
/// during each of its passes (as if prunes removed them meanwhile, every
/// time), then puts both back; its exit code and output, and its passes.
fn verify_outrun_by_prunes(t: &TestEnv, packs: [&Path; 2]) -> (Option<i32>, String, usize) {
    let aside = |path: &Path| path.with_extension("aside");
    fs::rename(packs[0], aside(packs[0])).unwrap();
    let mut verify = common::stall::Stalled::spawn(t, t.command(["verify"]), "verify-pass-done");
    let mut passes = 0;
    while verify.next_stall() {
        // The pack missing during this pass comes back; the other goes.
        let (back, away) = (packs[passes % 2], packs[(passes + 1) % 2]);
        fs::rename(aside(back), back).unwrap();
        fs::rename(away, aside(away)).unwrap();
        passes += 1;
        verify.go_on();
    }
    let (status, stdout, stderr) = verify.finish();
    for pack in packs {
        if !pack.exists() {
            fs::rename(aside(pack), pack).unwrap();
        }
    }
    let out = format!("{}{stderr}", String::from_utf8_lossy(&stdout));
    (status.code(), out, passes)
}

/// Prunes that keep removing packs verify is checking, through every pass
/// it runs: the last pass's findings were reported as damage (exit 4) on a
/// store that was whole, as once in a torture run. It cannot settle, and
/// says so (exit 1).
#[test]
fn a_verify_that_prunes_keep_outrunning_says_it_could_not_settle_not_damage() {
    let t = TestEnv::with_store();
    let packs = one_snapshot_per_file(&t, &t.path("src"), &["a.bin", "b.bin"]);
    let (code, out, passes) = verify_outrun_by_prunes(&t, [&packs[0][0], &packs[1][0]]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("kept changing while verify ran"), "{out}");
    assert!(!out.contains("DAMAGED"), "{out}");
    assert_eq!(passes, 9, "{out}");
    t.cairn(["verify", "--read-data"]).assert().success();
}

/// Damage that has nothing to do with the packs prunes kept removing
/// stands (exit 4), without them.
#[test]
fn damage_found_beside_packs_prunes_keep_removing_is_still_damage() {
    let t = TestEnv::with_store();
    let packs = one_snapshot_per_file(&t, &t.path("src"), &["a.bin", "b.bin", "c.bin"]);
    let damaged = &packs[2][0];
    let len = fs::metadata(damaged).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(damaged)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let (code, out, _) = verify_outrun_by_prunes(&t, [&packs[0][0], &packs[1][0]]);
    assert_eq!(code, Some(4), "{out}");
    let name = |p: &PathBuf| p.file_stem().unwrap().to_string_lossy().into_owned();
    assert!(out.contains(&name(damaged)), "{out}");
    assert!(out.contains("left out of the damage reported"), "{out}");
    assert_eq!(out.matches("DAMAGED pack").count(), 1, "{out}");
}

/// A snapshot of `src` after writing `name` there, 200 kB of
/// `random_bytes(seed, _)` (one chunk).
fn snapshot_with(t: &TestEnv, src: &Path, name: &str, seed: u64) -> Value {
    write_file(&src.join(name), &random_bytes(seed, 200_000));
    settle();
    t.snapshot(&[src], &[])
}

/// `verify`, started and stopped at stall point `point`.
fn stalled_verify(t: &TestEnv, point: &str) -> common::stall::Stalled {
    let mut verify = common::stall::Stalled::spawn(t, t.command(["verify"]), point);
    verify.wait_for_stall();
    verify
}

/// Lets a stalled `verify` run to its end: its exit code, and its stdout
/// and stderr as one text.
fn finished(verify: common::stall::Stalled) -> (Option<i32>, String) {
    let (status, stdout, stderr) = verify.finish();
    let out = format!("{}{stderr}", String::from_utf8_lossy(&stdout));
    (status.code(), out)
}

/// Deletes from `catalog` the row of the one chunk of the 200 kB file of
/// `random_bytes(seed, _)`: a blob lost from the catalog.
fn lose_row_of_chunk(catalog: &Path, seed: u64) {
    let conn = rusqlite::Connection::open(catalog).unwrap();
    let lost = blake3::hash(&random_bytes(seed, 200_000));
    let gone = conn
        .execute("DELETE FROM blobs WHERE id = ?1", [&lost.as_bytes()[..]])
        .unwrap();
    assert_eq!(gone, 1, "the file is one chunk");
}

/// Asserts `verify` reported a blob lost from the catalog at once: exit 4,
/// without checking anything again.
fn assert_lost_at_once(verify: common::stall::Stalled) {
    let (code, out) = finished(verify);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("not in the catalog"), "{out}");
    assert!(!out.contains("checked again"), "{out}");
}

/// A snapshot verify has listed is forgotten and pruned (shared, in two
/// phases, beside verify) before its walk reaches it: its trees have left
/// the catalog when the walk looks for them. Was: reported as blobs
/// missing from the catalog (exit 4) on a store that lost nothing.
#[test]
fn a_snapshot_forgotten_and_pruned_while_verify_walks_is_no_damage() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let first = snapshot_with(&t, &src, "a.bin", 5);
    fs::remove_file(src.join("a.bin")).unwrap();
    snapshot_with(&t, &src, "b.bin", 6);
    let verify = stalled_verify(&t, "verify-listed");
    t.cairn(["forget", id(&first)]).assert().success();
    // The first prune condemns the forgotten snapshot's packs, the second
    // deletes them (and drops their rows from the catalog).
    for _ in 0..2 {
        t.cairn(["prune", "--grace", "0s"]).assert().success();
    }
    let (code, out) = finished(verify);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("forgotten meanwhile"), "{out}");
    assert!(!out.contains("read when tried again"), "{out}");
    t.cairn(["verify", "--read-data"]).assert().success();
}

/// A blob lost from the catalog that a forgotten snapshot and a kept one
/// both need is damage at once, whichever snapshot's walk met it first
/// (the oldest, the forgotten one, here): not a change to check again.
#[test]
fn a_blob_lost_that_a_kept_snapshot_needs_too_is_damage_though_another_was_forgotten() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let first = snapshot_with(&t, &src, "a.bin", 5);
    snapshot_with(&t, &src, "b.bin", 6);
    let verify = stalled_verify(&t, "verify-listed");
    t.cairn(["forget", id(&first)]).assert().success();
    lose_row_of_chunk(&t.store.join("catalog.db"), 5);
    assert_lost_at_once(verify);
}

/// A tree whose pack is away while verify's walk reads it and back before
/// the packs are checked (as when a prune moves the tree to a new pack and
/// deletes the old one under the read): the pack checks find nothing, and
/// the tree reads when tried again. Was: "tree does not read" (exit 4).
#[test]
fn a_tree_unreadable_during_the_walk_that_reads_after_it_is_no_damage() {
    let t = TestEnv::with_store();
    let packs = one_snapshot_per_file(&t, &t.path("src"), &["a.bin"]);
    // Largest first: the last is the tree pack.
    let tree_pack = packs[0].last().unwrap();
    let aside = tree_pack.with_extension("aside");
    fs::rename(tree_pack, &aside).unwrap();
    let verify = stalled_verify(&t, "verify-walked");
    fs::rename(&aside, tree_pack).unwrap();
    let (code, out) = finished(verify);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("read when tried again"), "{out}");
    assert!(!out.contains("forgotten meanwhile"), "{out}");
}

/// A snapshot retagged by another host while verify runs (on a shared
/// store: a local one's `tag` waits for verify) has a new record of the
/// same tree: it is not forgotten, and a blob it lost is damage at once.
#[test]
fn a_blob_lost_by_a_snapshot_retagged_while_verify_runs_is_damage_at_once() {
    let t = TestEnv::with_s3();
    let src = t.path("src");
    let only = snapshot_with(&t, &src, "a.bin", 5);
    let verify = stalled_verify(&t, "verify-listed");
    (t.second_host())
        .cairn(["tag", id(&only), "--add", "kept"])
        .assert()
        .success();
    let mut catalogs = files_under(&t.cache);
    catalogs.retain(|p| p.file_name().is_some_and(|n| n == "catalog.db"));
    lose_row_of_chunk(&catalogs[0], 5);
    assert_lost_at_once(verify);
}

/// A tree whose read fails for another cause than its pack being gone (a
/// pack cut short during the walk, whole again before the packs are
/// checked) is the tree's damage, though it reads when tried again: only
/// a pack gone under the read is what a prune does.
#[test]
fn a_tree_that_fails_to_read_for_a_cause_of_its_own_is_damage_though_it_reads_again() {
    let t = TestEnv::with_store();
    let packs = one_snapshot_per_file(&t, &t.path("src"), &["a.bin"]);
    let tree_pack = packs[0].last().unwrap();
    let whole = fs::read(tree_pack).unwrap();
    OpenOptions::new()
        .write(true)
        .open(tree_pack)
        .unwrap()
        .set_len(1)
        .unwrap();
    let verify = stalled_verify(&t, "verify-walked");
    fs::write(tree_pack, &whole).unwrap();
    let (code, out) = finished(verify);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("tree does not read"), "{out}");
    assert!(!out.contains("checked again"), "{out}");
}

/// A pack file the catalog never had, whose header does not read, is
/// damage found at once: the recheck took it for a pack a prune removed
/// meanwhile (no longer cataloged) and ran every pass, then said the store
/// kept changing (exit 1).
#[test]
fn a_damaged_pack_the_catalog_never_had_is_damage_not_a_store_that_kept_changing() {
    let t = TestEnv::with_store();
    one_snapshot_per_file(&t, &t.path("src"), &["a.bin"]);
    let stray = pack_path(&t.store, &"ab".repeat(32));
    fs::create_dir_all(stray.parent().unwrap()).unwrap();
    fs::write(&stray, random_bytes(9, 4096)).unwrap();
    let out = t.cairn(["verify"]).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains(&"ab".repeat(32)), "{text}");
    assert!(!text.contains("removed by a prune"), "{text}");
}

// Index objects lost behind cairn's back: the next open forgets the packs
// they named, though the packs are whole. verify called the blobs lost and
// the packs leftovers of interrupted runs for `cairn prune` to remove;
// `repair catalog` is what brings them back.
#[test]
fn lost_index_objects_are_named_as_such_and_repair_catalog_is_the_advice() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir_all(&src).unwrap();
    write_random_file(&src.join("f1"), 1, 150_000);
    write_random_file(&src.join("f2"), 2, 150_000);
    t.snapshot(&[&src], &[]);
    for index in files_under(&t.store.join("index")) {
        fs::remove_file(index).unwrap();
    }
    write_random_file(&src.join("f1"), 3, 150_000);
    t.snapshot(&[&src], &[]);
    let out = t.cairn(["verify"]).assert().code(4);
    let err = stderr_of(out.get_output());
    assert!(err.contains("`cairn repair catalog`"), "{err}");
    assert!(!err.contains("`cairn prune` removes them"), "{err}");
    t.cairn(["repair", "catalog"]).assert().success();
    t.cairn(["verify", "--read-data"]).assert().success();
}

#[test]
fn a_leftover_pack_deleted_while_verify_reads_headers_is_not_damage() {
    // verify listed packs/, a prune (of another host, on a shared store)
    // deleted a pack an interrupted run had left, and reading its header
    // then failed: exit 4, "DAMAGED pack ... not in the catalog and its
    // header does not read: 404" (seen in the S3 torture test).
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    t.snapshot(&[&src], &[]);
    let before = packs_by_size(&t.store);
    write_file(&src.join("extra.bin"), &random_bytes(3, 100_000));
    t.cairn(["snapshot"])
        .arg(&src)
        .env("CAIRN_CRASH_AT", "pack-published")
        .assert()
        .failure();
    let left: Vec<PathBuf> = packs_by_size(&t.store)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    let verify = common::stall::spawn_stalled(t.command(["verify"]), "verify-packs-listed", 3);
    fs::remove_file(&left[0]).unwrap();
    let out = verify.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("DAMAGED"), "{stdout}");
}

#[test]
fn a_broken_symlink_in_packs_is_damage_not_a_pack_deleted_meanwhile() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    t.snapshot(&[&src], &[]);
    let name = format!("{}.pack", "ab".repeat(32));
    let dir = t.store.join("packs/ab");
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(t.path("nowhere"), dir.join(&name)).unwrap();
    let out = t.cairn(["verify"]).assert().code(4);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains(&name), "{stdout}");
}
