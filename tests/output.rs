//! What cairn prints: error texts, a stdout that is closed or full, and the
//! report of work already committed. (File names on a terminal: escaping.rs.)
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

// ---------------------------------------------------------------------------
// A closed or full stdout

/// Runs `cmd` with stdout a pipe whose reader is already gone, so that every
/// write fails (EPIPE) whatever the timing.
fn with_closed_stdout(mut cmd: process::Command) -> process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(writer).output().unwrap()
}

/// Runs `cmd`, reads the first `n` bytes of its stdout and closes the pipe,
/// so that the rest of a long output meets a reader that went away.
fn reading_only(mut cmd: process::Command, n: usize) -> process::Output {
    use std::io::Read;
    cmd.stdout(process::Stdio::piped())
        .stderr(process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = vec![0; n];
    stdout.read_exact(&mut head).unwrap();
    drop(stdout);
    child.wait_with_output().unwrap()
}

/// Runs `cmd` with stdout on /dev/full: every write fails with ENOSPC.
fn with_full_stdout(mut cmd: process::Command) -> process::Output {
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .unwrap();
    cmd.stdout(full).output().unwrap()
}

fn assert_quiet_end(what: &str, out: &process::Output, code: i32) {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(code), "{what}: {err}");
    assert_eq!(err, "", "{what}");
}

/// A store with two snapshots of `src`, which holds `files` small files and
/// a 4 MiB file `big`; returns the two ids.
fn two_snapshots(t: &TestEnv, files: usize) -> (String, String) {
    let src = t.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..files {
        write_file(&src.join(format!("file-{i:05}")), b"x");
    }
    write_random_file(&src.join("big"), 7, 4 << 20);
    let a = id(&t.snapshot(&[&src], &[])).to_owned();
    write_file(&src.join("added"), b"new");
    let b = id(&t.snapshot(&[&src], &[])).to_owned();
    (a, b)
}

// Regression: #14 item 15
#[test]
fn a_closed_stdout_ends_every_listing_quietly_with_exit_0() {
    let t = TestEnv::with_store();
    let (a, b) = two_snapshots(&t, 3);
    let src = t.path("src");
    let big = src.join("big");
    let (big, src) = (big.to_str().unwrap(), src.to_str().unwrap());
    let runs: &[&[&str]] = &[
        &["snapshots"],
        &["--json", "snapshots"],
        &["ls", "-R", "latest"],
        &["ls", "-l", "latest", src],
        &["--json", "ls", "-R", "latest"],
        &["find", "*"],
        &["--json", "find", "*"],
        &["cat", "latest", big],
        &["diff", &a, &b],
        &["--json", "diff", &a, &b],
        &["verify"],
        &["--json", "verify"],
        &["policy", "show"],
        &["restore", "latest", "--tar", "-"],
    ];
    for args in runs {
        let out = with_closed_stdout(t.command(*args));
        assert_quiet_end(&format!("{args:?}"), &out, 0);
    }
}

// Regression: #14 item 15
#[test]
fn a_reader_that_stops_early_ends_long_outputs_quietly_with_exit_0() {
    let t = TestEnv::with_store();
    two_snapshots(&t, 3000);
    let big = t.path("src/big");
    let runs: [Vec<&std::ffi::OsStr>; 4] = [
        vec!["ls".as_ref(), "-R".as_ref(), "latest".as_ref()],
        vec!["find".as_ref(), "file-*".as_ref()],
        vec!["cat".as_ref(), "latest".as_ref(), big.as_os_str()],
        vec![
            "restore".as_ref(),
            "latest".as_ref(),
            "--tar".as_ref(),
            "-".as_ref(),
        ],
    ];
    for args in runs {
        let out = reading_only(t.command(&args), 100);
        assert_quiet_end(&format!("{args:?}"), &out, 0);
    }
}

/// A source with one file SQLite refuses: its snapshot is partial (exit 3).
fn partial_source(t: &TestEnv) -> PathBuf {
    let src = t.path("partial");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend(random_bytes(9, 20_000));
    write_file(&src.join("fake.db"), &bytes);
    src
}

// Regression: #14 items 7 and 15
#[test]
fn a_snapshot_into_a_closed_pipe_is_committed_and_ends_with_its_own_exit_code() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    for json in [false, true] {
        let mut cmd = t.command(if json { &["--json"][..] } else { &[] });
        cmd.arg("snapshot").arg(&src);
        assert_quiet_end("snapshot", &with_closed_stdout(cmd), 0);
    }
    assert_eq!(t.snapshots(&[]).len(), 2);

    let mut cmd = t.command(["snapshot"]);
    cmd.arg(partial_source(&t));
    let out = with_closed_stdout(cmd);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("SQLite refused it"));
    assert_eq!(t.snapshots(&[]).len(), 3);
}

/// The snapshot listed last, as `snapshots --json` shows it.
fn newest(t: &TestEnv) -> String {
    id(t.snapshots(&[]).last().unwrap()).to_owned()
}

fn assert_committed_unreported(what: &str, out: &process::Output, named: &str) {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(5), "{what}: {err}");
    let line = format!(
        "cairn: {named} was committed, but its report could not be written: No space left on device"
    );
    assert!(err.contains(&line), "{what}: want {line:?} in:\n{err}");
}

