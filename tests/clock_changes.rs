//! Local times around a change of offset, through the binary: in
//! Europe/Berlin 2026-03-29 02:30 never happened and 2026-10-25 02:30
//! happened twice. A snapshot's time must be one instant, so either is
//! refused for `--time`; a selection keeps the clock's order; a table tells
//! the two 02:30s apart. Also the forms of `--time` that named an instant
//! other than the one written (a zone in brackets, an offset of a day).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;

const BERLIN: &str = "Europe/Berlin";

fn in_berlin<'a>(t: &TestEnv, args: impl IntoIterator<Item = &'a str>) -> assert_cmd::Command {
    let mut cmd = t.cairn(args);
    cmd.env("TZ", BERLIN);
    cmd
}

/// Snapshots `src` at each of `times` (RFC 3339); their ids, in order.
fn taken_at(t: &TestEnv, src: &Path, times: &[&str]) -> Vec<String> {
    let src = src.to_str().unwrap();
    let taken = times.iter().map(|time| {
        let out = in_berlin(t, ["--json", "snapshot", src, "--time", time])
            .assert()
            .success();
        id(&parse_json(&out.get_output().stdout)).to_owned()
    });
    taken.collect()
}

/// The id of the snapshot `ls @WHEN` shows (its note names it).
fn chosen_at(t: &TestEnv, when: &str) -> String {
    let at = format!("@{when}");
    let out = in_berlin(t, ["ls", at.as_str()]).assert().success();
    stderr_of(out.get_output())
}

fn source(t: &TestEnv) -> std::path::PathBuf {
    let src = t.path("src");
    write_file(&src.join("f"), b"x");
    src
}

#[test]
fn a_skipped_local_time_selects_what_was_taken_before_the_clocks_went_forward() {
    let t = TestEnv::with_store();
    let src = source(&t);
    // 01:30 CET, then 03:30 CEST (01:30Z): an hour apart.
    let ids = taken_at(
        &t,
        &src,
        &["2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00"],
    );
    let short = |id: &str| id[..8].to_owned();
    for when in ["2026-03-29 02:30", "2026-03-29 03:00", "2026-03-29 02:00"] {
        let note = chosen_at(&t, when);
        assert!(note.contains(&short(&ids[0])), "@{when}: {note}");
    }
    assert!(chosen_at(&t, "2026-03-29 03:30").contains(&short(&ids[1])));
    let out = in_berlin(
        &t,
        [
            "--json",
            "snapshots",
            "--after",
            "2026-03-29 02:30",
            "--before",
            "2026-03-29 02:45",
        ],
    )
    .assert()
    .success();
    let listed = parse_json(&out.get_output().stdout);
    assert_eq!(listed.as_array().unwrap().len(), 0, "{listed}");
}

#[test]
fn a_snapshot_time_the_clocks_skipped_or_showed_twice_is_refused_naming_the_instants() {
    let t = TestEnv::with_store();
    let src = source(&t);
    let src = src.to_str().unwrap();
    let out = in_berlin(&t, ["snapshot", src, "--time", "2026-03-29 02:30"])
        .assert()
        .code(2);
    let err = stderr_of(out.get_output());
    assert!(err.contains("never happened"), "{err}");
    let out = in_berlin(&t, ["snapshot", src, "--time", "2026-10-25 02:30"])
        .assert()
        .code(2);
    let err = stderr_of(out.get_output());
    assert!(err.contains("happened twice"), "{err}");
    assert!(err.contains("2026-10-25T02:30:00+02:00"), "{err}");
    assert!(err.contains("2026-10-25T02:30:00+01:00"), "{err}");
    assert!(t.snapshots(&[]).is_empty());
}

#[test]
fn the_two_snapshots_of_a_repeated_hour_are_told_apart_and_both_selected_before_it_ends() {
    let t = TestEnv::with_store();
    let src = source(&t);
    taken_at(
        &t,
        &src,
        &["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00"],
    );
    let out = in_berlin(&t, ["snapshots"]).assert().success();
    let table = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(table.contains("2026-10-25 02:30:00+02:00"), "{table}");
    assert!(table.contains("2026-10-25 02:30:00+01:00"), "{table}");
    let out = in_berlin(&t, ["--json", "snapshots", "--before", "2026-10-25 02:30"])
        .assert()
        .success();
    let listed = parse_json(&out.get_output().stdout);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let out = in_berlin(&t, ["--json", "snapshots", "--after", "2026-10-25 02:30"])
        .assert()
        .success();
    let listed = parse_json(&out.get_output().stdout);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}

#[test]
fn a_zone_in_brackets_is_honoured_and_an_offset_of_a_day_is_refused() {
    let t = TestEnv::with_store();
    let src = source(&t);
    let src = src.to_str().unwrap();
    let out = in_berlin(
        &t,
        [
            "--json",
            "snapshot",
            src,
            "--time",
            "2026-02-15 14:30:00[Asia/Tokyo]",
        ],
    )
    .assert()
    .success();
    let snap = parse_json(&out.get_output().stdout);
    assert_eq!(snap["time"], "2026-02-15T14:30:00+09:00", "{snap}");
    let out = in_berlin(&t, ["snapshot", src, "--time", "2026-02-15T14:30:00+25:00"])
        .assert()
        .code(2);
    let err = stderr_of(out.get_output());
    assert!(err.contains("RFC 3339"), "{err}");
    let out = in_berlin(
        &t,
        ["snapshot", src, "--time", "2026-02-15 14:30[Nowhere/Foo]"],
    )
    .assert()
    .code(2);
    assert!(stderr_of(out.get_output()).contains("Nowhere/Foo"));
}
