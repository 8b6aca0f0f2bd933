//! What changed between two snapshots (or two directories of them).
//!
//! Both trees are walked side by side in name order; a subtree with the
//! same id on both sides is identical and skipped without being read, so
//! diffing two snapshots of a big unchanged tree costs a few tree reads.
//! Everything below an added or removed directory is reported too. The
//! directories above the snapshotted paths (`/`, `/srv` of `/srv/app`) are
//! recorded only to hold them: a change of their metadata is not reported.

use std::path::Path;

use serde::Serialize;

use super::{BrowseError, Flow, Node, kind_name, listing, walk};
use crate::bound::{Budget, depth_of};
use crate::id::TreeId;
use crate::store::Store;
use crate::tree::{Content, Entry, Tree};

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only in the second snapshot.
    Added,
    /// Only in the first.
    Removed,
    /// In both, different.
    Modified,
}

/// A path that differs, with what differs about it.
#[derive(Debug, Clone)]
pub struct Change<'e> {
    /// Added, removed or modified.
    pub kind: ChangeKind,
    /// The absolute path.
    pub path: &'e Path,
    /// The entry in the first snapshot, if any.
    pub old: Option<&'e Entry>,
    /// The entry in the second snapshot, if any.
    pub new: Option<&'e Entry>,
    /// For a modification: `content`, `size`, `mode`, `owner`, `mtime`, `target`.
    pub what: Vec<&'static str>,
}

/// The listings each side of a diff may still expand: one budget per
/// snapshot, each made from its own record.
#[derive(Debug)]
pub struct Budgets {
    /// The first snapshot's.
    pub old: Budget,
    /// The second snapshot's.
    pub new: Budget,
}

type Emit<'a> = &'a mut dyn FnMut(&Change<'_>) -> Result<(), BrowseError>;

/// What every step of a diff needs.
struct Differ<'a> {
    store: &'a Store,
    budgets: &'a mut Budgets,
    emit: Emit<'a>,
    sources: &'a [&'a Path],
}

