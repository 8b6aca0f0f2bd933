//! Point in time: a simulated month of nightly snapshots, then `--at` at day
//! boundaries, time zones and relative moments, `cat` and single-file
//! restores of one night's bytes, `diff` between nights, `find` across
//! snapshots, `ls`, `snapshots --before/--after` and tar streams that `tar -x`
//! turns into the same tree as a directory restore.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{self, Stdio};

use serde_json::Value;

use common::*;

/// The time zone the month is lived in: +01:00 in February.
const BERLIN: &str = "Europe/Berlin";
/// Nights in the simulated month.
const NIGHTS: u32 = 10;
/// 2026-02-10T01:00:00Z, that is 02:00 in Berlin: night 1.
const FIRST_NIGHT: i64 = 1_770_685_200;
/// Every directory of the month's source keeps this mtime, so that diffs
/// between nights show only the file changes made in between.
const DIR_MTIME: (i64, u32) = (1_767_225_600, 500_000_000);

/// The `--time` of night `n` (1-based): 02:00 Berlin time on 2026-02-(9+n).
fn night_time(n: u32) -> String {
    format!("2026-02-{:02}T02:00:00+01:00", 9 + n)
}

/// Night `n` as seconds since the epoch.
fn night_epoch(n: u32) -> i64 {
    FIRST_NIGHT + i64::from(n - 1) * 86_400
}

/// A path as the `&str` the command line takes (test paths are UTF-8).
fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `cairn --store STORE ARGS` run in the time zone `tz`.
fn in_tz<'a>(
    t: &TestEnv,
    tz: &str,
    args: impl IntoIterator<Item = &'a str>,
) -> assert_cmd::Command {
    let mut cmd = t.cairn(args);
    cmd.env("TZ", tz);
    cmd
}

/// stdout as text lines.
fn lines(out: &process::Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// stdout as JSON Lines, one parsed object per line.
fn json_lines(out: &process::Output) -> Vec<Value> {
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(parse_json)
        .collect()
}

/// An RFC 3339 time as (seconds, nanoseconds) since the epoch.
fn instant(rfc3339: &str) -> (i64, u32) {
    let ts: jiff::Timestamp = rfc3339
        .parse()
        .unwrap_or_else(|e| panic!("{rfc3339:?} is not RFC 3339: {e}"));
    (ts.as_second(), ts.subsec_nanosecond() as u32)
}

/// Seconds since the epoch as RFC 3339 in UTC.
fn rfc3339_utc(sec: i64) -> String {
    jiff::Timestamp::from_second(sec).unwrap().to_string()
}

/// Every directory under (and including) `dir` gets `DIR_MTIME`.
fn freeze_dir_mtimes(dir: &Path) {
    for name in names(dir) {
        let path = dir.join(name);
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            freeze_dir_mtimes(&path);
        }
    }
    set_mtime(dir, DIR_MTIME.0, DIR_MTIME.1);
}

/// Every path below `dir` (not `dir` itself), not following symlinks.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for name in names(dir) {
        let path = dir.join(name);
        out.push(path.clone());
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}

/// What one night left behind.
struct Night {
    id: String,
    /// `journal.txt` as that night's snapshot saw it.
    journal: Vec<u8>,
    journal_mtime: (i64, u32),
}

/// Ten nights of `app/` changing:
/// - `journal.txt` is rewritten before every night (one more line each time);
/// - `reports/interim.csv` appears before night 3 and goes before night 6,
///   together with the whole `legacy/` directory;
/// - `data/blob.bin` changes owner before night 7 (when run as root);
/// - `config.toml` becomes 0600 before night 8;
/// - the symlink `current` points to `journal.bak` instead of `journal.txt`
///   from night 9 (same length, same mtime);
/// - `plugins/` (two files, one directory deep) appears before night 10.
struct Month {
    t: TestEnv,
    src: PathBuf,
    nights: Vec<Night>,
}

impl Month {
    fn new() -> Self {
        let t = TestEnv::with_store();
        let src = t.path("app");
        let config = src.join("config.toml");
        write_file(&config, b"[server]\nport = 8080\n");
        chmod(&config, 0o644);
        set_mtime(&config, FIRST_NIGHT - 30 * 86_400, 1);
        write_file(&src.join("data/blob.bin"), &random_bytes(7, 50_000));
        set_mtime(&src.join("data/blob.bin"), FIRST_NIGHT - 20 * 86_400, 2);
        for name in ["a.log", "b.log"] {
            let log = src.join("legacy").join(name);
            write_file(&log, format!("old {name}\n").as_bytes());
            set_mtime(&log, FIRST_NIGHT - 10 * 86_400, 3);
        }
        make_symlink("journal.txt", &src.join("current"));
        set_mtime(&src.join("current"), FIRST_NIGHT - 5 * 86_400, 4);
        fs::create_dir(src.join("reports")).unwrap();

        let mut nights = Vec::new();
        for n in 1..=NIGHTS {
            let journal = (1..=n)
                .map(|i| format!("entry {i}, written before night {n}\n"))
                .collect::<String>()
                .into_bytes();
            write_file(&src.join("journal.txt"), &journal);
            let journal_mtime = (night_epoch(n) - 3600, n * 1_000_001);
            set_mtime(&src.join("journal.txt"), journal_mtime.0, journal_mtime.1);
            let made = (night_epoch(n) - 7200, 123_456_789);
            match n {
                3 => {
                    let interim = src.join("reports/interim.csv");
                    write_file(&interim, b"week,total\n6,1234\n");
                    set_mtime(&interim, made.0, made.1);
                }
                6 => {
                    fs::remove_file(src.join("reports/interim.csv")).unwrap();
                    fs::remove_dir_all(src.join("legacy")).unwrap();
                }
                7 if is_root() => {
                    std::os::unix::fs::lchown(src.join("data/blob.bin"), Some(4321), Some(4321))
                        .unwrap();
                }
                8 => chmod(&config, 0o600),
                9 => {
                    let current = src.join("current");
                    let mtime = mtime_of(&current);
                    fs::remove_file(&current).unwrap();
                    make_symlink("journal.bak", &current);
                    set_mtime(&current, mtime.0, mtime.1);
                }
                10 => {
                    for (rel, bytes) in [
                        ("plugins/alpha/one.txt", &b"plugin one\n"[..]),
                        ("plugins/beta.txt", b"plugin beta, a little longer\n"),
                    ] {
                        write_file(&src.join(rel), bytes);
                        set_mtime(&src.join(rel), made.0, made.1);
                    }
                }
                _ => {}
            }
            freeze_dir_mtimes(&src);
            let snap = t.snapshot(&[&src], &["--time", &night_time(n)]);
            assert_eq!(summary(&snap, "errors"), 0, "{snap}");
            nights.push(Night {
                id: id(&snap).to_owned(),
                journal,
                journal_mtime,
            });
        }
        Self { t, src, nights }
    }

    /// Night `n` (1-based).
    fn night(&self, n: u32) -> &Night {
        &self.nights[n as usize - 1]
    }

    /// `src/rel` as the command line takes it.
    fn at(&self, rel: &str) -> String {
        format!("{}/{rel}", s(&self.src))
    }

    /// The night whose snapshot `cat --at WHEN` reads in the time zone `tz`,
    /// known by the bytes of `journal.txt` it prints (each night's differ).
    fn night_at(&self, tz: &str, when: &str) -> u32 {
        let out = in_tz(&self.t, tz, ["cat", "--at", when, &self.at("journal.txt")])
            .assert()
            .success();
        let bytes = &out.get_output().stdout;
        (1..=NIGHTS)
            .find(|&n| self.night(n).journal == *bytes)
            .unwrap_or_else(|| panic!("--at {when:?} printed no night's journal"))
    }

