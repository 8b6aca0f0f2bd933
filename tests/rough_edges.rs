//! The rough edges a new user hit (#19), one test each, and the output a
//! person reads: `-v` listings and progress lines.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// Regression: #19 (how to get cairn onto PATH, and the Rust version)
#[test]
fn the_readme_says_how_to_install_and_which_rust_it_needs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let cargo = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        readme.contains(&format!("Rust {version} or newer")),
        "README names Rust {version}"
    );
    assert!(readme.contains("cargo install --path ."));
    assert!(readme.contains("cairn completions bash"));
    assert!(readme.contains("cairn man --dir"));
}

// Regression: #19 (`--exclude target/` and `./target` matched nothing)
#[test]
fn directory_excludes_match_as_written() {
    let t = TestEnv::with_store();
    let src = t.path("proj");
    for dir in ["target", "build", "keep"] {
        write_file(&src.join(dir).join("f"), dir.as_bytes());
    }
    write_file(&src.join("keep/target/g"), b"nested target");
    let out = t
        .cairn([
            "--json",
            "snapshot",
            "--exclude",
            "target/",
            "--exclude",
            "./proj/build",
        ])
        .arg(&src)
        .assert()
        .success();
    let snap = parse_json(&out.get_output().stdout);
    let back = restored(&t.restore(id(&snap)), &src);
    assert!(!back.join("target").exists());
    assert!(
        !back.join("keep/target").exists(),
        "a name pattern matches anywhere"
    );
    assert!(!back.join("build").exists(), "./ is the current directory");
    assert!(back.join("keep/f").exists());
}

// Regression: #19 (bad patterns exited 1, not 2)
#[test]
fn bad_patterns_are_usage_errors() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let out = t
        .cairn(["snapshot", "--exclude", "["])
        .arg(&src)
        .assert()
        .code(2);
    assert!(stderr_of(out.get_output()).contains("\"[\""));
    t.snapshot(&[&src], &[]);
    let out = t.cairn(["find", "["]).assert().code(2);
    assert!(stderr_of(out.get_output()).contains("bad pattern"));
    assert_eq!(t.snapshots(&[]).len(), 1);
}

// A 70,000-byte tag was accepted, and from then on `snapshots` panicked
// (a format width past 65,535), exit 101; a shorter long one widened every
// row of the table to it.
#[test]
fn a_tag_or_host_longer_than_a_name_is_refused_and_a_record_with_one_still_lists() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let long = "t".repeat(70_000);
    for flag in ["--tag", "--host"] {
        let out = t
            .cairn(["snapshot", flag, &long])
            .arg(&src)
            .assert()
            .code(2);
        let err = stderr_of(out.get_output());
        assert!(err.contains("at most 255"), "{err}");
    }
    t.snapshot(&[&src], &["--tag", &"t".repeat(255)]);
    // A record written by something else, with a host of 70,000 bytes.
    let snap = t.snapshot(&[&src], &[]);
    let forged = forge_record(&t, &snap, |record| {
        record["host"] = serde_json::Value::from("h".repeat(70_000));
    });
    let out = t.cairn(["snapshots"]).assert().success();
    let listed = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(listed.contains(&forged[..8]), "{listed}");
    let header = listed.lines().next().unwrap();
    assert!(header.len() < 300, "{header}");
}

// Regression: #19 (`--tag ""` and `--host ""` were accepted)
#[test]
fn an_empty_tag_or_host_is_refused() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    for args in [["--tag", ""], ["--host", ""], ["--tag", " "]] {
        let out = t.cairn(["snapshot"]).args(args).arg(&src).assert().code(2);
        let err = stderr_of(out.get_output());
        assert!(
            err.contains(&format!("{} must not be empty", args[0])),
            "{err}"
        );
    }
    assert!(t.snapshots(&[]).is_empty());
}

// Regression: #19 (`restore latest --path /srv/app` restored /etc too)
#[test]
fn restore_with_a_path_filter_restores_only_that_path_and_says_so() {
    let t = TestEnv::with_store();
    let (app, etc) = (t.path("app"), t.path("etc"));
    small_tree(&app, 1);
    small_tree(&etc, 2);
    t.snapshot(&[&app, &etc], &[]);
    let target = t.fresh_dir("r");
    let out = t
        .cairn(["restore", "latest", "--path"])
        .arg(&app)
        .arg("--target")
        .arg(&target)
        .assert()
        .success();
    let err = stderr_of(out.get_output());
    assert!(err.contains("restoring only"), "{err}");
    assert_trees_equal(&app, &restored(&target, &app));
    assert!(!restored(&target, &etc).exists(), "{err}");
    // With --include, the filter only chooses the snapshot.
    let target = t.fresh_dir("r");
    t.cairn(["restore", "latest", "--path"])
        .arg(&app)
        .arg("--include")
        .arg(&etc)
        .arg("--target")
        .arg(&target)
        .assert()
        .success();
    assert!(restored(&target, &etc).exists());
    assert!(!restored(&target, &app).exists());
}

