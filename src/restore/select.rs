//! Which part of a snapshot a restore takes (`--include`, `--exclude`) and
//! where each path lands (`--strip-prefix`).
//!
//! Without either, every path of the snapshot lands at the target joined
//! with its absolute path. With `--include`, only those paths and what is
//! below them are restored (plus the directories leading to them, with
//! their recorded metadata). `--exclude` patterns mean what they mean to
//! `snapshot` (see [`crate::pattern`]): a path they match is not restored,
//! nor anything below it. With `--strip-prefix P`, a path `P/x` lands at
//! `TARGET/x`, and nothing above `P` is created.

use std::path::{Path, PathBuf};

use super::RestoreError;
use crate::browse::snapshot_path;
use crate::pattern::Patterns;
use crate::rawname::escaped;

/// The part of a snapshot to restore.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Absolute paths to restore with everything below them; empty: all.
    pub include: Vec<PathBuf>,
    /// Leading directory removed from every restored path.
    pub strip_prefix: Option<PathBuf>,
    /// Paths not restored (with everything below them).
    pub exclude: Patterns,
}

/// How a path of the snapshot relates to the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Selected, with everything below it.
    Inside,
    /// Above a selected path: created and descended into, not restored whole.
    Ancestor,
    /// Not restored.
    Outside,
}

impl Selection {
    /// The selection with its paths in canonical absolute form, checked:
    /// every included path must lie below the prefix.
    pub fn normalized(&self) -> Result<Self, RestoreError> {
        let canon = |p: &Path| snapshot_path(p).map_err(|e| RestoreError::Selection(e.to_string()));
        let strip_prefix = self.strip_prefix.as_deref().map(canon).transpose()?;
        let mut include = self
            .include
            .iter()
            .map(|p| canon(p))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(prefix) = &strip_prefix {
            if include.is_empty() {
                include.push(prefix.clone());
            }
            if let Some(outside) = include.iter().find(|p| !p.starts_with(prefix)) {
                return Err(RestoreError::Selection(format!(
                    "--include {} is not below --strip-prefix {}",
                    escaped(outside),
                    escaped(prefix)
                )));
            }
        }
        Ok(Self {
            include,
            strip_prefix,
            exclude: self.exclude.clone(),
        })
    }

    /// How the absolute path `path` relates to the (normalized) selection.
    pub fn wants(&self, path: &Path) -> Want {
        if path
            .file_name()
            .is_some_and(|name| self.exclude.matches(path, name))
        {
            Want::Outside
        } else if self.include.is_empty() || self.include.iter().any(|i| path.starts_with(i)) {
            Want::Inside
        } else if self.include.iter().any(|i| i.starts_with(path)) {
            Want::Ancestor
        } else {
            Want::Outside
        }
    }

    /// Where `path` lands, relative to the target; `None` for the prefix
    /// itself and the directories above it, which are not created.
    pub fn destination(&self, path: &Path) -> Option<PathBuf> {
        let root = self.strip_prefix.as_deref().unwrap_or(Path::new("/"));
        let rel = path.strip_prefix(root).ok()?;
        (!rel.as_os_str().is_empty()).then(|| rel.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(include: &[&str], strip: Option<&str>) -> Selection {
        Selection {
            include: include.iter().map(PathBuf::from).collect(),
            strip_prefix: strip.map(PathBuf::from),
            ..Selection::default()
        }
        .normalized()
        .unwrap()
    }

    #[test]
    fn included_paths_take_their_subtree_and_their_ancestors_are_descended() {
        let s = selection(&["/var/lib/app"], None);
        assert_eq!(s.wants(Path::new("/var/lib/app/app.db")), Want::Inside);
        assert_eq!(s.wants(Path::new("/var/lib/app")), Want::Inside);
        assert_eq!(s.wants(Path::new("/var")), Want::Ancestor);
        assert_eq!(s.wants(Path::new("/var/lib/apple")), Want::Outside);
        assert_eq!(s.wants(Path::new("/etc")), Want::Outside);
        assert_eq!(
            s.destination(Path::new("/var/lib/app/app.db")),
            Some(PathBuf::from("var/lib/app/app.db"))
        );
    }

    #[test]
    fn a_stripped_prefix_is_not_created_and_paths_land_below_the_target() {
        let s = selection(&["var/lib/app/app.db"], Some("/var/lib/app/"));
        assert_eq!(s.destination(Path::new("/var/lib/app")), None);
        assert_eq!(s.destination(Path::new("/var")), None);
        assert_eq!(
            s.destination(Path::new("/var/lib/app/app.db")),
            Some(PathBuf::from("app.db"))
        );
        let whole = selection(&[], Some("/srv"));
        assert_eq!(whole.include, [PathBuf::from("/srv")]);
    }

    #[test]
    fn excluded_paths_are_outside_with_everything_below_them() {
        let mut s = selection(&["/srv"], None);
        s.exclude = Patterns::new(&["*.log".into(), "/srv/cache".into()]).unwrap();
        assert_eq!(s.wants(Path::new("/srv/app/x.log")), Want::Outside);
        assert_eq!(s.wants(Path::new("/srv/cache")), Want::Outside);
        assert_eq!(s.wants(Path::new("/srv/app/cache")), Want::Inside);
        assert_eq!(s.wants(Path::new("/")), Want::Ancestor);
    }

    #[test]
    fn an_include_outside_the_prefix_is_refused() {
        let s = Selection {
            include: vec![PathBuf::from("/etc/x")],
            strip_prefix: Some(PathBuf::from("/var")),
            ..Selection::default()
        };
        assert!(
            s.normalized()
                .unwrap_err()
                .to_string()
                .contains("not below")
        );
    }
}