    /// The names `ls --at WHEN` lists in the source directory, in `tz`.
    fn ls_night_at(&self, tz: &str, when: &str) -> Vec<String> {
        let out = in_tz(&self.t, tz, ["ls", "--at", when, s(&self.src)])
            .assert()
            .success();
        lines(out.get_output())
    }
}

// ---------------------------------------------------------------------------
// --at

#[test]
fn at_a_bare_date_picks_that_nights_snapshot_and_a_minute_earlier_picks_the_night_before() {
    let m = Month::new();
    // Night 6 was taken at 2026-02-15T02:00:00+01:00.
    assert_eq!(m.night_at(BERLIN, "2026-02-15"), 6);
    assert_eq!(m.night_at(BERLIN, "20260215"), 6);
    assert_eq!(m.night_at(BERLIN, "2026-02-15 01:59"), 5);
    assert_eq!(m.night_at(BERLIN, "2026-02-15 02:00"), 6);
    assert_eq!(m.night_at(BERLIN, "2026-02-15 23:59"), 6);
    assert_eq!(m.night_at(BERLIN, "2026-02-16 01:59"), 6);
    assert_eq!(m.night_at(BERLIN, "2026-02-14"), 5);
    // Long after the last night: the newest.
    assert_eq!(m.night_at(BERLIN, "2026-03-01"), NIGHTS);
    if jiff::Timestamp::now().as_second() > night_epoch(NIGHTS) {
        assert_eq!(m.night_at(BERLIN, "now"), NIGHTS);
    }
    // The first night itself.
    assert_eq!(m.night_at(BERLIN, "2026-02-10"), 1);
}

#[test]
fn at_an_exact_timestamp_picks_the_snapshot_taken_at_that_instant_whatever_the_offset() {
    let m = Month::new();
    assert_eq!(m.night_at(BERLIN, "2026-02-15T02:00:00+01:00"), 6);
    assert_eq!(m.night_at(BERLIN, "2026-02-15T01:00:00Z"), 6);
    assert_eq!(m.night_at(BERLIN, "2026-02-14T20:00:00-05:00"), 6);
    assert_eq!(m.night_at(BERLIN, "2026-02-15T01:59:59.999999999+01:00"), 5);
    assert_eq!(m.night_at(BERLIN, "2026-02-15T00:30:00Z"), 5);
    assert_eq!(m.night_at(BERLIN, "2026-02-14T19:59:59-05:00"), 5);
    // An explicit offset does not depend on the local time zone.
    assert_eq!(m.night_at("America/Los_Angeles", "2026-02-15T00:30:00Z"), 5);
    assert_eq!(m.night_at("Asia/Tokyo", "2026-02-15T01:00:00Z"), 6);
}

#[test]
fn at_dates_and_times_without_an_offset_are_read_in_the_local_time_zone() {
    let m = Month::new();
    // The end of 2026-02-14 in Los Angeles (-08:00) is 2026-02-15T08:59+01:00:
    // after night 6.
    assert_eq!(m.night_at("America/Los_Angeles", "2026-02-14"), 6);
    assert_eq!(m.night_at("America/Los_Angeles", "20260214"), 6);
    // 01:59 in New York (-05:00) is 07:59 in Berlin.
    assert_eq!(m.night_at("America/New_York", "2026-02-15 01:59"), 6);
    // The end of 2026-02-14 in Kiritimati (+14:00) is 10:59 that day in Berlin.
    assert_eq!(m.night_at("Pacific/Kiritimati", "2026-02-14"), 5);
    // In UTC, 00:59 is 01:59 in Berlin.
    assert_eq!(m.night_at("UTC", "2026-02-15 00:59"), 5);
    assert_eq!(m.night_at("UTC", "2026-02-15 01:00"), 6);
}

#[test]
fn at_as_a_positional_reference_works_like_the_option() {
    let m = Month::new();
    for (cmd_when, n) in [
        ("@2026-02-15", 6),
        ("@2026-02-15 01:59", 5),
        ("@20260212", 3),
    ] {
        let out = in_tz(&m.t, BERLIN, ["cat", cmd_when, &m.at("journal.txt")])
            .assert()
            .success();
        assert_eq!(out.get_output().stdout, m.night(n).journal, "{cmd_when}");
    }
    // `ls --at` resolves the same way: night 3 still has legacy/, night 6 not.
    assert!(
        m.ls_night_at(BERLIN, "2026-02-12")
            .contains(&"legacy".to_owned())
    );
    assert!(
        !m.ls_night_at(BERLIN, "2026-02-15")
            .contains(&"legacy".to_owned())
    );
}

#[test]
fn at_a_moment_before_every_snapshot_fails_and_names_the_oldest() {
    let m = Month::new();
    let first = &m.night(1).id;
    for when in [
        "2026-02-09",
        "20260209",
        "2026-02-10 01:59",
        "2026-02-10T00:59:59Z",
    ] {
        for cmd in [
            vec!["cat", "--at", when, &m.at("journal.txt")],
            vec!["ls", "--at", when],
        ] {
            let out = in_tz(&m.t, BERLIN, cmd.clone()).assert().code(1);
            let err = stderr_of(out.get_output());
            assert!(
                err.contains("no snapshot") && err.contains("taken at or before"),
                "{cmd:?}: {err}"
            );
            assert!(
                err.contains(&format!("the oldest is {}", &first[..8])),
                "{cmd:?}: {err}"
            );
            assert!(out.get_output().stdout.is_empty(), "{cmd:?}");
        }
    }
    let target = m.t.path("never");
    let out = in_tz(
        &m.t,
        BERLIN,
        ["restore", "--at", "2026-02-09", "--target", s(&target)],
    )
    .assert()
    .code(1);
    assert!(stderr_of(out.get_output()).contains("the oldest is"));
    assert!(!target.exists());
}

#[test]
fn at_relative_moments_count_back_from_the_real_current_time() {
    let t = TestEnv::with_store();
    let now = jiff::Timestamp::now().as_second();
    let day = 86_400;
    let today_end = (now.div_euclid(day) + 1) * day - 1;
    let three_days_ago = now - 3 * day;
    let five_hours_ago = now - 5 * 3600;
    for (name, sec) in [
        ("three days ago", three_days_ago),
        ("five hours ago", five_hours_ago),
        // Later today: in the future, but still "today".
        ("end of today", today_end),
    ] {
        t.cairn(["snapshot", "--stdin", "--time", &rfc3339_utc(sec)])
            .write_stdin(name)
            .assert()
            .success();
    }
    // The harness runs commands in UTC.
    let cat = |when: &str| {
        let out = t.cairn(["cat", "--at", when, "/stdin"]).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    };
    assert_eq!(cat("1h ago"), "five hours ago");
    assert_eq!(cat("5h ago"), "five hours ago");
    assert_eq!(cat("6h ago"), "three days ago");
    assert_eq!(cat("1 day ago"), "three days ago");
    assert_eq!(cat("2 days ago"), "three days ago");
    assert_eq!(cat("3 days ago"), "three days ago");
    // Within a minute of midnight (UTC) "today" may change under the test.
    if today_end - now > 60 {
        assert_eq!(cat("now"), "five hours ago");
        assert_eq!(cat("today"), "end of today");
        let yesterday_end = today_end - day;
        let want = if five_hours_ago <= yesterday_end {
            "five hours ago"
        } else {
            "three days ago"
        };
        assert_eq!(cat("yesterday"), want);
    } else {
        eprintln!("skipped now/today/yesterday: too close to midnight");
    }

    let out = t
        .cairn(["cat", "--at", "4 days ago", "/stdin"])
        .assert()
        .code(1);
    assert!(stderr_of(out.get_output()).contains("the oldest is"));
}