/// Calls `emit` for every difference between `old` and `new` (what each
/// snapshot has at `path`, `None` if nothing), in path order. `sources` are
/// the snapshotted paths of both sides: a directory above them changes
/// without being reported (all are reported if it is empty). The listings
/// read on each side are counted against its budget; recursive, but never
/// deeper than [`MAX_DEPTH`](crate::bound::MAX_DEPTH).
pub fn diff(
    store: &Store,
    old: Option<&Node>,
    new: Option<&Node>,
    path: &Path,
    sources: &[&Path],
    budgets: &mut Budgets,
    emit: Emit<'_>,
) -> Result<(), BrowseError> {
    let mut d = Differ {
        store,
        budgets,
        emit,
        sources,
    };
    let depth = depth_of(path);
    match (old, new) {
        (Some(Node::Entry(a)), Some(Node::Entry(b))) => d.entries(path, depth, a, b),
        (Some(Node::Entry(a)), None) => d.whole(ChangeKind::Removed, path, a),
        (None, Some(Node::Entry(b))) => d.whole(ChangeKind::Added, path, b),
        (Some(a), Some(b)) => match (a.tree(), b.tree()) {
            (Some(a), Some(b)) => d.trees(&a, &b, path, depth),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

impl Differ<'_> {
    /// Two listings of the directory `base`, `depth` levels below `/`.
    fn trees(
        &mut self,
        old: &TreeId,
        new: &TreeId,
        base: &Path,
        depth: u64,
    ) -> Result<(), BrowseError> {
        if old == new {
            return Ok(());
        }
        let a = Tree {
            entries: listing(self.store, old, &mut self.budgets.old)?.collect(),
        };
        let b = Tree {
            entries: listing(self.store, new, &mut self.budgets.new)?.collect(),
        };
        for (old, new) in merge(&a, &b) {
            let name = old
                .or(new)
                .map(|e| e.name.as_path())
                .unwrap_or(Path::new(""));
            let path = base.join(name);
            match (old, new) {
                (Some(a), Some(b)) => self.entries(&path, depth + 1, a, b)?,
                (Some(a), None) => self.whole(ChangeKind::Removed, &path, a)?,
                (None, Some(b)) => self.whole(ChangeKind::Added, &path, b)?,
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// One path present on both sides, `depth` levels below `/`.
    fn entries(
        &mut self,
        path: &Path,
        depth: u64,
        a: &Entry,
        b: &Entry,
    ) -> Result<(), BrowseError> {
        if kind_name(a) != kind_name(b) {
            self.whole(ChangeKind::Removed, path, a)?;
            return self.whole(ChangeKind::Added, path, b);
        }
        let what = differences(a, b);
        if !what.is_empty() && self.is_captured(path) {
            (self.emit)(&Change {
                kind: ChangeKind::Modified,
                path,
                old: Some(a),
                new: Some(b),
                what,
            })?;
        }
        match (a.subtree(), b.subtree()) {
            (Some(x), Some(y)) if x != y => {
                self.budgets.old.enter(depth)?;
                self.budgets.new.enter(depth)?;
                self.trees(&x, &y, path, depth)
            }
            _ => Ok(()),
        }
    }

    /// Whether `path` is a snapshotted path or below one (not one of the
    /// directories that only hold them).
    fn is_captured(&self, path: &Path) -> bool {
        self.sources.is_empty() || self.sources.iter().any(|s| path.starts_with(s))
    }

    /// An entry present on one side only, and everything below it.
    fn whole(&mut self, kind: ChangeKind, path: &Path, entry: &Entry) -> Result<(), BrowseError> {
        let emit = &mut *self.emit;
        let mut one = |path: &Path, entry: &Entry| {
            let (old, new) = match kind {
                ChangeKind::Removed => (Some(entry), None),
                _ => (None, Some(entry)),
            };
            emit(&Change {
                kind: kind.clone(),
                path,
                old,
                new,
                what: Vec::new(),
            })
        };
        one(path, entry)?;
        if let Some(sub) = entry.subtree() {
            let budget = match kind {
                ChangeKind::Removed => &mut self.budgets.old,
                _ => &mut self.budgets.new,
            };
            budget.enter(depth_of(path))?;
            walk(self.store, &sub, path, budget, &mut |p, e| {
                one(p, e).map(|()| Flow::Descend)
            })?;
        }
        Ok(())
    }
}

/// Pairs the entries of two sorted listings by name.
fn merge<'t>(a: &'t Tree, b: &'t Tree) -> Vec<(Option<&'t Entry>, Option<&'t Entry>)> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.entries.len().max(b.entries.len()));
    while i < a.entries.len() || j < b.entries.len() {
        let (x, y) = (a.entries.get(i), b.entries.get(j));
        let order = match (x, y) {
            (Some(x), Some(y)) => x.name.as_bytes().cmp(y.name.as_bytes()),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                out.push((x, None));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push((None, y));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((x, y));
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// What differs between two entries of the same kind. A directory's
/// content is its listing, reported path by path, not as a change of it.
pub fn differences(a: &Entry, b: &Entry) -> Vec<&'static str> {
    let mut what = Vec::new();
    match (&a.content, &b.content) {
        (Content::File { chunks: x, .. }, Content::File { chunks: y, .. }) if x != y => {
            what.push("content");
        }
        (Content::Symlink { target: x }, Content::Symlink { target: y }) if x != y => {
            what.push("target");
        }
        _ => {}
    }
    let (m, n) = (&a.meta, &b.meta);
    let dir = a.subtree().is_some();
    let checks = [
        ("size", !dir && m.size != n.size),
        ("mode", m.mode != n.mode),
        ("owner", (m.uid, m.gid) != (n.uid, n.gid)),
        ("mtime", m.mtime != n.mtime),
    ];
    what.extend(
        checks
            .iter()
            .filter(|(_, differs)| *differs)
            .map(|(w, _)| *w),
    );
    what
}
