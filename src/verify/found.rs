//! Damage as it is found, and which damage each lost blob belongs to (the
//! first that found it), turned into the report's list once attributed.

use std::collections::HashMap;

use super::attribute::{self, Affected};
use super::{Damage, DamageKind, data, databases};
use crate::id::{BlobId, PackId, TreeId};
use crate::rawname::RawName;
use crate::reach::Trouble;
use crate::snapshot::Snapshot;
use crate::store::Store;

/// Damage found so far, and which damage each lost blob belongs to.
#[derive(Default)]
pub(super) struct Found {
    pub(super) damage: Vec<Damage>,
    pub(super) blobs: HashMap<BlobId, usize>,
    pub(super) packs: HashMap<PackId, usize>,
    /// Damaged entries, by the tree holding them.
    pub(super) entries: HashMap<TreeId, Vec<(RawName, usize)>>,
}

/// The cause of a blob the snapshots need that the catalog lacks.
const NOT_CATALOGED: &str = "not in the catalog: no pack holds it";

impl Found {
    /// Whether blobs the snapshots need are missing from the catalog.
    pub(super) fn lacks_rows(&self) -> bool {
        self.damage
            .iter()
            .any(|d| d.kind == DamageKind::Blob && d.cause == NOT_CATALOGED)
    }

    pub(super) fn add(&mut self, kind: DamageKind, key: String, cause: String) -> usize {
        self.damage.push(Damage {
            kind,
            key,
            cause,
            blobs_lost: 0,
            affected: Vec::new(),
        });
        self.damage.len() - 1
    }

    /// Counts `blob` as lost with damage `index`, unless earlier damage
    /// already accounts for it (it stays attributed there).
    pub(super) fn lose(&mut self, blob: BlobId, index: usize) {
        if let std::collections::hash_map::Entry::Vacant(v) = self.blobs.entry(blob) {
            v.insert(index);
            self.damage[index].blobs_lost += 1;
        }
    }

    /// Whether `blob` is already lost with a missing or damaged dictionary.
    fn lost_to_dictionary(&self, blob: &BlobId) -> bool {
        self.blobs
            .get(blob)
            .is_some_and(|&i| self.damage[i].kind == DamageKind::Dictionary)
    }

    pub(super) fn record(&mut self, key: String, cause: String) {
        self.add(DamageKind::Record, key, cause);
    }

    pub(super) fn trouble(&mut self, trouble: &Trouble) {
        let (blob, cause) = match trouble {
            Trouble::Missing(blob) => (*blob, NOT_CATALOGED.to_owned()),
            Trouble::BadTree(tree, e) => (tree.as_blob(), format!("tree does not read: {e}")),
            Trouble::BadEntry { tree, name, cause } => {
                let key = format!("{tree}/{name}");
                let index = self.add(DamageKind::Entry, key, cause.clone());
                self.entries
                    .entry(*tree)
                    .or_default()
                    .push((name.clone(), index));
                return;
            }
        };
        if !self.blobs.contains_key(&blob) {
            let index = self.add(DamageKind::Blob, blob.to_hex(), cause);
            self.lose(blob, index);
        }
    }

    /// `snapshot`'s trees expand beyond what a reader accepts (`cause`).
    pub(super) fn unbounded(&mut self, snapshot: &Snapshot, cause: String) {
        let key = snapshot.record.tree.to_hex();
        let index = self.add(DamageKind::Tree, key, cause);
        self.damage[index].affected.push(Affected {
            snapshot: snapshot.id,
            time: snapshot.record.time,
            paths: vec![crate::rawname::RawName::from_bytes(b"/".to_vec())],
            more_paths: 0,
        });
    }

    pub(super) fn pack(&mut self, id: &PackId, cause: String, lost: &[BlobId]) -> usize {
        let index = match self.packs.get(id) {
            Some(&i) => i,
            None => {
                let i = self.add(DamageKind::Pack, crate::pack::key(id), cause);
                self.packs.insert(*id, i);
                i
            }
        };
        for blob in lost {
            self.lose(*blob, index);
        }
        index
    }

    /// A pack read whole found bad. Blobs already lost with other damage
    /// (a missing dictionary, say) do not make the pack damaged.
    pub(super) fn pack_read(&mut self, read: &data::PackRead) {
        let unexplained = read
            .bad_blobs
            .iter()
            .any(|(b, _)| !self.lost_to_dictionary(b));
        if read.file_damage.is_none() && !unexplained {
            return;
        }
        let cause = read
            .file_damage
            .clone()
            .unwrap_or_else(|| format!("{} blob(s) do not check out", read.bad_blobs.len()));
        let lost: Vec<BlobId> = read.bad_blobs.iter().map(|(b, _)| *b).collect();
        let index = self.pack(&read.pack, cause.clone(), &lost);
        let known = &mut self.damage[index].cause;
        if !known.contains(&cause) {
            *known = format!("{known}; {cause}");
        }
    }

    pub(super) fn database(&mut self, db: databases::BadDatabase) {
        let Some((_, first)) = db.holders.first() else {
            return;
        };
        let key = first.display().to_string();
        let index = self.add(DamageKind::Database, key, db.cause);
        for (snapshot, path) in db.holders {
            self.damage[index].affected.push(Affected {
                snapshot: snapshot.id,
                time: snapshot.record.time,
                paths: vec![crate::rawname::RawName::from_path(&path)],
                more_paths: 0,
            });
        }
    }

    /// Attributes lost blobs to snapshots and paths; records name themselves.
    pub(super) fn finish(mut self, store: &Store, snapshots: &[Snapshot]) -> Vec<Damage> {
        let damaged = attribute::Damaged {
            blobs: &self.blobs,
            entries: &self.entries,
        };
        let affected = attribute::attribute(store, snapshots, &damaged, self.damage.len());
        for (damage, affected) in self.damage.iter_mut().zip(affected) {
            damage.affected.extend(affected);
        }
        self.damage
    }
}
