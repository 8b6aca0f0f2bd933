//! Rendering helpers shared by the commands: sizes, tables, the progress
//! bar and the warning printer.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

use cairn::capture::report::{Reporter, Warning};
use cairn::id::SnapshotId;
use cairn::progress::Progress;
use cairn::rawname::printable;

use super::stdout::Out;

/// `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    HumanBytes(n).to_string()
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

/// Parses `16MiB`, `16M`, `512KiB`, `1G` or a plain number of bytes
/// (suffixes are binary: K = KiB).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size: use e.g. 16MiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("{text:?} has an unknown unit: use K, M or G")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Prints a table with left-aligned columns separated by two spaces.
pub fn print_table(out: &mut Out, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", padded.join("  ").trim_end())
    };
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    line(&header)?;
    rows.iter().try_for_each(|row| line(row))
}

/// Runs `work` while a spinner on stderr shows `render(progress)`, if
/// `enabled` and stderr is a terminal. The bar is handed to `work` so that
/// messages can be printed without tearing it.
pub fn with_progress<T>(
    progress: &Progress,
    enabled: bool,
    render: impl Fn(&Progress) -> String + Sync,
    work: impl FnOnce(Option<&ProgressBar>) -> T,
) -> T {
    if !enabled || !std::io::stderr().is_terminal() {
        return work(None);
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                bar.set_message(render(progress));
                bar.tick();
                thread::sleep(Duration::from_millis(100));
            }
        });
        let out = work(Some(&bar));
        done.store(true, Ordering::Relaxed);
        bar.finish_and_clear();
        out
    })
}

/// Prints `cairn: warning: MESSAGE` on stderr, its control characters
/// escaped (the message may quote a store's or SQLite's text).
pub fn warn(message: impl std::fmt::Display) {
    eprintln!("cairn: warning: {}", printable(&message.to_string()));
}

/// Prints `cairn: MESSAGE` on stderr: something cairn decided that the
/// user should know, not a problem.
pub fn note(message: impl std::fmt::Display) {
    eprintln!("cairn: {}", printable(&message.to_string()));
}

/// Prints capture warnings on stderr as they happen.
pub struct StderrReporter<'a> {
    /// Hide notes (warnings are always shown).
    pub quiet: bool,
    /// The progress bar to print around, if any.
    pub bar: Option<&'a ProgressBar>,
}

impl Reporter for StderrReporter<'_> {
    fn warn(&self, warning: &Warning) {
        let line = match warning {
            Warning::Note { .. } if self.quiet => return,
            Warning::Note { .. } => format!("cairn: note: {warning}"),
            _ => format!("cairn: warning: {warning}"),
        };
        let line = printable(&line);
        match self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("16M").unwrap(), 16 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1 G").unwrap(), 1 << 30);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
