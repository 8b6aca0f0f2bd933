//! Key files (`keys/ID`): the master key wrapped by a key derived from one
//! passphrase with argon2id. A store has one per passphrase; any of them
//! opens it (store-format/encryption.md, "Key files").

use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};

use super::envelope::SealingKey;
use super::{CryptError, MasterKey, random};

/// The key file format this code writes and reads.
pub const KEY_FILE_VERSION: u32 = 1;
/// Associated data of a wrapped master key.
const WRAP_AD: &[u8] = b"cairn key\0full";

/// Default argon2id cost: 64 MiB and 16 passes take 0.61 s on the 2-core
/// VM cairn is measured on (benches/results/2026-12-06-vm-kdf.txt; 3
/// passes took 0.13 s, the crate's 19 MiB x 2 less), so that each guess at
/// a passphrase costs an attacker what opening the store costs us. Memory
/// stays at 64 MiB rather than 256 (0.6 s at 3 passes) because every
/// command pays it at its start: a peak of 73 MiB stays below what a
/// snapshot's pipeline holds, 256 MiB would be every command's peak.
pub const DEFAULT_MEMORY_KIB: u32 = 64 * 1024;
/// Default argon2id passes.
pub const DEFAULT_ITERATIONS: u32 = 16;
/// Most memory a key file may ask for (4 GiB), checked before deriving:
/// a key file planted in the store must not be able to exhaust memory.
const MAX_MEMORY_KIB: u32 = 4 << 20;
/// Most passes a key file may ask for.
const MAX_ITERATIONS: u32 = 100;

/// Why a key file could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Not a key file of a known version.
    #[error("not a cairn key file: {0}")]
    Corrupt(String),
    /// The passphrase does not open it (or the file was altered).
    #[error("wrong password")]
    WrongPassword,
    /// argon2 refused the parameters.
    #[error("key derivation: {0}")]
    Kdf(String),
    /// Sealing failed.
    #[error(transparent)]
    Crypt(#[from] CryptError),
}

/// argon2id parameters, stored with each key so they can be raised later
/// without breaking older keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Kdf {
    /// Always `argon2id`.
    pub algorithm: String,
    /// argon2 version: 19 (0x13).
    pub version: u32,
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// 32 random bytes, hex.
    pub salt: String,
}

/// Cost settings for a new key.
#[derive(Debug, Clone, Copy)]
pub struct KdfCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
}

impl KdfCost {
    /// How much a derivation at this cost asks: memory times passes.
    pub fn work(&self) -> u64 {
        u64::from(self.memory_kib) * u64::from(self.iterations)
    }
}

impl Kdf {
    /// The cost it was derived at, to wrap another key at the same.
    pub fn cost(&self) -> KdfCost {
        KdfCost {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
        }
    }
}

impl Default for KdfCost {
    fn default() -> Self {
        Self {
            memory_kib: DEFAULT_MEMORY_KIB,
            iterations: DEFAULT_ITERATIONS,
        }
    }
}

/// What a key may do. Only full keys exist in this version.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// Reads, writes, forgets and prunes.
    Full,
}

/// One `keys/ID` object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Key file format, 1.
    pub version: u32,
    /// What the key may do.
    pub kind: KeyKind,
    /// When it was made (RFC 3339).
    pub created: String,
    /// The host it was made on.
    pub host: String,
    /// The user who made it.
    pub user: String,
    /// How the wrapping key is derived from the passphrase.
    pub kdf: Kdf,
    /// The master key sealed under the derived key, hex.
    pub wrapped: String,
}

/// Who and when, recorded in a new key file.
#[derive(Debug, Clone)]
pub struct Maker {
    /// RFC 3339 time.
    pub created: String,
    /// Host name.
    pub host: String,
    /// User name.
    pub user: String,
}

impl KeyFile {
    /// `master` wrapped under `passphrase`.
    pub fn wrap(
        master: &MasterKey,
        passphrase: &[u8],
        cost: KdfCost,
        maker: Maker,
    ) -> Result<Self, KeyFileError> {
        let kdf = Kdf {
            algorithm: "argon2id".into(),
            version: 0x13,
            memory_kib: cost.memory_kib,
            iterations: cost.iterations,
            parallelism: 1,
            salt: hex::encode(random::<32>()?),
        };
        let wrapping = derive(&kdf, passphrase)?;
        let wrapped = wrapping.seal(WRAP_AD, master.as_bytes())?;
        Ok(Self {
            version: KEY_FILE_VERSION,
            kind: KeyKind::Full,
            created: maker.created,
            host: maker.host,
            user: maker.user,
            kdf,
            wrapped: hex::encode(wrapped),
        })
    }

    /// The master key, if `passphrase` is this key's.
    pub fn unwrap_with(&self, passphrase: &[u8]) -> Result<MasterKey, KeyFileError> {
        let wrapping = derive(&self.kdf, passphrase)?;
        let sealed = hex::decode(&self.wrapped)
            .map_err(|_| KeyFileError::Corrupt("`wrapped` is not hex".into()))?;
        let plain = wrapping
            .open(WRAP_AD, &sealed)
            .map_err(|_| KeyFileError::WrongPassword)?;
        let bytes = <[u8; 32]>::try_from(plain.as_slice())
            .map_err(|_| KeyFileError::Corrupt("the wrapped key is not 32 bytes".into()))?;
        Ok(MasterKey::from_bytes(bytes))
    }

