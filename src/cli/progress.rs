//! Progress as a person sees it: on a terminal, a line redrawn ten times a
//! second with what is done of the total, the throughput, the time left and
//! the current item; off a terminal nothing, unless `--progress-interval`
//! asks for one plain line per interval on stderr (for a systemd unit's
//! journal, or a cron job's log).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use cairn::progress::Progress;
use cairn::rawname::printable;

use super::output::human_bytes;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// A bar on the terminal.
    Bar,
    /// A line on stderr every so often.
    Lines(Duration),
    /// Nothing.
    Off,
}

impl Show {
    /// Nothing with `quiet` (warnings and errors only: a cron job's
    /// `-q` with a profile's `progress_interval` mailed every night), else
    /// lines at `interval` if given, else a bar if stderr is a terminal
    /// and stdout holds no JSON.
    pub fn choose(quiet: bool, json: bool, interval: Option<Duration>) -> Self {
        match interval {
            _ if quiet => Self::Off,
            Some(every) if !every.is_zero() => Self::Lines(every),
            _ if !json && std::io::stderr().is_terminal() => Self::Bar,
            _ => Self::Off,
        }
    }
}

/// What the counters count, for the line.
#[derive(Debug, Clone, Copy)]
pub struct Units {
    /// What an item is (`files`, `packs`).
    pub items: &'static str,
    /// The verb of the bytes (`read`, `written`).
    pub bytes: &'static str,
}

/// Files and bytes, as a snapshot or restore counts them.
pub const FILES: Units = Units {
    items: "files",
    bytes: "",
};
/// Packs and bytes, as verify and prune count them.
pub const PACKS: Units = Units {
    items: "packs",
    bytes: "",
};

/// Runs `work` while `show`ing `progress` (with what `extra` adds to the
/// line). The bar is handed to `work` so that messages can be printed
/// without tearing it.
pub fn run<T>(
    show: Show,
    progress: &Progress,
    units: Units,
    extra: impl Fn(&Progress) -> String + Sync,
    work: impl FnOnce(Option<&ProgressBar>) -> T,
) -> T {
    if show == Show::Off {
        return work(None);
    }
    progress.want_totals();
    let started = Instant::now();
    let line = |p: &Progress| {
        let mut text = describe(p, units, started.elapsed());
        text.push_str(&extra(p));
        text
    };
    let done = AtomicBool::new(false);
    match show {
        Show::Bar => with_bar(&done, &line, progress, work),
        _ => with_lines(show, &done, &line, progress, work),
    }
}

fn with_bar<T>(
    done: &AtomicBool,
    line: &(dyn Fn(&Progress) -> String + Sync),
    progress: &Progress,
    work: impl FnOnce(Option<&ProgressBar>) -> T,
) -> T {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                bar.set_message(line(progress));
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

fn with_lines<T>(
    show: Show,
    done: &AtomicBool,
    line: &(dyn Fn(&Progress) -> String + Sync),
    progress: &Progress,
    work: impl FnOnce(Option<&ProgressBar>) -> T,
) -> T {
    let Show::Lines(every) = show else {
        return work(None);
    };
    thread::scope(|s| {
        s.spawn(|| {
            let mut next = Instant::now() + every;
            while !done.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    say!("cairn: progress: {}", line(progress));
                    next += every;
                }
                thread::sleep(Duration::from_millis(100).min(every));
            }
        });
        let out = work(None);
        done.store(true, Ordering::Relaxed);
        out
    })
}

/// `1204/5678 files, 1.2 GiB/3.4 GiB (35%), 45 MiB/s, 0:52 left: /srv/x`:
/// what is done of the total (while a count runs, `of at least ...`), the
/// rate, the time left at that rate, and the item being worked on.
pub fn describe(p: &Progress, units: Units, elapsed: Duration) -> String {
    let (items, read, _) = p.read();
    let bytes = read + p.skipped.load(Ordering::Relaxed);
    let (items_total, bytes_total, final_totals) = p.totals();
    let mut text = match (items_total, final_totals) {
        (0, false) => format!("{items} {}, {}", units.items, human_bytes(bytes)),
        (_, known) => format!(
            "{items}/{}{items_total} {}, {}/{}{}",
            if known { "" } else { ">" },
            units.items,
            human_bytes(bytes),
            human_bytes(bytes_total),
            percent(bytes, bytes_total),
        ),
    };
    if !units.bytes.is_empty() {
        text.push(' ');
        text.push_str(units.bytes);
    }
    let secs = elapsed.as_secs_f64();
    if secs >= 1.0 {
        text.push_str(&format!(", {}/s", human_bytes((read as f64 / secs) as u64)));
    }
    if final_totals && let Some(left) = time_left(bytes, bytes_total, elapsed) {
        text.push_str(&format!(", {left} left"));
    }
    if let Some(current) = p.current() {
        text.push_str(": ");
        text.push_str(&printable(&current));
    }
    text
}

fn percent(done: u64, total: u64) -> String {
    match total {
        0 => String::new(),
        total => format!(" ({}%)", (done.min(total) * 100) / total),
    }
}

/// The time left at the rate so far, `h:mm:ss` or `m:ss`; none before a
/// second has passed or anything is done.
fn time_left(done: u64, total: u64, elapsed: Duration) -> Option<String> {
    if done == 0 || elapsed < Duration::from_secs(1) || total <= done {
        return None;
    }
    let secs = (elapsed.as_secs_f64() * (total - done) as f64 / done as f64).round() as u64;
    Some(match secs {
        s if s >= 3600 => format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
        s => format!("{}:{:02}", s / 60, s % 60),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_gives_done_of_total_rate_time_left_and_current_item() {
        let p = Progress::default();
        p.set_totals(10, 4 << 20);
        Progress::add(&p.files, 5);
        Progress::add(&p.bytes, 1 << 20);
        p.want_totals();
        p.working_on(|| "/srv/app/big.bin".to_owned());
        let line = describe(&p, FILES, Duration::from_secs(2));
        assert_eq!(
            line,
            "5/10 files, 1.00 MiB/4.00 MiB (25%), 512.00 KiB/s, 0:06 left: /srv/app/big.bin"
        );
    }

    #[test]
    fn a_count_still_running_is_a_lower_bound_without_time_left() {
        let p = Progress::default();
        p.files_total.store(300, Ordering::Relaxed);
        p.bytes_total.store(1000, Ordering::Relaxed);
        Progress::add(&p.files, 3);
        let line = describe(&p, FILES, Duration::from_secs(5));
        assert!(line.starts_with("3/>300 files"), "{line}");
        assert!(!line.contains("left"), "{line}");
    }

    #[test]
    fn hours_show_in_the_time_left() {
        assert_eq!(
            time_left(1, 4, Duration::from_secs(1800)),
            Some("1:30:00".into())
        );
        assert_eq!(time_left(0, 4, Duration::from_secs(10)), None);
    }
}