#[test]
fn at_combines_with_the_host_tag_and_path_filters() {
    let t = TestEnv::with_store();
    for (content, name, time, extra) in [
        (
            "web night 10",
            "site",
            "2026-02-10T02:00:00+01:00",
            vec!["--host", "web"],
        ),
        (
            "db night 12",
            "site",
            "2026-02-12T02:00:00+01:00",
            vec!["--host", "db"],
        ),
        (
            "web night 14",
            "site",
            "2026-02-14T02:00:00+01:00",
            vec!["--host", "web", "--tag", "weekly"],
        ),
        (
            "other night 13",
            "other",
            "2026-02-13T02:00:00+01:00",
            vec!["--host", "web"],
        ),
    ] {
        t.cairn(["snapshot", "--stdin", "--stdin-name", name, "--time", time])
            .args(extra)
            .write_stdin(content)
            .assert()
            .success();
    }
    let cat = |args: &[&str], path: &str| {
        let out = in_tz(&t, BERLIN, ["cat"])
            .args(args)
            .arg(path)
            .assert()
            .success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    };
    assert_eq!(cat(&["--at", "2026-02-12"], "/site"), "db night 12");
    // Any snapshot of the host counts, whatever it holds.
    assert_eq!(
        cat(&["--at", "2026-02-13", "--host", "web"], "/other"),
        "other night 13"
    );
    assert_eq!(
        cat(
            &["--at", "2026-02-13", "--host", "web", "--path", "/site"],
            "/site"
        ),
        "web night 10"
    );
    assert_eq!(
        cat(&["--at", "2026-02-13", "--path", "/site"], "/site"),
        "db night 12"
    );
    assert_eq!(
        cat(&["--at", "2026-02-20", "--tag", "weekly"], "/site"),
        "web night 14"
    );
    assert_eq!(
        cat(
            &["--at", "2026-02-20", "--host", "web", "--path", "/other"],
            "/other"
        ),
        "other night 13"
    );

    let out = in_tz(
        &t,
        BERLIN,
        ["cat", "--at", "2026-02-13", "--tag", "weekly", "/site"],
    )
    .assert()
    .code(1);
    let err = stderr_of(out.get_output());
    let weekly = t.snapshots(&["--tag", "weekly"]);
    assert!(
        err.contains(&format!("the oldest is {}", &id(&weekly[0])[..8])),
        "{err}"
    );
    let out = in_tz(
        &t,
        BERLIN,
        ["cat", "--at", "2026-02-20", "--host", "nowhere", "/site"],
    )
    .assert()
    .code(1);
    assert!(stderr_of(out.get_output()).contains("no snapshot"));
}

#[test]
fn a_prefix_names_a_snapshot_and_an_ambiguous_one_lists_the_candidates() {
    let t = TestEnv::with_store();
    let out = t
        .cairn([
            "--json",
            "snapshot",
            "--stdin",
            "--time",
            "2026-02-10T02:00:00+01:00",
        ])
        .write_stdin("the only content")
        .assert()
        .success();
    let snap = parse_json(&out.get_output().stdout);
    // Write records that differ only in the fraction of their time until two
    // ids share their first four hex digits (about 300 tries on average).
    let record = fs::read_to_string(
        t.store
            .join("snapshots")
            .join(format!("{}.json", id(&snap))),
    )
    .unwrap();
    let old_time = "\"2026-02-10T02:00:00+01:00\"";
    assert!(record.contains(old_time), "{record}");
    let mut seen: HashMap<String, String> = HashMap::new();
    seen.insert(id(&snap)[..4].to_owned(), id(&snap).to_owned());
    let (a, b) = (1..100_000)
        .find_map(|i| {
            let bytes = record.replace(old_time, &format!("\"2026-02-10T02:00:00.{i:09}+01:00\""));
            let new = blake3::hash(bytes.as_bytes()).to_hex().to_string();
            fs::write(
                t.store.join("snapshots").join(format!("{new}.json")),
                &bytes,
            )
            .unwrap();
            seen.insert(new[..4].to_owned(), new.clone())
                .map(|old| (old, new))
        })
        .unwrap();
    let out = t.cairn(["ls", &a[..4]]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("ambiguous"), "{err}");
    for candidate in [&a, &b] {
        assert!(
            err.contains(&candidate[..8]),
            "{candidate} not listed: {err}"
        );
    }
    // The whole id, and a four-digit prefix no other id shares, name one.
    for which in [&a, &b] {
        t.cairn(["cat", which.as_str(), "/stdin"])
            .assert()
            .success()
            .stdout("the only content");
    }
    let unique = seen.keys().find(|&p| *p != a[..4]).unwrap();
    t.cairn(["cat", unique, "/stdin"])
        .assert()
        .success()
        .stdout("the only content");
    // Too short is a mistake of the command line (exit 2, as `restore`
    // says of it); ambiguous depends on the store (exit 1, above).
    let out = t.cairn(["ls", &a[..3]]).assert().code(2);
    assert!(stderr_of(out.get_output()).contains("at least 4"));
}

// ---------------------------------------------------------------------------
// cat and single-file restores

#[test]
fn cat_at_each_night_prints_exactly_the_bytes_written_before_it() {
    let m = Month::new();
    for n in 1..=NIGHTS {
        let day = format!("2026-02-{:02}", 9 + n);
        let out = in_tz(&m.t, BERLIN, ["cat", "--at", &day, &m.at("journal.txt")])
            .assert()
            .success();
        assert_eq!(out.get_output().stdout, m.night(n).journal, "night {n}");
        let out =
            m.t.cairn(["cat", &m.night(n).id, &m.at("journal.txt")])
                .assert()
                .success();
        assert_eq!(out.get_output().stdout, m.night(n).journal, "night {n}");
    }
    let out =
        m.t.cairn(["cat", "latest", &m.at("data/blob.bin")])
            .assert()
            .success();
    assert_eq!(out.get_output().stdout, random_bytes(7, 50_000));
}

#[test]
fn cat_streams_a_file_of_many_chunks_exactly_as_it_was_that_day() {
    let t = TestEnv::with_store();
    let file = t.path("db/app.db.dump");
    let before = random_bytes(21, 3 << 20);
    write_file(&file, &before);
    t.snapshot(&[&file], &["--time", "2026-02-14T23:30:00-05:00"]);
    let mut after = before.clone();
    after[1_500_000..1_600_000].copy_from_slice(&random_bytes(22, 100_000));
    after.extend_from_slice(b"appended");
    write_file(&file, &after);
    t.snapshot(&[&file], &["--time", "2026-02-16T03:00:00-05:00"]);

    let cat = |when: &str| {
        let out = in_tz(&t, "America/New_York", ["cat", "--at", when, s(&file)])
            .assert()
            .success();
        out.get_output().stdout.clone()
    };
    assert!(cat("2026-02-14") == before, "the first version");
    assert!(cat("2026-02-15") == before, "still the first version");
    assert!(cat("2026-02-16") == after, "the second version");
    // In Berlin the first snapshot was taken on the 15th.
    let out = in_tz(&t, BERLIN, ["cat", "--at", "2026-02-14", s(&file)])
        .assert()
        .code(1);
    assert!(stderr_of(out.get_output()).contains("the oldest is"));
}

