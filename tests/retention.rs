//! Retention: `cairn::retention::apply` against restic's `forget` semantics.
//!
//! Three layers: hand-checked tables of edge cases (ISO weeks, year ends,
//! DST, gaps, ties, grouping), properties checked with proptest (order
//! independence, monotonicity, the newest and protected snapshots always
//! survive, a naive oracle for `--keep-daily`), and equivalence with the
//! kept sets real restic 0.14 produced for ~110 snapshots, committed under
//! `tests/fixtures/retention/` by `make-restic-fixture.sh` (restic is not
//! needed to run these tests).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use cairn::id::SnapshotId;
use cairn::rawname::RawName;
use cairn::retention::{
    Candidate, Context, Count, GroupBy, GroupDecision, Period, Policy, PolicyError, Reason, Within,
    apply,
};
use cairn::when::SnapshotTime;
use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{Offset, TimeZone};
use proptest::prelude::*;
use serde::Deserialize;

/// The context of most cases: a clock far after every snapshot, in UTC.
fn ctx() -> Context {
    Context {
        now: "2100-01-01T00:00:00Z".parse().unwrap(),
        zone: TimeZone::UTC,
    }
}

/// Europe/Berlin as a POSIX rule (EU rule since 1996), so that no tz
/// database is needed.
fn berlin() -> TimeZone {
    TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
}

// ---------------------------------------------------------------------------
// Helpers

/// A snapshot id that sorts like `n` (ties in time are broken by id).
fn id(n: usize) -> SnapshotId {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&(n as u64).to_be_bytes());
    SnapshotId::from_bytes(bytes)
}

fn raw(path: &str) -> RawName {
    RawName::from_bytes(path.as_bytes().to_vec())
}

/// A candidate from `"TIME [host=H] [paths=/a,/b] [tags=x,y] [protected]"`,
/// with id `n`; host `h` and paths `/data` unless given.
fn cand(n: usize, spec: &str) -> Candidate {
    let mut words = spec.split_whitespace();
    let time: SnapshotTime = words.next().unwrap().parse().unwrap();
    let mut c = Candidate {
        id: id(n),
        time,
        host: "h".into(),
        paths: vec![raw("/data")],
        tags: Vec::new(),
        protected: false,
    };
    for word in words {
        match word.split_once('=') {
            Some(("host", host)) => c.host = host.into(),
            Some(("paths", paths)) => c.paths = paths.split(',').map(raw).collect(),
            Some(("tags", tags)) => c.tags = tags.split(',').map(String::from).collect(),
            None if word == "protected" => c.protected = true,
            _ => panic!("bad word {word:?} in candidate {spec:?}"),
        }
    }
    c.paths.sort();
    c.tags.sort();
    c
}

/// Candidates with ids 1, 2, ... in the order given.
fn cands(specs: &[&str]) -> Vec<Candidate> {
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| cand(i + 1, spec))
        .collect()
}

/// A policy from restic-style flags: `--keep-daily 7 --keep-within 30d`.
fn policy(flags: &str) -> Policy {
    policy_from_args(&flags.split_whitespace().collect::<Vec<_>>())
}

fn policy_from_args<S: AsRef<str>>(args: &[S]) -> Policy {
    let mut p = Policy::default();
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            panic!("a flag without a value in {:?}", pair[0].as_ref());
        };
        let (flag, value) = (flag.as_ref(), value.as_ref());
        let count = || Some(value.parse::<Count>().unwrap());
        let within = || Some(value.parse::<Within>().unwrap());
        match flag {
            "--keep-last" => p.last = count(),
            "--keep-hourly" => p.hourly = count(),
            "--keep-daily" => p.daily = count(),
            "--keep-weekly" => p.weekly = count(),
            "--keep-monthly" => p.monthly = count(),
            "--keep-yearly" => p.yearly = count(),
            "--keep-within" => p.within = within(),
            "--keep-within-hourly" => p.within_hourly = within(),
            "--keep-within-daily" => p.within_daily = within(),
            "--keep-within-weekly" => p.within_weekly = within(),
            "--keep-within-monthly" => p.within_monthly = within(),
            "--keep-within-yearly" => p.within_yearly = within(),
            "--keep-tag" => p.tags.push(value.to_owned()),
            _ => panic!("unknown flag {flag}"),
        }
    }
    p
}

fn group_by(text: &str) -> GroupBy {
    text.parse().unwrap()
}

fn reasons(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `"TIME reason; reason"` for each kept snapshot, groups in order, newest first.
fn kept(groups: &[GroupDecision]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|g| &g.snapshots)
        .filter(|d| d.keep)
        .map(|d| format!("{} {}", d.time, reasons(&d.reasons)))
        .collect()
}

/// Applies `flags` grouped by `by` to `specs`; the kept lines. Also checks
/// that reversing the input changes nothing.
fn run(flags: &str, by: &str, specs: &[&str]) -> Vec<String> {
    let snaps = cands(specs);
    let groups = apply(&snaps, &policy(flags), group_by(by), &ctx()).unwrap();
    let mut reversed = snaps;
    reversed.reverse();
    let again = apply(&reversed, &policy(flags), group_by(by), &ctx()).unwrap();
    assert_eq!(groups, again, "{flags}: the result depends on input order");
    kept(&groups)
}

#[track_caller]
fn check(flags: &str, specs: &[&str], want: &[&str]) {
    assert_eq!(run(flags, "host,paths", specs), want, "policy {flags}");
}

fn kept_ids(groups: &[GroupDecision]) -> BTreeSet<SnapshotId> {
    groups
        .iter()
        .flat_map(|g| &g.snapshots)
        .filter(|d| d.keep)
        .map(|d| d.id)
        .collect()
}

// ---------------------------------------------------------------------------
// Tables

