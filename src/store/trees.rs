//! Reading a store's trees: whole or streamed by size, through the pack
//! cache of a remote store, on the command's thread or (a [`TreeReader`])
//! another one with its own connection to the catalog.

use super::{Staging, Store, StoreError, pack_cache};
use crate::backend::Backend;
use crate::catalog::Catalog;
use crate::id::TreeId;
use crate::pack::{self, PackError};
use crate::tree::{Tree, TreeForm};

impl Store {
    /// Reads and decodes a tree. One larger than [`STREAMED_TREE`] is
    /// decoded as it is decompressed: the bytes of the tree of a directory
    /// of 300k files (77 MB) were held beside its entries (82 MB).
    pub fn load_tree(&self, id: &TreeId) -> Result<Tree, StoreError> {
        self.load_tree_as(id)
    }

    /// Reads a tree in the form `T`, as [`Store::load_tree`] does.
    pub fn load_tree_as<T: TreeForm>(&self, id: &TreeId) -> Result<T, StoreError> {
        self.tree_source().load_tree(id)
    }

    fn tree_source(&self) -> TreeSource<'_> {
        TreeSource::of(
            &self.catalog,
            &self.backend,
            &self.staging,
            &self.pack_cache,
        )
    }

    /// A reader of this store's trees for another thread, with its own
    /// read-only connection to the catalog; `None` if the catalog cannot
    /// be opened a second time (the caller reads its trees itself).
    pub fn tree_reader(&self) -> Option<TreeReader> {
        Some(TreeReader {
            catalog: Catalog::open_second(&self.catalog_path).ok()?,
            backend: self.backend.clone(),
            staging: self.staging.clone(),
            pack_cache: self.pack_cache.clone(),
        })
    }
}

/// Trees larger than this are decoded as they are read (see
/// [`Store::load_tree`]); smaller ones from their bytes, which is faster.
const STREAMED_TREE: usize = 16 << 20;

/// Reads this store's trees on a thread of its own (a snapshot's walk
/// reads its parent's trees ahead: src/capture/read_ahead.rs).
pub struct TreeReader {
    catalog: Catalog,
    backend: Backend,
    staging: Staging,
    pack_cache: Option<pack_cache::PackCache>,
}

impl TreeReader {
    /// As [`Store::load_tree`], for a tree of at most `max_raw` bytes
    /// decoded; `None` for a larger one, which is not read.
    pub fn load_tree_up_to<T: TreeForm>(
        &self,
        id: &TreeId,
        max_raw: u32,
    ) -> Result<Option<T>, StoreError> {
        let source = self.source();
        let at = source.locate(id)?;
        if at.raw_len > max_raw {
            return Ok(None);
        }
        source.read(id, &at).map(Some)
    }

    fn source(&self) -> TreeSource<'_> {
        TreeSource::of(
            &self.catalog,
            &self.backend,
            &self.staging,
            &self.pack_cache,
        )
    }
}

/// What reading a tree takes, borrowed from a [`Store`] or a [`TreeReader`].
struct TreeSource<'a> {
    catalog: &'a Catalog,
    backend: &'a Backend,
    staging: &'a Staging,
    pack_cache: Option<&'a pack_cache::PackCache>,
}

impl<'a> TreeSource<'a> {
    fn of(
        catalog: &'a Catalog,
        backend: &'a Backend,
        staging: &'a Staging,
        pack_cache: &'a Option<pack_cache::PackCache>,
    ) -> Self {
        Self {
            catalog,
            backend,
            staging,
            pack_cache: pack_cache.as_ref(),
        }
    }

    fn load_tree<T: TreeForm>(&self, id: &TreeId) -> Result<T, StoreError> {
        self.read(id, &self.locate(id)?)
    }

    fn locate(&self, id: &TreeId) -> Result<pack::BlobLocation, StoreError> {
        let blob = id.as_blob();
        self.catalog
            .locate(&blob)?
            .ok_or(StoreError::BlobMissing(blob))
    }

    fn read<T: TreeForm>(&self, id: &TreeId, at: &pack::BlobLocation) -> Result<T, StoreError> {
        let blob = id.as_blob();
        let stored = self.tree_bytes(at)?;
        let decoded = if at.raw_len as usize > STREAMED_TREE {
            let len = at.raw_len as usize;
            pack::reader::decode_streaming(self.backend, &blob, at, &stored, |r| {
                T::from_reader(r, len)
            })?
        } else {
            T::from_bytes(&pack::reader::decode_blob(self.backend, &blob, at, stored)?)
        };
        decoded.map_err(|source| StoreError::Tree { id: *id, source })
    }

    /// The stored bytes of a tree: through the pack cache of a remote store.
    fn tree_bytes(&self, at: &pack::BlobLocation) -> Result<Vec<u8>, StoreError> {
        let len = at.stored_len as usize;
        // A read of a pack: one gone or short is damage (PackError::is_damage).
        let Some(cache) = self.pack_cache else {
            return Ok(self
                .backend
                .get_range(&pack::key(&at.pack), at.offset, len)
                .map_err(PackError::from)?);
        };
        let size = self.catalog.pack_size(&at.pack)?.unwrap_or(u64::MAX);
        Ok(cache
            .read_range(self.backend, self.staging, &at.pack, size, at.offset, len)
            .map_err(PackError::from)?)
    }
}
