//! Lists the user keeps in files: exclude patterns (`--exclude-file`) and
//! paths to capture (`--files-from`, one per line; `--files-from-raw`,
//! NUL-separated, for names that hold newlines). `-` reads standard input.
//!
//! A list that cannot be read is a mistake on the command line, told before
//! the store is opened, naming the file.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::rawname::escaped;

/// Why a list could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The file could not be read.
    #[error("{option} {}: {source}", escaped(path))]
    Read {
        /// The option that named it.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A line of a pattern file is not UTF-8 (patterns are text).
    #[error("--exclude-file {}: line {line} is not UTF-8", escaped(path))]
    NotText {
        /// The file.
        path: PathBuf,
        /// Its line number, from 1.
        line: usize,
    },
    /// Nothing to capture: the lists name no path, and none was given.
    #[error(
        "{} list no paths, and no other path was given: nothing to snapshot",
        names(files)
    )]
    NoPaths {
        /// The list files.
        files: Vec<PathBuf>,
    },
}

fn names(files: &[PathBuf]) -> String {
    let shown: Vec<String> = files.iter().map(|f| escaped(f).to_string()).collect();
    shown.join(", ")
}

/// The patterns in the pattern file `path` (see
/// [`crate::pattern::parse_pattern_file`]).
pub fn read_patterns(path: &Path) -> Result<Vec<String>, ListError> {
    let bytes = read_list("--exclude-file", path)?;
    crate::pattern::parse_pattern_file(&bytes).map_err(|line| ListError::NotText {
        path: path.to_owned(),
        line,
    })
}

/// The paths to capture: those `given` on the command line, then those of
/// each line list and each NUL-separated list. Lists that name nothing
/// when nothing else was given are an error: an empty nightly list must
/// not pass for a snapshot.
pub fn gather_paths(
    given: &[PathBuf],
    lists: &[PathBuf],
    raw_lists: &[PathBuf],
) -> Result<Vec<PathBuf>, ListError> {
    let mut paths = given.to_vec();
    for list in lists {
        paths.extend(read_paths(list, false)?);
    }
    for list in raw_lists {
        paths.extend(read_paths(list, true)?);
    }
    if paths.is_empty() {
        return Err(ListError::NoPaths {
            files: lists.iter().chain(raw_lists).cloned().collect(),
        });
    }
    Ok(paths)
}

/// The paths in the list `path`: NUL-separated if `raw`, else one per line
/// with blank lines and lines starting with `#` ignored. Paths are taken
/// as they are written (no globbing, no trimming: a name may end in a space).
pub fn read_paths(path: &Path, raw: bool) -> Result<Vec<PathBuf>, ListError> {
    let option = if raw {
        "--files-from-raw"
    } else {
        "--files-from"
    };
    let bytes = read_list(option, path)?;
    Ok(parse_paths(&bytes, raw))
}

fn parse_paths(bytes: &[u8], raw: bool) -> Vec<PathBuf> {
    let separator = if raw { b'\0' } else { b'\n' };
    bytes
        .split(|b| *b == separator)
        .filter(|item| !item.is_empty())
        .filter(|item| raw || !item.starts_with(b"#"))
        .map(|item| PathBuf::from(OsString::from_vec(item.to_vec())))
        .collect()
}

/// The bytes of `path`, or of standard input for `-`.
fn read_list(option: &'static str, path: &Path) -> Result<Vec<u8>, ListError> {
    let read = if path == Path::new("-") {
        let mut bytes = Vec::new();
        io::stdin().lock().read_to_end(&mut bytes).map(|_| bytes)
    } else {
        std::fs::read(path)
    };
    read.map_err(|source| ListError::Read {
        option,
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_lists_skip_blank_and_comment_lines_and_keep_spaces() {
        let got = parse_paths(b"# nightly\n/srv/app\n\n/etc/name with space \n", false);
        assert_eq!(
            got,
            [
                PathBuf::from("/srv/app"),
                PathBuf::from("/etc/name with space ")
            ]
        );
    }

    #[test]
    fn raw_lists_split_on_nul_only() {
        let got = parse_paths(b"/a\nb\0#c\0\0", true);
        assert_eq!(got, [PathBuf::from("/a\nb"), PathBuf::from("#c")]);
    }

    #[test]
    fn a_missing_list_is_an_error_naming_it() {
        let err = read_paths(Path::new("/no/such/cairn-list"), false).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--files-from /no/such/cairn-list"), "{text}");
    }
}