// Regression: #14 item 7
#[test]
fn a_snapshot_whose_report_cannot_be_written_exits_5_and_names_the_snapshot() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    for (n, args) in [
        &["--json", "snapshot"][..],
        &["snapshot"],
        &["--quiet", "snapshot"],
    ]
    .iter()
    .enumerate()
    {
        let mut cmd = t.command(*args);
        cmd.arg(&src);
        let out = with_full_stdout(cmd);
        if args.contains(&"--quiet") {
            // Nothing to print, so nothing failed.
            assert_quiet_end("--quiet snapshot", &out, 0);
        } else {
            let id = newest(&t);
            assert_committed_unreported("snapshot", &out, &format!("snapshot {}", &id[..8]));
        }
        assert_eq!(t.snapshots(&[]).len(), n + 1);
    }
    let mut cmd = t.command(["snapshot"]);
    cmd.arg(partial_source(&t));
    let out = with_full_stdout(cmd);
    assert_committed_unreported("partial", &out, &format!("snapshot {}", &newest(&t)[..8]));
}

// Regression: #14 item 7
#[test]
fn every_command_that_commits_exits_5_when_its_report_cannot_be_written() {
    let t = TestEnv::new();
    let out = with_full_stdout(t.command(["init"]));
    let store_id: String = {
        let config = std::fs::read_to_string(t.store.join("config.json")).unwrap();
        parse_json(config.as_bytes())["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let named = format!("store {} at {}", &store_id[..8], t.store.display());
    assert_committed_unreported("init", &out, &named);

    let (a, _) = two_snapshots(&t, 3);
    let short = &a[..8];
    let cases: [(&[&str], String); 6] = [
        (&["protect", &a], format!("protecting snapshot {short}")),
        (&["unprotect", &a], format!("unprotecting snapshot {short}")),
        (
            &["policy", "set", "--keep-last", "5"],
            "the retention policy --keep-last 5 --group-by host,paths".to_owned(),
        ),
        (
            &["policy", "clear"],
            "removing the retention policy".to_owned(),
        ),
        (&["forget", &a], format!("forgetting snapshot {short}")),
        (&["repair", "catalog"], "the rebuilt catalog".to_owned()),
    ];
    for (args, named) in cases {
        let out = with_full_stdout(t.command(args));
        assert_committed_unreported(&format!("{args:?}"), &out, &named);
    }
    assert_eq!(t.snapshots(&[]).len(), 1, "forget was not committed");
    let out = with_full_stdout(t.command(["prune"]));
    assert_committed_unreported("prune", &out, "the prune");
}

// Regression: #14 items 7 and 15
#[test]
fn a_command_that_commits_nothing_and_cannot_write_fails_with_exit_1() {
    let t = TestEnv::with_store();
    let (a, _) = two_snapshots(&t, 3);
    let runs: &[&[&str]] = &[
        &["snapshots"],
        &["--json", "snapshots"],
        &["find", "*"],
        &["forget", "--keep-last", "1", "--dry-run"],
        &["prune", "--dry-run"],
        &["unprotect", &a],
    ];
    for args in runs {
        let out = with_full_stdout(t.command(*args));
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("standard output") && err.contains("No space left on device"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("committed"), "{args:?}: {err}");
    }
    assert_eq!(t.snapshots(&[]).len(), 2);
}

/// Every pack file of the store.
fn packs(store: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(store.join("packs")).unwrap() {
        for pack in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            found.push(pack.unwrap().path());
        }
    }
    found
}

// Regression: #14 item 15
#[test]
fn a_finished_command_keeps_its_exit_code_when_its_reader_is_gone() {
    let t = TestEnv::with_store();
    two_snapshots(&t, 3);
    for pack in packs(&t.store) {
        std::fs::remove_file(pack).unwrap();
    }
    for json in [false, true] {
        let mut cmd = t.command(if json { &["--json"][..] } else { &[] });
        cmd.arg("verify");
        let out = with_closed_stdout(cmd);
        assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    }
}

/// Runs `cmd` with stderr on /dev/full (and stdout too with `both`): every
/// write there fails with ENOSPC.
fn with_full_stderr(mut cmd: process::Command, both: bool) -> process::Output {
    let full = || {
        std::fs::File::options()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    cmd.stderr(full());
    if both {
        cmd.stdout(full());
    }
    cmd.output().unwrap()
}

// A warning that stderr could not take panicked (exit 101) before the
// snapshot committed: cron's stderr on a full disk or a closed pipe lost
// the night's snapshot. The work goes on; what could not be said is lost.
#[test]
fn a_stderr_that_takes_nothing_stops_no_command() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("a"), b"a");
    let fifo = src.join("fifo");
    let made = process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let out = with_full_stderr(t.command(["snapshot", src.to_str().unwrap()]), false);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(t.snapshots(&[]).len(), 1, "the snapshot committed");
    // A note on stderr after the listing, and a progress line.
    let out = with_full_stderr(t.command(["snapshots"]), false);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut cmd = t.command(["--progress-interval", "1s", "snapshot"]);
    cmd.args([
        "--stdin-from-command",
        "--",
        "sh",
        "-c",
        "sleep 1.5; echo x",
    ]);
    let out = with_full_stderr(cmd, true);
    assert_eq!(
        out.status.code(),
        Some(5),
        "committed, report lost: {out:?}"
    );
    assert_eq!(t.snapshots(&[]).len(), 2, "the second snapshot committed");
}