#[test]
fn keep_weekly_uses_iso_weeks_across_a_year_boundary() {
    // 2026 has an ISO week 53: Mon 2026-12-28 .. Sun 2027-01-03, so New
    // Year's Day 2027 is in the same week as the last days of 2026.
    let w53 = [
        "2026-12-27T12:00:00+01:00", // Sun, 2026-W52
        "2026-12-28T09:00:00+01:00", // Mon, 2026-W53
        "2026-12-31T23:00:00+01:00", // Thu, 2026-W53
        "2027-01-01T10:00:00+01:00", // Fri, 2026-W53
        "2027-01-03T20:00:00+01:00", // Sun, 2026-W53
        "2027-01-04T08:00:00+01:00", // Mon, 2027-W01
    ];
    check(
        "--keep-weekly 3",
        &w53,
        &[
            "2027-01-04T08:00:00+01:00 weekly #1",
            "2027-01-03T20:00:00+01:00 weekly #2",
            "2026-12-27T12:00:00+01:00 weekly #3",
        ],
    );
    // 2027 has 52 weeks: 2028-01-01 and -02 belong to 2027-W52.
    let w52 = [
        "2027-12-26T12:00:00+01:00", // Sun, 2027-W51
        "2027-12-27T12:00:00+01:00", // Mon, 2027-W52
        "2027-12-31T12:00:00+01:00", // Fri, 2027-W52
        "2028-01-02T12:00:00+01:00", // Sun, 2027-W52
        "2028-01-03T12:00:00+01:00", // Mon, 2028-W01
    ];
    check(
        "--keep-weekly 3",
        &w52,
        &[
            "2028-01-03T12:00:00+01:00 weekly #1",
            "2028-01-02T12:00:00+01:00 weekly #2",
            "2027-12-26T12:00:00+01:00 weekly #3",
        ],
    );
    // The same snapshots by year: the calendar year, not the ISO week-year.
    check(
        "--keep-yearly 5",
        &w53,
        &[
            "2027-01-04T08:00:00+01:00 yearly #1",
            "2026-12-31T23:00:00+01:00 yearly #2",
        ],
    );
}

#[test]
fn keep_monthly_and_yearly_split_at_local_midnight_of_new_year() {
    check(
        "--keep-monthly 2 --keep-yearly 2",
        &[
            "2025-06-01T12:00:00+02:00",
            "2025-12-31T22:00:00+01:00",
            "2025-12-31T23:59:59+01:00",
            "2026-01-01T00:30:00+01:00", // 2025-12-31 in UTC, 2026 locally
            "2026-01-15T12:00:00+01:00",
        ],
        &[
            "2026-01-15T12:00:00+01:00 monthly #1; yearly #1",
            "2025-12-31T23:59:59+01:00 monthly #2; yearly #2",
        ],
    );
}

#[test]
fn keep_monthly_and_yearly_count_only_months_and_years_that_hold_a_snapshot() {
    check(
        "--keep-monthly 4 --keep-yearly 3",
        &[
            "2024-03-05T12:00:00+01:00",
            "2024-11-20T12:00:00+01:00",
            "2025-02-01T12:00:00+01:00",
            "2025-02-28T12:00:00+01:00",
            "2025-07-07T12:00:00+02:00",
            "2026-01-31T12:00:00+01:00",
            "2026-02-01T12:00:00+01:00",
        ],
        &[
            "2026-02-01T12:00:00+01:00 monthly #1; yearly #1",
            "2026-01-31T12:00:00+01:00 monthly #2",
            "2025-07-07T12:00:00+02:00 monthly #3; yearly #2",
            "2025-02-28T12:00:00+01:00 monthly #4",
            "2024-11-20T12:00:00+01:00 yearly #3",
        ],
    );
}

#[test]
fn two_snapshots_on_the_same_local_day_across_the_spring_dst_change_share_a_daily_bucket() {
    // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST.
    check(
        "--keep-daily 3",
        &[
            "2026-03-28T22:00:00+01:00",
            "2026-03-29T01:30:00+01:00",
            "2026-03-29T03:30:00+02:00",
            "2026-03-29T23:30:00+02:00",
            "2026-03-30T00:30:00+02:00",
        ],
        &[
            "2026-03-30T00:30:00+02:00 daily #1",
            "2026-03-29T23:30:00+02:00 daily #2",
            "2026-03-28T22:00:00+01:00 daily #3",
        ],
    );
}

#[test]
fn the_repeated_hour_of_the_autumn_dst_change_is_one_hourly_bucket() {
    // Europe/Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET, so the
    // wall-clock hour 02 happens twice; restic buckets by wall clock.
    let snaps = [
        "2026-10-25T01:50:00+02:00",
        "2026-10-25T02:10:00+02:00",
        "2026-10-25T02:40:00+02:00",
        "2026-10-25T02:20:00+01:00",
        "2026-10-25T02:50:00+01:00",
        "2026-10-25T03:05:00+01:00",
    ];
    check(
        "--keep-hourly 3",
        &snaps,
        &[
            "2026-10-25T03:05:00+01:00 hourly #1",
            "2026-10-25T02:50:00+01:00 hourly #2",
            "2026-10-25T01:50:00+02:00 hourly #3",
        ],
    );
    check(
        "--keep-daily 2",
        &snaps,
        &["2026-10-25T03:05:00+01:00 daily #1"],
    );
}

#[test]
fn buckets_follow_the_wall_clock_of_the_recorded_offset_not_utc() {
    // The newest is 04:30 UTC on the 11th but was taken on the evening of
    // the 10th in New York: in UTC two of these would share the 11th.
    check(
        "--keep-daily 2",
        &[
            "2026-03-09T12:00:00+00:00",
            "2026-03-11T01:00:00+00:00",
            "2026-03-10T23:30:00-05:00",
        ],
        &[
            "2026-03-10T23:30:00-05:00 daily #1",
            "2026-03-11T01:00:00+00:00 daily #2",
        ],
    );
}

