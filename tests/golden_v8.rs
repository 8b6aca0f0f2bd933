//! The format-8 store in tests/fixtures/v8 (made once by make-v8.sh) must
//! be readable by every future cairn (#21). Its trees are in the binary
//! form (store-format/tree.md, "Binary form") and hold every kind of entry
//! and every flag that form has: files (empty, sparse, with two names,
//! with an xattr, dated before 1970, with and without a ctime), databases
//! (one with its `-wal` recorded), nested and empty directories, a
//! symlink and owner names. One test reads it with an independent reader
//! written from store-format/ alone (pack.md, index.md, tree.md,
//! snapshot.md; the `blake3`, `zstd` and `hex` crates used directly,
//! nothing of cairn's own code), decoding the binary trees by hand, so the
//! specification is proven complete; the others restore and verify it
//! with the binary and take a new snapshot into it. All compare with the
//! content make-v8.sh wrote, made again here from the same seeds.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::meta::{data_map, xattrs};
use common::spec::{Lcg, check_index_objects, records, rows, rows_of, u32_at};
use common::*;
use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/v8";
const SOURCE: &str = "/tmp/cairn-fixture-v8/docs";
const FIRST: &str = "dff7158365fa2d8e2f5e17350907a4d08e5edb323e8231148a73ea2e8c8e618b";
const SECOND: &str = "04b7ae51ed31a80f438433c6b00a4e691702c579c5f3b9c3e2ce9d1157aff063";

/// The mtimes make-v8.sh gave: every source on the first night, what
/// changed on the second, and `old.txt` (1969-07-20 20:17:40.5).
const NIGHT_MTIMES: [(i64, u32); 2] = [(1_796_432_523, 123_456_789), (1_796_518_923, 0)];
const BEFORE_1970: (i64, u32) = (-14_182_940, 500_000_000);

// --- the content make-v8.sh wrote -------------------------------------------------

/// make-v8.sh's files, from its generator (common::spec).
impl Lcg {
    /// File `i` (`text/dI/fJ.txt`) of 1024 to 2048 bytes.
    fn note(&mut self, files: &mut Files, i: usize, marker: &str) {
        let size = 1024 + (self.next() % 1025) as usize;
        let path = PathBuf::from(format!("text/d{}/f{}.txt", i / 10, i % 10));
        files.insert(path, self.text_bytes(marker, size));
    }
}

/// File contents by path under the source directory (the databases aside).
type Files = BTreeMap<PathBuf, Vec<u8>>;

/// The files of the first night, and those of the second.
fn nights() -> [Files; 2] {
    let mut first = Files::new();
    let mut rng = Lcg(80);
    for i in 0..30 {
        rng.note(&mut first, i, &format!("golden v8 file {i}: "));
    }
    let deep = Lcg(81).text_bytes("deep down: ", 3000);
    let linked = Lcg(82).text_bytes("one file, two names: ", 1500);
    for (path, content) in [
        ("nested/a/b/c/deep.txt", deep),
        ("empty", Vec::new()),
        ("old.txt", b"written before 1970\n".to_vec()),
        ("links/first", linked.clone()),
        ("links/second", linked),
        ("tagged.txt", b"tagged\n".to_vec()),
        ("sparse.img", sparse()),
    ] {
        first.insert(PathBuf::from(path), content);
    }
    let mut second = first.clone();
    let mut rng = Lcg(86);
    for i in 0..5 {
        rng.note(
            &mut second,
            i,
            &format!("golden v8 file {i}, second night: "),
        );
    }
    rng.note(&mut second, 30, "golden v8 file 30: ");
    second.insert(PathBuf::from("tagged.txt"), b"tagged again\n".to_vec());
    [first, second]
}

/// `sparse.img`: 320 KiB, 4 KiB of text at 0 and at 132 KiB, zeros
/// between and after.
fn sparse() -> Vec<u8> {
    let mut rng = Lcg(83);
    let mut out = rng.text_bytes("head: ", 4096);
    out.resize(132 << 10, 0);
    out.extend(rng.text_bytes("middle: ", 4096));
    out.resize(320 << 10, 0);
    out
}

