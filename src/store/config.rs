//! `config.json`: the store's format version and the parameters that shape
//! what is written (chunker, compression, pack size, database page runs).
//! Written once by `init`; changed only by a format upgrade (`migrate`).

use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerParams;
use crate::compress::CompressionConfig;
use crate::retention::SavedPolicy;

/// The store format this code writes. Version 8 writes trees in a binary
/// form (an older reader would call every new tree corrupt); it still
/// reads the JSON trees of earlier versions. Version 6 added compression
/// with store dictionaries (pack entries with compression 2 naming
/// `dictionaries/N`: an older reader would call such packs corrupt).
/// Version 4 added owner names,
/// xattrs, holes and hard link groups to tree entries (an old reader would
/// call such trees corrupt, and its snapshots would silently lose what
/// they record). Version 3 added index objects
/// (`index/ID`, which a commit writes before its record, and which readers
/// build their catalog from); version 2 added SQLite database
/// entries in trees (an old reader would call them corrupt) and the
/// `sqlite` config section.
pub const FORMAT_VERSION: u32 = 8;

/// The format of an encrypted store: version 8 with every object sealed
/// and keyed ids (store-format/encryption.md). Version 5 was version 4
/// encrypted, version 7 version 6. A plain reader must refuse it (it could
/// read nothing).
pub const ENCRYPTED_VERSION: u32 = 9;

/// The versions of encrypted stores: 5 (before dictionaries), 7 (before
/// binary trees) and 9.
pub const ENCRYPTED_VERSIONS: [u32; 3] = [5, 7, ENCRYPTED_VERSION];

/// The versions whose packs may use store dictionaries (6 and 8 plain, 7
/// and 9 encrypted); older stores are upgraded before anything is written.
pub const DICTIONARY_VERSIONS: [u32; 4] = [6, 7, FORMAT_VERSION, ENCRYPTED_VERSION];

/// Store format versions this code reads.
pub const READABLE_VERSIONS: [u32; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];

/// Default bytes per database chunk: a run of whole pages, one page of the
/// usual 4 KiB. Measured on a 500 MiB database with 1.5% of its rows changed
/// per night (benches/sqlite.sh, results/2026-11-23-vm-sqlite.txt), nightly
/// growth was 0.20x restic's at 4 KiB, 0.30x at 8 KiB, 0.43x at 16 KiB:
/// scattered row changes touch ~11% of pages but 33% of 16 KiB runs.
pub const DEFAULT_SQLITE_PAGE_RUN: u32 = 4 << 10;
/// Smallest database chunk `init` accepts.
pub const MIN_SQLITE_PAGE_RUN: u32 = 512;
/// Largest database chunk `init` accepts.
pub const MAX_SQLITE_PAGE_RUN: u32 = 1 << 20;

/// Default size at which a pack is closed.
pub const DEFAULT_PACK_SIZE: u64 = 16 << 20;
/// Smallest pack size `init` accepts.
pub const MIN_PACK_SIZE: u64 = 1 << 20;
/// Largest pack size `init` accepts.
pub const MAX_PACK_SIZE: u64 = 1 << 30;

/// The parsed `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Store format version; readers refuse versions they do not know.
    pub version: u32,
    /// Random id of this store (64 hex digits).
    pub id: String,
    /// When the store was created (RFC 3339).
    pub created: String,
    /// FastCDC bounds.
    pub chunker: ChunkerParams,
    /// Per-blob compression.
    pub compression: CompressionConfig,
    /// Pack sizing.
    pub pack: PackConfig,
    /// How databases are cut; absent in version 1 configs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteConfig>,
    /// The retention policy saved with `cairn policy set`. Kept as raw JSON
    /// and decoded only by `forget` and `policy show`, so that a policy
    /// written by a newer cairn makes those refuse, not the store unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<serde_json::Value>,
    /// How the store is encrypted (version 5); absent in a plain store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// The encryption of a version 5 store: the only combination this version
/// writes, named so that a later one can be told apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// The AEAD of every envelope: `xchacha20poly1305`.
    pub cipher: String,
    /// How ids are made: `blake3-keyed`.
    pub ids: String,
    /// Names the store's master key (`MasterKey::check_for`): key files
    /// wrapping another are not the store's.
    pub key_check: String,
}

impl Encryption {
    /// What this version writes, for the master key named by `key_check`.
    pub fn current(key_check: String) -> Self {
        Self {
            cipher: "xchacha20poly1305".into(),
            ids: "blake3-keyed".into(),
            key_check,
        }
    }

    fn is_supported(&self) -> bool {
        self.cipher == "xchacha20poly1305"
            && self.ids == "blake3-keyed"
            && self.key_check.len() == 64
    }
}

/// How database images are cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqliteConfig {
    /// Preferred bytes per chunk, rounded down to whole pages (at least one).
    pub page_run: u32,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            page_run: DEFAULT_SQLITE_PAGE_RUN,
        }
    }
}
/// Pack sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackConfig {
    /// A pack is sealed once its blob data reaches this many bytes.
    pub target_size: u64,
}

/// Why a config is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, or missing fields.
    #[error("config.json is corrupt: {0}")]
    Corrupt(String),
    /// A format version this code does not know.
    #[error(
        "store format version {0} is not supported by this cairn (it reads versions 1 to {ENCRYPTED_VERSION}); use a newer cairn"
    )]
    UnsupportedVersion(u64),
}

