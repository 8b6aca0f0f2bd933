//! Rendering helpers shared by the commands: sizes, counts, tables and the
//! warning printer.

use std::io::{self, Write};
use std::path::Path;

use indicatif::{HumanBytes, ProgressBar};

use cairn::capture::report::{FileChange, Reporter, Warning};
use cairn::id::SnapshotId;
use cairn::rawname::{escaped, printable};
/// The flags' size parser is the library's, which profile keys share.
pub use cairn::size::parse_size;

use super::stdout::Out;

/// `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    HumanBytes(n).to_string()
}

/// `1 file`, `2 files`, `3 matches`, `0 entries`: a count with its noun
/// (English plurals of the nouns cairn prints).
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    let consonant_y = noun.len() > 1
        && noun.ends_with('y')
        && !noun[..noun.len() - 1].ends_with(['a', 'e', 'o', 'u']);
    if consonant_y {
        return format!("{n} {}ies", &noun[..noun.len() - 1]);
    }
    if noun.ends_with("ch") || noun.ends_with('s') || noun.ends_with('x') {
        return format!("{n} {noun}es");
    }
    format!("{n} {noun}s")
}

/// `/a, /b, /c (+97 more)`: the first `shown` of `paths` (of `total` in
/// all, which may be more than the paths given), so that one damaged pack
/// holding thousands of files stays a readable line; `--json` lists them.
pub fn some_paths<T: ToString>(paths: &[T], total: u64, shown: usize) -> String {
    let listed: Vec<String> = paths.iter().take(shown).map(ToString::to_string).collect();
    match total.saturating_sub(listed.len() as u64) {
        0 => listed.join(", "),
        more => format!("{} (+{more} more)", listed.join(", ")),
    }
}

/// `2 new, 1 modified, 7 unchanged (3 re-read, content the same); 10 in
/// all, 2 dirs, 1 symlink`: what a snapshot did with the files it holds.
/// A record from before issue #19 does not know which files read again
/// were modified: `2 new, 3 changed, 5 unchanged`.
pub fn describe_files(s: &cairn::snapshot::Summary) -> String {
    let Some(modified) = s.files_modified else {
        return format!(
            "{} new, {} changed, {} unchanged; {} in all, {}, {}",
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            s.files,
            plural(s.dirs, "dir"),
            plural(s.symlinks, "symlink")
        );
    };
    let reread = s.files_changed.saturating_sub(modified);
    let shown = match reread {
        0 => String::new(),
        n => format!(" ({n} re-read, content the same)"),
    };
    format!(
        "{} new, {} modified, {} unchanged{shown}; {} in all, {}, {}",
        s.files_new,
        modified,
        s.files_unchanged + reread,
        s.files,
        plural(s.dirs, "dir"),
        plural(s.symlinks, "symlink")
    )
}

/// `snapshot 4acb031c` or `snapshots 4acb031c, 9f3e0a1b`.
pub fn snapshots_named(ids: &[SnapshotId]) -> String {
    let shorts: Vec<String> = ids.iter().map(|id| id.short()).collect();
    match shorts.len() {
        1 => format!("snapshot {}", shorts[0]),
        _ => format!("snapshots {}", shorts.join(", ")),
    }
}

/// `12 GET, 3 PUT, 1 LIST (1.2 MiB down, 20 MiB up)`: what a run cost on a
/// remote store (request kinds that were not used are left out).
pub fn describe_requests(r: &cairn::backend::RequestStats) -> String {
    let kinds = [
        (r.get, "GET"),
        (r.put, "PUT"),
        (r.list, "LIST"),
        (r.head, "HEAD"),
        (r.delete, "DELETE"),
    ];
    let used: Vec<String> = kinds
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, kind)| format!("{n} {kind}"))
        .collect();
    let used = if used.is_empty() {
        "none".to_owned()
    } else {
        used.join(", ")
    };
    format!(
        "{used} ({} down, {} up)",
        human_bytes(r.bytes_down),
        human_bytes(r.bytes_up)
    )
}

/// Widest a column is padded to: a longer cell (a tag of 70,000
/// characters) is printed whole but does not widen every row to it (and
/// `format!`'s width, past 65,535, panicked).
const MAX_PAD: usize = 80;

/// Prints a table with left-aligned columns separated by two spaces.
pub fn print_table(out: &mut Out, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count()).min(MAX_PAD);
        }
    }
    let mut line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                let pad = w.saturating_sub(c.chars().count());
                format!("{c}{}", " ".repeat(pad))
            })
            .collect();
        writeln!(out, "{}", padded.join("  ").trim_end())
    };
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    line(&header)?;
    rows.iter().try_for_each(|row| line(row))
}

/// Writes `line` and a newline to stderr, ignoring a failure: see `say!`.
pub fn to_stderr(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Prints `cairn: warning: MESSAGE` on stderr, its control characters
/// escaped (the message may quote a store's or SQLite's text).
pub fn warn(message: impl std::fmt::Display) {
    say!("cairn: warning: {}", printable(&message.to_string()));
}

/// Prints `cairn: MESSAGE` on stderr: something cairn decided that the
/// user should know, not a problem.
pub fn note(message: impl std::fmt::Display) {
    say!("cairn: {}", printable(&message.to_string()));
}

/// Prints capture warnings on stderr as they happen, and with `-v` each
/// new or modified file (`-vv`: each file) as it is captured.
pub struct StderrReporter<'a> {
    /// Hide notes (warnings are always shown).
    pub quiet: bool,
    /// The progress bar to print around, if any.
    pub bar: Option<&'a ProgressBar>,
    /// `-v` (1) or `-vv` (2).
    pub verbose: u8,
    /// With --json, stdout holds the report: the listing goes to stderr.
    pub json: bool,
}

impl StderrReporter<'_> {
    fn print(&self, line: &str) {
        match self.bar {
            Some(bar) => bar.suspend(|| say!("{line}")),
            None => say!("{line}"),
        }
    }
}

impl Reporter for StderrReporter<'_> {
    fn warn(&self, warning: &Warning) {
        let line = match warning {
            Warning::Note { .. } if self.quiet => return,
            Warning::Note { .. } => format!("cairn: note: {warning}"),
            _ => format!("cairn: warning: {warning}"),
        };
        self.print(&printable(&line));
    }

    fn file(&self, path: &Path, change: FileChange) {
        let mark = match (change, self.verbose) {
            (_, 0) => return,
            (FileChange::New, _) => '+',
            (FileChange::Modified, _) => 'M',
            (FileChange::Reread | FileChange::Unchanged, 1) => return,
            (FileChange::Reread | FileChange::Unchanged, _) => '=',
        };
        let line = format!("{mark} {}", escaped(path));
        if self.json {
            return self.print(&line);
        }
        // The listing is the output: on stdout, never stopping the
        // snapshot (a reader that went away only loses the listing).
        let print = || {
            let _ = writeln!(io::stdout().lock(), "{line}");
        };
        match self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_the_plural_only_when_not_one() {
        assert_eq!(plural(1, "file"), "1 file");
        assert_eq!(plural(0, "file"), "0 files");
        assert_eq!(plural(32, "match"), "32 matches");
        assert_eq!(plural(2, "entry"), "2 entries");
        assert_eq!(plural(2, "key"), "2 keys");
        assert_eq!(plural(3, "database"), "3 databases");
    }
}