/// The holes of `sparse.img`, as (offset, length).
const SPARSE_HOLES: [(u64, u64); 2] = [(4 << 10, 128 << 10), (136 << 10, 184 << 10)];

/// The symlink, and its target.
const SYMLINK: (&str, &str) = ("links/latest", "../text/d0/f0.txt");

/// The directory make-v8.sh left empty.
const EMPTY_DIR: &str = "nested/empty";

/// The databases: name, seed of their rows, rows on each night.
const DATABASES: [(&str, u64, [usize; 2]); 2] =
    [("app.db", 84, [300, 400]), ("wal.db", 85, [200, 260])];

/// What a snapshot holds below the source directory, by path.
#[derive(Debug, Default)]
struct Listing {
    files: Files,
    symlinks: BTreeMap<PathBuf, Vec<u8>>,
    dirs: BTreeSet<PathBuf>,
}

/// `got` holds exactly what make-v8.sh wrote on `night` (0 or 1); the
/// databases are checked by their rows, not their bytes (they are images
/// made through SQLite, tree.md), in the new directory `scratch`.
fn assert_night(mut got: Listing, night: usize, scratch: &Path) {
    fs::create_dir(scratch).unwrap();
    for (name, seed, counts) in DATABASES {
        let image = got.files.remove(Path::new(name)).expect(name);
        let db = scratch.join(name);
        fs::write(&db, image).unwrap();
        assert_eq!(rows_of(&db), rows(seed, counts[night]), "{name}");
    }
    let want = &nights()[night];
    assert_eq!(
        got.files.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (path, content) in want {
        assert!(got.files[path] == *content, "{path:?} differs");
    }
    let (link, target) = SYMLINK;
    let symlinks = BTreeMap::from([(PathBuf::from(link), target.as_bytes().to_vec())]);
    assert_eq!(got.symlinks, symlinks);
    assert_eq!(got.dirs, dirs_of(want));
}

/// The directories of `files` and the empty one.
fn dirs_of(files: &Files) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::from([PathBuf::from(EMPTY_DIR)]);
    for path in files.keys() {
        let parents = path.ancestors().skip(1);
        dirs.extend(
            parents
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_owned),
        );
    }
    dirs
}

// --- an independent reader, from store-format/ alone ------------------------------

/// Every blob of the fixture by id (hex), each decoded and checked as
/// pack.md says, and the ids of the tree blobs.
#[derive(Default)]
struct Blobs {
    by_id: HashMap<String, Vec<u8>>,
    trees: BTreeSet<String>,
}

impl Blobs {
    fn read(store: &Path) -> Self {
        let mut blobs = Self::default();
        for path in files_under(&store.join("packs")) {
            blobs.read_pack(&path);
        }
        blobs
    }

    /// pack.md, "Validation", steps 1 to 8.
    fn read_pack(&mut self, path: &Path) {
        common::spec::read_pack(path, |entry, stored| self.read_blob(entry, stored));
    }

    /// A blob of compression 0 or 1: the fixture trained no dictionary.
    fn read_blob(&mut self, entry: &[u8], stored: &[u8]) {
        let (kind, compression) = (entry[0], entry[1]);
        let raw_len = u32_at(entry, 4) as usize;
        assert_eq!(u16::from_le_bytes([entry[2], entry[3]]), 0, "dictionary");
        let raw = match compression {
            0 => stored.to_vec(),
            1 => zstd::bulk::Decompressor::new()
                .unwrap()
                .decompress(stored, raw_len)
                .unwrap(),
            other => panic!("compression {other}"),
        };
        assert_eq!(raw.len(), raw_len);
        let id = hex::encode(&entry[20..52]);
        assert_eq!(blake3::hash(&raw).to_hex().as_str(), id, "blob id");
        match kind {
            0 => {}
            1 => {
                self.trees.insert(id.clone());
            }
            other => panic!("kind {other}"),
        }
        self.by_id.insert(id, raw);
    }