#[test]
fn a_day_interrupted_by_another_offset_counts_as_a_new_bucket_like_restic() {
    // Buckets are compared with the previous snapshot's, newest first, so a
    // snapshot from another day in between (here recorded at +14:00) makes
    // the 1st of January count twice. Checked against restic 0.14 with
    // TZ=UTC and TZ=Pacific/Kiritimati: both keep all three.
    let snaps = [
        "2026-01-01T10:00:00+00:00",
        "2026-01-02T01:00:00+14:00", // 2026-01-01T11:00Z
        "2026-01-01T22:00:00+00:00",
    ];
    check(
        "--keep-daily 3",
        &snaps,
        &[
            "2026-01-01T22:00:00+00:00 daily #1",
            "2026-01-02T01:00:00+14:00 daily #2",
            "2026-01-01T10:00:00+00:00 daily #3",
        ],
    );
}

#[test]
fn several_snapshots_a_day_keep_the_newest_of_each_day() {
    check(
        "--keep-daily 2",
        &[
            "2026-05-01T08:00:00+02:00",
            "2026-05-01T20:00:00+02:00",
            "2026-05-01T12:00:00+02:00",
            "2026-05-02T07:00:00+02:00",
            "2026-05-02T06:00:00+02:00",
        ],
        &[
            "2026-05-02T07:00:00+02:00 daily #1",
            "2026-05-01T20:00:00+02:00 daily #2",
        ],
    );
}

#[test]
fn keep_hourly_keeps_the_newest_of_each_wall_clock_hour_of_each_day() {
    check(
        "--keep-hourly 3",
        &[
            "2026-06-01T10:00:00+02:00",
            "2026-06-01T10:59:59+02:00",
            "2026-06-02T10:00:00+02:00",
            "2026-06-02T10:30:00+02:00",
            "2026-06-02T11:00:00+02:00",
        ],
        &[
            "2026-06-02T11:00:00+02:00 hourly #1",
            "2026-06-02T10:30:00+02:00 hourly #2",
            "2026-06-01T10:59:59+02:00 hourly #3",
        ],
    );
}

const GAP: [&str; 8] = [
    "2026-01-10T12:00:00+01:00",
    "2026-01-11T12:00:00+01:00",
    "2026-01-12T12:00:00+01:00",
    "2026-01-13T12:00:00+01:00",
    "2026-01-14T12:00:00+01:00",
    // three months without a snapshot
    "2026-04-20T12:00:00+02:00",
    "2026-04-21T12:00:00+02:00",
    "2026-04-22T12:00:00+02:00",
];

#[test]
fn keep_daily_7_over_a_three_month_gap_still_keeps_7_snapshots() {
    check(
        "--keep-daily 7",
        &GAP,
        &[
            "2026-04-22T12:00:00+02:00 daily #1",
            "2026-04-21T12:00:00+02:00 daily #2",
            "2026-04-20T12:00:00+02:00 daily #3",
            "2026-01-14T12:00:00+01:00 daily #4",
            "2026-01-13T12:00:00+01:00 daily #5",
            "2026-01-12T12:00:00+01:00 daily #6",
            "2026-01-11T12:00:00+01:00 daily #7",
        ],
    );
}

#[test]
fn keep_within_is_measured_from_the_newest_snapshot_not_from_now() {
    // Measured from now (November 2026 or later), nothing here would be
    // within 7 days; from the newest snapshot, its last three days are.
    check(
        "--keep-within 7d",
        &GAP,
        &[
            "2026-04-22T12:00:00+02:00 within 7d",
            "2026-04-21T12:00:00+02:00 within 7d",
            "2026-04-20T12:00:00+02:00 within 7d",
        ],
    );
    // 3m10d before 2026-04-22T12:00+02:00 is 2026-01-12T12:00+02:00, an
    // hour before 2026-01-12T12:00+01:00, which is therefore inside.
    check(
        "--keep-within 3m10d",
        &GAP,
        &[
            "2026-04-22T12:00:00+02:00 within 3m10d",
            "2026-04-21T12:00:00+02:00 within 3m10d",
            "2026-04-20T12:00:00+02:00 within 3m10d",
            "2026-01-14T12:00:00+01:00 within 3m10d",
            "2026-01-13T12:00:00+01:00 within 3m10d",
            "2026-01-12T12:00:00+01:00 within 3m10d",
        ],
    );
}

#[test]
fn keep_within_keeps_only_what_is_strictly_newer_than_the_start() {
    check(
        "--keep-within 3d",
        &[
            "2026-07-01T12:00:00+02:00",
            "2026-07-01T12:00:01+02:00",
            "2026-07-04T12:00:00+02:00",
        ],
        &[
            "2026-07-04T12:00:00+02:00 within 3d",
            "2026-07-01T12:00:01+02:00 within 3d",
        ],
    );
}

#[test]
fn keep_within_months_overflow_the_way_go_adddate_does() {
    // 1m before March 31 is "February 31", i.e. March 3 (not February 28).
    check(
        "--keep-within 1m",
        &[
            "2026-02-28T12:00:00+00:00",
            "2026-03-03T11:59:59+00:00",
            "2026-03-03T12:00:01+00:00",
            "2026-03-31T12:00:00+00:00",
        ],
        &[
            "2026-03-31T12:00:00+00:00 within 1m",
            "2026-03-03T12:00:01+00:00 within 1m",
        ],
    );
}

#[test]
fn keep_last_combined_with_keep_daily_accumulates_reasons_on_one_snapshot() {
    check(
        "--keep-last 2 --keep-daily 3",
        &[
            "2026-06-01T10:00:00+02:00",
            "2026-06-01T18:00:00+02:00",
            "2026-06-02T09:00:00+02:00",
            "2026-06-02T21:00:00+02:00",
            "2026-06-03T08:00:00+02:00",
        ],
        &[
            "2026-06-03T08:00:00+02:00 last #1; daily #1",
            "2026-06-02T21:00:00+02:00 last #2; daily #2",
            "2026-06-01T18:00:00+02:00 daily #3",
        ],
    );
}

