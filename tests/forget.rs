//! The acceptance scenario of retention: more than a year of nightly
//! snapshots, then the nightly `forget --keep-daily 7 --keep-weekly 4
//! --keep-monthly 12 --prune` keeps exactly what a naive reading of the
//! rules keeps, frees the rest and leaves every kept snapshot exact. And a
//! snapshot started while prune holds the store either fails at once or
//! waits for it, never referencing data prune deleted.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

// ---------------------------------------------------------------------------
// Civil dates, computed here independently of cairn (H. Hinnant's algorithms).

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// ISO 8601 (year, week) of a day number: the week of its Thursday.
fn iso_week(day: i64) -> (i64, i64) {
    let monday_based = (day + 3).rem_euclid(7);
    let thursday = day - monday_based + 3;
    let (year, _, _) = civil_from_days(thursday);
    (year, (thursday - days_from_civil(year, 1, 1)) / 7 + 1)
}

// ---------------------------------------------------------------------------
// The simulated nights.

/// First night: 2025-01-01.
const FIRST: (i64, i64, i64) = (2025, 1, 1);
/// Nights simulated.
const NIGHTS: i64 = 400;
/// Size of the file that changes every `DB_EVERY` nights.
const DB_LEN: u64 = 128 * 1024;
const DB_EVERY: i64 = 9;

/// One run of `cairn snapshot`, on the wall clock of a Central European
/// host (its offset recorded with the snapshot).
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Local calendar day, as days since 1970-01-01.
    day: i64,
    hour: i64,
    minute: i64,
    /// UTC offset in hours: +1 in winter, +2 in summer.
    offset: i64,
}

impl Run {
    fn date(&self) -> (i64, i64, i64) {
        civil_from_days(self.day)
    }

    /// `--time`: local wall time with its offset.
    fn rfc3339(&self) -> String {
        let (y, m, d) = self.date();
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:00+{:02}:00",
            self.hour, self.minute, self.offset
        )
    }

    fn unix(&self) -> i64 {
        self.day * 86_400 + self.hour * 3600 + self.minute * 60 - self.offset * 3600
    }

    /// Which version of `data/db.bin` the source holds.
    fn db_version(&self) -> i64 {
        (self.day - days_from_civil(FIRST.0, FIRST.1, FIRST.2)) / DB_EVERY
    }
}

/// Every run, oldest first: nightly at 00:45 local time (so 22:45 or 23:45
/// UTC the evening before: calendar buckets differ between local time and
/// UTC), with a month and a few single nights missed, and a second,
/// afternoon snapshot on some days.
fn runs() -> Vec<Run> {
    let first = days_from_civil(FIRST.0, FIRST.1, FIRST.2);
    let mut out = Vec::new();
    for n in 0..NIGHTS {
        let day = first + n;
        let (y, m, _) = civil_from_days(day);
        let offset = if (4..=10).contains(&m) { 2 } else { 1 };
        let run = |hour, minute| Run {
            day,
            hour,
            minute,
            offset,
        };
        let missed_month = (y, m) == (2025, 7);
        if !missed_month && ![31, 150, 151, 152, 300, NIGHTS - 2].contains(&n) {
            out.push(run(0, 45));
        }
        if [5, 100, 230, NIGHTS - 4].contains(&n) {
            out.push(run(14, 0));
        }
    }
    out
}

