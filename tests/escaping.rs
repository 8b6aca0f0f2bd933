//! File names in text output: whatever bytes a name holds, nothing reaches
//! the terminal raw and every listed item stays on one line; `--json` keeps
//! names exact.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process;

use common::*;

/// Names a hostile user can give files: a newline, a terminal escape that
/// turns text red, a carriage return, a byte that is not UTF-8, a tab and
/// a C1 control (U+009B, a one-character CSI on some terminals).
fn hostile_names() -> Vec<std::ffi::OsString> {
    [
        &b"new\nline"[..],
        b"esc\x1b[31mred",
        b"cr\rret",
        b"bad\xffbyte",
        b"tab\there",
        "csi\u{9b}2J".as_bytes(),
    ]
    .iter()
    .map(|b| raw(b))
    .collect()
}

/// How each of [`hostile_names`] is shown.
const SHOWN: [&str; 6] = [
    r"new\nline",
    r"esc\x1b[31mred",
    r"cr\rret",
    r"bad\xffbyte",
    r"tab\there",
    r"csi\u{9b}2J",
];

/// Asserts that `text` could not move a terminal's cursor or change its
/// state: valid UTF-8, and no control character but the newlines ending
/// its lines.
fn assert_terminal_safe(what: &str, text: &[u8]) {
    let text = std::str::from_utf8(text).unwrap_or_else(|e| {
        panic!(
            "{what}: not UTF-8 ({e}): {:?}",
            String::from_utf8_lossy(text)
        )
    });
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| c.is_control() && c != '\n')
        .collect();
    assert!(bad.is_empty(), "{what}: raw {bad:?} in:\n{text}");
}

fn lines(out: &process::Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A source directory (itself with a newline in its name) holding a file
/// of each hostile name and a directory `esc\x1b[31mdir` with a file in it.
fn hostile_tree(t: &TestEnv) -> PathBuf {
    let src = t.path(raw(b"src\nnext"));
    for name in hostile_names() {
        write_file(&src.join(name), b"x");
    }
    write_file(&src.join(raw(b"esc\x1b[31mdir")).join("inner"), b"y");
    src
}

fn run_ok(t: &TestEnv, args: &[&std::ffi::OsStr]) -> process::Output {
    let out = t.command(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    assert_terminal_safe(&format!("{args:?} stderr"), &out.stderr);
    assert_terminal_safe(&format!("{args:?}"), &out.stdout);
    out
}

// Regression: #14 item 2
#[test]
fn control_characters_in_names_are_escaped_in_listings_one_line_per_item() {
    let t = TestEnv::with_store();
    let src = hostile_tree(&t);
    let a = id(&t.snapshot(&[&src], &[])).to_owned();
    write_file(&src.join(raw(b"later\x1b]0;title\x07")), b"z");
    let b = id(&t.snapshot(&[&src], &[])).to_owned();
    let shown_src = format!("{}/src\\nnext", t.root.display());
    let (a, b): (&std::ffi::OsStr, &std::ffi::OsStr) = (a.as_ref(), b.as_ref());
    let src = src.as_os_str();

    let out = run_ok(&t, &["snapshots".as_ref()]);
    let rows = lines(&out);
    // The count is on stderr since #19.
    assert_eq!(rows.len(), 3, "header, two snapshots: {rows:?}");
    assert!(rows[1].contains(&shown_src), "{rows:?}");

    let out = run_ok(&t, &["ls".as_ref(), "latest".as_ref(), src]);
    let mut want: Vec<&str> = SHOWN.to_vec();
    want.extend([r"esc\x1b[31mdir", r"later\x1b]0;title\x07"]);
    want.sort();
    let mut got = lines(&out);
    got.sort();
    assert_eq!(got, want);

    let out = run_ok(&t, &["ls".as_ref(), "-l".as_ref(), "latest".as_ref(), src]);
    assert_eq!(lines(&out).len(), 8);
    let out = run_ok(&t, &["ls".as_ref(), "-R".as_ref(), "latest".as_ref(), src]);
    let inner = format!(r"{shown_src}/esc\x1b[31mdir/inner");
    assert!(lines(&out).contains(&inner), "{:?}", lines(&out));
    assert_eq!(lines(&out).len(), 9);

    let out = run_ok(
        &t,
        &["find".as_ref(), "*e*".as_ref(), "--path".as_ref(), src],
    );
    let found = lines(&out);
    assert!(found.iter().any(|l| l.ends_with(&inner)), "{found:?}");
    assert!(found.iter().any(|l| l.ends_with(r"\nline")), "{found:?}");

    // Below src only: /tmp itself changes as other tests run.
    let out = run_ok(&t, &["diff".as_ref(), a, b, src]);
    let diff = lines(&out);
    // The summary is on stderr since #19.
    assert_eq!(diff.len(), 2, "added file, changed dir: {diff:?}");
    let added = format!(r"+ {shown_src}/later\x1b]0;title\x07 (1 B)");
    assert!(diff.contains(&added), "{diff:?}");
}

// Regression: #14 item 2
#[test]
fn json_listings_keep_hostile_names_exact() {
    let t = TestEnv::with_store();
    let src = hostile_tree(&t);
    t.snapshot(&[&src], &[]);
    let out = t
        .command(["--json", "ls", "latest"])
        .arg(&src)
        .output()
        .unwrap();
    let mut names: Vec<Vec<u8>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let entry = parse_json(line.as_bytes());
            let path = match &entry["path"] {
                serde_json::Value::String(s) => s.as_bytes().to_vec(),
                other => hex::decode(other["hex"].as_str().unwrap()).unwrap(),
            };
            path.rsplit(|&b| b == b'/').next().unwrap().to_vec()
        })
        .collect();
    names.sort();
    let mut want: Vec<Vec<u8>> = hostile_names()
        .iter()
        .map(|n| std::os::unix::ffi::OsStrExt::as_bytes(n.as_os_str()).to_vec())
        .collect();
    want.push(b"esc\x1b[31mdir".to_vec());
    want.sort();
    assert_eq!(names, want);
}