    /// The entries of the tree `id`, which must be a tree blob.
    fn tree(&self, id: &str) -> Vec<Entry> {
        assert!(self.trees.contains(id), "{id} is not a tree blob");
        decode_tree(&self.by_id[id])
    }

    /// Every entry below the directory `path` (from the root `/`) of the
    /// tree `root`, by path below it, each directory before its entries.
    fn entries(&self, root: &str, path: &Path) -> Vec<(PathBuf, Entry)> {
        let mut tree = root.to_owned();
        for name in path.iter().skip(1) {
            let entry = self
                .tree(&tree)
                .into_iter()
                .find(|e| e.name == name.as_bytes());
            let Some(Entry {
                content: Content::Dir(id),
                ..
            }) = entry
            else {
                panic!("{name:?} is no directory in tree {tree}");
            };
            tree = id;
        }
        let mut out = Vec::new();
        self.walk(&tree, Path::new(""), &mut out);
        out
    }

    fn walk(&self, tree: &str, at: &Path, out: &mut Vec<(PathBuf, Entry)>) {
        for entry in self.tree(tree) {
            let path = at.join(OsStr::from_bytes(&entry.name));
            let subtree = match &entry.content {
                Content::Dir(id) => Some(id.clone()),
                _ => None,
            };
            out.push((path.clone(), entry));
            if let Some(id) = subtree {
                self.walk(&id, &path, out);
            }
        }
    }

    /// The content of `entries`: files reassembled from their chunks and
    /// holes (tree.md, "Holes").
    fn listing(&self, entries: &[(PathBuf, Entry)]) -> Listing {
        let mut listing = Listing::default();
        for (path, entry) in entries {
            let path = path.clone();
            match &entry.content {
                Content::File(file) => {
                    listing.files.insert(path, self.content(file, entry.size));
                }
                Content::Dir(_) => {
                    listing.dirs.insert(path);
                }
                Content::Symlink(target) => {
                    listing.symlinks.insert(path, target.clone());
                }
            }
        }
        listing
    }

    /// The chunks in order, with zeros for the holes between and after.
    fn content(&self, file: &File, size: u64) -> Vec<u8> {
        let data: Vec<u8> = file
            .chunks
            .iter()
            .flat_map(|c| self.by_id[c].clone())
            .collect();
        let mut data = data.as_slice();
        let mut out = Vec::new();
        for &(offset, len) in &file.holes {
            let (before, rest) = data.split_at(offset as usize - out.len());
            out.extend_from_slice(before);
            out.resize((offset + len) as usize, 0);
            data = rest;
        }
        out.extend_from_slice(data);
        assert_eq!(
            out.len() as u64,
            size,
            "size is that of the chunks and holes"
        );
        out
    }
}

// --- the binary form of a tree, decoded by hand (tree.md, "Binary form") ----------

const MAGIC: [u8; 4] = [0xff, 0x74, 0x72, 0x01];
const USER: u64 = 0x01;
const GROUP: u64 = 0x02;
const XATTRS: u64 = 0x04;
const CTIME: u64 = 0x08;
const LINK: u64 = 0x10;
const HOLES: u64 = 0x20;
const SQLITE: u64 = 0x40;

/// Seconds (negative before 1970) and nanoseconds.
type Time = (i64, u32);

