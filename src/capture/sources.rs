//! What a snapshot covers: the source paths made absolute and checked before
//! anything is written, and arranged as a tree from `/` so that the root tree
//! holds each source at its real location.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::CaptureError;
use crate::rawname::RawName;

/// The checked, absolute source paths of one snapshot.
#[derive(Debug, Clone)]
pub struct Sources {
    paths: Vec<PathBuf>,
}

impl Sources {
    /// Makes each path absolute (lexically: `.` and `..` are resolved without
    /// following links), checks that it exists, and drops duplicates and
    /// paths inside other sources. A missing path is an error.
    pub fn resolve(paths: &[PathBuf]) -> Result<Self, CaptureError> {
        let mut abs = Vec::with_capacity(paths.len());
        for p in paths {
            let a = absolute(p).map_err(|source| CaptureError::Source {
                path: p.clone(),
                source,
            })?;
            fs::metadata(&a).map_err(|source| CaptureError::Source {
                path: p.clone(),
                source,
            })?;
            abs.push(a);
        }
        Ok(Self {
            paths: collapse(abs),
        })
    }

    /// The paths, sorted.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The paths, sorted, as recorded in the snapshot.
    pub fn recorded(&self) -> Vec<RawName> {
        self.paths.iter().map(|p| RawName::from_path(p)).collect()
    }

    /// The sources arranged by path component from `/`.
    pub fn layout(&self) -> SourceNode {
        let mut root = SourceNode::default();
        for path in &self.paths {
            let mut node = &mut root;
            for c in path.components() {
                if let Component::Normal(name) = c {
                    node = node.children.entry(name.to_owned()).or_default();
                }
            }
            node.is_source = true;
        }
        root
    }
}

/// Absolute paths as a snapshot records them: sorted, without duplicates
/// and without paths inside others (`/srv` and `/srv/app` record `/srv`).
/// `forget` with a profile matches its snapshots by exactly these.
pub fn collapse(mut abs: Vec<PathBuf>) -> Vec<PathBuf> {
    abs.sort();
    abs.dedup();
    let mut kept: Vec<PathBuf> = Vec::with_capacity(abs.len());
    for p in abs {
        if !kept.iter().any(|k| p.starts_with(k)) {
            kept.push(p);
        }
    }
    kept
}

/// A directory on the way to the sources, or a source itself.
#[derive(Debug, Default)]
pub struct SourceNode {
    /// This path is one of the sources: capture it whole.
    pub is_source: bool,
    /// Components below this one that lead to sources, sorted by bytes.
    pub children: BTreeMap<OsString, SourceNode>,
}

/// `path` made absolute against the current directory, with `.`, `..` and
/// repeated separators resolved lexically.
pub fn absolute(path: &Path) -> io::Result<PathBuf> {
    let joined = std::path::absolute(path)?;
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// Sorts names by their bytes, the order trees use.
pub fn sort_names(names: &mut [OsString]) {
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_resolves_dots_lexically() {
        assert_eq!(
            absolute(Path::new("/a/./b/../c")).unwrap(),
            Path::new("/a/c")
        );
        assert_eq!(absolute(Path::new("/..")).unwrap(), Path::new("/"));
    }

    #[test]
    fn nested_and_repeated_sources_collapse_into_their_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::create_dir_all(a.join("b")).unwrap();
        let s = Sources::resolve(&[a.join("b"), a.clone(), a.join("./b/..")]).unwrap();
        assert_eq!(s.paths, vec![a]);
    }

    #[test]
    fn a_missing_source_is_an_error_naming_it() {
        let err = Sources::resolve(&[PathBuf::from("/no/such/cairn/path")]).unwrap_err();
        assert!(err.to_string().contains("/no/such/cairn/path"), "{err}");
    }
}
