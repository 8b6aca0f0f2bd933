//! Several cairn processes on one store: captures run side by side, and a
//! store held exclusively by another process is refused or waited for.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{self, File};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn two_snapshots_started_together_on_one_store_both_succeed_and_restore() {
    let t = TestEnv::with_store();
    let sources = [t.path("first"), t.path("second")];
    for (i, src) in sources.iter().enumerate() {
        small_tree(src, i as u64);
        write_random_file(&src.join("data"), 10 + i as u64, 40 << 20);
    }

    let children: Vec<_> = sources.iter().map(|src| t.spawn_snapshot(src)).collect();
    let snaps: Vec<_> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{:?}: {}",
                out.status,
                stderr_of(&out)
            );
            parse_json(&out.stdout)
        })
        .collect();

    assert_eq!(t.snapshots(&[]).len(), 2);
    for (src, snap) in sources.iter().zip(&snaps) {
        assert!(summary(snap, "packs_written") >= 2, "{snap}");
        assert_trees_equal(src, &restored(&t.restore(id(snap)), src));
    }
}

/// Takes the store's lock file exclusively, as a prune would.
fn lock_store(t: &TestEnv) -> File {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(t.store.join("locks/store.lock"))
        .unwrap();
    file.lock().unwrap();
    file
}

#[test]
fn a_store_locked_exclusively_makes_snapshot_fail_at_once() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let _lock = lock_store(&t);

    let mut snapshot = t.cairn(["snapshot"]);
    snapshot.arg(&src);
    let err = fails_at_once(snapshot);
    assert!(err.contains("is locked"), "{err}");
    assert!(err.contains("--lock-wait"), "{err}");
    assert!(
        fs::read_dir(t.store.join("snapshots"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn a_snapshot_with_lock_wait_proceeds_once_the_lock_is_released() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let lock = lock_store(&t);
    let releaser = thread::spawn(move || {
        thread::sleep(Duration::from_millis(500));
        drop(lock);
    });

    let started = Instant::now();
    let out = t
        .cairn(["--json", "--lock-wait", "5s", "snapshot"])
        .arg(&src)
        .assert()
        .success();
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    releaser.join().unwrap();
    let snap = parse_json(&out.get_output().stdout);
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
}

#[test]
fn a_snapshot_gives_up_when_the_lock_wait_runs_out() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let _lock = lock_store(&t);

    let started = Instant::now();
    let out = t
        .cairn(["--lock-wait", "1s", "snapshot"])
        .arg(&src)
        .assert()
        .code(1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let err = stderr_of(out.get_output());
    assert!(
        err.contains("is locked") && err.contains("gave up"),
        "{err}"
    );
    assert!(
        fs::read_dir(t.store.join("snapshots"))
            .unwrap()
            .next()
            .is_none()
    );
}
