//! What the golden tests share of their independent readers (written from
//! store-format/ alone, nothing of cairn's code) and of the generator that
//! the fixture scripts mirror (make-v6.sh, make-v8.sh).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use serde_json::Value;

use super::files_under;

/// The fixture scripts' word list.
pub const WORDS: [&str; 32] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi",
    "psi", "omega", "select", "from", "where", "order", "group", "join", "rows", "page",
];

/// The fixture scripts' generator: a 64-bit LCG (Knuth's MMIX constants),
/// the high 31 bits of each state.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// `marker`, then words and spaces, cut to `size` bytes.
    pub fn text(&mut self, marker: &str, size: usize) -> String {
        let mut out = marker.to_owned();
        while out.len() < size {
            out.push_str(WORDS[(self.next() % 32) as usize]);
            out.push(' ');
        }
        out.truncate(size);
        out
    }

    /// [`Lcg::text`] as bytes.
    pub fn text_bytes(&mut self, marker: &str, size: usize) -> Vec<u8> {
        self.text(marker, size).into_bytes()
    }
}

/// The first `count` rows of a fixture database's table `t`, made from
/// `seed` (make-v6.sh's `app.db`: 63).
pub fn rows(seed: u64, count: usize) -> Vec<(i64, String)> {
    let mut rng = Lcg(seed);
    (0..count)
        .map(|i| {
            let size = 60 + (rng.next() % 100) as usize;
            (i as i64, rng.text("", size))
        })
        .collect()
}

/// The rows of table `t` in the database at `path`.
pub fn rows_of(path: &Path) -> Vec<(i64, String)> {
    let db = rusqlite::Connection::open(path).unwrap();
    let mut stmt = db.prepare("select id, v from t order by id").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The little-endian u32 at `at`.
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Checks that every index object of the store at `fixture` names packs by
/// their tails, byte for byte (index.md); returns how many it names.
pub fn check_index_objects(fixture: &Path) -> usize {
    let packs: HashMap<String, Vec<u8>> = files_under(&fixture.join("packs"))
        .into_iter()
        .map(|p| {
            (
                p.file_stem().unwrap().to_str().unwrap().to_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect();
    let mut named = 0;
    for path in files_under(&fixture.join("index")) {
        let object = fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(blake3::hash(&object).to_hex().as_str(), name, "index id");
        assert_eq!(&object[..8], b"CAIRNIDX");
        assert_eq!(u32_at(&object, 8), 1, "index version");
        let mut at = 16;
        for _ in 0..u32_at(&object, 12) {
            let pack = &packs[&hex::encode(&object[at..at + 32])];
            let size = u64::from_le_bytes(object[at + 32..at + 40].try_into().unwrap());
            let tail_len = u32_at(&object, at + 40) as usize;
            assert_eq!(size, pack.len() as u64);
            let tail = &object[at + 44..at + 44 + tail_len];
            assert_eq!(tail, &pack[pack.len() - tail_len..], "tail of a pack");
            at += 44 + tail_len;
            named += 1;
        }
        assert_eq!(at, object.len(), "nothing after the last record");
    }
    named
}

/// Every snapshot record of the store at `fixture` by id, checked against
/// its name and its record version (1).
pub fn records(fixture: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for path in files_under(&fixture.join("snapshots")) {
        let bytes = fs::read(&path).unwrap();
        let id = path.file_stem().unwrap().to_str().unwrap().to_owned();
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), id, "record id");
        let record: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(record["version"], 1, "record version");
        out.insert(id, record);
    }
    out
}

/// Reads the pack at `path` as pack.md's "Validation", steps 1 to 8, and
/// hands each entry of its header (52 bytes) with its stored bytes to
/// `blob`.
pub fn read_pack(path: &Path, mut blob: impl FnMut(&[u8], &[u8])) {
    let file = fs::read(path).unwrap();
    let name = path.file_stem().unwrap().to_str().unwrap();
    assert_eq!(blake3::hash(&file).to_hex().as_str(), name, "pack id");
    let trailer = &file[file.len() - 48..];
    assert_eq!(&trailer[40..], b"CAIRNPAK");
    assert_eq!(u32_at(trailer, 4), 1, "pack version");
    let header_len = u32_at(trailer, 0) as usize;
    assert_eq!(header_len % 52, 0);
    let data_len = file.len() - 48 - header_len;
    let header = &file[data_len..file.len() - 48];
    assert_eq!(blake3::hash(header).as_bytes(), &trailer[8..40]);
    let mut next = 0;
    for entry in header.chunks_exact(52) {
        let offset = u64::from_le_bytes(entry[12..20].try_into().unwrap()) as usize;
        let stored_len = u32_at(entry, 8) as usize;
        assert_eq!(offset, next, "entries tile the data");
        next = offset + stored_len;
        blob(entry, &file[offset..next]);
    }
    assert_eq!(next, data_len, "the last blob ends at the header");
}
