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
//! `prune-pack-deleted` (after each pack file deleted); of every repack
//! (prune, repair, a snapshot's rescue): `repack-pack-hashed` (a local
//! pack found to be its id by a first read, not yet read again to copy
//! its blobs); in a two-phase
//! prune also `prune-leased` (the lease taken, nothing planned yet) and
//! `prune-condemned` (a condemnation written); in every command:
//! `lock-opened` (the store's lock file opened, not yet locked); in an
//! encrypted `init`, or a `copy` creating an encrypted target:
//! `init-keys-written` (its key files written, its `config.json` not yet).
//!
//! `CAIRN_STALL_AT=NAME:SECS` instead makes the process sleep SECS seconds
//! at the first hit of the point, holding whatever locks it holds, so
//! tests can run another command against a store in exactly that state.
//! With `CAIRN_STALL_RELEASE=PATH` as well, it stalls at every hit of the
//! point until PATH exists (and then removes it), at most SECS seconds each
//! time: a test acts while the process waits, then lets it go on, without
//! guessing how long its action takes.
//!
//! Capture points besides the commit steps: `capture-walked` (every blob of
//! the run is published and cataloged, the record not yet checked or
//! written) and `file-first-chunk` (the first chunk of a file's content was
//! read, the rest not yet).
//! A stall ends early once SIGINT or SIGTERM asks the process to stop (see
//! `interrupt`), so a test can interrupt a command at exactly that point.
//!
//! Points of a restore: `restore-surveyed` (the target opened, surveyed
//! and `--delete` planned, nothing removed or written yet) and
//! `restore-file-started` (a file's temporary name created, nothing
//! written yet); `tar-file-started` (a file's content about to go into a
//! tar stream). Of `tag`: `retag-new-written` (the new
//! record written and protected like the old one, the old one not yet
//! deleted). Of a copy: `copy-target-created` (a new target's config
//! written, nothing copied yet), `copy-catalog-read` (the packs the target's catalog
//! names read, its `packs/` not yet listed) and `copy-batch-done` (a batch
//! of blobs copied, indexed and cataloged in the target). Of `verify`: `verify-packs-listed` (`packs/` listed to find
//! packs no catalog row names, none of their headers read yet), `verify-listed` (a pass's
//! snapshots listed, nothing walked yet), `verify-walked` (their trees
//! walked, no pack checked yet; in repair's single pass too) and
//! `verify-pass-done` (a pass over the store done, its findings not yet
//! checked again). Of `forget`: `forget-decided` (the snapshots to forget
//! chosen, by policy or by name, nothing forgotten yet) and `forget-checked`
//! (none of them found protected, no record deleted yet). Of `protect`:
//! `protect-marked` (the mark written, the record not yet looked at again).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

fn release() -> Option<&'static Path> {
    static RELEASE: OnceLock<Option<PathBuf>> = OnceLock::new();
    RELEASE
        .get_or_init(|| std::env::var_os("CAIRN_STALL_RELEASE").map(PathBuf::from))
        .as_deref()
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
    {
        let first = s.hits.fetch_add(1, Ordering::SeqCst) == 0;
        let limit = Duration::from_secs(s.nth as u64);
        match release() {
            Some(path) => stall_until(name, path, limit),
            None if first => {
                eprintln!("cairn: stall point {name} reached, sleeping {}s", s.nth);
                sleep_unless_interrupted(limit);
            }
            None => {}
        }
    }
}

/// Sleeps for `duration`, or until a signal asks the process to stop.
fn sleep_unless_interrupted(duration: Duration) {
    let until = Instant::now() + duration;
    while Instant::now() < until && crate::interrupt::requested().is_none() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `path` exists (then removes it, ready for the next hit), or
/// `limit` has passed.
fn stall_until(name: &str, path: &Path, limit: Duration) {
    eprintln!(
        "cairn: stall point {name} reached, waiting for {}",
        path.display()
    );
    let started = Instant::now();
    while !path.exists() && started.elapsed() < limit && crate::interrupt::requested().is_none() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(path);
}