#[test]
fn cat_of_a_directory_or_a_missing_path_fails_naming_it() {
    let m = Month::new();
    let dir = m.at("data");
    let out = m.t.cairn(["cat", "latest", &dir]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains(&dir) && err.contains("not a file"), "{err}");
    assert!(out.get_output().stdout.is_empty());

    let gone = m.at("reports/interim.csv");
    let out = m.t.cairn(["cat", "latest", &gone]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(
        err.contains(&gone) && err.contains("is not in the snapshot"),
        "{err}"
    );
    // It was there on night 4.
    in_tz(&m.t, BERLIN, ["cat", "--at", "2026-02-13", &gone])
        .assert()
        .success()
        .stdout("week,total\n6,1234\n");
}

#[test]
fn a_single_file_restores_into_the_target_with_that_nights_bytes_mtime_and_mode() {
    let m = Month::new();
    for (n, when) in [(2, "2026-02-11"), (6, "2026-02-15 02:00"), (10, "20260301")] {
        let target = m.t.fresh_dir("one-file");
        in_tz(
            &m.t,
            BERLIN,
            [
                "restore",
                "--at",
                when,
                "--include",
                &m.at("journal.txt"),
                "--strip-prefix",
                s(&m.src),
                "--target",
                s(&target),
            ],
        )
        .assert()
        .success();
        assert_eq!(names(&target), [raw(b"journal.txt")], "night {n}");
        let back = target.join("journal.txt");
        assert_eq!(fs::read(&back).unwrap(), m.night(n).journal, "night {n}");
        assert_eq!(mtime_of(&back), m.night(n).journal_mtime, "night {n}");
        assert_eq!(
            fs::metadata(&back).unwrap().permissions().mode() & 0o7777,
            0o644
        );
    }

    // config.toml was made 0600 before night 8.
    for (n, mode) in [(7, 0o644), (8, 0o600)] {
        let target = m.t.fresh_dir("config");
        m.t.cairn([
            "restore",
            &m.night(n).id,
            "--include",
            &m.at("config.toml"),
            "--strip-prefix",
            s(&m.src),
            "--target",
            s(&target),
        ])
        .assert()
        .success();
        let back = target.join("config.toml");
        assert_eq!(fs::read(&back).unwrap(), b"[server]\nport = 8080\n");
        assert_eq!(
            fs::metadata(&back).unwrap().permissions().mode() & 0o7777,
            mode
        );
        assert_eq!(mtime_of(&back), (FIRST_NIGHT - 30 * 86_400, 1));
    }
}

#[test]
fn included_paths_restore_with_their_ancestors_unless_a_prefix_is_stripped() {
    let m = Month::new();
    let night5 = &m.night(5).id;
    // A subtree and a file, ancestors kept.
    let target = m.t.fresh_dir("include");
    m.t.cairn([
        "restore",
        night5,
        "--include",
        &m.at("legacy"),
        "--include",
        &m.at("reports/interim.csv"),
        "--target",
        s(&target),
    ])
    .assert()
    .success();
    let back = restored(&target, &m.src);
    assert_eq!(names(&back), [raw(b"legacy"), raw(b"reports")]);
    assert_eq!(names(&back.join("reports")), [raw(b"interim.csv")]);
    assert_eq!(fs::read(back.join("legacy/a.log")).unwrap(), b"old a.log\n");
    assert_eq!(fs::read(back.join("legacy/b.log")).unwrap(), b"old b.log\n");
    assert_eq!(mtime_of(&back.join("legacy")), DIR_MTIME);

    // The same subtree with the source directory stripped.
    let target = m.t.fresh_dir("stripped");
    m.t.cairn([
        "restore",
        night5,
        "--include",
        &m.at("legacy"),
        "--strip-prefix",
        s(&m.src),
        "--target",
        s(&target),
    ])
    .assert()
    .success();
    assert_eq!(names(&target), [raw(b"legacy")]);
    assert_eq!(
        names(&target.join("legacy")),
        [raw(b"a.log"), raw(b"b.log")]
    );
    assert_eq!(
        mtime_of(&target.join("legacy/a.log")),
        (FIRST_NIGHT - 10 * 86_400, 3)
    );
}

#[test]
fn including_a_path_the_snapshot_lacks_fails_and_restores_nothing() {
    let m = Month::new();
    let gone = m.at("reports/interim.csv");
    let target = m.t.path("nothing");
    // Night 7: interim.csv was deleted before night 6.
    let out = in_tz(
        &m.t,
        BERLIN,
        [
            "restore",
            "--at",
            "2026-02-16",
            "--include",
            &gone,
            "--target",
            s(&target),
        ],
    )
    .assert()
    .code(1);
    let err = stderr_of(out.get_output());
    assert!(
        err.contains(&gone) && err.contains("is not in the snapshot"),
        "{err}"
    );
    assert!(!target.exists());
}

// ---------------------------------------------------------------------------
// diff

/// A `diff --json` section as path -> item.
fn by_path(items: &Value) -> BTreeMap<String, Value> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item["path"].as_str().unwrap().to_owned(), item.clone()))
        .collect()
}

/// The `diff` text lines (not the summary) as (sign, path) with a trailing
/// `/` of directories dropped.
fn diff_lines(out: &process::Output) -> BTreeSet<(char, String)> {
    let summary = stderr_of(out);
    assert!(summary.contains(" added, "), "{summary}");
    lines(out)
        .iter()
        .map(|line| {
            let sign = line.chars().next().unwrap();
            let rest = &line[2..];
            let path = rest.split(" (").next().unwrap().trim_end_matches('/');
            (sign, path.to_owned())
        })
        .collect()
}

fn diff_json(m: &Month, a: u32, b: u32, path: &str) -> Value {
    let out =
        m.t.cairn(["--json", "diff", &m.night(a).id, &m.night(b).id, path])
            .assert()
            .success();
    let doc = parse_json(&out.get_output().stdout);
    assert_eq!(doc["a"], m.night(a).id.as_str());
    assert_eq!(doc["b"], m.night(b).id.as_str());
    doc
}

fn diff_text(m: &Month, a: u32, b: u32, path: &str) -> process::Output {
    m.t.cairn(["diff", &m.night(a).id, &m.night(b).id, path])
        .assert()
        .success()
        .get_output()
        .clone()
}

