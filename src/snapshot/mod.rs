//! Snapshot records: `snapshots/ID.json`, one immutable file per snapshot,
//! written last so that a snapshot is visible only once everything it
//! references is durable. The id is the BLAKE3 of the file's bytes.

pub mod forget;
pub mod protect;
pub mod retag;
pub mod select;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendError};
use crate::catalog::Catalog;
use crate::crash;
use crate::crypt::Vault;
use crate::id::{SnapshotId, TreeId};
use crate::rawname::RawName;
use crate::when::SnapshotTime;

/// The record format this code writes.
pub const RECORD_VERSION: u32 = 1;

/// The first store format whose snapshots record every file's xattrs and
/// holes (see [`SnapshotRecord::format`]).
pub const METADATA_FORMAT: u32 = 4;

/// At most this many left-out paths are listed in a summary (all are counted).
pub const MAX_LISTED_LEFT_OUT: usize = 1000;

/// Largest record file a reader accepts (a record with 1000 left-out paths
/// of 4 KiB each stays well below it).
pub const MAX_RECORD_LEN: u64 = 16 << 20;

/// What a snapshot holds and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Record format version.
    pub version: u32,
    /// When it was taken (or the `--time` given).
    pub time: SnapshotTime,
    /// Host it was taken on.
    pub host: String,
    /// Absolute source paths, sorted.
    pub paths: Vec<RawName>,
    /// User tags, sorted.
    pub tags: Vec<String>,
    /// The root tree: the file system root, holding each source path.
    pub tree: TreeId,
    /// The snapshot used for change detection, if any.
    pub parent: Option<SnapshotId>,
    /// The program that wrote it, e.g. `cairn 0.1.0`.
    pub program: String,
    /// The store format its trees were captured in; absent before 4.
    /// From format 4 on, every entry records its xattrs and holes, so the
    /// next snapshot may take an unchanged file over with them; before,
    /// an entry without them may have had some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<u32>,
    /// Counts and sizes.
    pub summary: Summary,
}

/// Counts and sizes of one snapshot run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Regular files in the snapshot.
    pub files: u64,
    /// Directories in the snapshot (intermediate ones of the source paths included).
    pub dirs: u64,
    /// Symbolic links in the snapshot.
    pub symlinks: u64,
    /// Sum of the sizes of all files in the snapshot.
    pub total_bytes: u64,
    /// Files with no counterpart in the parent.
    pub files_new: u64,
    /// Files read again because their metadata differs from the parent's
    /// (size, mtime, ctime or inode): `files_modified` of them with other
    /// content, the rest with the same.
    pub files_changed: u64,
    /// Of the files read again, those whose content differs from the
    /// parent's. `None` (absent) in records written before issue #19: an
    /// old record re-encodes to its own bytes, and "unknown" is not 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_modified: Option<u64>,
    /// Files taken from the parent without being read.
    pub files_unchanged: u64,
    /// Bytes of file content read.
    pub bytes_read: u64,
    /// Data chunks read that the store did not have.
    pub data_blobs_new: u64,
    /// Data chunks read that the store already had.
    pub data_blobs_reused: u64,
    /// Trees the store did not have.
    pub tree_blobs_new: u64,
    /// Trees the store already had.
    pub tree_blobs_reused: u64,
    /// Bytes added to packs (after compression).
    pub bytes_added: u64,
    /// Raw bytes of the blobs added.
    pub bytes_added_raw: u64,
    /// Packs written.
    pub packs_written: u64,
    /// Special files (fifos, sockets, devices) skipped.
    pub skipped: u64,
    /// Files or directories left out because of an error.
    pub errors: u64,
    /// Paths left out (the first [`MAX_LISTED_LEFT_OUT`]).
    pub left_out: Vec<RawName>,
    /// Wall time of the run in seconds.
    pub duration_secs: f64,
    /// SQLite databases in the snapshot (the first [`MAX_LISTED_LEFT_OUT`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseSummary>,
    /// Files that start like a SQLite database but that SQLite refused
    /// (corrupt, encrypted): stored as plain bytes, with a warning.
    /// Written always (0 too) since issue #19; `None` in older records
    /// that left a 0 out, so that they re-encode to their own bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_fallbacks: Option<u64>,
    /// Paths of those (the first [`MAX_LISTED_LEFT_OUT`]); like
    /// `database_fallbacks`, absent from records before issue #19.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallbacks: Option<Vec<RawName>>,
    /// Files that changed while they were read, and again while they were
    /// read a second time: stored as read, with a warning.
    #[serde(skip_serializing_if = "is_zero")]
    pub files_inconsistent: u64,
    /// Paths of those (the first [`MAX_LISTED_LEFT_OUT`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inconsistent: Vec<RawName>,
    /// Written by `cairn repair snapshots`: the snapshot this one repairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired_from: Option<SnapshotId>,
    /// Written by `cairn repair snapshots`: paths of the original left out
    /// because their data is lost (the first [`MAX_LISTED_LEFT_OUT`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<RawName>,
    /// How many paths were left out as lost (all, listed or not).
    #[serde(skip_serializing_if = "is_zero")]
    pub lost_count: u64,
    /// Bytes of the store's packs when the snapshot was committed (its own
    /// included), as its host's catalog knew them: `cairn stats --growth`
    /// charts it. Absent from records of cairn before issue #19.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_bytes: Option<u64>,
    /// Files, directories and symlinks whose extended attributes could not
    /// be read: stored without them, with a warning.
    #[serde(skip_serializing_if = "is_zero")]
    pub xattrs_unread: u64,
    /// Requests made to a remote store by the run (before its record) and
    /// the bytes they moved; absent for a local store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<crate::backend::RequestStats>,
}