#[test]
fn keep_tag_with_a_comma_list_requires_all_of_its_tags() {
    let snaps = [
        "2026-01-01T00:00:00+00:00 tags=a",
        "2026-01-02T00:00:00+00:00 tags=a,b",
        "2026-01-03T00:00:00+00:00 tags=b,c",
        "2026-01-04T00:00:00+00:00 tags=c,b,a",
        "2026-01-05T00:00:00+00:00",
    ];
    check(
        "--keep-tag a,b --keep-tag c",
        &snaps,
        &[
            "2026-01-05T00:00:00+00:00 newest",
            "2026-01-04T00:00:00+00:00 tag a,b; tag c",
            "2026-01-03T00:00:00+00:00 tag c",
            "2026-01-02T00:00:00+00:00 tag a,b",
        ],
    );
    // The order within the list does not matter; the reason names it as given.
    check(
        "--keep-tag b,a",
        &snaps,
        &[
            "2026-01-05T00:00:00+00:00 newest",
            "2026-01-04T00:00:00+00:00 tag b,a",
            "2026-01-02T00:00:00+00:00 tag b,a",
        ],
    );
}

#[test]
fn unlimited_counts_keep_one_per_bucket_without_end() {
    let snaps = [
        "2026-02-01T08:00:00+00:00",
        "2026-02-01T20:00:00+00:00",
        "2026-02-03T09:00:00+00:00",
        "2026-02-10T09:00:00+00:00",
        "2026-02-10T10:00:00+00:00",
    ];
    check(
        "--keep-daily unlimited",
        &snaps,
        &[
            "2026-02-10T10:00:00+00:00 daily #1",
            "2026-02-03T09:00:00+00:00 daily #2",
            "2026-02-01T20:00:00+00:00 daily #3",
        ],
    );
    check(
        "--keep-last unlimited --keep-weekly 1",
        &snaps,
        &[
            "2026-02-10T10:00:00+00:00 last #1; weekly #1",
            "2026-02-10T09:00:00+00:00 last #2",
            "2026-02-03T09:00:00+00:00 last #3",
            "2026-02-01T20:00:00+00:00 last #4",
            "2026-02-01T08:00:00+00:00 last #5",
        ],
    );
}

#[test]
fn keep_within_daily_keeps_the_newest_of_each_day_within_the_span() {
    check(
        "--keep-within 1d --keep-within-daily 3d",
        &[
            "2026-07-01T10:00:00+02:00",
            "2026-07-01T20:00:00+02:00",
            "2026-07-02T10:00:00+02:00",
            "2026-07-03T09:00:00+02:00",
            "2026-07-03T11:00:00+02:00",
            "2026-07-04T12:00:00+02:00",
        ],
        &[
            "2026-07-04T12:00:00+02:00 within 1d; daily within 3d",
            "2026-07-03T11:00:00+02:00 daily within 3d",
            "2026-07-02T10:00:00+02:00 daily within 3d",
            "2026-07-01T20:00:00+02:00 daily within 3d",
        ],
    );
    // The 30d from the brief: one per day, nothing older than 30 days back.
    check(
        "--keep-within-daily 30d",
        &[
            "2026-05-31T23:00:00+02:00",
            "2026-06-01T11:00:00+02:00",
            "2026-06-01T13:00:00+02:00",
            "2026-07-01T12:00:00+02:00",
        ],
        &[
            "2026-07-01T12:00:00+02:00 daily within 30d",
            "2026-06-01T13:00:00+02:00 daily within 30d",
        ],
    );
}

const GROUPED: [&str; 5] = [
    "2026-02-01T10:00:00+00:00 host=a paths=/x",
    "2026-02-02T10:00:00+00:00 host=a paths=/y",
    "2026-02-03T10:00:00+00:00 host=b paths=/x tags=t",
    "2026-02-04T10:00:00+00:00 host=a paths=/x tags=t",
    "2026-02-05T10:00:00+00:00 host=b paths=/x",
];

/// `"host paths tags: kept times"` per group (`*` where not grouped by).
fn kept_by_group(groups: &[GroupDecision]) -> Vec<String> {
    groups
        .iter()
        .map(|g| {
            let host = g.group.host.clone().unwrap_or_else(|| "*".into());
            let paths = g.group.paths.as_ref().map_or_else(
                || "*".into(),
                |p| {
                    p.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                },
            );
            let tags = g.group.tags.as_ref().map_or_else(
                || "*".into(),
                |t| {
                    if t.is_empty() {
                        "-".into()
                    } else {
                        t.join(",")
                    }
                },
            );
            let times: Vec<String> = g
                .snapshots
                .iter()
                .filter(|d| d.keep)
                .map(|d| d.time.to_string())
                .collect();
            format!("{host} {paths} {tags}: {}", times.join(" "))
        })
        .collect()
}

#[test]
fn group_by_host_paths_tags_or_nothing_splits_the_groups_accordingly() {
    let snaps = cands(&GROUPED);
    let cases: [(&str, &[&str]); 6] = [
        (
            "host,paths",
            &[
                "a /x *: 2026-02-04T10:00:00+00:00",
                "a /y *: 2026-02-02T10:00:00+00:00",
                "b /x *: 2026-02-05T10:00:00+00:00",
            ],
        ),
        (
            "host",
            &[
                "a * *: 2026-02-04T10:00:00+00:00",
                "b * *: 2026-02-05T10:00:00+00:00",
            ],
        ),
        (
            "paths",
            &[
                "* /x *: 2026-02-05T10:00:00+00:00",
                "* /y *: 2026-02-02T10:00:00+00:00",
            ],
        ),
        (
            "tags",
            &[
                "* * -: 2026-02-05T10:00:00+00:00",
                "* * t: 2026-02-04T10:00:00+00:00",
            ],
        ),
        ("", &["* * *: 2026-02-05T10:00:00+00:00"]),
        (
            "host,paths,tags",
            &[
                "a /x -: 2026-02-01T10:00:00+00:00",
                "a /x t: 2026-02-04T10:00:00+00:00",
                "a /y -: 2026-02-02T10:00:00+00:00",
                "b /x -: 2026-02-05T10:00:00+00:00",
                "b /x t: 2026-02-03T10:00:00+00:00",
            ],
        ),
    ];
    for (by, want) in cases {
        let groups = apply(&snaps, &policy("--keep-last 1"), group_by(by), &ctx()).unwrap();
        assert_eq!(kept_by_group(&groups), want, "group by {by:?}");
    }
    // The default is host and paths, as restic.
    assert_eq!(GroupBy::default(), group_by("host,paths"));
}

