//! A restore stopped by SIGINT or SIGTERM removes the file it was writing
//! and exits with 130 or 143; one killed outright (`kill -9`) leaves its
//! temporary file and directories at mode 0700, which the next restore
//! into the same target removes and finishes; and no restore removes the
//! temporary file of another one still running.
//!
//! Each restore here stops at its first file (`CAIRN_STALL_AT`, which
//! ends early when the process is signalled), so the signals land while a
//! temporary file is in flight, whatever the speed of the machine.
// Regression: #14 item 14
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Stdio};

use rustix::process::{Pid, Signal, kill_process};

use common::*;

const TEMP_PREFIX: &str = ".cairn-restore-";

/// A source holding one 64 MiB file of random data (many chunks) two
/// directories down, with an empty directory beside it; and its snapshot.
fn snapshot_of_a_large_file(t: &TestEnv) -> (PathBuf, String) {
    let src = t.path("src");
    let dir = src.join("d1/d2");
    fs::create_dir_all(dir.join("other")).unwrap();
    write_random_file(&dir.join("big.bin"), 14, 64 << 20);
    chmod(&src.join("d1"), 0o751);
    let snap = t.snapshot(&[&src], &[]);
    (src, id(&snap).to_owned())
}

/// A restore held at its first file's temporary name until signalled.
struct Stalled {
    child: Child,
    stderr: BufReader<ChildStderr>,
}

impl Stalled {
    /// Starts `restore SNAP --target TARGET EXTRA...` and returns once it
    /// holds its first temporary file.
    fn start(t: &TestEnv, snap: &str, target: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["restore", snap, "--target", target.to_str().unwrap()];
        args.extend(extra);
        Self::at(t, &args, "restore-file-started")
    }

    /// Starts `cairn ARGS` and returns once it reaches stall point `point`.
    fn at(t: &TestEnv, args: &[&str], point: &str) -> Self {
        let mut cmd = t.command(args);
        cmd.env("CAIRN_STALL_AT", format!("{point}:300"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains(&format!("stall point {point} reached")) {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "no stall: {line}");
        }
        Self { child, stderr }
    }

    /// Sends `signal` and waits: the exit code and the rest of stderr.
    fn stop(mut self, signal: Signal) -> (Option<i32>, String) {
        kill_process(Pid::from_child(&self.child), signal).unwrap();
        let status = self.child.wait().unwrap();
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).unwrap();
        (status.code(), rest)
    }
}

/// The restore's temporary files under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for name in names(dir) {
        let path = dir.join(&name);
        if name.to_string_lossy().starts_with(TEMP_PREFIX) {
            found.push(path.clone());
        }
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            found.extend(temp_files(&path));
        }
    }
    found
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_restore_stopped_by_sigterm_or_sigint_removes_its_temporary_file() {
    no_core_dumps();
    let t = TestEnv::with_store();
    let (src, snap) = snapshot_of_a_large_file(&t);
    for (signal, code) in [(Signal::TERM, 143), (Signal::INT, 130)] {
        let target = t.fresh_dir("restore");
        let restore = Stalled::start(&t, &snap, &target, &[]);
        let big = restored(&target, &src.join("d1/d2/big.bin"));
        assert_eq!(temp_files(&target).len(), 1, "a file is in flight");
        let (exit, stderr) = restore.stop(signal);
        assert_eq!(exit, Some(code), "{signal:?}: {stderr}");
        assert!(
            stderr.contains("interrupted by SIG") && stderr.contains("incomplete"),
            "{stderr}"
        );
        assert!(stderr.contains(&target.display().to_string()), "{stderr}");
        assert_eq!(temp_files(&target), Vec::<PathBuf>::new(), "{signal:?}");
        assert!(fs::symlink_metadata(&big).is_err(), "big.bin was placed");
    }
}