// Regression: #19 (`cat PATH` said "name the file"; ls needed a snapshot)
#[test]
fn ls_and_cat_without_a_snapshot_use_the_latest_and_at_names_its_snapshot() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let first = t.snapshot(&[&src], &[]);
    write_file(&src.join("a.txt"), b"second\n");
    t.snapshot(&[&src], &[]);
    let file = src.join("a.txt");
    let out = t.cairn(["cat"]).arg(&file).assert().success();
    assert_eq!(out.get_output().stdout, b"second\n");
    let out = t.cairn(["ls"]).arg(&src).assert().success();
    assert!(stdout(out.get_output()).lines().any(|l| l == "a.txt"));
    let out = t.cairn(["ls"]).assert().success();
    assert!(!stdout(out.get_output()).is_empty());
    let time = first["time"].as_str().unwrap();
    let out = t.cairn(["ls", "--at", time]).arg(&src).assert().success();
    let err = stderr_of(out.get_output());
    assert!(
        err.contains(&format!("showing snapshot {}", &id(&first)[..8])),
        "{err}"
    );
    // A missing PATH is a mistake of the command line: exit 2.
    let err = stderr_of(t.cairn(["cat"]).assert().code(2).get_output());
    assert!(err.contains("name the file"), "{err}");
}

// Regression: #19 (`ls -l` showed numeric owners only)
#[test]
fn ls_long_shows_owner_names_this_machine_knows() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    t.snapshot(&[&src], &[]);
    let out = t.cairn(["ls", "-l"]).arg(&src).assert().success();
    let text = stdout(out.get_output());
    let line = text.lines().find(|l| l.ends_with(" a.txt")).unwrap();
    // The tests run as root, whose name /etc/passwd gives.
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&fields[1..3], ["root", "root"], "{line}");
}

// Regression: #19 ("0 new, 3 changed" for two runs with no edits)
#[test]
fn the_summary_tells_modified_files_from_files_read_again_unchanged() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("same"), b"same");
    write_file(&src.join("edited"), b"before");
    settle();
    t.snapshot(&[&src], &[]);
    // Touched (metadata changed, content not) and edited.
    filetime::set_file_mtime(src.join("same"), filetime::FileTime::from_unix_time(1, 0)).unwrap();
    write_file(&src.join("edited"), b"after!");
    write_file(&src.join("new"), b"new");
    settle();
    let out = t.cairn(["snapshot"]).arg(&src).assert().success();
    let text = stdout(out.get_output());
    assert!(
        text.contains("files: 1 new, 1 modified, 1 unchanged (1 re-read, content the same)"),
        "{text}"
    );
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&snap, "files_modified"), 0);
    assert_eq!(summary(&snap, "files_changed"), 0);
}

// Regression: #19 (`--read-data-subset 06/31` read 0 of 33 packs silently)
#[test]
fn a_verify_subset_says_what_it_covers_and_warns_when_empty() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    t.snapshot(&[&src], &[]);
    let packs = fs::read_dir(t.store.join("packs"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .count();
    // With a handful of packs, most of 1000 slices are empty.
    let mut saw_empty = false;
    for n in 1..=1000 {
        let out = t
            .cairn(["verify", "--read-data-subset", &format!("{n}/1000")])
            .assert()
            .success();
        let text = stdout(out.get_output());
        assert!(
            text.contains(&format!("the subset {n}/1000 selected ")),
            "{text}"
        );
        assert!(
            text.contains(&format!("of the {packs} packs to read")),
            "{text}"
        );
        let err = stderr_of(out.get_output());
        if text.contains("selected 0 of") {
            assert!(err.contains("covers none of the"), "{err}");
            saw_empty = true;
            break;
        }
    }
    assert!(saw_empty);
}

// Regression: #19 (counts went to stdout with the data; "1 files")
#[test]
fn counts_go_to_stderr_and_take_the_right_plural() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("only"), b"x");
    let snap = t.snapshot(&[&src], &[]);
    let out = t.cairn(["find", "only"]).assert().success();
    assert_eq!(stdout(out.get_output()).lines().count(), 1);
    assert_eq!(stderr_of(out.get_output()).trim(), "1 match");
    let out = t.cairn(["snapshots"]).assert().success();
    assert_eq!(
        stdout(out.get_output()).lines().count(),
        2,
        "header and one row"
    );
    assert_eq!(stderr_of(out.get_output()).trim(), "1 snapshot");
    let out = t.cairn(["diff", id(&snap), id(&snap)]).assert().success();
    assert_eq!(stdout(out.get_output()), "");
    assert!(stderr_of(out.get_output()).starts_with("0 added, 0 removed, 0 modified"));
    let target = t.fresh_dir("r");
    let out = t
        .cairn(["restore", "latest", "--target"])
        .arg(&target)
        .assert()
        .success();
    let text = stdout(out.get_output());
    assert!(text.contains(": 1 file, "), "{text}");
    let text = stdout(t.cairn(["verify"]).assert().success().get_output());
    assert!(text.contains("checked 1 snapshot, "), "{text}");
    assert!(!text.contains("(s)"), "{text}");
}