/// Writes the source as it is at `run` into `dir` (created if missing),
/// rewriting only what changed since `previous` (everything if `None`).
/// Every mtime is set, so the tree is a pure function of the run.
fn write_source(dir: &Path, run: &Run, nr: usize, previous: Option<&Run>) {
    let dirs = [dir.to_owned(), dir.join("data"), dir.join("static")];
    for d in &dirs {
        fs::create_dir_all(d).unwrap();
    }
    let fixed = 1_700_000_000;
    if previous.is_none() {
        write_random_file(&dir.join("static/photo.jpg"), 2, 300 * 1024);
        fs::write(dir.join("static/readme.txt"), "kept forever\n").unwrap();
        set_mtime(&dir.join("static/photo.jpg"), fixed, 1);
        set_mtime(&dir.join("static/readme.txt"), fixed, 2);
    }
    let version = run.db_version();
    if previous.is_none_or(|p| p.db_version() != version) {
        let db = dir.join("data/db.bin");
        write_random_file(&db, 2 * (1000 + version as u64), DB_LEN);
        set_mtime(&db, fixed + version * 86_400 * DB_EVERY, 0);
    }
    let mut log = String::new();
    for line in 0..40 {
        log.push_str(&format!("run {nr} line {line}: {}\n", run.rfc3339()));
    }
    fs::write(dir.join("log.txt"), log).unwrap();
    set_mtime(&dir.join("log.txt"), run.unix(), 500);
    for (i, d) in dirs.iter().enumerate() {
        set_mtime(d, fixed, i as u32);
    }
}