#[test]
fn keep_within_counts_back_from_each_groups_own_newest_snapshot() {
    let snaps = [
        "2026-05-01T12:00:00+00:00 host=a",
        "2026-05-08T12:00:00+00:00 host=a",
        "2026-05-10T12:00:00+00:00 host=a",
        "2026-01-01T12:00:00+00:00 host=b",
        "2026-01-08T12:00:00+00:00 host=b",
        "2026-01-10T12:00:00+00:00 host=b",
    ];
    assert_eq!(
        run("--keep-within 5d", "host", &snaps),
        [
            "2026-05-10T12:00:00+00:00 within 5d",
            "2026-05-08T12:00:00+00:00 within 5d",
            "2026-01-10T12:00:00+00:00 within 5d",
            "2026-01-08T12:00:00+00:00 within 5d",
        ]
    );
    assert_eq!(
        run("--keep-within 5d", "", &snaps),
        [
            "2026-05-10T12:00:00+00:00 within 5d",
            "2026-05-08T12:00:00+00:00 within 5d",
        ]
    );
}

#[test]
fn equal_timestamps_are_ordered_by_id_whatever_the_input_order() {
    let snaps = cands(&[
        "2026-05-01T12:00:00+02:00",
        "2026-05-01T12:00:00+02:00",
        "2026-04-30T12:00:00+02:00",
    ]);
    let p = policy("--keep-last 1");
    let orders: [[usize; 3]; 3] = [[0, 1, 2], [1, 0, 2], [2, 1, 0]];
    for order in orders {
        let input: Vec<Candidate> = order.iter().map(|&i| snaps[i].clone()).collect();
        let groups = apply(&input, &p, GroupBy::default(), &ctx()).unwrap();
        let ids: Vec<SnapshotId> = groups[0].snapshots.iter().map(|d| d.id).collect();
        assert_eq!(ids, [id(2), id(1), id(3)], "input order {order:?}");
        assert_eq!(kept_ids(&groups), BTreeSet::from([id(2)]));
    }
    // The same instant recorded with two offsets: two different local days.
    let snaps = cands(&["2026-01-01T00:30:00+01:00", "2025-12-31T23:30:00+00:00"]);
    for input in [snaps.clone(), snaps.iter().rev().cloned().collect()] {
        let groups = apply(
            &input,
            &policy("--keep-daily 1"),
            GroupBy::default(),
            &ctx(),
        )
        .unwrap();
        assert_eq!(kept(&groups), ["2025-12-31T23:30:00+00:00 daily #1"]);
        let groups = apply(
            &input,
            &policy("--keep-daily 2"),
            GroupBy::default(),
            &ctx(),
        )
        .unwrap();
        assert_eq!(
            kept(&groups),
            [
                "2025-12-31T23:30:00+00:00 daily #1",
                "2026-01-01T00:30:00+01:00 daily #2"
            ]
        );
    }
}

#[test]
fn the_newest_of_each_group_is_kept_with_reason_newest_only_when_no_rule_keeps_it() {
    let snaps = [
        "2026-01-01T00:00:00+00:00 host=a tags=keep",
        "2026-01-02T00:00:00+00:00 host=a",
        "2026-01-03T00:00:00+00:00 host=a",
        "2026-01-01T00:00:00+00:00 host=b",
        "2026-01-02T00:00:00+00:00 host=b tags=keep",
    ];
    assert_eq!(
        run("--keep-tag keep", "host", &snaps),
        [
            "2026-01-03T00:00:00+00:00 newest",
            "2026-01-01T00:00:00+00:00 tag keep",
            "2026-01-02T00:00:00+00:00 tag keep",
        ]
    );
    assert_eq!(
        run("--keep-daily 1", "host", &snaps),
        [
            "2026-01-03T00:00:00+00:00 daily #1",
            "2026-01-02T00:00:00+00:00 daily #1",
        ]
    );
}

#[test]
fn protected_snapshots_are_always_kept_and_still_count_in_buckets() {
    let snaps = [
        "2026-01-01T00:00:00+00:00 protected",
        "2026-01-02T00:00:00+00:00",
        "2026-01-03T00:00:00+00:00 protected",
        "2026-01-04T00:00:00+00:00",
    ];
    check(
        "--keep-daily 1",
        &snaps,
        &[
            "2026-01-04T00:00:00+00:00 daily #1",
            "2026-01-03T00:00:00+00:00 protected",
            "2026-01-01T00:00:00+00:00 protected",
        ],
    );
    check(
        "--keep-last 2",
        &snaps,
        &[
            "2026-01-04T00:00:00+00:00 last #1",
            "2026-01-03T00:00:00+00:00 last #2; protected",
            "2026-01-01T00:00:00+00:00 protected",
        ],
    );
    // A protected newest that no rule keeps carries both additions.
    check(
        "--keep-tag none",
        &[
            "2026-01-01T00:00:00+00:00",
            "2026-01-02T00:00:00+00:00 protected",
        ],
        &["2026-01-02T00:00:00+00:00 newest; protected"],
    );
}

