//! `--sqlite`: every database captured in the chosen snapshots is written
//! out to `tmp/` and must pass `PRAGMA integrity_check`. A database held by
//! several snapshots unchanged (the same chunks) is checked once.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::bound::Budget;
use crate::browse::{self, Flow};
use crate::database;
use crate::id::BlobId;
use crate::snapshot::Snapshot;
use crate::store::{Store, StoreError};
use crate::tree::Entry;

/// A database image that failed its check, with every snapshot holding it.
#[derive(Debug)]
pub struct BadDatabase {
    /// Each snapshot that holds this image, and its path there.
    pub holders: Vec<(Snapshot, PathBuf)>,
    /// What failed.
    pub cause: String,
}

/// Checks every database of `snapshots` whose chunks are not already known
/// damaged; returns how many were checked and those that failed.
pub fn check_all(
    store: &Store,
    snapshots: &[Snapshot],
    damaged: &HashSet<BlobId>,
) -> Result<(u64, Vec<BadDatabase>), StoreError> {
    // Image (its chunk list) -> index into `bad`, or None when it passed.
    let mut results: HashMap<BlobId, Option<usize>> = HashMap::new();
    let mut checked = 0;
    let mut bad: Vec<BadDatabase> = Vec::new();
    for snapshot in snapshots {
        for (path, entry) in databases_of(store, snapshot, damaged) {
            let Some(chunks) = entry.chunks() else {
                continue;
            };
            let image = BlobId::of(
                &chunks
                    .iter()
                    .flat_map(|c| *c.as_bytes())
                    .collect::<Vec<_>>(),
            );
            let result = match results.get(&image) {
                Some(result) => *result,
                None => {
                    checked += 1;
                    let result = check_one(store, &path, &entry).err().map(|cause| {
                        bad.push(BadDatabase {
                            holders: Vec::new(),
                            cause,
                        });
                        bad.len() - 1
                    });
                    results.insert(image, result);
                    result
                }
            };
            if let Some(i) = result {
                bad[i].holders.push((snapshot.clone(), path));
            }
        }
    }
    Ok((checked, bad))
}

/// The databases of `snapshot` none of whose chunks is known damaged (those
/// are reported already). A tree that does not read is reported by the
/// structure check.
fn databases_of(
    store: &Store,
    snapshot: &Snapshot,
    damaged: &HashSet<BlobId>,
) -> Vec<(PathBuf, Entry)> {
    let mut found = Vec::new();
    // A snapshot whose trees expand beyond its record is reported by the
    // structure check; its budget ends the walk.
    let _ = browse::walk(
        store,
        &snapshot.record.tree,
        Path::new("/"),
        &mut Budget::of(snapshot),
        &mut |path, entry| {
            if entry.database().is_some()
                && entry
                    .chunks()
                    .is_some_and(|c| !c.iter().any(|b| damaged.contains(b)))
            {
                found.push((path.to_owned(), entry.clone()));
            }
            Ok(Flow::Descend)
        },
    );
    found
}

/// Writes one database image to a temporary file and checks it.
fn check_one(store: &Store, path: &Path, entry: &Entry) -> Result<(), String> {
    let mut file = store.scratch_file().map_err(|e| e.to_string())?;
    browse::write_content(store, path, entry, file.as_file_mut()).map_err(|e| e.to_string())?;
    file.as_file_mut().flush().map_err(|e| e.to_string())?;
    // The temporary file's name means nothing to the reader: say what failed.
    database::integrity_check(file.path()).map_err(|e| match e {
        database::CheckError::Damaged { problems, .. } => {
            format!("integrity_check failed: {}", problems.join("; "))
        }
        database::CheckError::Sqlite { source, .. } => format!("cannot be checked: {source}"),
    })
}