#[test]
fn diff_between_two_nights_lists_exactly_the_changes_made_in_between() {
    let m = Month::new();
    let src = s(&m.src);
    let journal = m.at("journal.txt");
    let journal_len = |n: u32| m.night(n).journal.len() as u64;

    // Nights 2 -> 4: interim.csv added, journal rewritten twice.
    let doc = diff_json(&m, 2, 4, src);
    let added = by_path(&doc["added"]);
    assert_eq!(
        added.keys().collect::<Vec<_>>(),
        [&m.at("reports/interim.csv")]
    );
    let interim = &added[&m.at("reports/interim.csv")];
    assert_eq!(interim["type"], "file");
    assert_eq!(interim["size"], 18);
    assert_eq!(interim["mode"], "0644");
    assert_eq!(doc["removed"], serde_json::json!([]));
    let modified = by_path(&doc["modified"]);
    assert_eq!(modified.keys().collect::<Vec<_>>(), [&journal]);
    let item = &modified[&journal];
    assert_eq!(
        item["changed"],
        serde_json::json!(["content", "size", "mtime"])
    );
    assert_eq!(item["old_size"], journal_len(2));
    assert_eq!(item["size"], journal_len(4));
    assert_eq!(
        instant(item["mtime"].as_str().unwrap()),
        m.night(4).journal_mtime
    );

    let text = diff_text(&m, 2, 4, src);
    assert_eq!(
        diff_lines(&text),
        BTreeSet::from([('+', m.at("reports/interim.csv")), ('M', journal.clone())])
    );
    assert!(stderr_of(&text).starts_with("1 added, 0 removed, 1 modified"));

    // Nights 5 -> 6: interim.csv and all of legacy/ removed.
    let doc = diff_json(&m, 5, 6, src);
    assert_eq!(doc["added"], serde_json::json!([]));
    let removed = by_path(&doc["removed"]);
    let want: Vec<String> = [
        "legacy",
        "legacy/a.log",
        "legacy/b.log",
        "reports/interim.csv",
    ]
    .iter()
    .map(|rel| m.at(rel))
    .collect();
    assert_eq!(removed.keys().cloned().collect::<Vec<_>>(), want);
    assert_eq!(removed[&m.at("legacy")]["type"], "dir");
    assert_eq!(removed[&m.at("legacy/a.log")]["size"], 10);
    assert_eq!(
        by_path(&doc["modified"]).keys().collect::<Vec<_>>(),
        [&journal]
    );
    let text = diff_text(&m, 5, 6, src);
    let mut want_lines: BTreeSet<_> = want.into_iter().map(|p| ('-', p)).collect();
    want_lines.insert(('M', journal.clone()));
    assert_eq!(diff_lines(&text), want_lines);

    // Nights 7 -> 8: config.toml chmodded, nothing else but the journal.
    let doc = diff_json(&m, 7, 8, src);
    let modified = by_path(&doc["modified"]);
    let config = &modified[&m.at("config.toml")];
    assert_eq!(config["changed"], serde_json::json!(["mode"]));
    assert_eq!(config["mode"], "0600");
    assert_eq!(config["size"], config["old_size"]);
    assert_eq!(modified.len(), 2, "{doc}");
    let text = diff_text(&m, 7, 8, src);
    let config_line = lines(&text)
        .into_iter()
        .find(|l| l.starts_with(&format!("M {}", m.at("config.toml"))))
        .unwrap();
    assert!(config_line.contains("mode"), "{config_line}");
    assert!(!config_line.contains("content"), "{config_line}");

    // Nights 8 -> 9: the symlink points elsewhere.
    let doc = diff_json(&m, 8, 9, src);
    let modified = by_path(&doc["modified"]);
    let current = &modified[&m.at("current")];
    assert_eq!(current["changed"], serde_json::json!(["target"]));
    assert_eq!(current["type"], "symlink");
    assert_eq!(current["target"], "journal.bak");
    assert_eq!(modified.len(), 2, "{doc}");
    let text = diff_text(&m, 8, 9, src);
    assert_eq!(
        diff_lines(&text),
        BTreeSet::from([('M', m.at("current")), ('M', journal.clone())])
    );

    // Nights 6 -> 7: blob.bin changed hands (when the test could do that).
    let doc = diff_json(&m, 6, 7, src);
    let modified = by_path(&doc["modified"]);
    if is_root() {
        let blob = &modified[&m.at("data/blob.bin")];
        assert_eq!(blob["changed"], serde_json::json!(["owner"]));
        assert_eq!(blob["uid"], 4321);
        assert_eq!(blob["gid"], 4321);
        assert_eq!(modified.len(), 2, "{doc}");
    } else {
        assert_eq!(modified.keys().collect::<Vec<_>>(), [&journal]);
    }

    // Nights 9 -> 10: plugins/ added, with everything below it.
    let doc = diff_json(&m, 9, 10, src);
    let added = by_path(&doc["added"]);
    let want: Vec<String> = [
        "plugins",
        "plugins/alpha",
        "plugins/alpha/one.txt",
        "plugins/beta.txt",
    ]
    .iter()
    .map(|rel| m.at(rel))
    .collect();
    assert_eq!(added.keys().cloned().collect::<Vec<_>>(), want);
    assert_eq!(added[&m.at("plugins/alpha")]["type"], "dir");
    assert_eq!(added[&m.at("plugins/beta.txt")]["size"], 29);
    assert_eq!(doc["removed"], serde_json::json!([]));

    // Backwards, the same changes the other way round.
    let doc = diff_json(&m, 6, 5, src);
    assert_eq!(by_path(&doc["added"]).len(), 4);
    assert_eq!(doc["removed"], serde_json::json!([]));
}

#[test]
fn diff_of_a_snapshot_with_itself_is_empty() {
    let m = Month::new();
    let doc = diff_json(&m, 4, 4, "/");
    for section in ["added", "removed", "modified"] {
        assert_eq!(doc[section], serde_json::json!([]), "{doc}");
    }
    let text = diff_text(&m, 4, 4, "/");
    assert!(lines(&text).is_empty(), "{text:?}");
    assert!(stderr_of(&text).starts_with("0 added, 0 removed, 0 modified"));
}

#[test]
fn diff_of_a_path_shows_only_what_changed_below_it() {
    let m = Month::new();
    // Across the whole month much changed; config.toml only lost some bits.
    let doc = diff_json(&m, 1, 10, &m.at("config.toml"));
    assert_eq!(doc["added"], serde_json::json!([]));
    assert_eq!(doc["removed"], serde_json::json!([]));
    let modified = by_path(&doc["modified"]);
    assert_eq!(
        modified.keys().cloned().collect::<Vec<_>>(),
        [m.at("config.toml")]
    );

    let text = diff_text(&m, 1, 6, &m.at("data"));
    // Regression: #19 (the summary goes to stderr, the data to stdout)
    assert!(lines(&text).is_empty(), "{text:?}");
    assert!(
        stderr_of(&text).starts_with("0 added, 0 removed, 0 modified"),
        "{text:?}"
    );

    // reports/ only gained and lost interim.csv.
    let doc = diff_json(&m, 2, 5, &m.at("reports"));
    assert_eq!(
        by_path(&doc["added"]).keys().cloned().collect::<Vec<_>>(),
        [m.at("reports/interim.csv")]
    );
    assert_eq!(doc["modified"], serde_json::json!([]));
    let doc = diff_json(&m, 5, 6, &m.at("reports"));
    assert_eq!(
        by_path(&doc["removed"]).keys().cloned().collect::<Vec<_>>(),
        [m.at("reports/interim.csv")]
    );
    assert_eq!(doc["added"], serde_json::json!([]));
}

#[test]
fn diff_of_a_path_that_one_snapshot_lacks_lists_it_as_added_or_removed() {
    let m = Month::new();
    // legacy/ went away before night 6: removed, with everything below it.
    let doc = diff_json(&m, 1, 10, &m.at("legacy"));
    assert_eq!(
        by_path(&doc["removed"]).keys().cloned().collect::<Vec<_>>(),
        [m.at("legacy"), m.at("legacy/a.log"), m.at("legacy/b.log")]
    );
    assert_eq!(doc["added"], serde_json::json!([]));
    assert_eq!(doc["modified"], serde_json::json!([]));
    // plugins/ came before night 10: added, with everything below it.
    let doc = diff_json(&m, 9, 10, &m.at("plugins"));
    assert_eq!(by_path(&doc["added"]).len(), 4, "{doc}");
    assert_eq!(doc["removed"], serde_json::json!([]));
    // A single file that came and went.
    let text = diff_text(&m, 2, 3, &m.at("reports/interim.csv"));
    assert_eq!(
        diff_lines(&text),
        BTreeSet::from([('+', m.at("reports/interim.csv"))])
    );
}

// ---------------------------------------------------------------------------
// find