    /// Parses a key file's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, KeyFileError> {
        let file: Self =
            serde_json::from_slice(bytes).map_err(|e| KeyFileError::Corrupt(e.to_string()))?;
        if file.version != KEY_FILE_VERSION {
            return Err(KeyFileError::Corrupt(format!(
                "key file version {} (this cairn reads {KEY_FILE_VERSION})",
                file.version
            )));
        }
        Ok(file)
    }

    /// The bytes to store.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// The wrapping key of `passphrase` under `kdf`.
fn derive(kdf: &Kdf, passphrase: &[u8]) -> Result<SealingKey, KeyFileError> {
    if kdf.algorithm != "argon2id" || kdf.version != 0x13 {
        return Err(KeyFileError::Corrupt(format!(
            "key derivation {} version {} is not argon2id 19",
            kdf.algorithm, kdf.version
        )));
    }
    if kdf.memory_kib > MAX_MEMORY_KIB || kdf.iterations > MAX_ITERATIONS || kdf.parallelism > 16 {
        return Err(KeyFileError::Corrupt(format!(
            "key derivation cost {} KiB x {} passes x {} lanes is beyond what cairn derives (at most {} MiB, {MAX_ITERATIONS} passes, 16 lanes)",
            kdf.memory_kib,
            kdf.iterations,
            kdf.parallelism,
            MAX_MEMORY_KIB / 1024
        )));
    }
    let salt =
        hex::decode(&kdf.salt).map_err(|_| KeyFileError::Corrupt("salt is not hex".into()))?;
    let params = Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
    let mut blocks = memory_for(&params)?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(passphrase, &salt, &mut out, &mut blocks)
        .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
    Ok(SealingKey::new(&out))
}

/// The memory a derivation under `params` works in, or an error saying it
/// cannot be had: a key made on a larger machine (or planted) may ask for
/// more than this process may allocate, which must not abort it.
fn memory_for(params: &Params) -> Result<Vec<Block>, KeyFileError> {
    let mut blocks = Vec::new();
    blocks
        .try_reserve_exact(params.block_count())
        .map_err(|_| {
            KeyFileError::Kdf(format!(
                "cannot allocate the {} MiB it needs",
                params.m_cost() / 1024
            ))
        })?;
    blocks.resize(params.block_count(), Block::default());
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> KdfCost {
        KdfCost {
            memory_kib: 64,
            iterations: 1,
        }
    }

    fn maker() -> Maker {
        Maker {
            created: "2026-12-06T00:00:00Z".into(),
            host: "h".into(),
            user: "u".into(),
        }
    }

    #[test]
    fn a_key_file_opens_with_its_passphrase_only() {
        let master = MasterKey::from_bytes([9; 32]);
        let file = KeyFile::wrap(&master, b"secret", cheap(), maker()).unwrap();
        let again = KeyFile::decode(&file.encode()).unwrap();
        assert_eq!(again.unwrap_with(b"secret").unwrap().as_bytes(), &[9; 32]);
        assert!(matches!(
            again.unwrap_with(b"Secret"),
            Err(KeyFileError::WrongPassword)
        ));
    }

    /// store-format/encryption.md, "Test vectors" (computed with
    /// argon2-cffi).
    #[test]
    fn the_passphrase_key_matches_the_specification_vector() {
        let kdf = Kdf {
            algorithm: "argon2id".into(),
            version: 0x13,
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
            salt: "00".repeat(32),
        };
        let sealed = hex::decode(
            "010102030405060708090a0b0c0d0e0f101112131415161718e8bd62a30400ce5f41f1510f6dce848f473bc5e7e885e464eb92c48115755f595acb4d7c06b189981bc4211363946a2b",
        )
        .unwrap();
        let opened = derive(&kdf, b"correct horse")
            .unwrap()
            .open(WRAP_AD, &sealed)
            .unwrap();
        assert_eq!(opened, [0; 32]);
    }

    #[test]
    fn a_key_file_demanding_absurd_cost_is_refused_before_deriving() {
        let file = KeyFile::wrap(&MasterKey::from_bytes([9; 32]), b"p", cheap(), maker()).unwrap();
        let mut greedy = file.clone();
        greedy.kdf.memory_kib = u32::MAX;
        assert!(matches!(
            greedy.unwrap_with(b"p"),
            Err(KeyFileError::Corrupt(_))
        ));
        let mut slow = file;
        slow.kdf.iterations = 1_000_000;
        assert!(matches!(
            slow.unwrap_with(b"p"),
            Err(KeyFileError::Corrupt(_))
        ));
    }

    #[test]
    fn a_key_file_with_unknown_fields_or_version_is_refused() {
        let file = KeyFile::wrap(&MasterKey::from_bytes([9; 32]), b"p", cheap(), maker()).unwrap();
        let text = String::from_utf8(file.encode()).unwrap();
        let newer = text.replace("\"version\": 1,", "\"version\": 2,");
        assert!(KeyFile::decode(newer.as_bytes()).is_err());
        let extra = text.replacen('{', "{\"x\": 1,", 1);
        assert!(KeyFile::decode(extra.as_bytes()).is_err());
    }
}
