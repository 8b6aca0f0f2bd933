//! Crash points for the kill tests: `CAIRN_CRASH_AT=NAME` (or `NAME:N` for
//! the N-th time the point is reached) makes the process abort right there,
//! exactly as `kill -9` would, so tests can stop a commit at each step.
//!
//! Points: `pack-written` (sealed in tmp/, not yet visible),
//! `pack-published` (renamed into packs/, not yet in the catalog),
//! `pack-cataloged`, `snapshot-record-written` (record in tmp/, not renamed),
//! `snapshot-committed`; in prune: `prune-planned` (journal written),
//! `prune-pack-written` (a repacked pack published, not cataloged),
//! `prune-cataloged` (the commit transaction done, no file deleted yet),
//! `prune-pack-deleted` (after each pack file deleted); in every command:
//! `lock-opened` (the store's lock file opened, not yet locked).
//!
//! `CAIRN_STALL_AT=NAME:SECS` instead makes the process sleep SECS seconds
//! at the first hit of the point, holding whatever locks it holds, so
//! tests can run another command against a store in exactly that state.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Target {
    name: String,
    nth: usize,
    hits: AtomicUsize,
}

fn parse(var: &str) -> Option<Target> {
    let spec = std::env::var(var).ok()?;
    let (name, nth) = match spec.split_once(':') {
        Some((name, n)) => (name.to_owned(), n.parse().ok()?),
        None => (spec, 1),
    };
    Some(Target {
        name,
        nth,
        hits: AtomicUsize::new(0),
    })
}

fn stall() -> Option<&'static Target> {
    static STALL: OnceLock<Option<Target>> = OnceLock::new();
    STALL.get_or_init(|| parse("CAIRN_STALL_AT")).as_ref()
}

fn target() -> Option<&'static Target> {
    static TARGET: OnceLock<Option<Target>> = OnceLock::new();
    TARGET.get_or_init(|| parse("CAIRN_CRASH_AT")).as_ref()
}

/// Aborts the process if `CAIRN_CRASH_AT` names this point (and this is its
/// N-th hit). Costs one pointer check when unset.
pub fn point(name: &str) {
    if let Some(t) = target()
        && t.name == name
        && t.hits.fetch_add(1, Ordering::SeqCst) + 1 == t.nth
    {
        eprintln!("cairn: crash point {name} reached, aborting");
        std::process::abort();
    }
    if let Some(s) = stall()
        && s.name == name
        && s.hits.fetch_add(1, Ordering::SeqCst) == 0
    {
        eprintln!("cairn: stall point {name} reached, sleeping {}s", s.nth);
        std::thread::sleep(std::time::Duration::from_secs(s.nth as u64));
    }
}
