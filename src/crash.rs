//! Crash points for the kill tests: `CAIRN_CRASH_AT=NAME` (or `NAME:N` for
//! the N-th time the point is reached) makes the process abort right there,
//! exactly as `kill -9` would, so tests can stop a commit at each step.
//!
//! Points: `pack-written` (sealed in tmp/, not yet visible),
//! `pack-published` (renamed into packs/, not yet in the catalog),
//! `pack-cataloged`, `snapshot-record-written` (record in tmp/, not renamed),
//! `snapshot-committed`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Target {
    name: String,
    nth: usize,
    hits: AtomicUsize,
}

fn target() -> Option<&'static Target> {
    static TARGET: OnceLock<Option<Target>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let spec = std::env::var("CAIRN_CRASH_AT").ok()?;
            let (name, nth) = match spec.split_once(':') {
                Some((name, n)) => (name.to_owned(), n.parse().ok()?),
                None => (spec, 1),
            };
            Some(Target {
                name,
                nth,
                hits: AtomicUsize::new(0),
            })
        })
        .as_ref()
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
}
