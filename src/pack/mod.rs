//! Pack files: many compressed blobs in one immutable, self-describing file.
//!
//! `format` is the pure byte codec, `writer` fills, seals and publishes a
//! pack, `reader` reads a header or one blob back and verifies it. Nothing
//! outside this module writes under `packs/`.

pub mod format;
pub mod list;
pub mod reader;
pub mod runs;
pub mod spans;
pub mod stream;
pub mod writer;

use crate::backend::BackendError;
use crate::compress::{Compression, DecodeError};
use crate::id::{BlobId, PackId};

pub use format::{BlobKind, PackEntry};
pub use writer::{PackWriter, SealedPack};

/// The store key of a pack: `packs/XX/ID.pack`, XX the first two hex digits.
pub fn key(id: &PackId) -> String {
    let hex = id.to_hex();
    format!("packs/{}/{hex}.pack", &hex[..2])
}

/// Checks that `file`, a pack read whole, is the pack `id` names (a pack's
/// id is the BLAKE3 of its file). Bytes that are not are damage, as a pack
/// cut short is ([`BackendError::is_damage`]).
pub fn check_whole(id: &PackId, file: &[u8]) -> Result<(), BackendError> {
    if PackId::of(file) == *id {
        return Ok(());
    }
    Err(BackendError {
        location: key(id),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "content does not match its id",
        ),
    })
}

/// Where a blob lives: everything needed to read it with one ranged read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack holding it.
    pub pack: PackId,
    /// Data or tree.
    pub kind: BlobKind,
    /// Start of the stored bytes in the pack.
    pub offset: u64,
    /// Stored (compressed) length.
    pub stored_len: u32,
    /// Length after decoding.
    pub raw_len: u32,
    /// How it is stored.
    pub compression: Compression,
}

impl BlobLocation {
    /// The location of `entry` in `pack`.
    pub fn in_pack(pack: PackId, entry: &PackEntry) -> Self {
        Self {
            pack,
            kind: entry.kind,
            offset: entry.offset,
            stored_len: entry.stored_len,
            raw_len: entry.raw_len,
            compression: entry.compression,
        }
    }
}

/// Failures reading or writing packs.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The file system failed.
    #[error(transparent)]
    Io(#[from] BackendError),
    /// The pack's header or trailer is malformed.
    #[error("pack {pack}: {source}")]
    Format {
        /// The pack.
        pack: PackId,
        /// What is wrong.
        #[source]
        source: format::FormatError,
    },
    /// A blob's bytes do not decode.
    #[error("blob {blob} in pack {pack}: {source}")]
    Decode {
        /// The blob.
        blob: BlobId,
        /// Its pack.
        pack: PackId,
        /// What the decoder said.
        #[source]
        source: DecodeError,
    },
    /// The store dictionary a blob was compressed with cannot be had:
    /// without it the blob cannot be decoded.
    #[error("blob {blob} in pack {pack} needs a compression dictionary: {source}")]
    Dictionary {
        /// The blob.
        blob: BlobId,
        /// Its pack.
        pack: PackId,
        /// Why the dictionary cannot be read (names `dictionaries/N`).
        #[source]
        source: crate::backend::BackendError,
    },
    /// A blob's bytes decode, but not to the content its id names.
    #[error("blob {blob} in pack {pack}: content does not match its id (hash {actual})")]
    HashMismatch {
        /// The blob, as recorded.
        blob: BlobId,
        /// Its pack.
        pack: PackId,
        /// The hash of what was read.
        actual: BlobId,
    },
    /// Compression produced bytes that do not decompress to the input: a
    /// compressor fault caught before the pack was sealed.
    #[error("blob {blob}: compressed bytes do not decode back to the original ({detail})")]
    CompressorFault {
        /// The blob being written.
        blob: BlobId,
        /// What the check found.
        detail: String,
    },
    /// A blob or header that does not open with the store's key: altered,
    /// or not what belongs there.
    #[error("{what} in pack {pack}: {source}")]
    Sealed {
        /// The blob, or the header.
        what: String,
        /// The pack.
        pack: PackId,
        /// What the cipher said.
        #[source]
        source: crate::crypt::CryptError,
    },
    /// A plain pack in an encrypted store, or a sealed one in a plain
    /// store: never read (a planted plain pack must not be trusted).
    #[error("pack {pack} is a version {version} pack, which does not belong in {what} store")]
    Sealing {
        /// The pack.
        pack: PackId,
        /// Its version.
        version: u32,
        /// "an encrypted" or "an unencrypted".
        what: &'static str,
    },
    /// Sealing failed (no random bytes from the system).
    #[error("sealing failed: {0}")]
    Seal(#[source] crate::crypt::CryptError),
    /// The writer failed earlier and refuses further work.
    #[error("pack writer stopped after an earlier error")]
    Poisoned,
}

impl PackError {
    /// Whether the store's data is at fault (a pack gone, or shorter than
    /// the catalog says; bytes that do not decode or check out; a lost
    /// dictionary), not the machine or the connection to the store: a
    /// command that meets it exits 4, as verify does.
    pub fn is_damage(&self) -> bool {
        match self {
            Self::Io(e) => e.is_damage(),
            Self::Dictionary { source, .. } => {
                source.is_not_found() || source.source.kind() == std::io::ErrorKind::InvalidData
            }
            // A sealed blob or header that does not open with the store's
            // key was altered; a plain pack in an encrypted store, planted.
            Self::Format { .. }
            | Self::Decode { .. }
            | Self::HashMismatch { .. }
            | Self::Sealed { .. }
            | Self::Sealing { .. } => true,
            _ => false,
        }
    }
}

/// A plain, uncompressed data blob of `len` bytes at `offset` in a pack
/// named by the byte `pack`: for the tests of reading and planning runs.
#[cfg(test)]
pub(crate) fn test_location(pack: u8, offset: u64, len: u32) -> BlobLocation {
    BlobLocation {
        pack: PackId::from_bytes([pack; 32]),
        kind: BlobKind::Data,
        offset,
        stored_len: len,
        raw_len: len,
        compression: Compression::None,
    }
}