#[test]
fn an_empty_policy_is_refused_even_without_snapshots() {
    let snaps = cands(&["2026-01-01T00:00:00+00:00"]);
    for p in [Policy::default(), policy("--keep-daily 0 --keep-last 0")] {
        assert_eq!(
            apply(&snaps, &p, GroupBy::default(), &ctx()),
            Err(PolicyError::Empty),
            "{p:?}"
        );
        assert_eq!(
            apply(&[], &p, GroupBy::default(), &ctx()),
            Err(PolicyError::Empty)
        );
    }
    assert!(PolicyError::Empty.to_string().contains("--keep-"));
    // A zero next to a real rule is simply ignored.
    check(
        "--keep-daily 0 --keep-last 1",
        &["2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"],
        &["2026-01-02T00:00:00+00:00 last #1"],
    );
    assert_eq!(
        apply(&[], &policy("--keep-last 1"), GroupBy::default(), &ctx()),
        Ok(Vec::new())
    );
}

#[test]
fn keep_tag_with_an_empty_list_keeps_the_untagged_snapshots_as_restic_does() {
    // restic 0.14, TZ=UTC, `forget --keep-tag '' --keep-last 1` over these
    // three keeps 2026-01-03 ("has tags []", "last snapshot") and 2026-01-01
    // ("has tags []"). Alone, `--keep-tag ''` keeps both too.
    let snaps = cands(&[
        "2026-01-01T10:00:00+00:00",
        "2026-01-02T10:00:00+00:00 tags=a",
        "2026-01-03T10:00:00+00:00",
    ]);
    for tag in ["", ","] {
        let p = Policy {
            last: Some(Count::Limited(1)),
            tags: vec![tag.into()],
            ..Policy::default()
        };
        let groups = apply(&snaps, &p, GroupBy::default(), &ctx()).unwrap();
        let times: Vec<String> = groups[0]
            .snapshots
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.time.to_string())
            .collect();
        assert_eq!(
            times,
            ["2026-01-03T10:00:00+00:00", "2026-01-01T10:00:00+00:00"],
            "--keep-tag {tag:?}"
        );
    }
}

#[test]
fn keep_within_ignores_snapshots_from_the_future_like_restic() {
    // restic 0.14, TZ=UTC: with a snapshot dated in the future, `forget
    // --keep-within 1d` keeps it *and* 2026-01-03, counting back from the
    // newest snapshot before now.
    let snaps = cands(&[
        "2026-01-01T10:00:00+00:00",
        "2026-01-03T10:00:00+00:00",
        "2999-06-01T10:00:00+00:00",
    ]);
    let now = Context {
        now: "2026-11-23T00:00:00Z".parse().unwrap(),
        zone: TimeZone::UTC,
    };
    let groups = apply(
        &snaps,
        &policy("--keep-within 1d"),
        GroupBy::default(),
        &now,
    )
    .unwrap();
    let kept: Vec<String> = groups[0]
        .snapshots
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.time.to_string())
        .collect();
    assert_eq!(
        kept,
        ["2999-06-01T10:00:00+00:00", "2026-01-03T10:00:00+00:00"]
    );
}

// ---------------------------------------------------------------------------
// Properties

/// 2025-01-01T00:00:00Z.
const BASE: i64 = 1_735_689_600;

/// Offsets a travelling laptop records: New York, UTC, Berlin winter and
/// summer, India.
const OFFSETS: [i32; 5] = [-5 * 3600, 0, 3600, 2 * 3600, 5 * 3600 + 1800];

fn candidate_at(n: usize, second: i64, offset: Offset) -> Candidate {
    Candidate {
        id: id(n),
        time: SnapshotTime {
            timestamp: Timestamp::from_second(BASE + second).unwrap(),
            offset,
        },
        host: "h".into(),
        paths: vec![raw("/data")],
        tags: Vec::new(),
        protected: false,
    }
}

/// Seconds after `BASE`: spread over 16 months, or bunched on a few hours
/// so that equal times and crowded buckets are common.
fn arb_second() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => 0i64..500 * 86_400,
        1 => (0i64..72).prop_map(|h| h * 3600),
        1 => 0i64..4 * 86_400,
    ]
}

fn arb_candidates() -> impl Strategy<Value = Vec<Candidate>> {
    let one = (
        arb_second(),
        0..OFFSETS.len(),
        0..2usize,
        0u8..4,
        prop::bool::weighted(0.1),
    );
    prop::collection::vec(one, 0..48).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(n, (second, offset, host, tags, protected))| {
                let offset = Offset::from_seconds(OFFSETS[offset]).unwrap();
                let mut c = candidate_at(n, second, offset);
                c.host = ["a", "b"][host].into();
                c.tags = [(1, "x"), (2, "y")]
                    .iter()
                    .filter(|(bit, _)| tags & bit != 0)
                    .map(|(_, t)| (*t).to_owned())
                    .collect();
                c.protected = protected;
                c
            })
            .collect()
    })
}

fn arb_count() -> impl Strategy<Value = Option<Count>> {
    prop_oneof![
        4 => Just(None),
        4 => (0u32..6).prop_map(|n| Some(Count::Limited(n))),
        1 => Just(Some(Count::Unlimited)),
    ]
}

fn arb_within() -> impl Strategy<Value = Option<Within>> {
    prop_oneof![
        5 => Just(None),
        1 => prop::sample::select(vec!["12h", "3d", "2w", "1m", "1y", "1m15d6h"])
            .prop_map(|w| Some(w.parse().unwrap())),
    ]
}

fn count_mut(p: &mut Policy, period: Period) -> &mut Option<Count> {
    match period {
        Period::Last => &mut p.last,
        Period::Hourly => &mut p.hourly,
        Period::Daily => &mut p.daily,
        Period::Weekly => &mut p.weekly,
        Period::Monthly => &mut p.monthly,
        Period::Yearly => &mut p.yearly,
    }
}

