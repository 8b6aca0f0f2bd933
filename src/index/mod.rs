//! Index objects: `index/ID`, small immutable objects that say which packs
//! the store holds and which blobs are in each, so that any host builds its
//! catalog with one GET per index object instead of one per pack.
//!
//! What must hold: an index object names only packs that were durable in
//! the store before it was written (a pack is uploaded, then indexed), and
//! it is written before any snapshot record that needs those packs. Every
//! commit writes one (a long snapshot one per batch of packs, so a run that
//! dies leaves what it uploaded indexed for the next run to reuse); prune
//! writes new ones for the packs it keeps before it deletes what they
//! supersede. Pack headers stay the fallback that `repair catalog` reads.

pub mod format;

use crate::backend::{Backend, BackendError};
use crate::id::{IndexId, is_hex_prefix};

pub use format::{IndexFormatError, IndexedPack};

impl From<crate::pack::writer::PublishedPack> for IndexedPack {
    fn from(pack: crate::pack::writer::PublishedPack) -> Self {
        Self {
            id: pack.id,
            size: pack.size,
            entries: pack.entries,
        }
    }
}

/// Largest index object a reader accepts (about 1.2 million blobs).
pub const MAX_INDEX_LEN: u64 = 64 << 20;
/// Packs per index object that prune writes (each at most a few MiB).
pub const PACKS_PER_OBJECT: usize = 4096;

/// Why an index object cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The store failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The bytes do not hash to the id in the object's name.
    #[error("index/{id}: content does not match its id (hash {actual})")]
    IdMismatch {
        /// The id in the name.
        id: IndexId,
        /// The hash of the bytes.
        actual: IndexId,
    },
    /// The object does not open with the store's key: altered, or not
    /// what belongs under this name.
    #[error("index/{id}: {source}")]
    Sealed {
        /// The object.
        id: IndexId,
        /// What the cipher said.
        #[source]
        source: crate::crypt::CryptError,
    },
    /// The bytes are not an index object.
    #[error("index/{id}: {source}")]
    Format {
        /// The object.
        id: IndexId,
        /// What is wrong.
        #[source]
        source: IndexFormatError,
    },
}

/// The store key of an index object.
pub fn key(id: &IndexId) -> String {
    format!("index/{id}")
}

/// What `index/` holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// Index objects, by id.
    pub objects: Vec<IndexId>,
    /// Keys under `index/` that are not index objects.
    pub strays: Vec<String>,
}

/// Lists `index/`. A failed listing is an error, never a short list.
pub fn list(backend: &Backend) -> Result<Listing, BackendError> {
    let mut out = Listing::default();
    for object in backend.list("index/")? {
        let name = object.key.trim_start_matches("index/");
        match name.parse::<IndexId>() {
            Ok(id) if is_hex_prefix(name) => out.objects.push(id),
            _ => out.strays.push(object.key),
        }
    }
    Ok(out)
}

/// Writes an index object describing `packs`, all of them durable in the
/// store; returns its id. Writing the same object twice is harmless.
pub fn write(backend: &Backend, packs: &[IndexedPack]) -> Result<IndexId, BackendError> {
    let bytes = format::encode(packs);
    let id = IndexId::from(backend.vault().hash(&bytes));
    backend.create_sealed(&key(&id), bytes)?;
    crate::crash::point("index-written");
    Ok(id)
}

/// Reads and checks index object `id`.
pub fn read(backend: &Backend, id: &IndexId) -> Result<Vec<IndexedPack>, IndexError> {
    let bytes = backend
        .get_sealed(&key(id), MAX_INDEX_LEN)?
        .map_err(|source| IndexError::Sealed { id: *id, source })?;
    let actual = IndexId::from(backend.vault().hash(&bytes));
    if actual != *id {
        return Err(IndexError::IdMismatch { id: *id, actual });
    }
    format::decode(&bytes, backend.vault().overhead())
        .map_err(|source| IndexError::Format { id: *id, source })
}