impl Summary {
    /// The summary with the counts every record has since issue #19
    /// present (0 or empty where nothing was counted).
    pub fn with_issue_19_counts(mut self) -> Self {
        self.files_modified.get_or_insert(0);
        self.database_fallbacks.get_or_insert(0);
        self.fallbacks.get_or_insert_with(Vec::new);
        self
    }

    /// Partial when anything is not whole: files left out, databases
    /// stored as plain bytes, files that changed while read, entries whose
    /// extended attributes could not be read.
    pub fn outcome(&self) -> crate::outcome::Outcome {
        crate::outcome::Outcome::partial_if(
            self.errors
                + self.database_fallbacks.unwrap_or(0)
                + self.files_inconsistent
                + self.xattrs_unread,
        )
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One database of a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseSummary {
    /// Where it is.
    pub path: RawName,
    /// Bytes of the captured image.
    pub size: u64,
    /// Its page size.
    pub page_size: u32,
    /// Chunks (page runs) of the image.
    pub chunks: u64,
    /// Of those, chunks the store did not have.
    pub chunks_new: u64,
    /// Raw bytes of the new chunks (before compression).
    pub bytes_new: u64,
    /// Taken over from the parent snapshot: neither the file nor its `-wal`
    /// changed, so it was not captured again.
    pub unchanged: bool,
    /// Seconds the capture took (image plus chunking).
    pub capture_secs: f64,
}
/// A record with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// BLAKE3 of the record file.
    pub id: SnapshotId,
    /// The record.
    pub record: SnapshotRecord,
}

/// Why records could not be written or listed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The store failed.
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    /// The catalog's record cache failed.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
}

/// Why a record file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The bytes do not hash to the id in the file name.
    #[error("content does not match its id (hash {0})")]
    IdMismatch(SnapshotId),
    /// Not the JSON of a record.
    #[error("does not decode: {0}")]
    Json(#[from] serde_json::Error),
    /// A record version this code cannot read.
    #[error("record version {0} is not supported by this cairn")]
    UnsupportedVersion(u32),
}