/// What `--keep-daily 7 --keep-weekly 4 --keep-monthly 12` keeps, read
/// naively: for each rule, the newest run of each of the N most recent
/// buckets that hold a run, on the local calendar. Run index -> reasons.
fn expected_kept(runs: &[Run]) -> BTreeMap<usize, BTreeSet<String>> {
    type Key = (i64, i64, i64);
    type Rule = (&'static str, usize, fn(&Run) -> Key);
    let rules: [Rule; 3] = [
        ("daily", 7, |r| r.date()),
        ("weekly", 4, |r| {
            let (y, w) = iso_week(r.day);
            (y, w, 0)
        }),
        ("monthly", 12, |r| {
            let (y, m, _) = r.date();
            (y, m, 0)
        }),
    ];
    let mut kept: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (name, count, key) in rules {
        let mut newest: BTreeMap<Key, usize> = BTreeMap::new();
        for (i, run) in runs.iter().enumerate() {
            let slot = newest.entry(key(run)).or_insert(i);
            if runs[*slot].unix() < run.unix() {
                *slot = i;
            }
        }
        for (rank, (_, &i)) in newest.iter().rev().take(count).enumerate() {
            kept.entry(i)
                .or_default()
                .insert(format!("{name} #{}", rank + 1));
        }
    }
    kept
}

#[test]
fn the_naive_retention_reading_agrees_with_known_calendar_facts() {
    assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    // 2026-01-01 is a Thursday in week 1; 2027-01-01 a Friday in 2026-W53.
    assert_eq!(iso_week(days_from_civil(2026, 1, 1)), (2026, 1));
    assert_eq!(iso_week(days_from_civil(2027, 1, 1)), (2026, 53));
    assert_eq!(iso_week(days_from_civil(2025, 12, 29)), (2026, 1));
    assert_eq!(iso_week(days_from_civil(2025, 12, 28)), (2025, 52));
    let runs = runs();
    let kept = expected_kept(&runs);
    // The newest run is kept by every rule; the missed July makes the
    // twelfth month February 2025.
    let newest = runs.len() - 1;
    assert_eq!(kept[&newest].len(), 3, "{:?}", kept[&newest]);
    let oldest = *kept.keys().next().unwrap();
    assert_eq!(runs[oldest].date(), (2025, 2, 28));
}

#[test]
fn a_year_of_nightly_snapshots_is_thinned_to_exactly_the_policy_and_kept_ones_restore_exactly() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let runs = runs();
    let mut ids = Vec::new();
    let started = Instant::now();
    for (nr, run) in runs.iter().enumerate() {
        write_source(&src, run, nr, nr.checked_sub(1).map(|p| &runs[p]));
        let snap = t.snapshot(&[&src], &["--time", &run.rfc3339()]);
        ids.push(id(&snap).to_owned());
    }
    eprintln!("{} snapshots took {:?}", runs.len(), started.elapsed());
    let index: BTreeMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let expected = expected_kept(&runs);
    let before = t.packs_size();

    let out = t
        .cairn([
            "--json",
            "forget",
            "--keep-daily",
            "7",
            "--keep-weekly",
            "4",
            "--keep-monthly",
            "12",
            "--prune",
        ])
        .assert()
        .success();
    let out = parse_json(&out.get_output().stdout);
    let after = t.packs_size();

    // The decisions, snapshot by snapshot, with their reasons.
    let groups = out["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{}", out["groups"]);
    let decisions = groups[0]["snapshots"].as_array().unwrap();
    assert_eq!(decisions.len(), runs.len());
    let mut wrong = Vec::new();
    for d in decisions {
        let nr = index[d["id"].as_str().unwrap()];
        let reasons: BTreeSet<String> = d["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect();
        let want = expected.get(&nr).cloned().unwrap_or_default();
        if d["keep"].as_bool().unwrap() != expected.contains_key(&nr) || reasons != want {
            wrong.push(format!(
                "{} ({}): keep {} {reasons:?}, want {want:?}",
                runs[nr].rfc3339(),
                &ids[nr][..8],
                d["keep"]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong decisions:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let listed: Vec<String> = t.snapshots(&[]).iter().map(|s| id(s).to_owned()).collect();
    let kept_ids: Vec<String> = expected.keys().map(|&i| ids[i].clone()).collect();
    assert_eq!(listed, kept_ids);
    assert_eq!(
        out["forgotten"].as_array().unwrap().len(),
        runs.len() - expected.len()
    );

    // The space: every db.bin version no kept snapshot holds is gone, and
    // what is left is the kept snapshots' data with little to spare.
    let report = &out["prune"];
    assert_eq!(
        report["bytes_freed"].as_u64().unwrap(),
        before - after,
        "{report}"
    );
    let all_versions: BTreeSet<i64> = runs.iter().map(Run::db_version).collect();
    let kept_versions: BTreeSet<i64> = expected.keys().map(|&i| runs[i].db_version()).collect();
    let needed = kept_versions.len() as u64 * DB_LEN + 300 * 1024;
    let dead = (all_versions.len() - kept_versions.len()) as u64 * DB_LEN;
    assert!(
        before - after >= dead,
        "freed {} bytes; the db.bin versions only forgotten snapshots held are {dead}",
        before - after
    );
    assert!(
        (needed..needed + needed / 4).contains(&after),
        "{after} bytes left for {needed} bytes of kept data ({before} before)"
    );
    eprintln!(
        "kept {} of {} snapshots; packs {before} -> {after} bytes, {needed} needed",
        expected.len(),
        runs.len()
    );
    let plan = parse_json(
        &t.cairn(["--json", "prune", "--dry-run"])
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(plan["delete"], serde_json::json!([]), "{plan}");
    assert_eq!(plan["repack"], serde_json::json!([]), "{plan}");

    // Every kept snapshot restores byte for byte.
    for &nr in expected.keys() {
        let want = t.fresh_dir("expected");
        write_source(&want, &runs[nr], nr, None);
        let target = t.restore(&ids[nr]);
        assert_trees_equal(&want, &restored(&target, &src));
        fs::remove_dir_all(target).unwrap();
        fs::remove_dir_all(want).unwrap();
    }
}

/// Waits until `path` exists.
fn wait_for(path: &Path, limit: Duration) {
    let started = Instant::now();
    while !path.exists() {
        assert!(started.elapsed() < limit, "{path:?} did not appear");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_snapshot_during_prune_fails_at_once_or_with_lock_wait_commits_after_it_and_restores_exactly() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 11);
    let old = src.join("old.bin");
    write_random_file(&old, 12, 1 << 20);
    let first = t.snapshot(&[&src], &["--time", "2026-03-01T00:00:00Z"]);
    remove_keeping_dir_mtime(&old);
    t.snapshot(&[&src], &["--time", "2026-03-02T00:00:00Z"]);
    t.cairn(["forget", id(&first)]).assert().success();

    // Prune stalls right after planning, holding the store exclusively;
    // its plan drops old.bin's blob.
    let mut prune = t
        .command(["--json", "prune"])
        .env("CAIRN_STALL_AT", "prune-planned:5")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&t.store.join("prune-journal.json"), Duration::from_secs(30));

    // old.bin comes back: the data prune is about to delete.
    write_random_file(&old, 12, 1 << 20);
    let mut snapshot = t.cairn(["snapshot"]);
    snapshot.arg(&src);
    let err = fails_at_once(snapshot);
    assert!(err.contains("locked"), "{err}");
    // A restore cannot read the store while prune rewrites it, either.
    let out = t
        .cairn(["restore", "latest", "--target"])
        .arg(t.fresh_dir("during-prune"))
        .assert()
        .code(1);
    assert!(stderr_of(out.get_output()).contains("locked"));
    assert!(prune.try_wait().unwrap().is_none(), "prune ended too early");

    let started = Instant::now();
    let out = t
        .cairn(["--json", "--lock-wait", "60s", "snapshot"])
        .arg(&src)
        .assert()
        .success();
    let waited = started.elapsed();
    let snap = parse_json(&out.get_output().stdout);
    let status = prune.wait().unwrap();
    let mut prune_out = String::new();
    prune
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut prune_out)
        .unwrap();
    let mut prune_err = String::new();
    prune
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut prune_err)
        .unwrap();
    assert!(status.success(), "{status:?}: {prune_err}");
    assert!(prune_err.contains("stall point"), "{prune_err}");
    let report = parse_json(prune_out.as_bytes());
    assert!(report["packs_deleted"].as_u64().unwrap() >= 1, "{report}");
    assert!(
        waited >= Duration::from_secs(2),
        "the snapshot did not wait for prune: {waited:?}"
    );
    // The blob was gone from the catalog when the snapshot ran: stored anew.
    assert!(summary(&snap, "data_blobs_new") >= 1, "{snap}");

    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
    t.cairn(["prune"]).assert().success();
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
}

// A dry run took a local store exclusively, like the real forget: the
// nightly snapshot beside it failed as locked. It only reads now.
#[test]
fn a_dry_run_forget_or_prune_leaves_the_store_open_to_snapshots() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    t.snapshot(&[&src], &[]);
    t.snapshot(&[&src], &[]);
    let dry_runs: [&[&str]; 2] = [
        &["forget", "--dry-run", "--keep-last", "1", "--all-hosts"],
        &[
            "forget",
            "--dry-run",
            "--keep-last",
            "1",
            "--all-hosts",
            "--prune",
        ],
    ];
    for args in dry_runs {
        let mut planning = common::stall::spawn_stalled(t.command(args), "forget-decided", 5);
        t.cairn(["snapshot", src.to_str().unwrap()])
            .assert()
            .success();
        planning.kill().unwrap();
        planning.wait().unwrap();
    }
    assert_eq!(
        t.snapshots(&[]).len(),
        4,
        "nothing forgotten, both snapshots beside taken"
    );
}

// `--keep-daily 0` beside a saved policy applied the saved one (an explicit
// zero counted as no option at all): snapshots went by a policy nobody gave.
#[test]
fn an_explicit_keep_of_zero_is_a_policy_that_keeps_nothing_not_the_saved_one() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    t.snapshot(&[&src], &["--time", "2026-01-01"]);
    t.snapshot(&[&src], &["--time", "2026-01-02"]);
    t.cairn(["policy", "set", "--keep-last", "1"])
        .assert()
        .success();
    let out = t
        .cairn(["forget", "--all-hosts", "--keep-daily", "0"])
        .assert()
        .code(2);
    let err = stderr_of(out.get_output());
    assert!(
        err.contains("keeps nothing") || err.contains("empty"),
        "{err}"
    );
    assert_eq!(t.snapshots(&[]).len(), 2, "nothing forgotten");
}
