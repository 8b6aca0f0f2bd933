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
//! or excluded now, are not asked for, and are passed over. A tree asked
//! for that the helper did not hand over (not found among the next
//! [`LOOK`], too large to hand over, or unreadable) is read by the walker
//! itself, as without read-ahead; so the helper only ever saves time.
//! Trees are named by their content's hash and checked against it when
//! read, so a tree handed over is the tree asked for.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};

use crate::id::TreeId;
use crate::store::{Store, TreeReader};
use crate::tree::Tree;

/// Trees read ahead and not yet asked for, at most.
const AHEAD: usize = 16;

/// Trees passed over in search of the one asked for, at most, before the
/// walker reads it itself.
const LOOK: usize = 1024;

/// Trees of more entries are not handed over (the walker reads them
/// itself), so that the queue holds little: a directory of 300k files is
/// 80 MB decoded.
const MAX_HANDED_OVER: usize = 4096;

/// A tree the helper reached: `None` if it was not handed over.
type Reached = (TreeId, Option<Tree>);

/// The walk's end of the read-ahead.
#[derive(Default)]
pub struct ReadAhead {
    trees: Option<Receiver<Reached>>,
    helper: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts reading the trees below `root` (the parent snapshot's root
    /// tree) ahead; none are if the store's catalog cannot be opened again.
    pub fn start(store: &Store, root: &Tree) -> Self {
        let Some(reader) = store.tree_reader() else {
            return Self::default();
        };
        let (send, trees) = sync_channel(AHEAD);
        let below = subtrees(root);
        let helper = thread::Builder::new()
            .name("cairn-read-ahead".into())
            .spawn(move || walk_ahead(&reader, below, &send))
            .ok();
        Self {
            trees: helper.is_some().then_some(trees),
            helper,
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
        // Past every tree the helper reaches, or off its order: read alone
        // from here on.
        self.stop();
        None
    }

    fn stop(&mut self) {
        self.trees = None;
        if let Some(helper) = self.helper.take() {
            // It ends at its next hand-over, which fails now.
            let _ = helper.join();
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.stop();
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
        let tree = reader.load_tree(&id).ok();
        let next = tree.as_ref().map(subtrees).unwrap_or_default();
        let handed = tree.filter(|t| t.entries.len() <= MAX_HANDED_OVER);
        if send.send((id, handed)).is_err() {
            return;
        }
        stack.push(next.into());
    }
}

/// The trees of `tree`'s subdirectories, by name.
fn subtrees(tree: &Tree) -> Vec<TreeId> {
    tree.entries.iter().filter_map(|e| e.subtree()).collect()
}