#[test]
fn find_lists_every_snapshot_holding_a_path_newest_first() {
    let m = Month::new();
    let interim = m.at("reports/interim.csv");
    let out =
        m.t.cairn(["--json", "find", "interim.csv"])
            .assert()
            .success();
    let found = json_lines(out.get_output());
    let snapshots: Vec<&str> = found
        .iter()
        .map(|f| f["snapshot"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = [5, 4, 3].iter().map(|&n| m.night(n).id.as_str()).collect();
    assert_eq!(snapshots, want);
    for (f, n) in found.iter().zip([5, 4, 3]) {
        assert_eq!(f["path"], interim.as_str());
        assert_eq!(f["type"], "file");
        assert_eq!(f["size"], 18);
        assert_eq!(
            instant(f["mtime"].as_str().unwrap()),
            (night_epoch(3) - 7200, 123_456_789)
        );
        assert_eq!(instant(f["time"].as_str().unwrap()), (night_epoch(n), 0));
    }

    let out = m.t.cairn(["find", "interim.csv"]).assert().success();
    let text = lines(out.get_output());
    // Regression: #19 (the count goes to stderr, the matches to stdout)
    assert_eq!(text.len(), 3, "{text:?}");
    assert!(
        stderr_of(out.get_output()).contains("3 matches"),
        "{text:?}"
    );
    for (line, n) in text.iter().zip([5, 4, 3]) {
        assert!(line.starts_with(&m.night(n).id[..8]), "{line}");
        assert!(line.ends_with(&interim), "{line}");
    }

    // journal.txt: all ten nights, each with that night's size and mtime.
    let out =
        m.t.cairn(["--json", "find", "journal.txt"])
            .assert()
            .success();
    let found = json_lines(out.get_output());
    assert_eq!(found.len(), NIGHTS as usize);
    for (f, n) in found.iter().zip((1..=NIGHTS).rev()) {
        assert_eq!(f["snapshot"], m.night(n).id.as_str());
        assert_eq!(f["size"], m.night(n).journal.len());
        assert_eq!(
            instant(f["mtime"].as_str().unwrap()),
            m.night(n).journal_mtime
        );
    }
}

#[test]
fn find_matches_names_without_a_slash_and_whole_paths_with_one() {
    let m = Month::new();
    let find = |pattern: &str, extra: &[&str]| {
        let out =
            m.t.cairn(["--json", "find", pattern])
                .args(extra)
                .assert()
                .success();
        json_lines(out.get_output())
            .iter()
            .map(|f| {
                (
                    f["snapshot"].as_str().unwrap().to_owned(),
                    f["path"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let nights = |ns: &[u32], rels: &[&str]| {
        let mut v = Vec::new();
        for &n in ns.iter().rev() {
            for rel in rels {
                v.push((m.night(n).id.clone(), m.at(rel)));
            }
        }
        v
    };
    assert_eq!(
        find("*.log", &[]),
        nights(&[1, 2, 3, 4, 5], &["legacy/a.log", "legacy/b.log"])
    );
    assert_eq!(
        find("one.txt", &[]),
        nights(&[10], &["plugins/alpha/one.txt"])
    );
    assert_eq!(
        find("current", &[]),
        nights(&(1..=NIGHTS).collect::<Vec<_>>(), &["current"])
    );
    // A directory is matched by its name as well.
    assert_eq!(find("plugins", &[]), nights(&[10], &["plugins"]));

    // `*` stays within one path component, `**` crosses them.
    assert_eq!(find(&m.at("*.log"), &[]), []);
    assert_eq!(
        find(&m.at("**/*.log"), &[]),
        nights(&[1, 2, 3, 4, 5], &["legacy/a.log", "legacy/b.log"])
    );
    assert_eq!(find(&m.at("*/one.txt"), &[]), []);
    assert_eq!(
        find(&m.at("**/one.txt"), &[]),
        nights(&[10], &["plugins/alpha/one.txt"])
    );
    assert_eq!(
        find(&m.at("plugins/*"), &[]),
        nights(&[10], &["plugins/alpha", "plugins/beta.txt"])
    );
    // A path pattern must match the whole path, not its end.
    assert_eq!(find("legacy/a.log", &[]), []);

    let host = m.t.snapshots(&[])[0]["host"].as_str().unwrap().to_owned();
    assert_eq!(find("one.txt", &["--host", &host]).len(), 1);
    assert_eq!(find("one.txt", &["--host", "elsewhere"]), []);
}

// ---------------------------------------------------------------------------
// ls

#[test]
fn ls_lists_a_directory_of_a_snapshot_by_name() {
    let m = Month::new();
    let out = m.t.cairn(["ls", "latest", s(&m.src)]).assert().success();
    assert_eq!(
        lines(out.get_output()),
        [
            "config.toml",
            "current",
            "data",
            "journal.txt",
            "plugins",
            "reports"
        ]
    );
    let out =
        m.t.cairn(["ls", &m.night(3).id, s(&m.src)])
            .assert()
            .success();
    assert_eq!(
        lines(out.get_output()),
        [
            "config.toml",
            "current",
            "data",
            "journal.txt",
            "legacy",
            "reports"
        ]
    );
    let out =
        m.t.cairn(["ls", &m.night(3).id, &m.at("reports")])
            .assert()
            .success();
    assert_eq!(lines(out.get_output()), ["interim.csv"]);
    let out =
        m.t.cairn(["ls", "latest", &m.at("reports")])
            .assert()
            .success();
    assert!(out.get_output().stdout.is_empty());
}

#[test]
fn ls_long_shows_type_mode_size_mtime_and_symlink_targets() {
    let m = Month::new();
    // The harness runs commands in UTC.
    let out =
        m.t.cairn(["ls", "-l", "latest", s(&m.src)])
            .assert()
            .success();
    let text = lines(out.get_output());
    assert_eq!(text.len(), 6, "{text:?}");
    let line = |name: &str| {
        text.iter()
            .find(|l| {
                l.split(" -> ")
                    .next()
                    .unwrap()
                    .ends_with(&format!(" {name}"))
            })
            .unwrap_or_else(|| panic!("no {name} in {text:?}"))
            .clone()
    };
    let config = line("config.toml");
    assert!(config.starts_with("-rw------- "), "{config}");
    assert!(config.contains(" 21 "), "{config}");
    let journal = line("journal.txt");
    assert!(journal.starts_with("-rw-r--r-- "), "{journal}");
    assert!(
        journal.contains(&format!(" {} ", m.night(NIGHTS).journal.len())),
        "{journal}"
    );
    // Night 10 is 2026-02-19T01:00Z; the journal was written an hour before.
    assert!(journal.contains("2026-02-19 00:00:00"), "{journal}");
    // Times are local.
    let out = in_tz(&m.t, BERLIN, ["ls", "-l", "latest", &m.at("journal.txt")])
        .assert()
        .success();
    let text = lines(out.get_output());
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(text[0].contains("2026-02-19 01:00:00"), "{text:?}");
    assert!(line("plugins").starts_with('d'), "{}", line("plugins"));
    let current = line("current");
    assert!(current.starts_with('l'), "{current}");
    assert!(current.ends_with("current -> journal.bak"), "{current}");
}

#[test]
fn ls_recursive_lists_every_path_below_the_directory() {
    let m = Month::new();
    let out =
        m.t.cairn(["ls", "-R", "latest", s(&m.src)])
            .assert()
            .success();
    let listed = lines(out.get_output());
    let want: Vec<String> = walk(&m.src).iter().map(|p| s(p).to_owned()).collect();
    assert_eq!(
        listed.iter().collect::<BTreeSet<_>>(),
        want.iter().collect::<BTreeSet<_>>()
    );
    assert_eq!(listed.len(), want.len(), "no path twice: {listed:?}");
}

#[test]
fn ls_json_gives_one_object_per_entry_matching_the_tree() {
    let m = Month::new();
    let out =
        m.t.cairn(["--json", "ls", "--recursive", "latest", s(&m.src)])
            .assert()
            .success();
    let entries = json_lines(out.get_output());
    let want = walk(&m.src);
    assert_eq!(entries.len(), want.len());
    let listed: BTreeMap<String, &Value> = entries
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_owned(), e))
        .collect();
    for path in want {
        let e = listed[s(&path)];
        let meta = fs::symlink_metadata(&path).unwrap();
        let kind = if meta.is_dir() {
            "dir"
        } else if meta.is_symlink() {
            "symlink"
        } else {
            "file"
        };
        assert_eq!(e["type"], kind, "{e}");
        assert_eq!(e["uid"], meta.uid(), "{e}");
        assert_eq!(e["gid"], meta.gid(), "{e}");
        assert_eq!(
            instant(e["mtime"].as_str().unwrap()),
            mtime_of(&path),
            "{e}"
        );
        match kind {
            "file" => {
                assert_eq!(e["size"], meta.len(), "{e}");
                assert_eq!(e["mode"], format!("{:04o}", meta.mode() & 0o7777), "{e}");
            }
            "symlink" => {
                assert_eq!(e["target"], s(&fs::read_link(&path).unwrap()), "{e}");
                assert_eq!(e["size"], meta.len(), "{e}");
            }
            _ => assert_eq!(e["mode"], format!("{:04o}", meta.mode() & 0o7777), "{e}"),
        }
    }

    // Without --recursive: only the directory's own entries.
    let out =
        m.t.cairn(["--json", "ls", &m.night(1).id, s(&m.src)])
            .assert()
            .success();
    let paths: Vec<String> = json_lines(out.get_output())
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    let want: Vec<String> = [
        "config.toml",
        "current",
        "data",
        "journal.txt",
        "legacy",
        "reports",
    ]
    .iter()
    .map(|rel| m.at(rel))
    .collect();
    assert_eq!(paths, want);
}

#[test]
fn ls_of_a_file_prints_that_entry_and_of_a_missing_path_fails_naming_it() {
    let m = Month::new();
    let journal = m.at("journal.txt");
    let out = m.t.cairn(["ls", "latest", &journal]).assert().success();
    assert_eq!(lines(out.get_output()), ["journal.txt"]);
    let out =
        m.t.cairn(["--json", "ls", "latest", &journal])
            .assert()
            .success();
    let entries = json_lines(out.get_output());
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["path"], journal.as_str());
    assert_eq!(entries[0]["size"], m.night(NIGHTS).journal.len());

    let gone = m.at("reports/interim.csv");
    let out = m.t.cairn(["ls", "latest", &gone]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(
        err.contains(&gone) && err.contains("is not in the snapshot"),
        "{err}"
    );
    assert!(out.get_output().stdout.is_empty());
    // Below a directory that is gone, the error names that directory.
    let gone = m.at("legacy/a.log");
    let out = m.t.cairn(["ls", "latest", &gone]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(
        err.contains(&format!("{} is not in the snapshot", m.at("legacy"))),
        "{err}"
    );
    let out = in_tz(&m.t, BERLIN, ["ls", "--at", "2026-02-14", &gone])
        .assert()
        .success();
    assert_eq!(lines(out.get_output()), ["a.log"]);
}

// ---------------------------------------------------------------------------
// snapshots --before/--after

#[test]
fn snapshots_before_and_after_keep_the_snapshots_in_between_inclusive() {
    let m = Month::new();
    let listed = |tz: &str, args: &[&str]| -> Vec<String> {
        let out = in_tz(&m.t, tz, ["--json", "snapshots"])
            .args(args)
            .assert()
            .success();
        parse_json(&out.get_output().stdout)
            .as_array()
            .unwrap()
            .iter()
            .map(|snap| id(snap).to_owned())
            .collect()
    };
    let nights = |ns: std::ops::RangeInclusive<u32>| -> Vec<String> {
        ns.map(|n| m.night(n).id.clone()).collect()
    };
    assert_eq!(listed(BERLIN, &[]), nights(1..=10));
    assert_eq!(
        listed(BERLIN, &["--after", "2026-02-12", "--before", "2026-02-14"]),
        nights(3..=5)
    );
    assert_eq!(
        listed(
            BERLIN,
            &[
                "--after",
                "2026-02-12T02:00:00+01:00",
                "--before",
                "2026-02-14T02:00:00+01:00"
            ]
        ),
        nights(3..=5)
    );
    assert_eq!(
        listed(BERLIN, &["--before", "2026-02-14T01:59:59+01:00"]),
        nights(1..=4)
    );
    assert_eq!(listed(BERLIN, &["--after", "2026-02-19"]), nights(10..=10));
    assert_eq!(listed(BERLIN, &["--before", "20260210"]), nights(1..=1));
    assert_eq!(
        listed(BERLIN, &["--before", "2026-02-09"]),
        Vec::<String>::new()
    );
    // Dates are local days: in Los Angeles, 2026-02-14 ends after night 6,
    // and 2026-02-19 starts after night 10.
    assert_eq!(
        listed("America/Los_Angeles", &["--before", "2026-02-14"]),
        nights(1..=6)
    );
    assert_eq!(
        listed("America/Los_Angeles", &["--after", "2026-02-19"]),
        Vec::<String>::new()
    );
    // Nothing is both after the 15th and before the 12th.
    assert_eq!(
        listed(BERLIN, &["--after", "2026-02-15", "--before", "2026-02-12"]),
        Vec::<String>::new()
    );
}

#[test]
fn snapshots_shows_times_in_the_local_time_zone() {
    let m = Month::new();
    let row = |tz: &str| {
        let out = in_tz(&m.t, tz, ["snapshots"]).assert().success();
        lines(out.get_output())
            .into_iter()
            .find(|l| l.starts_with(&m.night(6).id[..8]))
            .unwrap()
    };
    // Night 6 is 2026-02-15T02:00:00+01:00.
    let berlin = row(BERLIN);
    assert!(berlin.contains("2026-02-15 02:00:00"), "{berlin}");
    let new_york = row("America/New_York");
    assert!(new_york.contains("2026-02-14 20:00:00"), "{new_york}");
    let utc = row("UTC");
    assert!(utc.contains("2026-02-15 01:00:00"), "{utc}");
}

// ---------------------------------------------------------------------------
// tar

/// Whether a `tar` is there to extract with; says so when not.
fn have_tar() -> bool {
    let ok = process::Command::new("tar")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: no `tar` on this machine");
    }
    ok
}

/// `tar -xpf - -C dir` fed `stream`.
fn untar(stream: &[u8], dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let mut child = process::Command::new("tar")
        .args(["-xpf", "-", "-C"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stream).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "tar -x: {}", stderr_of(&out));
}

/// A tree of what plain tar headers cannot hold: a non-UTF-8 name, names
/// and paths over 100 bytes, a long symlink target, nanosecond mtimes.
fn build_tar_tree(src: &Path) {
    write_file(&src.join(raw(b"caf\xe9 \xff.txt")), b"latin-1 name");
    write_file(&src.join("n".repeat(150)), b"a 150-byte name");
    let deep = src
        .join("d".repeat(60))
        .join("e".repeat(60))
        .join("f".repeat(60));
    write_file(&deep.join("deep file.txt"), &random_bytes(11, 70_000));
    make_symlink(format!("{}target", "t/".repeat(80)), &src.join("long link"));
    make_symlink(raw(b"odd \xe9 target"), &src.join("raw link"));
    make_symlink("n".repeat(150), &src.join("link to long name"));
    for (name, mode) in [("secret", 0o600), ("tool", 0o755), ("group", 0o640)] {
        write_file(&src.join("modes").join(name), name.as_bytes());
        chmod(&src.join("modes").join(name), mode);
    }
    fs::create_dir_all(src.join("empty dir")).unwrap();
    write_file(&src.join("empty file"), b"");
    // A long name that is not UTF-8, and a long target that is not either.
    let mut long_raw = b"\xe9".repeat(60);
    long_raw.extend_from_slice(b" latin-1 and long");
    write_file(&src.join(raw(&long_raw)), b"long latin-1 name");
    let mut long_target = b"\xff/".repeat(70);
    long_target.extend_from_slice(b"end");
    make_symlink(raw(&long_target), &src.join("long raw link"));
    // Names longer than a header's 100 bytes that start with a byte that
    // is not UTF-8 (so the stream's first bytes of them once the source's
    // own path is stripped): a file, a hard link, a symlink, a directory.
    let latin = b"\xe9".repeat(120);
    write_file(&src.join(raw(&latin)), b"starts latin-1");
    fs::hard_link(src.join(raw(&latin)), src.join(raw(&b"\xfe".repeat(105)))).unwrap();
    make_symlink(raw(&latin), &src.join(raw(&b"\xfd".repeat(110))));
    write_file(
        &src.join(raw(&b"\xfc".repeat(101))).join("x"),
        b"in a latin-1 dir",
    );
    // Around the 100 bytes of a plain header's name field; a directory's
    // name gets a trailing slash there.
    for len in [99, 100, 101] {
        write_file(&src.join("b".repeat(len)), format!("{len}").as_bytes());
    }
    for len in [99, 100] {
        write_file(&src.join("D".repeat(len)).join("x"), b"x");
    }
    // Special bits.
    write_file(&src.join("bits/setuid"), b"su");
    chmod(&src.join("bits/setuid"), 0o4755);
    write_file(&src.join("bits/setgid dir/f"), b"g");
    chmod(&src.join("bits/setgid dir"), 0o2775);
    write_file(&src.join("bits/sticky dir/t"), b"t");
    chmod(&src.join("bits/sticky dir"), 0o1777);
    // Times a plain header cannot hold: before 1970, after 2242. (Before
    // 1970 with nanoseconds: see the ignored test below.)
    write_file(&src.join("times/1901"), b"old");
    set_mtime(&src.join("times/1901"), -2_000_000_000, 0);
    write_file(&src.join("times/2300"), b"future");
    set_mtime(&src.join("times/2300"), 10_000_000_000, 5);
    if is_root() {
        // An owner too large for a plain header's octal field.
        write_file(&src.join("big owner"), b"theirs");
        std::os::unix::fs::chown(src.join("big owner"), Some(3_000_000), Some(4_000_000)).unwrap();
    }

    set_mtime(&deep.join("deep file.txt"), 1_700_000_000, 123_456_789);
    set_mtime(&src.join("modes/secret"), 1_600_000_000, 1);
    set_mtime(&src.join("modes/tool"), 1_650_000_000, 999_999_999);
    set_mtime(&src.join(raw(b"caf\xe9 \xff.txt")), 1_234_567_890, 500);
    set_mtime(&src.join("long link"), 1_500_000_000, 42);
    set_mtime(&src.join("raw link"), 1_500_000_001, 43);
    set_mtime(&deep, 1_400_000_000, 7);
    set_mtime(&src.join("d".repeat(60)), 1_400_000_001, 8);
    set_mtime(&src.join("empty dir"), 1_300_000_000, 9);
    chmod(&src.join("modes"), 0o750);
    set_mtime(&src.join("modes"), 1_300_000_001, 10);
    set_mtime(src, 1_300_000_002, 11);
}

#[test]
fn a_tar_stream_extracts_to_the_same_tree_as_a_directory_restore() {
    if !have_tar() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("tarsrc");
    build_tar_tree(&src);
    let snap = t.snapshot(&[&src], &[]);
    let dir = t.restore(id(&snap));
    assert_trees_equal(&src, &restored(&dir, &src));

    let file = t.path("snap.tar");
    t.cairn(["restore", id(&snap), "--tar", s(&file)])
        .assert()
        .success();
    let extracted = t.fresh_dir("from-file");
    untar(&fs::read(&file).unwrap(), &extracted);
    assert_trees_equal(&src, &restored(&extracted, &src));
    // The directories leading to the source come out the same too.
    let top = Path::new("/").join(src.components().nth(1).unwrap());
    assert_eq!(names(&extracted), names(&dir));
    assert_trees_equal(&restored(&dir, &top), &restored(&extracted, &top));

    let out = t
        .cairn(["restore", id(&snap), "--tar", "-"])
        .assert()
        .success();
    let stream = &out.get_output().stdout;
    assert_eq!(*stream, fs::read(&file).unwrap(), "same stream to stdout");
    let piped = t.fresh_dir("from-stdout");
    untar(stream, &piped);
    assert_trees_equal(&restored(&dir, &top), &restored(&piped, &top));
}

#[test]
fn a_tar_stream_of_included_paths_is_relative_to_the_stripped_prefix() {
    if !have_tar() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("tarsrc");
    build_tar_tree(&src);
    let snap = t.snapshot(&[&src], &[]);
    let first = src.join("d".repeat(60));
    let out = t
        .cairn([
            "restore",
            id(&snap),
            "--tar",
            "-",
            "--include",
            s(&first),
            "--include",
            s(&src.join("modes/secret")),
            "--strip-prefix",
            s(&src),
        ])
        .assert()
        .success();
    let extracted = t.fresh_dir("stripped");
    untar(&out.get_output().stdout, &extracted);
    assert_eq!(
        names(&extracted),
        [raw("d".repeat(60).as_bytes()), raw(b"modes")]
    );
    assert_trees_equal(&first, &extracted.join("d".repeat(60)));
    assert_eq!(names(&extracted.join("modes")), [raw(b"secret")]);
    let secret = extracted.join("modes/secret");
    assert_eq!(fs::read(&secret).unwrap(), b"secret");
    assert_eq!(
        fs::metadata(&secret).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    assert_eq!(mtime_of(&secret), (1_600_000_000, 1));

    // The whole source with its own path stripped: every name is relative
    // to it, including those of 99 to 101 bytes around the header's limit.
    let out = t
        .cairn([
            "restore",
            id(&snap),
            "--tar",
            "-",
            "--include",
            s(&src),
            "--strip-prefix",
            s(&src),
        ])
        .assert()
        .success();
    let extracted = t.fresh_dir("whole");
    untar(&out.get_output().stdout, &extracted);
    // The stripped directory itself is not in the stream: give the
    // extraction directory its mode and mtime to compare the rest.
    chmod(
        &extracted,
        fs::metadata(&src).unwrap().permissions().mode() & 0o7777,
    );
    let (sec, nsec) = mtime_of(&src);
    set_mtime(&extracted, sec, nsec);
    assert_trees_equal(&src, &extracted);

    // Without a prefix to strip, the ancestors come along, relative to /.
    let out = t
        .cairn([
            "restore",
            id(&snap),
            "--tar",
            "-",
            "--include",
            s(&src.join("modes/tool")),
        ])
        .assert()
        .success();
    let extracted = t.fresh_dir("ancestors");
    untar(&out.get_output().stdout, &extracted);
    let tool = restored(&extracted, &src.join("modes/tool"));
    assert_eq!(fs::read(&tool).unwrap(), b"tool");
    assert_eq!(
        fs::metadata(&tool).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(mtime_of(&tool), (1_650_000_000, 999_999_999));
    assert_eq!(names(tool.parent().unwrap()), [raw(b"tool")]);
}

#[test]
fn a_tar_stream_keeps_a_pre_1970_mtime_with_nanoseconds() {
    if !have_tar() {
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("old");
    write_file(&src.join("1906"), b"old");
    // 1906-08-16T20:26:40.250000001Z
    set_mtime(&src.join("1906"), -2_000_000_000, 250_000_001);
    let snap = t.snapshot(&[&src], &[]);
    let out = t
        .cairn([
            "restore",
            id(&snap),
            "--tar",
            "-",
            "--include",
            s(&src),
            "--strip-prefix",
            s(&src),
        ])
        .assert()
        .success();
    let extracted = t.fresh_dir("extracted");
    untar(&out.get_output().stdout, &extracted);
    assert_eq!(
        mtime_of(&extracted.join("1906")),
        (-2_000_000_000, 250_000_001)
    );
}