impl Config {
    /// A new config with a fresh random id.
    pub fn new(
        id: String,
        created: String,
        compression: CompressionConfig,
        pack: PackConfig,
        sqlite: SqliteConfig,
        encryption: Option<Encryption>,
    ) -> Self {
        Self {
            version: if encryption.is_some() {
                ENCRYPTED_VERSION
            } else {
                FORMAT_VERSION
            },
            id,
            created,
            chunker: ChunkerParams::default(),
            compression,
            pack,
            sqlite: Some(sqlite),
            retention: None,
            encryption,
        }
    }

    /// Whether the store is of the version this code writes (8 plain, 9
    /// encrypted), so needs no upgrade before it is written.
    pub fn is_current(&self) -> bool {
        self.version == self.current_version()
    }

    /// The version this code writes for a store like this one.
    pub fn current_version(&self) -> u32 {
        match self.is_encrypted() {
            true => ENCRYPTED_VERSION,
            false => FORMAT_VERSION,
        }
    }

    /// Whether packs may hold blobs compressed with a store dictionary.
    pub fn allows_dictionaries(&self) -> bool {
        DICTIONARY_VERSIONS.contains(&self.version)
    }

    /// Whether the store is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.encryption.is_some()
    }

    /// The saved retention policy, if any.
    pub fn saved_policy(&self) -> Result<Option<SavedPolicy>, ConfigError> {
        let Some(raw) = &self.retention else {
            return Ok(None);
        };
        SavedPolicy::deserialize(raw).map(Some).map_err(|e| {
            ConfigError::Corrupt(format!(
                "the saved retention policy does not decode ({e}); it may come from a newer cairn"
            ))
        })
    }

    /// This config with `policy` saved (or the saved one removed).
    pub fn with_policy(&self, policy: Option<&SavedPolicy>) -> Self {
        Self {
            retention: policy.map(|p| {
                serde_json::to_value(p).expect("a policy is plain structs: encoding cannot fail")
            }),
            ..self.clone()
        }
    }

    /// How databases are cut (the default for a version 1 store).
    pub fn sqlite(&self) -> SqliteConfig {
        self.sqlite.unwrap_or_default()
    }

    /// Parses and validates `config.json`. The version is checked before
    /// anything else, so a newer store is reported as newer, not as corrupt.
    pub fn decode(bytes: &[u8]) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u64,
        }
        let corrupt = |e: serde_json::Error| ConfigError::Corrupt(e.to_string());
        let v: VersionOnly = serde_json::from_slice(bytes).map_err(corrupt)?;
        if !READABLE_VERSIONS.iter().any(|&r| u64::from(r) == v.version) {
            return Err(ConfigError::UnsupportedVersion(v.version));
        }
        let config: Config = serde_json::from_slice(bytes).map_err(corrupt)?;
        config.validate().map_err(ConfigError::Corrupt)?;
        Ok(config)
    }

    /// The bytes written to `config.json`.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self)
            .expect("a config is plain structs with string keys: encoding cannot fail");
        bytes.push(b'\n');
        bytes
    }

    /// Checks every parameter against what the code can honour.
    pub fn validate(&self) -> Result<(), String> {
        self.chunker.validate()?;
        self.compression.validate()?;
        if !(MIN_PACK_SIZE..=MAX_PACK_SIZE).contains(&self.pack.target_size) {
            return Err(format!(
                "pack target_size {} is outside {MIN_PACK_SIZE}..={MAX_PACK_SIZE}",
                self.pack.target_size
            ));
        }
        let run = self.sqlite().page_run;
        if !(MIN_SQLITE_PAGE_RUN..=MAX_SQLITE_PAGE_RUN).contains(&run) {
            return Err(format!(
                "sqlite page_run {run} is outside {MIN_SQLITE_PAGE_RUN}..={MAX_SQLITE_PAGE_RUN}"
            ));
        }
        let encrypted_version = ENCRYPTED_VERSIONS.contains(&self.version);
        match (&self.encryption, self.version) {
            (None, v) if encrypted_version => {
                return Err(format!("a version {v} store without `encryption`"));
            }
            (Some(_), v) if !encrypted_version => {
                return Err(format!("`encryption` in a version {v} store"));
            }
            (Some(e), _) if !e.is_supported() => {
                return Err(format!(
                    "encryption {} with {} ids is not supported",
                    e.cipher, e.ids
                ));
            }
            _ => {}
        }
        if self.id.len() != 64 || !crate::id::is_hex_prefix(&self.id) {
            return Err("store id is not 64 hex digits".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new(
            "ab".repeat(32),
            "2026-01-01T00:00:00Z".into(),
            CompressionConfig::default(),
            PackConfig {
                target_size: DEFAULT_PACK_SIZE,
            },
            SqliteConfig::default(),
            None,
        )
    }

    #[test]
    fn config_round_trips() {
        let c = config();
        assert_eq!(Config::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn a_newer_version_is_reported_as_such_even_if_the_rest_differs() {
        let err = Config::decode(br#"{"version": 10, "something": "new"}"#).unwrap_err();
        assert!(matches!(err, ConfigError::UnsupportedVersion(10)));
        assert!(err.to_string().contains("version 10"));
    }

    #[test]
    fn garbage_and_bad_parameters_are_corrupt() {
        assert!(matches!(
            Config::decode(b"{not json"),
            Err(ConfigError::Corrupt(_))
        ));
        let mut c = config();
        c.compression.level = 99;
        assert!(matches!(
            Config::decode(&c.encode()),
            Err(ConfigError::Corrupt(_))
        ));
    }
}
