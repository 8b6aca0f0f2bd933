//! What cairn prints: error texts, file names made safe for a terminal, a
//! stdout that is closed or full, and the report of work already committed.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process;

use common::*;

/// A tmpfs of `size` mounted at `dir` (created) for the guard's lifetime;
/// `None` when this process may not mount (not root, or in a container
/// without the capability).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let status = process::Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size}"))
            .arg("tmpfs")
            .arg(dir)
            .stderr(process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Self(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = process::Command::new("umount").arg(&self.0).status();
    }
}

// ---------------------------------------------------------------------------
// Error texts

// Regression: #14 item 16
#[test]
fn a_full_disk_names_the_file_once() {
    let t = TestEnv::new();
    let Some(_disk) = Tmpfs::mount(&t.store, "1M") else {
        eprintln!("cannot mount a tmpfs here: nothing to show");
        return;
    };
    t.cairn(["init"]).assert().success();
    let src = t.path("src");
    std::fs::create_dir(&src).unwrap();
    write_random_file(&src.join("big"), 1, 3 << 20);
    let out = t.cairn(["snapshot"]).arg(&src).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("No space left on device"), "{err}");
    let tmp = t.store.join("tmp");
    let tmp = tmp.to_str().unwrap();
    assert_eq!(err.matches(tmp).count(), 1, "{err}");
    assert!(!err.contains("at path"), "{err}");
}

// Regression: #14 item 16
#[test]
fn a_date_past_the_supported_range_is_called_out_of_range() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let out = t
        .cairn(["snapshot", "--time", "9999-12-31"])
        .arg(&src)
        .assert()
        .code(2);
    let err = stderr_of(out.get_output());
    assert!(err.contains("out of range"), "{err}");
    assert!(err.contains("9999-12-30T22:00:00"), "{err}");
    assert!(!err.contains("does not exist"), "{err}");
    for args in [
        ["ls", "--at", "9999-12-31"],
        ["snapshots", "--before", "9999-12-31"],
        ["snapshots", "--after", "9999-12-31"],
    ] {
        let out = t.cairn(args).assert().code(2);
        let err = stderr_of(out.get_output());
        assert!(err.contains("out of range"), "{args:?}: {err}");
    }
}