/// Any non-empty policy.
fn arb_policy() -> impl Strategy<Value = Policy> {
    (
        prop::array::uniform6(arb_count()),
        prop::array::uniform6(arb_within()),
        prop::sample::subsequence(vec!["x", "y", "x,y"], 0..=2),
    )
        .prop_map(|(counts, withins, tags)| {
            let mut p = Policy::default();
            for (period, count) in Period::ALL.into_iter().zip(counts) {
                *count_mut(&mut p, period) = count;
            }
            p.within = withins[0];
            p.within_hourly = withins[1];
            p.within_daily = withins[2];
            p.within_weekly = withins[3];
            p.within_monthly = withins[4];
            p.within_yearly = withins[5];
            p.tags = tags.into_iter().map(String::from).collect();
            if p.is_empty() {
                p.last = Some(Count::Limited(1));
            }
            p
        })
}

fn arb_group_by() -> impl Strategy<Value = GroupBy> {
    prop::sample::select(vec!["host,paths", "host", "tags", "", "host,paths,tags"])
        .prop_map(group_by)
}

/// The offset Europe/Berlin uses at `t` (EU rule: summer time from the last
/// Sunday of March to the last Sunday of October, switching at 01:00 UTC).
fn berlin_offset(t: Timestamp) -> Offset {
    let year = Offset::UTC.to_datetime(t).year();
    let switch = |month| {
        let last_sunday = Date::new(year, month, 1)
            .unwrap()
            .nth_weekday_of_month(-1, Weekday::Sunday)
            .unwrap();
        Offset::UTC
            .to_timestamp(DateTime::from_parts(
                last_sunday,
                Time::new(1, 0, 0, 0).unwrap(),
            ))
            .unwrap()
    };
    if switch(3) <= t && t < switch(10) {
        jiff::tz::offset(2)
    } else {
        jiff::tz::offset(1)
    }
}

fn local_date(t: &SnapshotTime) -> Date {
    t.offset.to_datetime(t.timestamp).date()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_result_is_deterministic_and_independent_of_input_order(
        (snaps, shuffled) in arb_candidates()
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        p in arb_policy(),
        by in arb_group_by(),
    ) {
        let first = apply(&snaps, &p, by, &ctx()).unwrap();
        prop_assert_eq!(&first, &apply(&snaps, &p, by, &ctx()).unwrap());
        prop_assert_eq!(&first, &apply(&shuffled, &p, by, &ctx()).unwrap());
    }

    #[test]
    fn keep_sets_grow_monotonically_when_any_count_grows_by_one(
        snaps in arb_candidates(),
        p in arb_policy(),
        by in arb_group_by(),
    ) {
        let result = apply(&snaps, &p, by, &ctx()).unwrap();
        let groups = result.len();
        let before = kept_ids(&result);
        for period in Period::ALL {
            let mut more = p.clone();
            let count = count_mut(&mut more, period);
            *count = match *count {
                None => Some(Count::Limited(1)),
                Some(Count::Limited(n)) => Some(Count::Limited(n + 1)),
                Some(Count::Unlimited) => continue,
            };
            let after = kept_ids(&apply(&snaps, &more, by, &ctx()).unwrap());
            prop_assert!(
                before.is_subset(&after),
                "one more {} bucket forgot {:?}",
                period.name(),
                before.difference(&after).collect::<Vec<_>>()
            );
            // Each group gains at most the one bucket.
            prop_assert!(after.len() <= before.len() + groups);
        }
    }

    #[test]
    fn every_snapshot_appears_once_and_kept_means_having_a_reason(
        snaps in arb_candidates(),
        p in arb_policy(),
        by in arb_group_by(),
    ) {
        let groups = apply(&snaps, &p, by, &ctx()).unwrap();
        let by_id: BTreeMap<SnapshotId, &Candidate> = snaps.iter().map(|c| (c.id, c)).collect();
        let mut seen = BTreeSet::new();
        let mut keys = Vec::new();
        for g in &groups {
            prop_assert!(!g.snapshots.is_empty(), "an empty group {:?}", g.group);
            keys.push(g.group.clone());
            // Newest first, ties by id.
            for pair in g.snapshots.windows(2) {
                prop_assert!((pair[0].time, pair[0].id) > (pair[1].time, pair[1].id));
            }
            // The newest of every group is kept.
            prop_assert!(g.snapshots[0].keep);
            for d in &g.snapshots {
                prop_assert!(seen.insert(d.id), "{} twice", d.id);
                let c = by_id[&d.id];
                prop_assert_eq!(d.time.to_string(), c.time.to_string());
                prop_assert_eq!(g.group.host.as_ref(), by.host.then_some(&c.host));
                prop_assert_eq!(g.group.paths.as_ref(), by.paths.then_some(&c.paths));
                prop_assert_eq!(g.group.tags.as_ref(), by.tags.then_some(&c.tags));
                prop_assert_eq!(d.keep, !d.reasons.is_empty(), "{:?}", d);
                if c.protected {
                    prop_assert!(d.keep && d.reasons.contains(&Reason::Protected));
                } else {
                    prop_assert!(!d.reasons.contains(&Reason::Protected));
                }
                if d.reasons.contains(&Reason::Newest) {
                    prop_assert_eq!(d.id, g.snapshots[0].id);
                }
            }
        }
        prop_assert_eq!(seen.len(), snaps.len());
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(keys, sorted, "groups not sorted by key, or repeated");
    }

    #[test]
    fn protecting_snapshots_keeps_them_without_changing_what_else_is_kept(
        snaps in arb_candidates(),
        p in arb_policy(),
        by in arb_group_by(),
    ) {
        let mut unprotected = snaps.clone();
        for c in &mut unprotected {
            c.protected = false;
        }
        let mut want = kept_ids(&apply(&unprotected, &p, by, &ctx()).unwrap());
        want.extend(snaps.iter().filter(|c| c.protected).map(|c| c.id));
        prop_assert_eq!(kept_ids(&apply(&snaps, &p, by, &ctx()).unwrap()), want);
    }

    #[test]
    fn keep_daily_alone_matches_a_naive_newest_per_day_oracle(
        seconds in prop::collection::vec(arb_second(), 1..64),
        n in 1u32..12,
    ) {
        // Berlin offsets: local dates never go backwards as time goes on,
        // which is when restic's walk equals "newest of each of N days".
        let snaps: Vec<Candidate> = seconds
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let t = Timestamp::from_second(BASE + s).unwrap();
                candidate_at(i, s, berlin_offset(t))
            })
            .collect();
        let groups = apply(&snaps, &policy(&format!("--keep-daily {n}")), group_by(""), &ctx()).unwrap();
        let mut newest_per_day: BTreeMap<Date, &Candidate> = BTreeMap::new();
        for c in &snaps {
            let slot = newest_per_day.entry(local_date(&c.time)).or_insert(c);
            if (c.time, c.id) > (slot.time, slot.id) {
                *slot = c;
            }
        }
        let want: BTreeSet<SnapshotId> = newest_per_day
            .values()
            .rev()
            .take(n as usize)
            .map(|c| c.id)
            .collect();
        prop_assert_eq!(kept_ids(&groups), want);
    }
}

