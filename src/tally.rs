//! What a snapshot's trees hold when expanded (files, directories,
//! symlinks, bytes, nesting depth), computed once per distinct tree.
//!
//! A tree's tally is its own entries plus the tallies of its
//! subdirectories' trees, so a subtree shared by many entries or many
//! snapshots is read once however often it is named: the cost is one read
//! of each distinct tree, while the counts are those of the full expansion
//! (saturating, so a hostile tree of 2^64 paths counts as `u64::MAX`). The
//! walk keeps its own stack: no tree, however deep, can overflow the
//! program's. This is how verify sees what a reader would expand (see
//! [`crate::bound`]) and how `repair snapshots` counts what a new record
//! holds.

use std::collections::HashMap;

use crate::id::TreeId;
use crate::tree::{Content, Entry, Tree};

/// What a tree holds, all the way down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Sum of the files' sizes.
    pub bytes: u64,
    /// Directories nested below this tree along its deepest path (0 for a
    /// tree without subdirectories).
    pub depth: u64,
}

impl Tally {
    /// Every entry: files, directories and symlinks.
    pub fn entries(&self) -> u64 {
        self.files
            .saturating_add(self.dirs)
            .saturating_add(self.symlinks)
    }

    fn count(&mut self, entry: &Entry) {
        match entry.content {
            Content::File { .. } => {
                self.files = self.files.saturating_add(1);
                self.bytes = self.bytes.saturating_add(entry.meta.size);
            }
            Content::Dir { .. } => self.dirs = self.dirs.saturating_add(1),
            Content::Symlink { .. } => self.symlinks = self.symlinks.saturating_add(1),
        }
    }

    /// Adds the tally of a subdirectory's tree.
    fn include(&mut self, below: &Tally) {
        self.files = self.files.saturating_add(below.files);
        self.dirs = self.dirs.saturating_add(below.dirs);
        self.symlinks = self.symlinks.saturating_add(below.symlinks);
        self.bytes = self.bytes.saturating_add(below.bytes);
        self.depth = self.depth.max(below.depth.saturating_add(1));
    }
}

/// A tree being tallied: its own entries counted, subtrees still to add.
struct Frame {
    id: TreeId,
    pending: Vec<TreeId>,
    tally: Tally,
}

impl Frame {
    fn new(id: TreeId, tree: Option<Tree>) -> Self {
        let mut tally = Tally::default();
        let mut pending = Vec::new();
        for entry in tree.iter().flat_map(|t| &t.entries) {
            tally.count(entry);
            pending.extend(entry.subtree());
        }
        Self { id, pending, tally }
    }
}

/// The tallies of every tree met so far.
#[derive(Debug, Default)]
pub struct Tallies {
    done: HashMap<TreeId, Tally>,
}

impl Tallies {
    /// Whether tree `id` was tallied.
    pub fn contains(&self, id: &TreeId) -> bool {
        self.done.contains_key(id)
    }

    /// Distinct trees tallied.
    pub fn len(&self) -> u64 {
        self.done.len() as u64
    }

    /// Whether no tree was tallied.
    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// The tally of tree `root`, reading through `load` each tree below it
    /// not tallied before, once. `load` returns `None` for a tree that
    /// cannot be read (it counts as empty; the caller notes why).
    pub fn tally<E>(
        &mut self,
        root: TreeId,
        load: &mut dyn FnMut(TreeId) -> Result<Option<Tree>, E>,
    ) -> Result<Tally, E> {
        if let Some(done) = self.done.get(&root) {
            return Ok(*done);
        }
        let mut stack = vec![Frame::new(root, load(root)?)];
        // Trees are named by the hash of their bytes, which include their
        // subtrees' ids: no tree can be its own descendant, so this ends.
        while let Some(top) = stack.last_mut() {
            if let Some(sub) = top.pending.pop() {
                match self.done.get(&sub) {
                    Some(below) => top.tally.include(below),
                    None => stack.push(Frame::new(sub, load(sub)?)),
                }
                continue;
            }
            let finished = stack
                .pop()
                .expect("the loop runs while the stack has a top");
            self.done.insert(finished.id, finished.tally);
            match stack.last_mut() {
                Some(parent) => parent.tally.include(&finished.tally),
                None => return Ok(finished.tally),
            }
        }
        unreachable!("the root frame returns when it is finished")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::BlobId;
    use crate::rawname::RawName;
    use crate::tree::{ChangeKey, Meta, Timespec};

    fn entry(name: &str, size: u64, content: Content) -> Entry {
        Entry {
            name: RawName::from_bytes(name.as_bytes().to_vec()),
            meta: Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
                size,
                mtime: Timespec { sec: 0, nsec: 0 },
                ..Meta::default()
            },
            content,
        }
    }

    fn file(name: &str, size: u64) -> Entry {
        let change = ChangeKey {
            inode: 1,
            ctime: None,
        };
        let content = Content::File {
            chunks: vec![BlobId::of(b"x")],
            change,
            database: None,
            link: None,
            holes: Vec::new(),
        };
        entry(name, size, content)
    }

    fn dir(name: &str, tree: &Tree) -> Entry {
        let tree = TreeId::of(&tree.encode());
        entry(name, 0, Content::Dir { tree })
    }

    #[test]
    fn a_subtree_shared_down_sixty_levels_is_read_once_and_counted_in_full() {
        let mut trees = HashMap::new();
        let mut below = Tree::new(vec![file("f", 3)]);
        for _ in 0..60 {
            trees.insert(TreeId::of(&below.encode()), below.clone());
            below = Tree::new(vec![dir("a", &below), dir("b", &below)]);
        }
        let root = TreeId::of(&below.encode());
        trees.insert(root, below);
        let mut reads = 0;
        let tally = Tallies::default()
            .tally(root, &mut |id| {
                reads += 1;
                Ok::<_, ()>(trees.get(&id).cloned())
            })
            .unwrap();
        assert_eq!(reads, 61);
        assert_eq!(tally.files, 1 << 60);
        assert_eq!(tally.bytes, 3 << 60);
        assert_eq!(tally.dirs, (1u64 << 61) - 2);
        assert_eq!(tally.entries(), (1 << 60) + (1 << 61) - 2);
        assert_eq!(tally.depth, 60);
    }

    #[test]
    fn a_chain_a_hundred_thousand_deep_is_tallied_without_recursion() {
        let mut trees = HashMap::new();
        let mut below = Tree::new(vec![file("f", 1)]);
        for _ in 0..100_000 {
            trees.insert(TreeId::of(&below.encode()), below.clone());
            below = Tree::new(vec![dir("d", &below)]);
        }
        let root = TreeId::of(&below.encode());
        trees.insert(root, below);
        let tally = Tallies::default()
            .tally(root, &mut |id| Ok::<_, ()>(trees.get(&id).cloned()))
            .unwrap();
        assert_eq!(
            (tally.files, tally.dirs, tally.depth),
            (1, 100_000, 100_000)
        );
    }

    #[test]
    fn an_unreadable_tree_counts_as_empty() {
        let lost = Tree::new(vec![file("f", 1)]);
        let root = Tree::new(vec![dir("gone", &lost), file("g", 2)]);
        let id = TreeId::of(&root.encode());
        let tally = Tallies::default()
            .tally(id, &mut |t| Ok::<_, ()>((t == id).then(|| root.clone())))
            .unwrap();
        assert_eq!(
            (tally.files, tally.dirs, tally.bytes, tally.depth),
            (1, 1, 2, 1)
        );
    }
}