// Regression: #19 (`M /tmp/ (mtime)` above the snapshotted paths)
#[test]
fn diff_does_not_report_the_directories_above_the_snapshotted_paths() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let a = t.snapshot(&[&src], &[]);
    // The parent of the source changes; the source does not.
    write_file(&t.path("beside"), b"x");
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_file(&src.join("a.txt"), b"changed\n");
    let b = t.snapshot(&[&src], &[]);
    let out = t.cairn(["diff", id(&a), id(&b)]).assert().success();
    let text = stdout(out.get_output());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].starts_with(&format!("M {}", src.join("a.txt").display())),
        "{text}"
    );
}

// Regression: #19 (`--time 2030-01-01` was accepted silently)
#[test]
fn a_snapshot_time_in_the_future_is_warned_about() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let out = t
        .cairn(["snapshot", "--time", "2999-01-01"])
        .arg(&src)
        .assert()
        .success();
    let err = stderr_of(out.get_output());
    assert!(err.contains("warning: --time 2999-01-01"), "{err}");
    assert!(err.contains("in the future"), "{err}");
}

// Regression: #19 (`@WHEN` was refused by protect, unprotect and forget)
#[test]
fn protect_unprotect_and_forget_take_at_when() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let old = t.snapshot(&[&src], &["--time", "2026-01-10 12:00"]);
    t.snapshot(&[&src], &["--time", "2026-01-20 12:00"]);
    t.cairn(["protect", "@2026-01-15"]).assert().success();
    let listed = t.snapshots(&[]);
    assert_eq!(listed[0]["protected"], true);
    assert_eq!(listed[1]["protected"], false);
    t.cairn(["unprotect", "@2026-01-15"]).assert().success();
    t.cairn(["forget", "@2026-01-15"]).assert().success();
    let left = t.snapshots(&[]);
    assert_eq!(left.len(), 1);
    assert_ne!(id(&left[0]), id(&old));
}

// Regression: #19 (`database_fallbacks` missing from the JSON when 0, no paths)
#[test]
fn database_fallbacks_are_always_in_the_json_with_their_paths() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&snap, "database_fallbacks"), 0);
    assert_eq!(snap["summary"]["fallbacks"], serde_json::json!([]));
    // A file that starts like a database but is not one.
    let fake = src.join("fake.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend(random_bytes(3, 4096));
    write_file(&fake, &bytes);
    let out = t.cairn(["--json", "snapshot"]).arg(&src).assert().code(3);
    let snap = parse_json(&out.get_output().stdout);
    assert_eq!(summary(&snap, "database_fallbacks"), 1);
    assert_eq!(snap["summary"]["fallbacks"], serde_json::json!([fake]));
}

// Regression: #19 (usage lines showed `--store` as required with
// CAIRN_STORE set, and a mistyped flag's suggestion as the usage)
#[test]
fn a_usage_error_shows_the_command_plain_usage() {
    let t = TestEnv::with_store();
    let out = t
        .cairn_without_store(["restore"])
        .env("CAIRN_STORE", &t.store)
        .assert()
        .code(2);
    let err = stderr_of(out.get_output());
    let usage = err.lines().find(|l| l.starts_with("Usage: ")).unwrap();
    assert!(!usage.contains("--store"), "{err}");
    assert_eq!(usage, "Usage: cairn restore [OPTIONS] [SNAPSHOT]", "{err}");
    assert!(
        err.contains("--target <DIR>"),
        "what is missing is named: {err}"
    );
    let out = t.cairn(["snapshots", "--tags", "x"]).assert().code(2);
    let err = stderr_of(out.get_output());
    let usage = err.lines().find(|l| l.starts_with("Usage: ")).unwrap();
    assert_eq!(usage, "Usage: cairn snapshots [OPTIONS]", "{err}");
    assert!(err.contains("a similar argument exists: '--tag'"), "{err}");
}