/// One entry of a tree.
#[derive(Debug)]
struct Entry {
    name: Vec<u8>,
    flags: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: Time,
    user: Option<Vec<u8>>,
    group: Option<Vec<u8>>,
    content: Content,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    fn file(&self) -> Option<&File> {
        match &self.content {
            Content::File(file) => Some(file),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Content {
    File(File),
    /// The subtree's id (hex).
    Dir(String),
    /// The target.
    Symlink(Vec<u8>),
}

#[derive(Debug)]
struct File {
    inode: u64,
    ctime: Option<Time>,
    link: Option<u64>,
    /// Blob ids (hex), in order.
    chunks: Vec<String>,
    holes: Vec<(u64, u64)>,
    database: Option<Database>,
}

#[derive(Debug)]
struct Database {
    page_size: u32,
    captured: Time,
    file_size: u64,
    /// The `-wal` at capture: inode, size, mtime.
    wal: Option<(u64, u64, Time)>,
}

/// A tree's entries: MAGIC, then entries to the end, names strictly
/// ascending.
fn decode_tree(raw: &[u8]) -> Vec<Entry> {
    assert_eq!(raw[..4], MAGIC, "MAGIC of a binary tree");
    let mut cursor = Cursor { bytes: raw, at: 4 };
    let mut entries: Vec<Entry> = Vec::new();
    while cursor.at < raw.len() {
        let entry = cursor.entry();
        if let Some(last) = entries.last() {
            assert!(last.name < entry.name, "names strictly ascending");
        }
        entries.push(entry);
    }
    entries
}

/// The bytes of a tree, read from `at` on; every read past the end panics.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        out
    }

    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    /// Unsigned LEB128, at most 64 bits and minimal.
    fn varint(&mut self) -> u64 {
        let mut value = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8();
            let bits = u64::from(byte & 0x7f);
            assert!(shift < 63 || bits <= 1, "a varint over 64 bits");
            value |= bits << shift;
            if byte & 0x80 == 0 {
                assert!(byte != 0 || shift == 0, "a varint not minimal");
                return value;
            }
        }
        panic!("a varint of more than 10 bytes");
    }

    fn u32(&mut self) -> u32 {
        u32::try_from(self.varint()).expect("fits in 32 bits")
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = self.varint() as usize;
        self.take(len).to_vec()
    }

    /// Zigzag seconds, then nanoseconds.
    fn time(&mut self) -> Time {
        let zigzag = self.varint();
        let sec = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
        let nsec = self.u32();
        assert!(nsec < 1_000_000_000, "nsec {nsec}");
        (sec, nsec)
    }

    fn id(&mut self) -> String {
        hex::encode(self.take(32))
    }

    /// A count of items that follow only when the flag says so, and then
    /// at least one.
    fn count_if(&mut self, present: bool) -> u64 {
        let count = if present { self.varint() } else { 0 };
        assert!(!present || count > 0, "a flagged count of 0");
        count
    }

    fn entry(&mut self) -> Entry {
        let name = self.bytes();
        let kind = self.u8();
        let flags = self.varint();
        let allowed = match kind {
            1 => USER | GROUP | XATTRS | CTIME | LINK | HOLES | SQLITE,
            2 | 3 => USER | GROUP | XATTRS,
            other => panic!("type {other}"),
        };
        assert_eq!(flags & !allowed, 0, "flags {flags:#x} of type {kind}");
        let (mode, uid, gid) = (self.u32(), self.u32(), self.u32());
        let (size, mtime) = (self.varint(), self.time());
        let user = (flags & USER != 0).then(|| self.bytes());
        let group = (flags & GROUP != 0).then(|| self.bytes());
        let content = match kind {
            1 => Content::File(self.file(flags)),
            2 => Content::Dir(self.id()),
            _ => Content::Symlink(self.bytes()),
        };
        let count = self.count_if(flags & XATTRS != 0);
        let xattrs = (0..count).map(|_| (self.bytes(), self.bytes())).collect();
        Entry {
            name,
            flags,
            mode,
            uid,
            gid,
            size,
            mtime,
            user,
            group,
            content,
            xattrs,
        }
    }

    fn file(&mut self, flags: u64) -> File {
        let inode = self.varint();
        let ctime = (flags & CTIME != 0).then(|| self.time());
        let link =
            (flags & LINK != 0).then(|| u64::from_le_bytes(self.take(8).try_into().unwrap()));
        let chunks = (0..self.varint()).map(|_| self.id()).collect();
        let count = self.count_if(flags & HOLES != 0);
        let holes = (0..count).map(|_| (self.varint(), self.varint())).collect();
        let database = (flags & SQLITE != 0).then(|| self.database());
        File {
            inode,
            ctime,
            link,
            chunks,
            holes,
            database,
        }
    }