#[test]
fn berlin_offsets_in_the_oracle_follow_the_eu_rule() {
    let at = |s: &str| berlin_offset(s.parse().unwrap());
    assert_eq!(at("2026-03-29T00:59:59Z"), jiff::tz::offset(1));
    assert_eq!(at("2026-03-29T01:00:00Z"), jiff::tz::offset(2));
    assert_eq!(at("2026-10-25T00:59:59Z"), jiff::tz::offset(2));
    assert_eq!(at("2026-10-25T01:00:00Z"), jiff::tz::offset(1));
}

// ---------------------------------------------------------------------------
// Equivalence with restic 0.14

#[derive(Deserialize)]
struct Fixture {
    restic: String,
    snapshots: Vec<FixtureSnapshot>,
    runs: Vec<FixtureRun>,
}

#[derive(Deserialize)]
struct FixtureSnapshot {
    time: String,
    host: String,
    tags: Vec<String>,
}

#[derive(Deserialize)]
struct FixtureRun {
    /// `TZ` of the `restic forget` process.
    tz: String,
    args: Vec<String>,
    /// The times restic kept.
    keep: Vec<String>,
}

impl FixtureRun {
    fn name(&self) -> String {
        format!("TZ={} restic forget {}", self.tz, self.args.join(" "))
    }
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/retention/restic-forget.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The run's `TZ` (only the two the fixture uses).
fn zone_of(run: &FixtureRun) -> TimeZone {
    match run.tz.as_str() {
        "Europe/Berlin" => berlin(),
        "UTC" => TimeZone::UTC,
        other => panic!("fixture zone {other} is not mapped"),
    }
}

/// `None` if cairn keeps exactly what restic kept, else what differs.
fn compare_with_restic(fixture: &Fixture, run: &FixtureRun) -> Option<String> {
    let candidates: Vec<Candidate> = fixture
        .snapshots
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let mut tags = s.tags.clone();
            tags.sort();
            Candidate {
                id: id(n),
                time: s.time.parse().unwrap(),
                host: s.host.clone(),
                paths: vec![raw("/data")],
                tags,
                protected: false,
            }
        })
        .collect();
    let groups = apply(
        &candidates,
        &policy_from_args(&run.args),
        GroupBy::default(),
        &Context {
            zone: zone_of(run),
            ..ctx()
        },
    )
    .unwrap();
    let ours: BTreeSet<String> = groups
        .iter()
        .flat_map(|g| &g.snapshots)
        .filter(|d| d.keep)
        .map(|d| d.time.to_string())
        .collect();
    let theirs: BTreeSet<String> = run
        .keep
        .iter()
        .map(|t| t.parse::<SnapshotTime>().unwrap().to_string())
        .collect();
    (ours != theirs).then(|| {
        format!(
            "{}: restic only {:?}, cairn only {:?}",
            run.name(),
            theirs.difference(&ours).collect::<Vec<_>>(),
            ours.difference(&theirs).collect::<Vec<_>>()
        )
    })
}

#[test]
fn cairn_keeps_exactly_what_restic_0_14_keeps_for_every_recorded_policy() {
    let fixture = fixture();
    assert!(
        fixture.restic.starts_with("restic 0.14"),
        "{}",
        fixture.restic
    );
    assert!(fixture.snapshots.len() >= 100);
    let times: BTreeSet<&str> = fixture.snapshots.iter().map(|s| s.time.as_str()).collect();
    assert_eq!(times.len(), fixture.snapshots.len(), "times must be unique");
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for run in &fixture.runs {
        compared += 1;
        mismatches.extend(compare_with_restic(&fixture, run));
    }
    assert!(compared >= 10);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn keep_within_across_a_dst_change_counts_back_on_the_local_wall_clock_like_restic() {
    // The newest snapshot is 2021-11-01T12:00:00+01:00 (after the autumn
    // change). restic in Europe/Berlin computes 2 months back as 2021-09-01
    // 12:00 *summer time* = 10:00Z and keeps 2021-09-01T12:30:00+02:00
    // (10:30Z); in UTC it counts back on the fixed +01:00 and forgets it.
    let fixture = fixture();
    let runs: Vec<&FixtureRun> = fixture
        .runs
        .iter()
        .filter(|r| r.args.join(" ") == "--keep-within 2m")
        .collect();
    assert_eq!(runs.len(), 2, "the Berlin and the UTC run");
    for run in runs {
        assert_eq!(compare_with_restic(&fixture, run), None);
    }
}
