//! Which snapshots hold a path matching a glob.
//!
//! A pattern without `/` is matched against entry names, one with `/`
//! against whole absolute paths (`*` stops at `/`, `**` crosses it), as
//! `--exclude` patterns are. The hits below each directory are remembered
//! by (tree id, path): the same unchanged directory in the next snapshot is
//! not read or searched again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use globset::{GlobBuilder, GlobMatcher};

use super::{BrowseError, listing};
use crate::bound::{Budget, depth_of};
use crate::id::TreeId;
use crate::store::Store;
use crate::tree::Entry;

/// One matching path.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Its absolute path.
    pub path: PathBuf,
    /// Its entry.
    pub entry: Entry,
}

/// A compiled search, with what it has learnt about trees so far.
pub struct Finder {
    matcher: GlobMatcher,
    whole_path: bool,
    searched: HashMap<(TreeId, PathBuf), Rc<Vec<Hit>>>,
}

/// A pattern that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("bad pattern {pattern:?}: {cause}")]
pub struct PatternError {
    /// The pattern.
    pub pattern: String,
    /// Why.
    pub cause: String,
}

impl Finder {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| PatternError {
                pattern: pattern.to_owned(),
                cause: e.kind().to_string(),
            })?;
        Ok(Self {
            matcher: glob.compile_matcher(),
            whole_path: pattern.contains('/'),
            searched: HashMap::new(),
        })
    }

    /// Every match in the directory `tree` at `base`, in path order.
    /// Listings read are counted against `budget` (a directory searched
    /// before, for an earlier snapshot, costs nothing).
    pub fn search(
        &mut self,
        store: &Store,
        tree: &TreeId,
        base: &Path,
        budget: &mut Budget,
    ) -> Result<Rc<Vec<Hit>>, BrowseError> {
        self.search_at(store, tree, base, depth_of(base), budget)
    }

    /// [`Finder::search`] of a directory `depth` levels below `/`. Recursive,
    /// but never deeper than [`MAX_DEPTH`](crate::bound::MAX_DEPTH).
    fn search_at(
        &mut self,
        store: &Store,
        tree: &TreeId,
        base: &Path,
        depth: u64,
        budget: &mut Budget,
    ) -> Result<Rc<Vec<Hit>>, BrowseError> {
        let key = (*tree, base.to_owned());
        if let Some(hits) = self.searched.get(&key) {
            return Ok(Rc::clone(hits));
        }
        let mut hits = Vec::new();
        for entry in listing(store, tree, budget)? {
            let path = base.join(entry.name.as_path());
            if self.matches(&path, &entry) {
                hits.push(Hit {
                    path: path.clone(),
                    entry: entry.clone(),
                });
            }
            if let Some(sub) = entry.subtree() {
                budget.enter(depth + 1)?;
                let below = self.search_at(store, &sub, &path, depth + 1, budget)?;
                hits.extend(below.iter().cloned());
            }
        }
        let hits = Rc::new(hits);
        self.searched.insert(key, Rc::clone(&hits));
        Ok(hits)
    }

    fn matches(&self, path: &Path, entry: &Entry) -> bool {
        if self.whole_path {
            self.matcher.is_match(path)
        } else {
            self.matcher.is_match(entry.name.as_path())
        }
    }
}