#[test]
fn the_next_restore_removes_what_a_killed_restore_left_and_finishes_its_directories() {
    no_core_dumps();
    let t = TestEnv::with_store();
    let (src, snap) = snapshot_of_a_large_file(&t);
    let target = t.fresh_dir("restore");
    let (exit, _) = Stalled::start(&t, &snap, &target, &[]).stop(Signal::KILL);
    assert_eq!(exit, None, "killed");
    let dest = restored(&target, &src);
    let left = temp_files(&target);
    assert_eq!(left.len(), 1, "kill -9 leaves the file in flight");
    assert_eq!(mode_of(&dest.join("d1")), 0o700, "not finished yet");
    // Things that only look like leftovers are never removed.
    let d2 = dest.join("d1/d2");
    let decoys = [
        d2.join(".cairn-restore-notes"),
        d2.join(".cairn-restore-0123456789ab-12x"),
        d2.join(".cairn-restore-0123456789AB-3"),
        d2.join(".cairn-restore-0123456789a-3"),
    ];
    for decoy in &decoys {
        write_file(decoy, b"mine");
    }
    let decoy_dir = d2.join(".cairn-restore-0123456789ab-7");
    fs::create_dir(&decoy_dir).unwrap();

    let out = t
        .cairn(["--json", "restore", &snap, "--target"])
        .arg(&target)
        .assert()
        .success();
    let report = parse_json(&out.get_output().stdout);
    assert_eq!(report["leftovers_removed"], 1, "{report}");
    assert!(
        fs::symlink_metadata(&left[0]).is_err(),
        "leftover still there"
    );
    for decoy in &decoys {
        assert_eq!(fs::read(decoy).unwrap(), b"mine", "{decoy:?}");
        fs::remove_file(decoy).unwrap();
    }
    fs::remove_dir(&decoy_dir).unwrap();
    // The directories get their recorded metadata back (the decoys
    // changed d2's mtime: the restore reset it, so it matches again).
    let out = t
        .cairn(["--json", "restore", &snap, "--overwrite", "--target"])
        .arg(&target)
        .assert()
        .success();
    assert_eq!(parse_json(&out.get_output().stdout)["leftovers_removed"], 0);
    assert_eq!(mode_of(&dest.join("d1")), 0o751);
    assert_trees_equal(&src, &dest);
}

#[test]
fn a_restore_never_removes_the_temporary_file_of_one_still_running() {
    let t = TestEnv::with_store();
    let (src, snap) = snapshot_of_a_large_file(&t);
    let target = t.fresh_dir("restore");
    let first = Stalled::start(&t, &snap, &target, &[]);
    let in_flight = temp_files(&target);
    assert_eq!(in_flight.len(), 1);
    // The second restore enters d2, where the first one's file is.
    let other = src.join("d1/d2/other");
    let out = t
        .cairn(["--json", "restore", &snap, "--include"])
        .arg(&other)
        .arg("--target")
        .arg(&target)
        .assert()
        .success();
    assert_eq!(parse_json(&out.get_output().stdout)["leftovers_removed"], 0);
    assert_eq!(temp_files(&target), in_flight, "the running restore's file");
    let (exit, stderr) = first.stop(Signal::TERM);
    assert_eq!(exit, Some(143), "{stderr}");
    assert_eq!(temp_files(&target), Vec::<PathBuf>::new());
}

#[test]
fn a_restore_says_how_many_leftovers_it_removed() {
    no_core_dumps();
    let t = TestEnv::with_store();
    let (_, snap) = snapshot_of_a_large_file(&t);
    let target = t.fresh_dir("restore");
    Stalled::start(&t, &snap, &target, &[]).stop(Signal::KILL);
    let out = t
        .cairn(["restore", &snap, "--target"])
        .arg(&target)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("removed 1 temporary file left by an interrupted restore"),
        "{stdout}"
    );
}

#[test]
fn a_tar_file_stopped_by_a_signal_leaves_nothing_behind() {
    // The signal killed the process outright: a temporary file of the
    // whole stream so far (138 MB in the report) stayed beside FILE.
    no_core_dumps();
    let t = TestEnv::with_store();
    let (_, snap) = snapshot_of_a_large_file(&t);
    let dir = t.fresh_dir("tars");
    fs::create_dir(&dir).unwrap();
    let tar = dir.join("x.tar");
    let args = ["restore", &snap, "--tar", tar.to_str().unwrap()];
    let (exit, stderr) = Stalled::at(&t, &args, "tar-file-started").stop(Signal::TERM);
    assert_eq!(exit, Some(143), "{stderr}");
    assert!(stderr.contains("was not finished"), "{stderr}");
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
}
