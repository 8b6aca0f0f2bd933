//! The structure check of packs: every pack the catalog names exists with
//! the size it should have, its header decodes, and the header agrees with
//! the catalog about every blob the catalog places in it. Headers only: no
//! blob data is read at this depth.

use std::collections::HashMap;

use crate::catalog::prune::PackRow;
use crate::id::BlobId;
use crate::pack::{self, BlobLocation, PackEntry, PackError};
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

/// The blobs of a pack that matter to this verify, with their locations.
pub type Rows = Vec<(BlobId, BlobLocation)>;

/// Checks one pack; returns its relevant rows and any finding. `live`
/// restricts the rows to the blobs of the chosen snapshots, if given.
pub fn check(
    store: &Store,
    pack: &PackRow,
    live: Option<&LiveSet>,
) -> Result<(Rows, Option<PackFinding>), StoreError> {
    let rows: Rows = match store.catalog().blobs_in_pack(pack) {
        Ok(rows) => rows,
        Err(e) => {
            let finding = finding(
                pack,
                format!("its catalog rows are corrupt: {e}"),
                Vec::new(),
            );
            return Ok((Vec::new(), Some(finding)));
        }
    };
    let rows: Rows = rows
        .into_iter()
        .filter(|(id, _)| live.is_none_or(|l| l.contains(id)))
        .collect();
    if live.is_some() && rows.is_empty() {
        // Restricted to snapshots that need nothing from this pack.
        return Ok((rows, None));
    }
    let all = || rows.iter().map(|(id, _)| *id).collect::<Vec<_>>();
    let (entries, size) = match pack::reader::read_header(store.backend(), &pack.id) {
        Ok(header) => header,
        Err(PackError::Io(e)) if e.is_not_found() => {
            let f = finding(pack, "missing".into(), all());
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
    let finding = compare(pack, &rows, &entries, size);
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

/// Compares the catalog's rows with the pack's own header and size.
fn compare(pack: &PackRow, rows: &Rows, entries: &[PackEntry], size: u64) -> Option<PackFinding> {
    let header: HashMap<BlobId, &PackEntry> = entries.iter().map(|e| (e.id, e)).collect();
    let mut lost = Vec::new();
    let mut suspect = Vec::new();
    for (id, at) in rows {
        if at.offset + u64::from(at.stored_len) > size {
            lost.push(*id);
        } else if header
            .get(id)
            .is_none_or(|e| BlobLocation::in_pack(pack.id, e) != *at)
        {
            suspect.push(*id);
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
