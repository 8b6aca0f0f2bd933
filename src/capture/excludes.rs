//! What a walk leaves out on purpose: `--exclude` globs and the store itself.
//!
//! A pattern without `/` matches a file or directory name anywhere
//! (`*.tmp`, `node_modules`); a pattern with `/` matches the whole absolute
//! path (`/home/*/.cache`, `**/build/*.o`), with `*` stopping at `/` and
//! `**` crossing it. An excluded directory is not descended into.
//!
//! Patterns are normalised first ([`normalize`]), because the ways people
//! write a directory would otherwise match nothing, silently: a trailing
//! `/` (`target/`) is dropped, `./x` and `../x` are made absolute from the
//! current directory, and a relative path (`target/debug`) matches at any
//! depth (`**/target/debug`).

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

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
            let glob = GlobBuilder::new(&normalize(pattern, &current_dir()))
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| CaptureError::Exclude {
                    pattern: pattern.clone(),
                    cause: e.kind().to_string(),
                })?;
            if glob.glob().contains('/') {
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

/// The pattern as it is matched (see the module's documentation); `cwd`
/// makes `./x` and `../x` absolute.
pub fn normalize(pattern: &str, cwd: &Path) -> String {
    let trimmed = match pattern.trim_end_matches('/') {
        "" => pattern,
        t => t,
    };
    if trimmed == "." || trimmed == ".." || trimmed.starts_with("./") || trimmed.starts_with("../")
    {
        return lexical_join(cwd, trimmed);
    }
    if trimmed.contains('/') && !trimmed.starts_with('/') && !trimmed.starts_with("**") {
        return format!("**/{trimmed}");
    }
    trimmed.to_owned()
}

/// `cwd` joined with `relative`, `.` and `..` resolved without looking
/// at the file system (as the shell shows a path), as a pattern: glob
/// metacharacters in the directory's own names are taken literally.
fn lexical_join(cwd: &Path, relative: &str) -> String {
    let mut parts: Vec<String> = cwd
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(escape_glob(&name.to_string_lossy())),
            _ => None,
        })
        .collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name.to_owned()),
        }
    }
    format!("/{}", parts.join("/"))
}

fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn current_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
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

    // Regression: #19 (`--exclude target/` and `./target` matched nothing)
    #[test]
    fn directory_patterns_are_normalised_as_people_write_them() {
        let cwd = Path::new("/home/ann/proj");
        assert_eq!(normalize("target/", cwd), "target");
        assert_eq!(normalize("./target", cwd), "/home/ann/proj/target");
        assert_eq!(normalize("./target/", cwd), "/home/ann/proj/target");
        assert_eq!(normalize("../other/x", cwd), "/home/ann/other/x");
        assert_eq!(normalize("target/debug", cwd), "**/target/debug");
        assert_eq!(normalize("/srv/cache/", cwd), "/srv/cache");
        assert_eq!(normalize("**/build/*.o", cwd), "**/build/*.o");
        assert_eq!(normalize("*.tmp", cwd), "*.tmp");
        assert_eq!(normalize("/", cwd), "/");
        assert_eq!(normalize("./a[1]", Path::new("/x[y]")), "/x\\[y\\]/a[1]");
    }

    #[test]
    fn a_bad_pattern_is_an_error_naming_it() {
        let err = Excludes::new(&["a[".to_string()], None).unwrap_err();
        assert!(err.to_string().contains("a["), "{err}");
    }
}