impl SnapshotRecord {
    /// The canonical bytes of the record file.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self)
            .expect("a record is plain structs with string keys: encoding cannot fail");
        bytes.push(b'\n');
        bytes
    }
}

/// Decodes a record file and checks it against the id it is stored under.
pub fn decode(vault: &Vault, id: &SnapshotId, bytes: &[u8]) -> Result<Snapshot, RecordError> {
    let actual = SnapshotId::from(vault.hash(bytes));
    if actual != *id {
        return Err(RecordError::IdMismatch(actual));
    }
    // The version first: a newer record must be reported as newer, not as
    // a record that fails to decode.
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let v: VersionOnly = serde_json::from_slice(bytes)?;
    if v.version != RECORD_VERSION {
        return Err(RecordError::UnsupportedVersion(v.version));
    }
    let record: SnapshotRecord = serde_json::from_slice(bytes)?;
    Ok(Snapshot { id: *id, record })
}

/// Longest tag or host name a new snapshot takes, in bytes: each names a
/// directory of `cairn mount` (`tags/TAG`, `hosts/HOST`), and no file
/// system takes a longer name.
pub const MAX_LABEL: usize = 255;

/// Checks a tag or host name given for a new record: not empty, at most
/// [`MAX_LABEL`] bytes.
pub fn check_label(text: &str) -> Result<(), String> {
    match text.trim().is_empty() {
        true => Err("must not be empty".to_owned()),
        false if text.len() > MAX_LABEL => Err(format!(
            "is {} bytes long; a tag or host name is at most {MAX_LABEL}",
            text.len()
        )),
        false => Ok(()),
    }
}

/// The store key of a record.
pub fn key(id: &SnapshotId) -> String {
    format!("snapshots/{id}.json")
}

