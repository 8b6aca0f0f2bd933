//! What a walk leaves out on purpose: `--exclude` globs and the store itself.
//!
//! A pattern without `/` matches a file or directory name anywhere
//! (`*.tmp`, `node_modules`); a pattern with `/` matches the whole absolute
//! path (`/home/*/.cache`, `**/build/*.o`), with `*` stopping at `/` and
//! `**` crossing it. An excluded directory is not descended into.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::CaptureError;
use super::handle::FileStat;

/// Compiled exclusions.
#[derive(Debug)]
pub struct Excludes {
    names: GlobSet,
    paths: GlobSet,
    store: Option<(u64, u64)>,
}

impl Excludes {
    /// Compiles `patterns`; `store` is the store directory, never captured.
    pub fn new(patterns: &[String], store: Option<&Path>) -> Result<Self, CaptureError> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for pattern in patterns {
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| CaptureError::Exclude {
                    pattern: pattern.clone(),
                    cause: e.kind().to_string(),
                })?;
            if pattern.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| CaptureError::Exclude {
                pattern: patterns.join(" "),
                cause: e.to_string(),
            })
        };
        Ok(Self {
            names: build(names)?,
            paths: build(paths)?,
            store: store
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| (m.dev(), m.ino())),
        })
    }

    /// Whether `path` (whose last component is `name`) is excluded by a pattern.
    pub fn matches(&self, path: &Path, name: &OsStr) -> bool {
        self.names.is_match(Path::new(name)) || self.paths.is_match(path)
    }

    /// Whether a directory is the store itself.
    pub fn is_store(&self, stat: &FileStat) -> bool {
        self.store == Some((stat.dev, stat.ino))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(patterns: &[&str]) -> Excludes {
        let p: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        Excludes::new(&p, None).unwrap()
    }

    fn hit(e: &Excludes, path: &str) -> bool {
        let p = Path::new(path);
        e.matches(p, p.file_name().unwrap())
    }

    #[test]
    fn name_patterns_match_anywhere_and_path_patterns_match_whole_paths() {
        let e = ex(&["*.tmp", "/home/*/.cache", "**/build/*.o"]);
        assert!(hit(&e, "/a/b/x.tmp"));
        assert!(!hit(&e, "/a/b/x.tmpl"));
        assert!(hit(&e, "/home/ann/.cache"));
        assert!(!hit(&e, "/home/ann/sub/.cache"));
        assert!(hit(&e, "/src/proj/build/main.o"));
    }

    #[test]
    fn a_bad_pattern_is_an_error_naming_it() {
        let err = Excludes::new(&["a[".to_string()], None).unwrap_err();
        assert!(err.to_string().contains("a["), "{err}");
    }
}
