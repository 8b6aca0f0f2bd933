//! The parent snapshot's trees, read ahead of the walk.
//!
//! A snapshot with a parent compares every directory it lists with the
//! parent's listing of it. Reading and decoding those trees was 30% of a
//! no-change snapshot of 200k small files, on the walker's one thread
//! while the other core idled. A helper thread walks the parent's trees in
//! the order the walk will want them (depth first, entries by name: the
//! order of both the trees and the walk) and hands each over through a
//! short queue, with its own read-only connection to the catalog.
//!
//! The walk wants a subsequence of that order: directories removed since,
//! or excluded now, are not asked for, and are passed over (each costs the
//! walk a wait for a read it did not need). A tree asked for that the
//! helper did not hand over is read by the walker itself, as without
//! read-ahead, and so is every tree after it once the helper stops: at a
//! tree it cannot read, at one too large to read ahead ([`MAX_RAW`]: it
//! would be decoded twice, and a directory of VM images holds millions of
//! chunk ids in few entries), or when the tree asked for is not among the
//! next [`LOOK`]. Trees are named by their content's hash and checked
//! against it when read, so a tree handed over is the tree asked for; the
//! read-ahead changes no snapshot, only how long it takes.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;

use crate::id::TreeId;
use crate::store::{Store, TreeReader};
use crate::tree::Tree;

/// Trees read ahead and not yet asked for, at most.
const AHEAD: usize = 16;

/// Trees passed over in search of the one asked for, at most, before the
/// walker reads alone.
const LOOK: usize = 128;

/// Trees larger than this, decoded, stop the helper (see above): 1 MiB is
/// a directory of about 4000 files.
const MAX_RAW: u32 = 1 << 20;

/// A tree the helper reached: `None` if it was not handed over.
type Reached = (TreeId, Option<Tree>);

/// The walk's end of the read-ahead. Dropping it stops the helper at its
/// next hand-over; it is not waited for (a read from a remote store may
/// be retrying, and an interrupted walk must not wait for that).
#[derive(Default)]
pub struct ReadAhead {
    trees: Option<Receiver<Reached>>,
}

impl ReadAhead {
    /// Starts reading the trees below `root` (the parent snapshot's root
    /// tree) ahead; none are if the store's catalog cannot be opened again
    /// or no thread can be started.
    pub fn start(store: &Store, root: &Tree) -> Self {
        let Some(reader) = store.tree_reader() else {
            return Self::default();
        };
        let (send, trees) = sync_channel(AHEAD);
        let below = subtrees(root);
        let started = thread::Builder::new()
            .name("cairn-read-ahead".into())
            .spawn(move || walk_ahead(&reader, below, &send));
        Self {
            trees: started.is_ok().then_some(trees),
        }
    }

    /// Tree `id` if the helper handed it over, passing over the trees
    /// before it; `None` if the walker must read it itself.
    pub fn take(&mut self, id: &TreeId) -> Option<Tree> {
        let trees = self.trees.as_ref()?;
        for _ in 0..LOOK {
            match trees.recv() {
                Ok((reached, tree)) if reached == *id => return tree,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        // The helper stopped, or the walk is off its order: read alone
        // from here on.
        self.trees = None;
        None
    }
}

/// The helper: reads the trees below the parent's root depth first and
/// hands each over, until the walk stops listening.
fn walk_ahead(reader: &TreeReader, below: Vec<TreeId>, send: &SyncSender<Reached>) {
    // Each level's subtrees still to visit, next first.
    let mut stack: Vec<VecDeque<TreeId>> = vec![below.into()];
    while let Some(level) = stack.last_mut() {
        let Some(id) = level.pop_front() else {
            stack.pop();
            continue;
        };
        let Ok(Some(tree)) = reader.load_tree_up_to::<Tree>(&id, MAX_RAW) else {
            // Unreadable or too large: the walker reads this one and every
            // later one itself.
            let _ = send.send((id, None));
            return;
        };
        let next = subtrees(&tree);
        if send.send((id, Some(tree))).is_err() {
            return;
        }
        stack.push(next.into());
    }
}

/// The trees of `tree`'s subdirectories, by name.
fn subtrees(tree: &Tree) -> Vec<TreeId> {
    tree.entries.iter().filter_map(|e| e.subtree()).collect()
}