/// The id in a record's store key (`snapshots/ID.json`).
pub fn id_of_key(key: &str) -> Option<SnapshotId> {
    key.strip_prefix("snapshots/")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// Writes a record durably; from the moment this returns, the snapshot is
/// visible. Everything it references must already be durable and cataloged.
///
/// The catalog keeps the record as this host wrote it, as a listing would
/// have: until this host next listed the store, a record damaged there was
/// invisible to `latest` here too and `repair snapshots` had no copy to
/// write back. Only a cache: a catalog that cannot take it is left as is.
pub fn commit(
    backend: &Backend,
    catalog: &Catalog,
    record: SnapshotRecord,
) -> Result<Snapshot, SnapshotError> {
    let bytes = record.encode();
    let id = SnapshotId::from(backend.vault().hash(&bytes));
    crash::point("snapshot-record-written");
    write_record(backend, catalog, id, bytes)?;
    crash::point("snapshot-committed");
    Ok(Snapshot { id, record })
}

/// Writes the record `bytes` of snapshot `id` (which they hash to) and
/// keeps them in `catalog`'s snapshot cache (see [`commit`]); a copy into
/// another store writes the record it checked so.
pub fn write_record(
    backend: &Backend,
    catalog: &Catalog,
    id: SnapshotId,
    bytes: Vec<u8>,
) -> Result<(), BackendError> {
    backend.create_sealed(&key(&id), bytes.clone())?;
    let _ = catalog.update_snapshot_cache(&[(id, bytes)], &[]);
    Ok(())
}

/// All snapshots, oldest first, plus the record files that could not be read.
#[derive(Debug, Default)]
pub struct SnapshotList {
    /// Readable snapshots, sorted by time then id.
    pub snapshots: Vec<Snapshot>,
    /// Record files that are damaged: (key, cause).
    pub unreadable: Vec<(String, String)>,
    /// Record files whose size in the store is not that of the copy this
    /// host's catalog checked when it first read them: damaged or replaced
    /// in the store since. Their snapshots are listed from that copy (it
    /// is the record: it hashes to the id), but another host, or this one
    /// after its catalog is rebuilt, would not see them.
    pub altered_in_store: Vec<String>,
}

impl SnapshotList {
    /// Resolves `reference` among the readable snapshots; an id or prefix
    /// that only a damaged record matches is reported as damaged, not as
    /// absent, and a prefix that a damaged record shares with the one
    /// found is ambiguous (`forget PREFIX` meant for the damaged record
    /// forgot the other).
    pub fn resolve(
        &self,
        reference: &select::SnapshotRef,
        filter: &select::Filter,
    ) -> Result<&Snapshot, select::SelectError> {
        let result = select::resolve(&self.snapshots, reference, filter);
        if let (Ok(found), select::SnapshotRef::Prefix(prefix)) = (&result, reference) {
            self.unambiguous(found, prefix)?;
        }
        if let Err(select::SelectError::NotFound(what)) = &result {
            let prefix = format!("snapshots/{what}");
            if let Some((key, cause)) = self.unreadable.iter().find(|(k, _)| k.starts_with(&prefix))
            {
                return Err(select::SelectError::Damaged {
                    key: key.clone(),
                    cause: cause.clone(),
                });
            }
        }
        result
    }
}

impl SnapshotList {
    /// Fails if a damaged record's id also starts with `prefix`, which
    /// named `found`.
    fn unambiguous(&self, found: &Snapshot, prefix: &str) -> Result<(), select::SelectError> {
        let key = format!("snapshots/{prefix}");
        let damaged: Vec<String> = (self.unreadable.iter())
            .filter(|(k, _)| k.starts_with(&key))
            .filter_map(|(k, _)| id_of_key(k))
            .filter(|id| *id != found.id)
            .map(|id| format!("{} (damaged)", id.to_hex()))
            .collect();
        if damaged.is_empty() {
            return Ok(());
        }
        let mut candidates = vec![found.id.to_hex()];
        candidates.extend(damaged);
        Err(select::SelectError::Ambiguous {
            prefix: prefix.to_owned(),
            candidates,
        })
    }

    /// The repaired copy of snapshot `id`, if `repair snapshots` wrote one
    /// (the copy of its copy, if that was repaired too).
    pub fn repaired_copy(&self, id: &SnapshotId) -> Option<&Snapshot> {
        self.repaired_copies().remove(id)
    }

    /// Every snapshot that has a repaired copy, with that copy (as
    /// [`SnapshotList::repaired_copy`] finds it).
    pub fn repaired_copies(&self) -> HashMap<SnapshotId, &Snapshot> {
        let mut direct: HashMap<SnapshotId, &Snapshot> = HashMap::new();
        for s in &self.snapshots {
            if let Some(original) = s.record.summary.repaired_from {
                direct.insert(original, s);
            }
        }
        let mut out = HashMap::with_capacity(direct.len());
        for (original, first) in &direct {
            let mut copy = *first;
            // Each step is a record naming an older one it was made from: a
            // chain, at most as long as the list.
            for _ in 0..direct.len() {
                match direct.get(&copy.id) {
                    Some(next) => copy = next,
                    None => break,
                }
            }
            out.insert(*original, copy);
        }
        out
    }

    /// The id `reference` names, even if its record is damaged: for the
    /// commands that must be able to remove a damaged record (`forget`,
    /// `unprotect`).
    pub fn resolve_id(
        &self,
        reference: &select::SnapshotRef,
        filter: &select::Filter,
    ) -> Result<SnapshotId, select::SelectError> {
        match self.resolve(reference, filter) {
            Ok(snapshot) => Ok(snapshot.id),
            Err(select::SelectError::Damaged { key, cause }) => {
                id_of_key(&key).ok_or(select::SelectError::Damaged { key, cause })
            }
            Err(e) => Err(e),
        }
    }
}

/// A record read from the store: opened, or why it would not open.
type Opened = Result<Vec<u8>, crate::crypt::CryptError>;

/// Lists `snapshots/`, reading only records the catalog has not cached
/// (in parallel: a fresh host of a remote store reads them all once).
pub fn list(backend: &Backend, catalog: &Catalog) -> Result<SnapshotList, SnapshotError> {
    use rayon::prelude::*;
    let mut cached = catalog.cached_snapshots()?;
    let listed: Vec<(SnapshotId, u64)> = backend
        .list("snapshots/")?
        .iter()
        .filter_map(|o| Some((id_of_key(&o.key)?, o.size)))
        .collect();
    let altered_in_store = altered(backend, &cached, &listed);
    let ids: Vec<SnapshotId> = listed.into_iter().map(|(id, _)| id).collect();
    let missing: Vec<SnapshotId> = ids
        .iter()
        .filter(|id| !cached.contains_key(id))
        .copied()
        .collect();
    let read: Vec<(SnapshotId, Option<Opened>)> = missing
        .par_iter()
        .map(|id| match backend.get_sealed(&key(id), MAX_RECORD_LEN) {
            Ok(opened) => Ok((*id, Some(opened))),
            Err(e) if e.is_not_found() => Ok((*id, None)),
            Err(e) => Err(e),
        })
        .collect::<Result<_, _>>()?;
    let mut out = SnapshotList {
        altered_in_store,
        ..SnapshotList::default()
    };
    let mut fresh = std::collections::HashMap::new();
    for (id, opened) in read {
        match opened {
            Some(Ok(bytes)) => drop(fresh.insert(id, bytes)),
            // A record that does not open is damaged, like one that does
            // not decode: listed as unreadable, the others stay usable.
            Some(Err(e)) => out.unreadable.push((key(&id), e.to_string())),
            None => {}
        }
    }
    let mut cache = Vec::new();
    for id in ids {
        let (bytes, is_fresh) = match (cached.remove(&id), fresh.remove(&id)) {
            (Some(bytes), _) => (bytes, false),
            (None, Some(bytes)) => (bytes, true),
            (None, None) => continue,
        };
        match decode(backend.vault(), &id, &bytes) {
            Ok(snapshot) => {
                if is_fresh {
                    cache.push((id, bytes));
                }
                out.snapshots.push(snapshot);
            }
            Err(e) => out.unreadable.push((key(&id), e.to_string())),
        }
    }
    let gone: Vec<SnapshotId> = cached.into_keys().collect();
    out.unreadable.sort();
    catalog.update_snapshot_cache(&cache, &gone)?;
    out.snapshots.sort_by_key(|s| (s.record.time, s.id));
    Ok(out)
}

/// The keys of listed records whose stored size is not that of the
/// catalog's checked copy sealed (a truncated or swapped record file): the
/// listing's sizes tell, at no extra request.
fn altered(
    backend: &Backend,
    cached: &HashMap<SnapshotId, Vec<u8>>,
    listed: &[(SnapshotId, u64)],
) -> Vec<String> {
    let overhead = u64::from(backend.vault().overhead());
    let differs = |(id, size): &&(SnapshotId, u64)| {
        cached
            .get(id)
            .is_some_and(|copy| copy.len() as u64 + overhead != *size)
    };
    let mut keys: Vec<String> = listed
        .iter()
        .filter(differs)
        .map(|(id, _)| key(id))
        .collect();
    keys.sort();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_record_version_is_named_even_if_its_fields_changed() {
        let bytes = br#"{"version": 2, "taken": "sometime", "roots": []}"#;
        let err = decode(&Vault::plain(), &SnapshotId::of(bytes), bytes).unwrap_err();
        assert!(matches!(err, RecordError::UnsupportedVersion(2)), "{err}");
    }

    #[test]
    fn a_record_that_does_not_hash_to_its_id_is_refused() {
        let bytes = br#"{"version": 1}"#;
        let err = decode(&Vault::plain(), &SnapshotId::of(b"other"), bytes).unwrap_err();
        assert!(matches!(err, RecordError::IdMismatch(_)), "{err}");
    }
}
