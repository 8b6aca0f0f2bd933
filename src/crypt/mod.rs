//! Encryption of a store (store-format/encryption.md): the keys in effect
//! for one open store ([`Vault`]), the envelope that seals blobs and
//! objects, key files wrapping the master key under passphrases, and where
//! passphrases come from.
//!
//! An unencrypted store has a plain vault: ids are plain BLAKE3 and
//! nothing is sealed, so every caller goes through the vault whatever the
//! store and there is one code path for both.

pub mod envelope;
pub mod keyfile;
pub mod passphrase;

use std::borrow::Cow;

use envelope::{OVERHEAD, SealingKey};

/// Why something could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    /// Fewer bytes than an envelope's overhead.
    #[error("sealed object of {0} bytes is truncated")]
    Truncated(usize),
    /// An envelope of a scheme this version does not know.
    #[error(
        "sealed with scheme {0}, which this cairn does not know: damaged, or not the object that belongs here (or written by a newer cairn)"
    )]
    Scheme(u8),
    /// The tag did not verify: altered bytes, the wrong key, or an object
    /// put where another belongs.
    #[error("authentication failed: altered, or not the object that belongs here")]
    Forged,
    /// Too much to seal at once.
    #[error("{0} bytes are too many to seal at once")]
    TooLong(usize),
    /// The system's random source failed.
    #[error("no random bytes from the system: {0}")]
    Random(String),
}

/// `N` random bytes from the system.
pub fn random<const N: usize>() -> Result<[u8; N], CryptError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| CryptError::Random(e.to_string()))?;
    Ok(bytes)
}

/// The secret every key file of a store wraps.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// A new random master key, for a new store.
    pub fn generate() -> Result<Self, CryptError> {
        Ok(Self(random()?))
    }

    /// The key from its 32 bytes (unwrapped from a key file).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Its 32 bytes, to wrap in a key file.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn derive(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, &self.0)
    }

    /// What `config.json` records to name this key for the store `store_id`
    /// (hex of a keyed hash; reveals nothing): a key file whose master key
    /// does not match (left by an init that failed, or planted) is not
    /// this store's key.
    pub fn check_for(&self, store_id: &str) -> String {
        hex::encode(
            blake3::keyed_hash(&self.derive(KEY_CHECK_CONTEXT), store_id.as_bytes()).as_bytes(),
        )
    }
}

/// Contexts of `blake3::derive_key` for the sub-keys (on disk: changing
/// one changes every id or every seal).
const ID_CONTEXT: &str = "cairn 2026-12-06 id key";
const ENCRYPTION_CONTEXT: &str = "cairn 2026-12-06 encryption key";
const CHUNKER_CONTEXT: &str = "cairn 2026-12-06 chunker seed";
const FINGERPRINT_CONTEXT: &str = "cairn 2026-12-06 key fingerprint";
const KEY_CHECK_CONTEXT: &str = "cairn 2026-12-06 key check";

/// Prefixes of the associated data, one per kind of sealed thing, so that
/// nothing sealed as one kind opens as another.
const BLOB_AD: &[u8] = b"cairn blob\0";
const HEADER_AD: &[u8] = b"cairn pack header\0";
const OBJECT_AD: &[u8] = b"cairn object\0";

/// The keys in effect for one open store.
#[derive(Clone, Default)]
pub struct Vault {
    secrets: Option<Secrets>,
}

#[derive(Clone)]
struct Secrets {
    id_key: [u8; 32],
    sealing: SealingKey,
    chunker_seed: u64,
    fingerprint: String,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.secrets {
            Some(s) => write!(f, "Vault(encrypted, {})", s.fingerprint),
            None => f.write_str("Vault(plain)"),
        }
    }
}

impl Vault {
    /// The vault of an unencrypted store.
    pub fn plain() -> Self {
        Self::default()
    }

    /// The vault of an encrypted store whose master key is `master`.
    pub fn of(master: &MasterKey) -> Self {
        let seed = master.derive(CHUNKER_CONTEXT);
        let mut seed8 = [0u8; 8];
        seed8.copy_from_slice(&seed[..8]);
        Self {
            secrets: Some(Secrets {
                id_key: master.derive(ID_CONTEXT),
                sealing: SealingKey::new(&master.derive(ENCRYPTION_CONTEXT)),
                // 0 means "no seed" to the chunker: never use it.
                chunker_seed: u64::from_le_bytes(seed8).max(1),
                fingerprint: hex::encode(&master.derive(FINGERPRINT_CONTEXT)[..8]),
            }),
        }
    }

