//! Exclude patterns, one meaning for `snapshot --exclude` and `restore
//! --exclude`, and the pattern files (`--exclude-file`) they come in.
//!
//! A pattern without `/` matches a file or directory name anywhere
//! (`*.tmp`, `node_modules`); a pattern with `/` matches the whole absolute
//! path (`/home/*/.cache`, `**/build/*.o`), with `*` stopping at `/` and
//! `**` crossing it. Whoever walks a tree does not descend into an
//! excluded directory.
//!
//! Patterns are normalised first ([`normalize`]), because the ways people
//! write a directory would otherwise match nothing, silently: a trailing
//! `/` (`target/`) is dropped, `./x` and `../x` are made absolute from the
//! current directory, and a relative path (`target/debug`) matches at any
//! depth (`**/target/debug`).

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// A pattern that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("bad --exclude pattern {pattern:?}: {cause}")]
pub struct PatternError {
    /// The pattern (all of them, when the set as a whole failed).
    pub pattern: String,
    /// Why.
    pub cause: String,
}

/// Compiled exclude patterns; the default matches nothing.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    names: GlobSet,
    paths: GlobSet,
}

impl Patterns {
    /// Compiles `patterns`, normalised from the current directory.
    pub fn new(patterns: &[String]) -> Result<Self, PatternError> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        let cwd = current_dir();
        for pattern in patterns {
            let glob = GlobBuilder::new(&normalize(pattern, &cwd))
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| PatternError {
                    pattern: pattern.clone(),
                    cause: e.kind().to_string(),
                })?;
            match glob.glob().contains('/') {
                true => paths.add(glob),
                false => names.add(glob),
            };
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| PatternError {
                pattern: patterns.join(" "),
                cause: e.to_string(),
            })
        };
        Ok(Self {
            names: build(names)?,
            paths: build(paths)?,
        })
    }

    /// Whether the absolute `path` (whose last component is `name`) is excluded.
    pub fn matches(&self, path: &Path, name: &OsStr) -> bool {
        self.names.is_match(Path::new(name)) || self.paths.is_match(path)
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

/// The patterns of a pattern file: one per line, surrounding white space
/// trimmed (as restic does), blank lines and lines starting with `#`
/// ignored. `Err` holds the number of the first line that is not UTF-8.
pub fn parse_pattern_file(bytes: &[u8]) -> Result<Vec<String>, usize> {
    let mut patterns = Vec::new();
    for (at, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = std::str::from_utf8(line).map_err(|_| at + 1)?.trim();
        if !line.is_empty() && !line.starts_with('#') {
            patterns.push(line.to_owned());
        }
    }
    Ok(patterns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(patterns: &[&str]) -> Patterns {
        let p: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        Patterns::new(&p).unwrap()
    }

    fn hit(p: &Patterns, path: &str) -> bool {
        let path = Path::new(path);
        p.matches(path, path.file_name().unwrap())
    }

    #[test]
    fn name_patterns_match_anywhere_and_path_patterns_match_whole_paths() {
        let p = compiled(&["*.tmp", "/home/*/.cache", "**/build/*.o"]);
        assert!(hit(&p, "/a/b/x.tmp"));
        assert!(!hit(&p, "/a/b/x.tmpl"));
        assert!(hit(&p, "/home/ann/.cache"));
        assert!(!hit(&p, "/home/ann/sub/.cache"));
        assert!(hit(&p, "/src/proj/build/main.o"));
        assert!(!hit(&Patterns::default(), "/anything"));
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
        let err = Patterns::new(&["a[".to_string()]).unwrap_err();
        assert!(err.to_string().contains("a["), "{err}");
    }

    #[test]
    fn pattern_files_skip_comments_and_blank_lines_and_trim_lines() {
        let got = parse_pattern_file(b"# comment\n\n  *.log  \r\n\t\n/srv/cache\n#x").unwrap();
        assert_eq!(got, ["*.log", "/srv/cache"]);
        assert_eq!(parse_pattern_file(b"ok\n\xff\n"), Err(2));
    }
}
