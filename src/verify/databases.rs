//! `--sqlite`: every database captured in the chosen snapshots is written
//! out to `tmp/` and must pass `PRAGMA integrity_check`. A database held by
//! several snapshots unchanged (the same chunks) is checked once.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::browse::{self, Flow};
use crate::database;
use crate::id::BlobId;
use crate::snapshot::Snapshot;
use crate::store::{Store, StoreError};

/// A database that failed its check.
#[derive(Debug)]
pub struct BadDatabase {
    /// The snapshot it was found in first.
    pub snapshot: Snapshot,
    /// Its path there.
    pub path: PathBuf,
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
    let mut seen = HashSet::new();
    let mut checked = 0;
    let mut bad = Vec::new();
    for snapshot in snapshots {
        let mut found = Vec::new();
        let walked = browse::walk(
            store,
            &snapshot.record.tree,
            Path::new("/"),
            &mut |path, entry| {
                if entry.database().is_some()
                    && let Some(chunks) = entry.chunks()
                    && !chunks.iter().any(|c| damaged.contains(c))
                    && seen.insert(BlobId::of(
                        &chunks
                            .iter()
                            .flat_map(|c| *c.as_bytes())
                            .collect::<Vec<_>>(),
                    ))
                {
                    found.push((path.to_owned(), entry.clone()));
                }
                Ok(Flow::Descend)
            },
        );
        // Trees that do not read are reported by the structure check.
        if walked.is_err() {
            continue;
        }
        for (path, entry) in found {
            checked += 1;
            if let Err(cause) = check_one(store, &path, &entry) {
                bad.push(BadDatabase {
                    snapshot: snapshot.clone(),
                    path,
                    cause,
                });
            }
        }
    }
    Ok((checked, bad))
}

/// Writes one database image to a temporary file and checks it.
fn check_one(store: &Store, path: &Path, entry: &crate::tree::Entry) -> Result<(), String> {
    let mut file = store.backend().temp_file().map_err(|e| e.to_string())?;
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