    fn database(&mut self) -> Database {
        let page_size = self.u32();
        let captured = self.time();
        let file_size = self.varint();
        let wal = match self.u8() {
            0 => None,
            1 => Some((self.varint(), self.varint(), self.time())),
            other => panic!("wal marker {other}"),
        };
        Database {
            page_size,
            captured,
            file_size,
            wal,
        }
    }
}

/// The entry at `path` of a snapshot's `entries`.
fn named<'e>(entries: &'e [(PathBuf, Entry)], path: &str) -> &'e Entry {
    let found = entries.iter().find(|(p, _)| p == Path::new(path));
    &found.unwrap_or_else(|| panic!("no {path}")).1
}

/// What the trees of `night` record beyond content: owners, times, the
/// link group, holes, xattrs and databases, as make-v8.sh made them.
fn assert_metadata(entries: &[(PathBuf, Entry)], night: usize) {
    for (path, e) in entries {
        assert_eq!((e.uid, e.gid), (0, 0), "{path:?}");
        let names = (e.user.as_deref(), e.group.as_deref());
        assert_eq!(names, (Some(&b"root"[..]), Some(&b"root"[..])), "{path:?}");
        assert!(e.mode <= 0o7777, "{path:?}: mode {:o}", e.mode);
    }
    assert_files_metadata(entries, night);
    let sparse = named(entries, "sparse.img");
    assert_eq!(
        (sparse.file().unwrap().holes.as_slice(), sparse.size),
        (&SPARSE_HOLES[..], 320 << 10)
    );
    let links: Vec<_> = entries
        .iter()
        .filter_map(|(p, e)| Some((p.to_str()?, e.file()?.link?)))
        .collect();
    let group = links[0].1;
    assert_eq!(links, [("links/first", group), ("links/second", group)]);
    let xattrs: Vec<_> = entries
        .iter()
        .filter(|(_, e)| !e.xattrs.is_empty())
        .map(|(p, e)| (p.to_str().unwrap(), e.xattrs.clone()))
        .collect();
    let tagged = (b"user.mime_type".to_vec(), b"text/plain".to_vec());
    let note = (b"user.note".to_vec(), b"\x00binary\xff".to_vec());
    assert_eq!(
        xattrs,
        [("nested", vec![note]), ("tagged.txt", vec![tagged])]
    );
    let (link, target) = SYMLINK;
    assert_eq!(named(entries, link).size, target.len() as u64);
    assert_databases(entries, night);
}

/// Files keep the first night's mtime (and ctime) unless they changed on
/// the second; those were captured too soon after their change for their
/// ctime to be trusted, so it is not recorded (tree.md, "Change
/// detection and `ctime`"). wal.db's second night went to its `-wal`
/// alone: the database file kept its mtime and ctime, and the `-wal`'s
/// mtime was set back like the others', so the ctime is recorded.
fn assert_files_metadata(entries: &[(PathBuf, Entry)], night: usize) {
    let nights = nights();
    let (first, want) = (&nights[0], &nights[night]);
    for (path, e) in entries {
        let Some(file) = e.file() else {
            continue;
        };
        assert!(file.inode > 0, "{path:?}");
        let unchanged = want.get(path).is_some() && want.get(path) == first.get(path);
        let kept = unchanged || path == Path::new("wal.db");
        let mtime = match path.to_str().unwrap() {
            "old.txt" => BEFORE_1970,
            _ if kept => NIGHT_MTIMES[0],
            _ => NIGHT_MTIMES[night],
        };
        assert_eq!(e.mtime, mtime, "{path:?}");
        assert_eq!(file.ctime.is_some(), night == 0 || kept, "{path:?}");
    }
}

