//! What changed between two snapshots (or two directories of them).
//!
//! Both trees are walked side by side in name order; a subtree with the
//! same id on both sides is identical and skipped without being read, so
//! diffing two snapshots of a big unchanged tree costs a few tree reads.
//! Everything below an added or removed directory is reported too.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{BrowseError, Flow, Node, kind_name, walk};
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

/// Calls `emit` for every difference between `old` and `new` (what each
/// snapshot has at `path`, `None` if nothing), in path order.
pub fn diff(
    store: &Store,
    old: Option<&Node>,
    new: Option<&Node>,
    path: &Path,
    emit: &mut dyn FnMut(&Change<'_>) -> Result<(), BrowseError>,
) -> Result<(), BrowseError> {
    match (old, new) {
        (Some(Node::Entry(a)), Some(Node::Entry(b))) => entries(store, path, a, b, emit),
        (Some(Node::Entry(a)), None) => whole(store, ChangeKind::Removed, path, a, emit),
        (None, Some(Node::Entry(b))) => whole(store, ChangeKind::Added, path, b, emit),
        (Some(a), Some(b)) => match (a.tree(), b.tree()) {
            (Some(a), Some(b)) => trees(store, &a, &b, path, emit),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

fn trees(
    store: &Store,
    old: &TreeId,
    new: &TreeId,
    base: &Path,
    emit: &mut dyn FnMut(&Change<'_>) -> Result<(), BrowseError>,
) -> Result<(), BrowseError> {
    if old == new {
        return Ok(());
    }
    let (a, b) = (store.load_tree(old)?, store.load_tree(new)?);
    for (old, new) in merge(&a, &b) {
        let name = old
            .or(new)
            .map(|e| e.name.as_path())
            .unwrap_or(Path::new(""));
        let path = base.join(name);
        match (old, new) {
            (Some(a), Some(b)) => entries(store, &path, a, b, emit)?,
            (Some(a), None) => whole(store, ChangeKind::Removed, &path, a, emit)?,
            (None, Some(b)) => whole(store, ChangeKind::Added, &path, b, emit)?,
            (None, None) => {}
        }
    }
    Ok(())
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

/// One path present on both sides.
fn entries(
    store: &Store,
    path: &Path,
    a: &Entry,
    b: &Entry,
    emit: &mut dyn FnMut(&Change<'_>) -> Result<(), BrowseError>,
) -> Result<(), BrowseError> {
    if kind_name(a) != kind_name(b) {
        whole(store, ChangeKind::Removed, path, a, emit)?;
        return whole(store, ChangeKind::Added, path, b, emit);
    }
    let what = differences(a, b);
    if !what.is_empty() {
        emit(&Change {
            kind: ChangeKind::Modified,
            path,
            old: Some(a),
            new: Some(b),
            what,
        })?;
    }
    match (a.subtree(), b.subtree()) {
        (Some(x), Some(y)) => trees(store, &x, &y, path, emit),
        _ => Ok(()),
    }
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

/// An entry present on one side only, and everything below it.
fn whole(
    store: &Store,
    kind: ChangeKind,
    path: &Path,
    entry: &Entry,
    emit: &mut dyn FnMut(&Change<'_>) -> Result<(), BrowseError>,
) -> Result<(), BrowseError> {
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
        let base: PathBuf = path.to_owned();
        walk(store, &sub, &base, &mut |p, e| {
            one(p, e).map(|()| Flow::Descend)
        })?;
    }
    Ok(())
}