    /// Whether the store is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.secrets.is_some()
    }

    /// A short name of the master key (not a secret): two stores with the
    /// same fingerprint share their keys. `None` for a plain store.
    pub fn fingerprint(&self) -> Option<&str> {
        self.secrets.as_ref().map(|s| s.fingerprint.as_str())
    }

    /// A hasher for ids: keyed by the store's id key when encrypted, so an
    /// id says nothing about content to whoever lacks the key.
    pub fn hasher(&self) -> blake3::Hasher {
        match &self.secrets {
            Some(s) => blake3::Hasher::new_keyed(&s.id_key),
            None => blake3::Hasher::new(),
        }
    }

    /// The id of `bytes` (a blob, a record, an index object).
    pub fn hash(&self, bytes: &[u8]) -> blake3::Hash {
        match &self.secrets {
            Some(s) => blake3::keyed_hash(&s.id_key, bytes),
            None => blake3::hash(bytes),
        }
    }

    /// The chunker's gear seed: 0 (the published table) for a plain store,
    /// else derived from the key, so that chunk sizes do not reveal
    /// which known files a store holds.
    pub fn chunker_seed(&self) -> u64 {
        self.secrets.as_ref().map_or(0, |s| s.chunker_seed)
    }

    /// Bytes sealing adds to each blob and header.
    pub fn overhead(&self) -> u32 {
        if self.is_encrypted() {
            OVERHEAD as u32
        } else {
            0
        }
    }

    /// A blob's stored bytes (compressed or raw) sealed, bound to its kind
    /// (the pack code: 0 data, 1 tree) and id.
    pub fn seal_blob(
        &self,
        kind: u8,
        id: &[u8; 32],
        inner: Vec<u8>,
    ) -> Result<Vec<u8>, CryptError> {
        match &self.secrets {
            Some(s) => s.sealing.seal(&blob_ad(kind, id), &inner),
            None => Ok(inner),
        }
    }

    /// What [`Vault::seal_blob`] sealed, if `stored` is the blob `id`.
    pub fn open_blob<'a>(
        &self,
        kind: u8,
        id: &[u8; 32],
        stored: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, CryptError> {
        match &self.secrets {
            Some(s) => Ok(Cow::Owned(s.sealing.open(&blob_ad(kind, id), stored)?)),
            None => Ok(Cow::Borrowed(stored)),
        }
    }

    /// A pack header sealed.
    pub fn seal_header(&self, header: Vec<u8>) -> Result<Vec<u8>, CryptError> {
        match &self.secrets {
            Some(s) => s.sealing.seal(HEADER_AD, &header),
            None => Ok(header),
        }
    }

    /// A pack header opened.
    pub fn open_header<'a>(&self, sealed: &'a [u8]) -> Result<Cow<'a, [u8]>, CryptError> {
        match &self.secrets {
            Some(s) => Ok(Cow::Owned(s.sealing.open(HEADER_AD, sealed)?)),
            None => Ok(Cow::Borrowed(sealed)),
        }
    }

    /// The bytes to store as object `key` (a record, an index object, a
    /// condemned list, the journal, a lease): sealed and bound to the key,
    /// so that an object moved or replayed under another name is refused.
    pub fn seal_object(&self, key: &str, plain: Vec<u8>) -> Result<Vec<u8>, CryptError> {
        match &self.secrets {
            Some(s) => s.sealing.seal(&object_ad(key), &plain),
            None => Ok(plain),
        }
    }

    /// The plain bytes of object `key` as read from the store.
    pub fn open_object(&self, key: &str, stored: Vec<u8>) -> Result<Vec<u8>, CryptError> {
        match &self.secrets {
            Some(s) => s.sealing.open(&object_ad(key), &stored),
            None => Ok(stored),
        }
    }
}

fn blob_ad(kind: u8, id: &[u8; 32]) -> Vec<u8> {
    [BLOB_AD, &[kind], id.as_slice()].concat()
}

fn object_ad(key: &str) -> Vec<u8> {
    [OBJECT_AD, key.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_vault_changes_nothing() {
        let v = Vault::plain();
        assert_eq!(v.hash(b"x"), blake3::hash(b"x"));
        assert_eq!(v.seal_blob(0, &[0; 32], b"x".to_vec()).unwrap(), b"x");
        assert_eq!(v.chunker_seed(), 0);
    }

    #[test]
    fn an_encrypted_vault_keys_ids_and_binds_blobs_to_them() {
        let v = Vault::of(&MasterKey::from_bytes([1; 32]));
        assert_ne!(v.hash(b"x"), blake3::hash(b"x"));
        let sealed = v.seal_blob(0, &[2; 32], b"x".to_vec()).unwrap();
        assert_eq!(&*v.open_blob(0, &[2; 32], &sealed).unwrap(), b"x");
        assert!(v.open_blob(0, &[3; 32], &sealed).is_err());
        assert!(v.open_blob(1, &[2; 32], &sealed).is_err());
        let object = v.seal_object("snapshots/a.json", b"r".to_vec()).unwrap();
        assert!(v.open_object("snapshots/b.json", object.clone()).is_err());
        assert_eq!(v.open_object("snapshots/a.json", object).unwrap(), b"r");
    }

    /// store-format/encryption.md, "Test vectors" (computed with the
    /// Python `blake3`): a change here makes every encrypted store
    /// unreadable.
    #[test]
    fn sub_keys_and_ids_match_the_specification_vectors() {
        let master = MasterKey::from_bytes([0; 32]);
        assert_eq!(
            hex::encode(master.derive(ID_CONTEXT)),
            "243777ab8bfcf4a6cd1de3c8cf6d74d0aa70520188a33e4ca368eee326680bd2"
        );
        assert_eq!(
            hex::encode(master.derive(ENCRYPTION_CONTEXT)),
            "2a08fd45014028a51e3a09c3b85f5e8c7c703b050d3c4258e756e29d745edcc3"
        );
        let v = Vault::of(&master);
        assert_eq!(v.chunker_seed(), 0x0979_669e_377b_819b);
        assert_eq!(v.fingerprint(), Some("6be78c37036c3f09"));
        assert_eq!(
            v.hash(b"").to_hex().as_str(),
            "f0632039afbe460b2f52fc66ea1aafca8d1f701afc1e7071daf8f8e84d86e078"
        );
        assert_eq!(
            v.hash(b"hello").to_hex().as_str(),
            "4a47e2339d3791db69a14faafd5c1b9fb27d4dc31a000f16c64cf7fe9d289598"
        );
    }
}