// Regression: #14 item 2
#[test]
fn warnings_and_errors_escape_the_names_they_quote() {
    let t = TestEnv::with_store();
    let src = hostile_tree(&t);
    let fifo = src.join(raw(b"fifo\x1b[2J"));
    assert!(
        process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let out = run_ok(&t, &["snapshot".as_ref(), src.as_os_str()]);
    let err = stderr_of(&out);
    assert!(err.contains(r"fifo\x1b[2J: skipped fifo"), "{err}");

    // An error naming a path (a file that is not there).
    let missing = src.join(raw(b"gone\x1b[31m"));
    let out = t.command(["cat", "latest"]).arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_terminal_safe("cat error", &out.stderr);
    assert!(stderr_of(&out).contains(r"gone\x1b[31m is not in the snapshot"));

    // An error listing paths on lines of their own: one line per path.
    let target = t.path("target");
    t.cairn(["restore", "latest", "--target"])
        .arg(&target)
        .assert()
        .success();
    let out = t
        .command(["restore", "latest", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_terminal_safe("restore conflicts", &out.stderr);
    assert!(err.contains(r"new\nline"), "{err}");
    let listed = err.lines().filter(|l| l.starts_with("  ")).count();
    assert_eq!(listed, 7, "one line per existing file:\n{err}");
}

// `cat PATH` and `ls --at WHEN PATH` (no snapshot named) refused a path
// that is not UTF-8 ("invalid UTF-8 was detected", exit 2): the first
// word was read as a snapshot, which must be text.
#[test]
fn cat_and_ls_without_a_snapshot_take_a_path_that_is_not_utf8() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let dir = src.join(raw(b"nu\xffdir"));
    write_file(&dir.join(raw(b"f\xfe")), b"latin bytes");
    t.snapshot(&[&src], &[]);
    let out = t
        .cairn(["cat"])
        .arg(dir.join(raw(b"f\xfe")))
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, b"latin bytes");
    let out = t.cairn(["ls", "--at", "now"]).arg(&dir).assert().success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("f\\xfe"));
    // A first word that is neither a path nor text is refused plainly.
    let out = t.cairn(["cat"]).arg(raw(b"x\xff")).assert().code(2);
    assert!(stderr_of(out.get_output()).contains("SNAPSHOT"));
}
