//! The structure check of packs: every pack the catalog names exists with
//! the size it should have, its header decodes, and the header agrees with
//! the catalog about every blob the catalog places in it. Headers only: no
//! blob data is read at this depth.

use crate::catalog::prune::PackRow;
use crate::compress::Compression;
use crate::id::{BlobId, PackId};
use crate::pack::{self, BlobKind, BlobLocation, PackEntry, PackError};
use crate::reach::LiveSet;
use crate::store::{Store, StoreError};

/// What the structure check found about one pack.
#[derive(Debug)]
pub struct PackFinding {
    /// The pack.
    pub pack: PackRow,
    /// Why it is damaged.
    pub cause: String,
    /// Cataloged blobs of it that cannot be read as cataloged (lost unless
    /// a later check finds them intact).
    pub lost: Vec<BlobId>,
    /// Blobs the header disagrees about: suspect until read.
    pub suspect: Vec<BlobId>,
}

/// The blobs of a pack that matter to this verify, in pack order, held
/// without slack: verify keeps the rows of every pack of the store until
/// it has read them, 200 000 blobs of small files or 500 000 of a database
/// store's nights.
pub type Rows = Box<[Row]>;

/// Where the catalog places one blob of a pack, without the pack's id
/// (the pack's row has it): 56 bytes, where a [`BlobLocation`] with its
/// blob id took 88, and the vector they grew in up to twice that.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// The blob.
    pub id: BlobId,
    /// Start of its stored bytes in the pack.
    pub offset: u64,
    /// Stored (compressed) length.
    pub stored_len: u32,
    /// Length after decoding.
    pub raw_len: u32,
    /// How it is stored.
    pub compression: Compression,
    /// Data or tree.
    pub kind: BlobKind,
}

impl Row {
    fn new(id: BlobId, at: &BlobLocation) -> Self {
        Self {
            id,
            offset: at.offset,
            stored_len: at.stored_len,
            raw_len: at.raw_len,
            compression: at.compression,
            kind: at.kind,
        }
    }

    /// Whether the header `entries` (sorted by offset) hold this blob
    /// exactly where and as the catalog says.
    fn agrees_with(&self, entries: &[PackEntry]) -> bool {
        let Ok(at) = entries.binary_search_by_key(&self.offset, |e| e.offset) else {
            return false;
        };
        let e = &entries[at];
        (e.id, e.kind, e.stored_len, e.raw_len, e.compression)
            == (
                self.id,
                self.kind,
                self.stored_len,
                self.raw_len,
                self.compression,
            )
    }

    /// The full location, in `pack`.
    pub fn location(&self, pack: PackId) -> BlobLocation {
        BlobLocation {
            pack,
            kind: self.kind,
            offset: self.offset,
            stored_len: self.stored_len,
            raw_len: self.raw_len,
            compression: self.compression,
        }
    }
}

/// Checks one pack; returns its relevant rows and any finding. `live`
/// restricts the rows to the blobs of the chosen snapshots, if given.
pub fn check(
    store: &Store,
    pack: &PackRow,
    live: Option<&LiveSet>,
) -> Result<(Rows, Option<PackFinding>), StoreError> {
    let relevant = |id: BlobId, at: BlobLocation| {
        live.is_none_or(|l| l.contains(&id))
            .then(|| Row::new(id, &at))
    };
    let rows: Rows = match store.catalog().blobs_in_pack_as(pack, relevant) {
        Ok(rows) => rows.into_boxed_slice(),
        Err(e) => {
            let finding = finding(
                pack,
                format!("its catalog rows are corrupt: {e}"),
                Vec::new(),
            );
            return Ok((Rows::default(), Some(finding)));
        }
    };
    if live.is_some() && rows.is_empty() {
        // Restricted to snapshots that need nothing from this pack.
        return Ok((rows, None));
    }
    let all = || rows.iter().map(|r| r.id).collect::<Vec<_>>();
    let (entries, size) = match pack::reader::read_header(store.backend(), &pack.id) {
        Ok(header) => header,
        Err(PackError::Io(e)) if e.is_not_found() => {
            let f = finding(pack, super::MISSING.into(), all());
            return Ok((rows, Some(f)));
        }
        Err(PackError::Format { source, .. }) => {
            let f = finding(
                pack,
                format!("header does not decode: {source}"),
                Vec::new(),
            );
            let f = PackFinding {
                suspect: all(),
                ..f
            };
            return Ok((rows, Some(f)));
        }
        Err(e) => return Err(e.into()),
    };
    let finding = compare(pack, &rows, entries, size);
    Ok((rows, finding))
}

fn finding(pack: &PackRow, cause: String, lost: Vec<BlobId>) -> PackFinding {
    PackFinding {
        pack: pack.clone(),
        cause,
        lost,
        suspect: Vec::new(),
    }
}

/// Compares the catalog's rows with the pack's own header and size. Each
/// row is matched with the header's entry at its offset (a binary search,
/// not a map by id: the map was a third of verify's peak on a pack of 20k
/// small files).
fn compare(
    pack: &PackRow,
    rows: &Rows,
    mut entries: Vec<PackEntry>,
    size: u64,
) -> Option<PackFinding> {
    entries.sort_unstable_by_key(|e| e.offset);
    let mut lost = Vec::new();
    let mut suspect = Vec::new();
    for row in rows {
        if row.offset + u64::from(row.stored_len) > size {
            lost.push(row.id);
        } else if !row.agrees_with(&entries) {
            suspect.push(row.id);
        }
    }
    let mut causes = Vec::new();
    if size != pack.size {
        causes.push(format!("{size} bytes, the catalog says {}", pack.size));
    }
    if !lost.is_empty() {
        causes.push(format!("{} blob(s) lie beyond its end", lost.len()));
    }
    if !suspect.is_empty() {
        causes.push(format!(
            "its header disagrees with the catalog about {} blob(s)",
            suspect.len()
        ));
    }
    (!causes.is_empty()).then(|| PackFinding {
        pack: pack.clone(),
        cause: causes.join("; "),
        lost,
        suspect,
    })
}
