//! Crash safety: a snapshot aborted at each commit step (CAIRN_CRASH_AT) or
//! killed with SIGKILL at a random-ish moment leaves a store whose listed
//! snapshots are all complete and restore exactly, and in which the next
//! snapshot succeeds.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::thread;
use std::time::Instant;

use common::*;

/// Crash points of `src/crash.rs`, each at a step of the commit protocol.
const CRASH_POINTS: [&str; 5] = [
    "pack-written",
    "pack-published",
    "pack-cataloged:3",
    "snapshot-record-written",
    "snapshot-committed",
];

/// When a running snapshot is killed, in percent of the time a whole
/// snapshot of the same tree takes on this machine.
const KILL_AT_PERCENT: [u32; 3] = [10, 35, 60];

/// A source tree of ~300 MiB of random data (several 16 MiB packs) plus a
/// few small files, and a small tree for the snapshot taken before the crash.
struct Sources {
    _env: TestEnv,
    big: PathBuf,
    small: PathBuf,
}

impl Sources {
    fn new(seed: u64) -> Self {
        no_core_dumps();
        let env = TestEnv::new();
        let big = env.path("big");
        small_tree(&big.join("small"), seed);
        for (i, mib) in [120u64, 100, 80].into_iter().enumerate() {
            write_random_file(&big.join(format!("data{i}")), seed + i as u64, mib << 20);
        }
        let small = env.path("small");
        small_tree(&small, seed + 100);
        Self {
            _env: env,
            big,
            small,
        }
    }

    fn source_of(&self, snapshot: &serde_json::Value) -> &Path {
        match snapshot["paths"][0].as_str().unwrap() {
            p if Path::new(p) == self.big => &self.big,
            p if Path::new(p) == self.small => &self.small,
            p => panic!("unexpected snapshot of {p}"),
        }
    }
}

/// A fresh store holding one complete snapshot of the small tree.
fn store_with_a_snapshot(sources: &Sources) -> (TestEnv, String) {
    let t = TestEnv::with_store();
    let snap = t.snapshot(&[&sources.small], &[]);
    (t, id(&snap).to_owned())
}

/// After an interrupted snapshot: the listed snapshots are the one taken
/// before plus, at most, the interrupted one, and each restores exactly;
/// then a normal snapshot succeeds and restores exactly. Returns whether
/// the interrupted snapshot was committed.
fn assert_store_recovers(t: &TestEnv, sources: &Sources, before: &str, what: &str) -> bool {
    let listed = t.snapshots(&[]);
    assert!(
        listed.iter().any(|s| id(s) == before),
        "{what}: the earlier snapshot is no longer listed: {listed:?}"
    );
    assert!(listed.len() <= 2, "{what}: {listed:?}");
    for snap in &listed {
        let target = t.restore(id(snap));
        let source = sources.source_of(snap);
        assert_trees_equal(source, &restored(&target, source));
        std::fs::remove_dir_all(target).unwrap();
    }
    let next = t.snapshot(&[&sources.big], &[]);
    let target = t.restore(id(&next));
    assert_trees_equal(&sources.big, &restored(&target, &sources.big));
    listed.len() == 2
}

fn describe(status: ExitStatus, stderr: &[u8]) -> String {
    format!("{status:?}: {}", String::from_utf8_lossy(stderr))
}

#[test]
fn a_crash_at_any_commit_step_leaves_only_complete_snapshots() {
    let sources = Sources::new(1);
    for point in CRASH_POINTS {
        let (t, before) = store_with_a_snapshot(&sources);
        let out = t
            .command(["snapshot"])
            .arg(&sources.big)
            .env("CAIRN_CRASH_AT", point)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{point}: {}",
            describe(out.status, &out.stderr)
        );
        assert!(
            stderr_of(&out).contains("crash point"),
            "{point}: {}",
            describe(out.status, &out.stderr)
        );
        let committed = assert_store_recovers(&t, &sources, &before, point);
        assert_eq!(committed, point == "snapshot-committed", "{point}");
    }
}

#[test]
fn a_snapshot_killed_at_any_moment_leaves_only_complete_snapshots() {
    let sources = Sources::new(2);
    let whole = {
        let t = TestEnv::with_store();
        let started = Instant::now();
        t.snapshot(&[&sources.big], &[]);
        started.elapsed()
    };
    for percent in KILL_AT_PERCENT {
        let delay = whole * percent / 100;
        let (t, before) = store_with_a_snapshot(&sources);
        let mut child = t
            .command(["--quiet", "snapshot"])
            .arg(&sources.big)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        thread::sleep(delay);
        child.kill().unwrap_or(());
        let status = child.wait().unwrap();
        let what = format!("killed after {delay:?} of {whole:?} ({status:?})");
        let committed = assert_store_recovers(&t, &sources, &before, &what);
        eprintln!("{what}: committed={committed}");
        if status.success() {
            assert!(committed, "{what}: exited 0 but its snapshot is not listed");
        }
    }
}
