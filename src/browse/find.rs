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
use crate::tree::{Content, Entry};

/// One matching path.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Its absolute path.
    pub path: PathBuf,
    /// Its entry, without a file's chunk list (a database's is 85k ids).
    pub entry: Entry,
}

/// The matches in one directory and below it, in path order: its own, and
/// between them those of its subdirectories, shared with every snapshot
/// where a subdirectory is unchanged. (Copying each directory's hits into
/// every directory above it, for every snapshot, took 3.5 GB for `find '*'`
/// over ten snapshots of 50k files twelve levels deep.)
#[derive(Debug, Default)]
pub struct Found {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Hit(Box<Hit>),
    Below(Rc<Found>),
    Unread(Box<Unread>),
}

/// A directory whose listing is lost or damaged: its matches are unknown,
/// the search goes on beside it.
#[derive(Debug)]
pub struct Unread {
    /// The directory.
    pub path: PathBuf,
    /// Why it could not be read.
    pub error: BrowseError,
}

/// What a search found, one at a time in path order.
pub enum Seen<'a> {
    /// A match.
    Hit(&'a Hit),
    /// A directory that could not be read.
    Unread(&'a Unread),
}

impl Found {
    /// Calls `visit` with every match and every directory that could not be
    /// read, in path order; stops at its first error.
    pub fn try_for_each<E>(&self, visit: &mut impl FnMut(Seen) -> Result<(), E>) -> Result<(), E> {
        for part in &self.parts {
            match part {
                Part::Hit(hit) => visit(Seen::Hit(hit))?,
                Part::Below(found) => found.try_for_each(visit)?,
                Part::Unread(unread) => visit(Seen::Unread(unread))?,
            }
        }
        Ok(())
    }
}

/// A compiled search, with what it has learnt about trees so far.
pub struct Finder {
    matcher: GlobMatcher,
    whole_path: bool,
    searched: HashMap<(TreeId, PathBuf), Rc<Found>>,
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
        // An empty pattern matches no name: a script's unset variable.
        if pattern.is_empty() {
            return Err(PatternError {
                pattern: String::new(),
                cause: "an empty pattern matches nothing (`*` matches every name)".to_owned(),
            });
        }
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
    ) -> Result<Rc<Found>, BrowseError> {
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
    ) -> Result<Rc<Found>, BrowseError> {
        let key = (*tree, base.to_owned());
        if let Some(found) = self.searched.get(&key) {
            return Ok(Rc::clone(found));
        }
        let mut found = Found::default();
        for entry in listing(store, tree, budget)? {
            let path = base.join(entry.name.as_path());
            let sub = entry.subtree();
            if self.matches(&path, &entry) {
                let hit = Hit {
                    path: path.clone(),
                    entry: without_chunks(entry),
                };
                found.parts.push(Part::Hit(Box::new(hit)));
            }
            if let Some(sub) = sub {
                budget.enter(depth + 1)?;
                match self.search_at(store, &sub, &path, depth + 1, budget) {
                    Ok(below) if below.parts.is_empty() => {}
                    Ok(below) => found.parts.push(Part::Below(below)),
                    // A lost subtree is the same in every snapshot that
                    // holds it: remembered as unread with the rest.
                    Err(error) if error.is_damage() => {
                        let unread = Unread { path, error };
                        found.parts.push(Part::Unread(Box::new(unread)));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let found = Rc::new(found);
        self.searched.insert(key, Rc::clone(&found));
        Ok(found)
    }

    fn matches(&self, path: &Path, entry: &Entry) -> bool {
        if self.whole_path {
            self.matcher.is_match(path)
        } else {
            self.matcher.is_match(entry.name.as_path())
        }
    }
}

/// `entry` as a match keeps it: a file without its chunk list.
fn without_chunks(mut entry: Entry) -> Entry {
    if let Content::File { chunks, .. } = &mut entry.content {
        *chunks = Vec::new();
    }
    entry
}