/// app.db was in rollback mode, its image the file; wal.db in WAL mode
/// with commits in its `-wal`, which the image holds and the entry
/// records.
fn assert_databases(entries: &[(PathBuf, Entry)], night: usize) {
    let databases: Vec<_> = entries
        .iter()
        .filter_map(|(p, e)| Some((p.to_str()?, e, e.file()?.database.as_ref()?)))
        .collect();
    assert_eq!(databases.len(), 2, "{databases:?}");
    for (path, e, db) in databases {
        assert_eq!(db.page_size, 4096, "{path}");
        assert_eq!(e.size % 4096, 0, "{path}");
        assert_eq!(
            e.file().unwrap().chunks.len() as u64,
            e.size / 4096,
            "{path}: page runs"
        );
        assert!(
            db.captured > NIGHT_MTIMES[night],
            "{path}: {:?}",
            db.captured
        );
        match path {
            "app.db" => assert_eq!((db.file_size, db.wal), (e.size, None)),
            "wal.db" => {
                let (inode, size, _) = db.wal.expect("the -wal recorded");
                assert!(inode > 0 && size > 0 && db.file_size < e.size, "{db:?}");
            }
            other => panic!("a database {other}"),
        }
    }
}

#[test]
fn an_independent_reader_written_from_the_specification_reads_the_v8_fixture() {
    let config: Value =
        serde_json::from_slice(&fs::read(Path::new(FIXTURE).join("config.json")).unwrap()).unwrap();
    assert_eq!(config["version"], 8);
    assert!(config.get("encryption").is_none());
    assert!(
        !Path::new(FIXTURE).join("dictionaries").exists(),
        "no dictionary"
    );
    let blobs = Blobs::read(Path::new(FIXTURE));
    assert!(blobs.trees.len() >= 10, "{} trees", blobs.trees.len());
    for id in &blobs.trees {
        assert_eq!(blobs.by_id[id][0], 0xff, "tree {id} is in the binary form");
        blobs.tree(id);
    }
    assert_eq!(
        check_index_objects(Path::new(FIXTURE)),
        files_under(&Path::new(FIXTURE).join("packs")).len()
    );
    let records = records(Path::new(FIXTURE));
    let ids: BTreeSet<&str> = records.keys().map(String::as_str).collect();
    assert_eq!(ids, BTreeSet::from([FIRST, SECOND]));
    assert_eq!(records[SECOND]["parent"], FIRST);
    let scratch = tempfile::tempdir().unwrap();
    let mut flags = 0;
    for (night, id) in [FIRST, SECOND].into_iter().enumerate() {
        let record = &records[id];
        assert_eq!(record["host"], "fixture");
        assert_eq!(record["format"], 8);
        assert_eq!(record["paths"], serde_json::json!([SOURCE]));
        let entries = blobs.entries(record["tree"].as_str().unwrap(), Path::new(SOURCE));
        assert_metadata(&entries, night);
        flags |= entries.iter().fold(0, |all, (_, e)| all | e.flags);
        let empty = match &named(&entries, EMPTY_DIR).content {
            Content::Dir(id) => &blobs.by_id[id],
            other => panic!("{EMPTY_DIR} is a {other:?}"),
        };
        assert_eq!(empty, &MAGIC, "a tree with no entries is MAGIC alone");
        let scratch = scratch.path().join(format!("night{night}"));
        assert_night(blobs.listing(&entries), night, &scratch);
    }
    assert_eq!(flags, 0x7f, "every flag appears");
}

#[test]
fn the_example_of_tree_md_decodes_with_the_independent_reader() {
    // tree.md, "Binary form", spaced by field as there.
    let example = "ff747201 0161 01 08 a403 e807 64 03 80c49fd50c 05 07 02 02 01
        6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";
    let raw = hex::decode(example.split_whitespace().collect::<String>()).unwrap();
    assert_eq!(raw.len(), 56);
    let [entry] = <[Entry; 1]>::try_from(decode_tree(&raw)).unwrap();
    let file = entry.file().unwrap();
    assert_eq!(entry.name, b"a");
    assert_eq!(
        (entry.mode, entry.uid, entry.gid, entry.size),
        (0o644, 1000, 100, 3)
    );
    assert_eq!(
        (entry.mtime, file.inode, file.ctime),
        ((1_700_000_000, 5), 7, Some((1, 2)))
    );
    let chunk = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";
    assert_eq!(file.chunks, [chunk]);
}

