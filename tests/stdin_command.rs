//! Dumps stored from a command (`snapshot --stdin-from-command -- CMD`)
//! and from standard input: a dump is committed only when it is whole as
//! far as cairn can tell (#16). `pg_dump app | cairn snapshot --stdin`
//! committed an empty snapshot with exit 0 when pg_dump failed.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;

use serde_json::json;

use common::*;

#[test]
fn a_command_that_exits_zero_is_stored_as_the_named_file() {
    let t = TestEnv::with_store();
    let out = t
        .cairn([
            "--json",
            "snapshot",
            "--stdin-from-command",
            "--stdin-name",
            "app.sql",
            "--",
            "sh",
            "-c",
            "printf 'CREATE TABLE t;\\n'; head -c 300000 /dev/zero | tr '\\0' x",
        ])
        .assert()
        .success();
    let snap = parse_json(&out.get_output().stdout);
    assert_eq!(snap["paths"], json!(["/app.sql"]));
    let mut want = b"CREATE TABLE t;\n".to_vec();
    want.extend(std::iter::repeat_n(b'x', 300_000));
    let target = t.restore(id(&snap));
    assert_eq!(fs::read(target.join("app.sql")).unwrap(), want);
}

#[test]
fn a_command_is_run_without_a_shell() {
    let t = TestEnv::with_store();
    let out = t
        .cairn([
            "--json",
            "snapshot",
            "--stdin-from-command",
            "--",
            "printf",
            "%s",
            "$(id); *",
        ])
        .assert()
        .success();
    let snap = parse_json(&out.get_output().stdout);
    let target = t.restore(id(&snap));
    assert_eq!(fs::read(target.join("stdin")).unwrap(), b"$(id); *");
}

// Regression: #16 (a failing dump must never be committed)
#[test]
fn a_failing_command_commits_nothing_and_its_stderr_tail_is_in_the_message() {
    let t = TestEnv::with_store();
    let script = "printf 'half a dump'; \
                  for i in $(seq 1 30); do echo \"pg_dump: line $i\" >&2; done; exit 7";
    let out = t
        .cairn(["snapshot", "--stdin-from-command", "--", "sh", "-c", script])
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("sh"), "{err}");
    assert!(err.contains("7"), "{err}");
    assert!(err.contains("nothing was committed"), "{err}");
    for i in 11..=30 {
        assert!(
            err.contains(&format!("pg_dump: line {i}\n")),
            "line {i}: {err}"
        );
    }
    assert!(
        !err.contains("pg_dump: line 10\n"),
        "more than 20 lines: {err}"
    );
    assert!(t.snapshots(&[]).is_empty());
}

#[test]
fn a_command_killed_by_a_signal_commits_nothing() {
    let t = TestEnv::with_store();
    let out = t
        .cairn([
            "snapshot",
            "--stdin-from-command",
            "--",
            "sh",
            "-c",
            "printf partial; kill -9 $$",
        ])
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("signal 9"), "{err}");
    assert!(t.snapshots(&[]).is_empty());
}

#[test]
fn a_command_that_cannot_be_started_is_an_error_naming_it() {
    let t = TestEnv::with_store();
    let out = t
        .cairn([
            "snapshot",
            "--stdin-from-command",
            "--",
            "no-such-dump-program-cairn",
        ])
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("no-such-dump-program-cairn"), "{err}");
    assert!(t.snapshots(&[]).is_empty());
}

#[test]
fn stdin_from_command_without_a_command_is_a_usage_error() {
    let t = TestEnv::with_store();
    t.cairn(["snapshot", "--stdin-from-command"])
        .assert()
        .code(2);
    let src = t.path("src");
    small_tree(&src, 1);
    t.cairn(["snapshot", "--stdin-from-command"])
        .arg(&src)
        .args(["--", "true"])
        .assert()
        .code(2);
}

#[test]
fn a_successful_command_that_wrote_to_stderr_is_committed_with_its_words_shown() {
    let t = TestEnv::with_store();
    let out = t
        .cairn([
            "--json",
            "snapshot",
            "--stdin-from-command",
            "--",
            "sh",
            "-c",
            "echo 'pg_dump: warning: circular foreign keys' >&2; printf dump",
        ])
        .assert()
        .success();
    let err = stderr_of(out.get_output());
    assert!(
        err.contains("pg_dump: warning: circular foreign keys"),
        "{err}"
    );
    assert_eq!(t.snapshots(&[]).len(), 1);
}

// Regression: #16 (an empty stream was committed with exit 0)
#[test]
fn empty_standard_input_warns_and_exits_3() {
    let t = TestEnv::with_store();
    let out = t
        .cairn(["snapshot", "--stdin", "--stdin-name", "app.sql"])
        .write_stdin("")
        .assert()
        .code(3);
    let err = stderr_of(out.get_output());
    assert!(err.contains("warning"), "{err}");
    assert!(err.contains("empty"), "{err}");
    assert!(err.contains("--allow-empty"), "{err}");
}

#[test]
fn empty_standard_input_with_allow_empty_exits_0() {
    let t = TestEnv::with_store();
    let out = t
        .cairn(["--json", "snapshot", "--stdin", "--allow-empty"])
        .write_stdin("")
        .assert()
        .success();
    let snap = parse_json(&out.get_output().stdout);
    let target = t.restore(id(&snap));
    assert_eq!(fs::read(target.join("stdin")).unwrap(), b"");
    assert!(!stderr_of(out.get_output()).contains("warning"));
}

#[test]
fn a_command_that_prints_nothing_warns_and_exits_3_unless_allowed() {
    let t = TestEnv::with_store();
    t.cairn(["snapshot", "--stdin-from-command", "--", "true"])
        .assert()
        .code(3);
    t.cairn([
        "snapshot",
        "--stdin-from-command",
        "--allow-empty",
        "--",
        "true",
    ])
    .assert()
    .success();
    assert_eq!(t.snapshots(&[]).len(), 2);
}

// A name of 300 bytes was stored (exit 0) and the snapshot could not be
// restored into a directory ("File name too long"); a name with '/' was
// refused with exit 1, not as the usage error it is.
#[test]
fn a_stdin_name_that_no_directory_could_hold_is_a_usage_error() {
    let t = TestEnv::with_store();
    for name in ["a".repeat(256), "a/b".to_owned(), "..".to_owned()] {
        let out = t
            .cairn(["snapshot", "--stdin", "--stdin-name", &name])
            .write_stdin("hi")
            .assert()
            .code(2);
        assert!(stderr_of(out.get_output()).contains("--stdin-name"));
    }
    assert!(t.snapshots(&[]).is_empty());
    t.cairn(["snapshot", "--stdin", "--stdin-name", &"a".repeat(255)])
        .write_stdin("hi")
        .assert()
        .success();
}