/// A store holding a 2 MiB file and a small one, and the path of the data
/// pack that holds the large file's chunks.
fn store_with_big_and_small_file() -> (TestEnv, PathBuf, PathBuf) {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir_all(&src).unwrap();
    write_random_file(&src.join("big.bin"), 5, 2 << 20);
    write_file(&src.join("small.txt"), b"small");
    t.snapshot(&[&src], &[]);
    let biggest = fs::read_dir(t.store.join("packs"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    (t, src, biggest)
}

// Regression: #19 (a restore's per-item failures ended with exit 1, as if
// nothing had been restored)
#[test]
fn a_restore_that_meets_damaged_data_exits_4_and_restores_the_rest() {
    let (t, src, biggest) = store_with_big_and_small_file();
    let mut bytes = fs::read(&biggest).unwrap();
    bytes[100] ^= 0xff;
    chmod(&biggest, 0o644);
    fs::write(&biggest, bytes).unwrap();
    let (target, err) = t.restore_ending(4);
    assert!(
        err.contains("1 item could not be restored; everything else was"),
        "{err}"
    );
    assert_eq!(
        fs::read(restored(&target, &src).join("small.txt")).unwrap(),
        b"small"
    );
}

// A pack the store lost is damage as a damaged one is: it exited 3, the
// code of a target that refused a write.
#[test]
fn a_restore_that_needs_a_lost_pack_exits_4_and_names_it() {
    let (t, _, lost) = store_with_big_and_small_file();
    fs::remove_file(&lost).unwrap();
    let (_, err) = t.restore_ending(4);
    let name = lost.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&name), "{err}");
    assert!(err.contains("big.bin"), "{err}");
    assert!(
        err.contains("a pack the store does not have: `cairn verify` says what is lost"),
        "{err}"
    );
}

// A pack cut short is damage too: its read failed with an end of file,
// which counted as a target's failure (exit 3).
#[test]
fn a_restore_that_needs_a_truncated_pack_exits_4() {
    let (t, _, cut) = store_with_big_and_small_file();
    let len = fs::metadata(&cut).unwrap().len();
    chmod(&cut, 0o644);
    fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (_, err) = t.restore_ending(4);
    assert!(err.contains("big.bin"), "{err}");
}

#[test]
fn verbose_lists_new_and_modified_files_and_very_verbose_the_rest() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    write_file(&src.join("a"), b"a");
    write_file(&src.join("b"), b"b");
    settle();
    let out = t.cairn(["snapshot", "-v"]).arg(&src).assert().success();
    let text = stdout(out.get_output());
    let a = src.join("a").display().to_string();
    let b = src.join("b").display().to_string();
    assert!(text.starts_with(&format!("+ {a}\n+ {b}\n")), "{text}");
    write_file(&src.join("b"), b"B!");
    write_file(&src.join("c"), b"c");
    settle();
    let out = t.cairn(["snapshot", "-v"]).arg(&src).assert().success();
    let text = stdout(out.get_output());
    let listed: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("snapshot "))
        .collect();
    let c = src.join("c").display().to_string();
    assert_eq!(listed, [format!("M {b}"), format!("+ {c}")], "{text}");
    let out = t.cairn(["snapshot", "-vv"]).arg(&src).assert().success();
    let text = stdout(out.get_output());
    assert!(text.contains(&format!("= {a}\n")), "{text}");
    // With --json the listing goes to stderr, and stdout stays JSON.
    let out = t
        .cairn(["--json", "snapshot", "-vv"])
        .arg(&src)
        .assert()
        .success();
    parse_json(&out.get_output().stdout);
    assert!(stderr_of(out.get_output()).contains(&format!("= {a}")));
    t.cairn(["snapshot", "-v", "-q"]).arg(&src).assert().code(2);
}

#[test]
fn off_a_terminal_progress_is_silent_unless_an_interval_is_asked_for() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let out = t.cairn(["snapshot"]).arg(&src).assert().success();
    assert_eq!(stderr_of(out.get_output()), "");
    // A snapshot that takes a while: stalled at its first file's first chunk.
    write_random_file(&src.join("big"), 9, 1 << 20);
    let out = t
        .cairn(["--progress-interval", "1s", "snapshot", "--force"])
        .arg(&src)
        .env("CAIRN_STALL_AT", "file-first-chunk:3")
        .assert()
        .success();
    let err = stderr_of(out.get_output());
    let line = err
        .lines()
        .find(|l| l.starts_with("cairn: progress: "))
        .unwrap_or_else(|| panic!("no progress line: {err}"));
    assert!(line.contains(" files, "), "{line}");
    // `-q` is warnings and errors only, an interval given or not (a cron
    // job's `-q -P app` with the profile's `progress_interval` mailed
    // progress lines every night).
    let out = t
        .cairn(["-q", "--progress-interval", "1s", "snapshot", "--force"])
        .arg(&src)
        .env("CAIRN_STALL_AT", "file-first-chunk:3")
        .assert()
        .success();
    let err = stderr_of(out.get_output());
    assert!(!err.contains("progress"), "{err}");
}
