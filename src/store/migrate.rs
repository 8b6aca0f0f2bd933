//! Format upgrades. Older stores are read as they are; before the first
//! write, their config is rewritten to the current version so that older
//! cairn versions refuse the store (as newer) instead of misreading what
//! the new version adds.
//!
//! Version 1 -> 2: adds the `sqlite` section with the default page run.
//! Nothing else changes: packs, trees and records of version 1 are valid
//! version 2 objects.

use super::config::{Config, FORMAT_VERSION};

/// The config rewritten to the current version, or `None` if it is current.
pub fn upgraded(config: &Config) -> Option<Config> {
    if config.version == FORMAT_VERSION {
        return None;
    }
    Some(Config {
        version: FORMAT_VERSION,
        sqlite: Some(config.sqlite.unwrap_or_default()),
        ..config.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteConfig;

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
}
