//! Listing `packs/`: every pack file by id, and whatever else is there.
//!
//! A listing that fails is an error, never a short list: the catalog
//! rebuild marks itself complete and prune deletes what it does not find
//! named, so a directory that could not be read must stop both.

use crate::backend::{Backend, BackendError};
use crate::id::{PackId, is_hex_prefix};

/// What `packs/` holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// Pack files, by id.
    pub packs: Vec<PackId>,
    /// Their sizes, in the same order.
    pub sizes: Vec<u64>,
    /// Files and directories that are not packs: (key, why).
    pub strays: Vec<(String, String)>,
}

impl Listing {
    /// The packs of `cataloged` this listing lacks: lost, or deleted
    /// behind the catalog's back.
    pub fn lacking(&self, cataloged: impl IntoIterator<Item = PackId>) -> Vec<PackId> {
        let listed: std::collections::HashSet<&PackId> = self.packs.iter().collect();
        (cataloged.into_iter())
            .filter(|id| !listed.contains(id))
            .collect()
    }
}

/// Lists every `packs/XX/ID.pack`.
pub fn list(backend: &Backend) -> Result<Listing, BackendError> {
    let mut out = Listing::default();
    for object in backend.list("packs/")? {
        let rest = object.key.trim_start_matches("packs/");
        let id = rest
            .split_once('/')
            .and_then(|(dir, name)| id_of(dir, name));
        match id {
            Some(id) => {
                out.packs.push(id);
                out.sizes.push(object.size);
            }
            None => out.strays.push((object.key, "not a pack file name".into())),
        }
    }
    Ok(out)
}

/// The id of `packs/DIR/NAME`, if NAME is `ID.pack` and ID starts with DIR.
fn id_of(dir: &str, name: &str) -> Option<PackId> {
    let hex = name.strip_suffix(".pack")?;
    let valid_dir = dir.len() == 2 && is_hex_prefix(dir);
    (valid_dir && hex.starts_with(dir))
        .then(|| hex.parse().ok())
        .flatten()
}
