//! Changing a snapshot's tags. A record is immutable (its id is its hash),
//! so the snapshot gets a new record with the new tags and the old record
//! is removed, in the order that loses nothing at any crash:
//!
//! 1. the new record is written (both are listed until step 3);
//! 2. if the old one is protected, the new one is protected too;
//! 3. the old record is deleted;
//! 4. the old protection marker is deleted.
//!
//! A crash after step 1 or 2 leaves both snapshots (the same data, two
//! tag sets) and nothing unprotected; after step 3 a marker naming no
//! record, which protects nothing and is harmless. Like `forget`, it needs
//! the exclusive lock, so that no retention policy runs in between.

use super::{Snapshot, SnapshotRecord, commit, key, protect};
use crate::id::SnapshotId;
use crate::store::{Store, StoreError};

/// How to change the tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagChange {
    /// Replace all tags with these (before adding and removing).
    pub set: Option<Vec<String>>,
    /// Tags to add.
    pub add: Vec<String>,
    /// Tags to remove.
    pub remove: Vec<String>,
}

/// What happened to one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retagged {
    /// The snapshot as it was.
    pub old: SnapshotId,
    /// Its new record, `None` if its tags were already those.
    pub new: Option<SnapshotId>,
    /// Its tags now, sorted.
    pub tags: Vec<String>,
}

/// Why tags could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum RetagError {
    /// An empty tag was given.
    #[error("a tag must not be empty (use --set '' to remove every tag)")]
    EmptyTag,
    /// A tag longer than a name may be.
    #[error("a tag is at most {max} bytes; this one is {0}", max = super::MAX_LABEL)]
    LongTag(usize),
    /// The snapshot has a repaired copy, which names it by id.
    #[error(
        "snapshot {original} has a repaired copy, {copy}, that names it; change the copy's tags instead"
    )]
    HasRepairedCopy {
        /// The snapshot.
        original: String,
        /// Its copy.
        copy: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TagChange {
    /// Checks the tags: none may be empty (`--set ''` alone clears).
    pub fn checked(mut self) -> Result<Self, RetagError> {
        if let Some(set) = &mut self.set {
            set.retain(|t| !t.is_empty());
        }
        let all = self
            .set
            .iter()
            .flatten()
            .chain(&self.add)
            .chain(&self.remove);
        if all.clone().any(|t| t.trim().is_empty()) {
            return Err(RetagError::EmptyTag);
        }
        let added = self.set.iter().flatten().chain(&self.add);
        if let Some(long) = added.into_iter().find(|t| t.len() > super::MAX_LABEL) {
            return Err(RetagError::LongTag(long.len()));
        }
        Ok(self)
    }

    /// `tags` changed: set, then added, then removed; sorted, no duplicates.
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out = self.set.clone().unwrap_or_else(|| tags.to_vec());
        out.extend(self.add.iter().cloned());
        out.retain(|t| !self.remove.contains(t));
        out.sort();
        out.dedup();
        out
    }
}

/// Gives `snapshot` the tags `change` makes of its own (see the module's
/// documentation for the order of the steps).
pub fn retag(
    store: &Store,
    snapshot: &Snapshot,
    protected: bool,
    change: &TagChange,
) -> Result<Retagged, RetagError> {
    store.require_exclusive("changing tags")?;
    let tags = change.apply(&snapshot.record.tags);
    if tags == snapshot.record.tags {
        return Ok(Retagged {
            old: snapshot.id,
            new: None,
            tags,
        });
    }
    let record = SnapshotRecord {
        tags: tags.clone(),
        ..snapshot.record.clone()
    };
    let new = write_record(store, record)?;
    keep_intact_mark(store, &snapshot.id, &new);
    let backend = store.backend();
    if protected {
        protect::protect(backend, &new).map_err(StoreError::from)?;
    }
    crate::crash::point("retag-new-written");
    backend
        .delete(&key(&snapshot.id))
        .map_err(StoreError::from)?;
    if protected {
        protect::unprotect(backend, &snapshot.id).map_err(StoreError::from)?;
    }
    Ok(Retagged {
        old: snapshot.id,
        new: Some(new),
        tags,
    })
}

/// Commits `record`; a record with the same bytes already there (the same
/// snapshot with these tags) is the one wanted.
fn write_record(store: &Store, record: SnapshotRecord) -> Result<SnapshotId, StoreError> {
    let id = SnapshotId::from(store.backend().vault().hash(&record.encode()));
    match commit(store.backend(), store.catalog(), record) {
        Ok(snapshot) => Ok(snapshot.id),
        Err(super::SnapshotError::Backend(e)) if e.is_already_exists() => Ok(id),
        Err(e) => Err(e.into()),
    }
}

/// The new record references exactly the old one's blobs: if the old one
/// was intact (see `catalog::intact`), so is the new one, and the next
/// snapshot need not look up each reused chunk. Only a speed-up.
fn keep_intact_mark(store: &Store, old: &SnapshotId, new: &SnapshotId) {
    let catalog = store.catalog();
    if let Ok(Some(count)) = catalog.removals()
        && catalog.is_intact(old, count).unwrap_or(false)
    {
        let _ = catalog.mark_intact(new, count);
    }
}

/// Refuses a snapshot that `repair snapshots` made a copy of: the copy
/// names it by id (`repaired_from`), which a new id would break.
pub fn check_no_copy(list: &super::SnapshotList, snapshot: &Snapshot) -> Result<(), RetagError> {
    match list.repaired_copy(&snapshot.id) {
        Some(copy) => Err(RetagError::HasRepairedCopy {
            original: snapshot.id.short(),
            copy: copy.id.short(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn set_comes_first_then_add_then_remove() {
        let change = TagChange {
            set: Some(tags(&["b", "a"])),
            add: tags(&["c", "a"]),
            remove: tags(&["b"]),
        };
        assert_eq!(change.apply(&tags(&["x"])), tags(&["a", "c"]));
        let keep = TagChange {
            add: tags(&["y"]),
            ..TagChange::default()
        };
        assert_eq!(keep.apply(&tags(&["x"])), tags(&["x", "y"]));
    }

    #[test]
    fn an_empty_set_clears_and_an_empty_tag_is_refused() {
        let clear = TagChange {
            set: Some(tags(&[""])),
            ..TagChange::default()
        };
        assert_eq!(clear.checked().unwrap().apply(&tags(&["x"])), tags(&[]));
        let empty = TagChange {
            add: tags(&[" "]),
            ..TagChange::default()
        };
        assert!(matches!(empty.checked(), Err(RetagError::EmptyTag)));
    }
}