// --- the binary -------------------------------------------------------------------

/// What the directory `dir` holds, read from the file system.
fn listing_of(dir: &Path) -> Listing {
    let mut listing = Listing::default();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for entry in fs::read_dir(dir.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let path = rel.join(entry.file_name());
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                listing.dirs.insert(path.clone());
                todo.push(path);
            } else if kind.is_symlink() {
                let target = fs::read_link(entry.path()).unwrap();
                listing
                    .symlinks
                    .insert(path, target.as_os_str().as_bytes().to_vec());
            } else {
                listing.files.insert(path, fs::read(entry.path()).unwrap());
            }
        }
    }
    listing
}

/// The hard link, the xattrs, the holes and the time before 1970 came
/// back.
fn assert_restored_metadata(docs: &Path) {
    let first = fs::metadata(docs.join("links/first")).unwrap();
    let second = fs::metadata(docs.join("links/second")).unwrap();
    assert_eq!((first.ino(), first.nlink()), (second.ino(), 2));
    let tagged = xattrs(&docs.join("tagged.txt"));
    assert_eq!(tagged[&b"user.mime_type"[..]], b"text/plain");
    let nested = xattrs(&docs.join("nested"));
    assert_eq!(nested[&b"user.note"[..]], b"\x00binary\xff");
    let sparse = docs.join("sparse.img");
    assert_eq!(fs::metadata(&sparse).unwrap().len(), 320 << 10);
    assert_eq!(data_map(&sparse), [(0, 4096), (132 << 10, 4096)]);
    assert_eq!(mtime_of(&docs.join("old.txt")), BEFORE_1970);
}

#[test]
fn the_v8_fixture_restores_both_nights_and_verifies_with_its_data_read() {
    let t = TestEnv::new();
    copy_tree(Path::new(FIXTURE), &t.store);
    let ids: Vec<String> = t.snapshots(&[]).iter().map(|s| id(s).to_owned()).collect();
    assert_eq!(ids, [FIRST, SECOND]);
    for (night, snapshot) in [FIRST, SECOND].into_iter().enumerate() {
        let docs = restored(&t.restore(snapshot), Path::new(SOURCE));
        assert_restored_metadata(&docs);
        assert_night(listing_of(&docs), night, &t.fresh_dir("scratch"));
    }
    t.cairn(["verify", "--read-data"]).assert().success();
}

#[test]
fn a_new_snapshot_into_the_v8_fixture_keeps_its_config_and_writes_binary_trees() {
    let t = TestEnv::new();
    copy_tree(Path::new(FIXTURE), &t.store);
    let before = files_under(&t.store.join("packs"));
    let mut files = Files::new();
    let mut rng = Lcg(87);
    for i in 0..20 {
        rng.note(&mut files, i, &format!("a third night, file {i}: "));
    }
    let src = t.path("third");
    for (path, content) in &files {
        write_file(&src.join(path), content);
    }
    let snap = t.snapshot(&[&src], &[]);
    let config = |dir: &Path| fs::read(dir.join("config.json")).unwrap();
    assert_eq!(config(&t.store), config(Path::new(FIXTURE)), "config.json");
    let mut blobs = Blobs::default();
    for pack in files_under(&t.store.join("packs")) {
        if !before.contains(&pack) {
            blobs.read_pack(&pack);
        }
    }
    assert!(!blobs.trees.is_empty(), "the snapshot wrote trees");
    for id in &blobs.trees {
        assert_eq!(blobs.by_id[id][..4], MAGIC, "tree {id}");
    }
    let restored_dir = restored(&t.restore(id(&snap)), &src);
    assert_eq!(listing_of(&restored_dir).files, files);
}
