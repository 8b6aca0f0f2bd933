//! Format upgrades. Older stores are read as they are; before the first
//! write, their config is rewritten to the current version so that older
//! cairn versions refuse the store (as newer) instead of misreading what
//! the new version adds.
//!
//! Version 1 -> 2: adds the `sqlite` section with the default page run.
//! Nothing else changes: packs, trees and records of version 1 are valid
//! version 2 objects.
//!
//! Version 2 -> 3: index objects. Every pack the catalog holds that no
//! index object names is indexed (its header read from the store) before
//! the config says 3, so that a store of version 3 is described by its
//! index objects alone. A crash in between leaves a version 2 store with
//! some index objects, which the next upgrade completes.
//!
//! Version 3 -> 4: tree entries may carry owner names, xattrs, holes and
//! link groups. Nothing already written changes: every version 3 tree is a
//! valid version 4 tree (its entries simply record none of these).
//!
//! Version 4 -> 6 (and encrypted 5 -> 7): pack entries may be compressed
//! with a store dictionary (`dictionaries/N`). Nothing already written
//! changes; the version only makes older cairn versions refuse the store
//! rather than call such packs corrupt.
//!
//! Version 6 -> 8 (and encrypted 7 -> 9): trees are written in a binary
//! form. Trees already written stay JSON and are still read (the two are
//! told apart by their first byte); the version makes older cairn
//! versions refuse the store rather than call every new tree corrupt.

use super::StoreError;
use super::config::Config;
use crate::backend::Backend;
use crate::catalog::Catalog;
use crate::index::{self, IndexedPack};
use crate::pack;

/// The config rewritten to the current version, or `None` if it is current.
pub fn upgraded(config: &Config) -> Option<Config> {
    if config.is_current() {
        return None;
    }
    Some(Config {
        version: config.current_version(),
        sqlite: Some(config.sqlite.unwrap_or_default()),
        ..config.clone()
    })
}

/// Pack headers held at once while indexing them.
const HEADERS_AT_ONCE: usize = 1024;

/// Indexes every cataloged pack that no index object names yet; returns
/// how many.
pub fn index_unindexed_packs(backend: &Backend, catalog: &mut Catalog) -> Result<u64, StoreError> {
    let packs = catalog.unindexed_packs()?;
    for chunk in packs.chunks(HEADERS_AT_ONCE) {
        let mut described = Vec::with_capacity(chunk.len());
        for id in chunk {
            let (entries, size) = pack::reader::read_header(backend, id)?;
            described.push(IndexedPack {
                id: *id,
                size,
                entries,
            });
        }
        for batch in index::batches(&described) {
            catalog.record_index(&index::write(backend, batch)?, batch)?;
        }
    }
    Ok(packs.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteConfig;
    use crate::store::config::{ENCRYPTED_VERSION, FORMAT_VERSION};

    #[test]
    fn a_version_1_config_gains_the_sqlite_section_and_keeps_the_rest() {
        let v1 = br#"{"version":1,"id":"abababababababababababababababababababababababababababababababab","created":"2026-01-01T00:00:00Z","chunker":{"min_size":262144,"avg_size":1048576,"max_size":4194304},"compression":{"algorithm":"zstd","level":3},"pack":{"target_size":1048576}}"#;
        let old = Config::decode(v1).unwrap();
        let new = upgraded(&old).unwrap();
        assert_eq!(new.version, FORMAT_VERSION);
        assert_eq!(new.sqlite, Some(SqliteConfig::default()));
        assert_eq!(
            (new.chunker, new.pack, &new.id),
            (old.chunker, old.pack, &old.id)
        );
        assert!(upgraded(&Config::decode(&new.encode()).unwrap()).is_none());
    }

    #[test]
    fn an_encrypted_version_5_store_becomes_9_and_a_plain_4_or_6_becomes_8() {
        let v5 = std::fs::read("tests/fixtures/v5/config.json").unwrap();
        let upgraded_v5 = upgraded(&Config::decode(&v5).unwrap()).unwrap();
        assert_eq!(upgraded_v5.version, ENCRYPTED_VERSION);
        assert!(upgraded_v5.allows_dictionaries() && upgraded_v5.is_encrypted());
        let v4 = std::fs::read("tests/fixtures/v4/config.json").unwrap();
        let upgraded_v4 = upgraded(&Config::decode(&v4).unwrap()).unwrap();
        assert_eq!(upgraded_v4.version, FORMAT_VERSION);
        assert!(!Config::decode(&v4).unwrap().allows_dictionaries());
        let v6 = std::fs::read("tests/fixtures/v6/config.json").unwrap();
        let upgraded_v6 = upgraded(&Config::decode(&v6).unwrap()).unwrap();
        assert_eq!((upgraded_v6.version, FORMAT_VERSION), (8, 8));
        assert!(upgraded_v6.allows_dictionaries());
    }
}
