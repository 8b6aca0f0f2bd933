//! A directory's listing as the walk captures it, entry by entry.
//!
//! The entries are not kept: each is compared with the parent snapshot's
//! entry at the same place and, once the listing differs from the parent's,
//! encoded straight into the tree's bytes. A directory of 300k files thus
//! never holds its entries beside their encoding (they were 75 MB beside
//! 77 MB of bytes). An unchanged directory is never encoded at all: its
//! tree is the parent's, already in the store.

use super::walk::ParentDir;
use crate::id::TreeId;
use crate::tree::{Entry, TreeEncoder};

/// What a finished listing is.
pub(super) enum Listed {
    /// Exactly the parent's listing: its tree is reused.
    AsParent(TreeId),
    /// The bytes of a new tree.
    Encoded(Vec<u8>),
}

/// The listing of one directory being captured.
pub(super) struct Listing<'p> {
    parent: Option<&'p ParentDir>,
    /// Entries so far that equal the parent's first ones (not yet encoded).
    same: usize,
    /// Set once the listing differs from the parent's (or there is none).
    encoder: Option<TreeEncoder>,
}

impl<'p> Listing<'p> {
    /// An empty listing of a directory whose previous listing is `parent`.
    pub fn new(parent: Option<&'p ParentDir>) -> Self {
        Self {
            parent,
            same: 0,
            encoder: parent.is_none().then(TreeEncoder::new),
        }
    }

    /// Adds the next entry (entries come in name byte order).
    pub fn push(&mut self, entry: Entry) {
        if self.encoder.is_none() && self.parent_entry(self.same) == Some(&entry) {
            self.same += 1;
            return;
        }
        self.encoder().push(&entry);
    }

    /// Bytes encoded so far.
    pub fn encoded_len(&self) -> usize {
        self.encoder.as_ref().map_or(0, TreeEncoder::len)
    }

    /// The listing: the parent's tree if it is the same, else new bytes.
    pub fn finish(mut self) -> Listed {
        if let Some(parent) = self.parent
            && self.encoder.is_none()
            && self.same == parent.tree.entries.len()
        {
            return Listed::AsParent(parent.id);
        }
        let (parent, same) = (self.parent, self.same);
        let encoder = self.encoder.take();
        Listed::Encoded(encoder.unwrap_or_else(|| start(parent, same)).finish())
    }

    fn parent_entry(&self, i: usize) -> Option<&Entry> {
        self.parent.and_then(|p| p.tree.entries.get(i))
    }

    /// The encoder, started when first needed.
    fn encoder(&mut self) -> &mut TreeEncoder {
        let (parent, same) = (self.parent, self.same);
        self.encoder.get_or_insert_with(|| start(parent, same))
    }
}

/// An encoder holding the first `same` entries of `parent`: those the
/// listing had in common with it before it differed.
fn start(parent: Option<&ParentDir>, same: usize) -> TreeEncoder {
    let mut encoder = TreeEncoder::new();
    let entries = parent.and_then(|p| p.tree.entries.get(..same));
    for entry in entries.unwrap_or_default() {
        encoder.push(entry);
    }
    encoder
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rawname::RawName;
    use crate::tree::{ChangeKey, Content, Meta, Timespec, Tree};

    fn file(name: &str, size: u64) -> Entry {
        Entry {
            name: RawName::from_bytes(name.as_bytes().to_vec()),
            meta: Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
                size,
                mtime: Timespec { sec: 1, nsec: 2 },
                ..Meta::default()
            },
            content: Content::File {
                chunks: Vec::new(),
                change: ChangeKey {
                    inode: 3,
                    ctime: None,
                },
                database: None,
                link: None,
                holes: Vec::new(),
            },
        }
    }

    fn listed(parent: Option<&ParentDir>, entries: &[Entry]) -> Listed {
        let mut listing = Listing::new(parent);
        for entry in entries {
            listing.push(entry.clone());
        }
        listing.finish()
    }

    #[test]
    fn a_listing_encodes_exactly_its_entries_and_reuses_an_equal_parent() {
        let old = [file("a", 1), file("b", 1), file("c", 1)];
        let parent = ParentDir {
            id: TreeId::of(b"parent"),
            tree: Tree::new(old.to_vec()),
        };
        assert!(matches!(listed(Some(&parent), &old), Listed::AsParent(id) if id == parent.id));
        let cases: [&[Entry]; 5] = [
            &[file("a", 1), file("b", 2), file("c", 1)],
            &[file("a", 1), file("b", 1)],
            &[file("a", 1), file("b", 1), file("c", 1), file("d", 1)],
            &[file("0", 1), file("a", 1)],
            &[],
        ];
        for new in cases {
            let want = Tree::new(new.to_vec()).encode();
            for parent in [Some(&parent), None] {
                match listed(parent, new) {
                    Listed::Encoded(bytes) => assert_eq!(bytes, want, "{new:?}"),
                    Listed::AsParent(_) => panic!("{new:?} is not the parent's listing"),
                }
            }
        }
    }
}
