//! The command line: where the store comes from, global options, JSON
//! output, filters, recorded times and tags, and refused init settings.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use common::*;

fn store_arg(t: &TestEnv) -> &str {
    t.store.to_str().unwrap()
}

#[test]
fn global_options_are_accepted_before_and_after_the_subcommand() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let s = store_arg(&t);

    let before = t
        .cairn_without_store(["--store", s, "--json", "--quiet", "snapshot"])
        .arg(&src)
        .assert()
        .success();
    let after = t
        .cairn_without_store(["snapshot", "--json", "--store", s, "-q"])
        .arg(&src)
        .assert()
        .success();
    let ids: Vec<_> = [before, after]
        .iter()
        .map(|out| id(&parse_json(&out.get_output().stdout)).to_owned())
        .collect();

    for args in [
        ["--json", "snapshots", "--store", s],
        ["snapshots", "--store", s, "--json"],
    ] {
        let out = t.cairn_without_store(args).assert().success();
        let listed = parse_json(&out.get_output().stdout);
        let listed: Vec<&str> = listed.as_array().unwrap().iter().map(id).collect();
        assert_eq!(listed.len(), 2, "{args:?}");
        assert!(ids.iter().all(|i| listed.contains(&i.as_str())), "{args:?}");
    }
    assert!(names(&t.home).is_empty(), "the default store was used");
}

#[test]
fn the_cairn_store_variable_selects_the_store() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);

    let out = t
        .cairn_without_store(["--json", "snapshot"])
        .arg(&src)
        .env("CAIRN_STORE", &t.store)
        .assert()
        .success();
    let snap = parse_json(&out.get_output().stdout);
    // The listing adds whether each snapshot is protected, repaired or
    // damaged (has a repaired copy).
    let mut listed = snap.clone();
    listed["protected"] = json!(false);
    listed["repaired"] = json!(false);
    listed["damaged"] = json!(false);
    assert_eq!(t.snapshots(&[]), [listed]);
    assert!(names(&t.home).is_empty(), "the default store was used");
}

#[test]
fn without_a_store_snapshot_creates_the_default_store_and_says_so() {
    let t = TestEnv::new();
    let src = t.path("src");
    small_tree(&src, 1);
    let default = t.home.join(".local/share/cairn");

    let out = t
        .cairn_without_store(["snapshot"])
        .arg(&src)
        .assert()
        .success();
    let err = stderr_of(out.get_output());
    assert!(
        err.contains("created a new store") && err.contains(default.to_str().unwrap()),
        "{err}"
    );
    assert!(default.join("config.json").is_file());

    let out = t
        .cairn_without_store(["snapshot"])
        .arg(&src)
        .assert()
        .success();
    assert!(!stderr_of(out.get_output()).contains("created"));
    let out = t
        .cairn_without_store(["--json", "snapshots"])
        .assert()
        .success();
    assert_eq!(
        parse_json(&out.get_output().stdout)
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn the_default_store_lives_under_xdg_data_home_when_it_is_set() {
    let t = TestEnv::new();
    let src = t.path("src");
    small_tree(&src, 1);
    let data = t.path("xdg");

    t.cairn_without_store(["snapshot"])
        .arg(&src)
        .env("XDG_DATA_HOME", &data)
        .assert()
        .success();
    assert!(data.join("cairn/config.json").is_file());
    assert!(names(&t.home).is_empty());
}

#[test]
fn listing_a_missing_default_store_suggests_cairn_init() {
    let t = TestEnv::new();
    let out = t.cairn_without_store(["snapshots"]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("cairn init"), "{err}");
    assert!(
        err.contains(t.home.join(".local/share/cairn").to_str().unwrap()),
        "{err}"
    );
    assert!(names(&t.home).is_empty(), "listing created something");
}

#[test]
fn snapshot_and_snapshots_json_carry_the_whole_record() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);

    let snap = t.snapshot(&[&src], &["--host", "db1", "--tag", "nightly"]);
    let hex = id(&snap);
    assert_eq!(hex.len(), 64);
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(snap["time"].as_str().unwrap().len() >= 20, "{snap}");
    assert_eq!(snap["host"], "db1");
    assert_eq!(snap["paths"], json!([src]));
    assert_eq!(snap["tags"], json!(["nightly"]));
    assert_eq!(summary(&snap, "files"), 3);
    assert_eq!(
        summary(&snap, "total_bytes"),
        fs::metadata(src.join("a.txt")).unwrap().len() + 70_000
    );
    assert_eq!(summary(&snap, "errors"), 0);

    // The listing adds whether each snapshot is protected, repaired or
    // damaged (has a repaired copy).
    let mut listed = snap.clone();
    listed["protected"] = json!(false);
    listed["repaired"] = json!(false);
    listed["damaged"] = json!(false);
    assert_eq!(t.snapshots(&[]), [listed]);
}

/// Three snapshots of two sources by two hosts with several tags, oldest
/// first; returns their ids.
fn three_snapshots(t: &TestEnv) -> [String; 3] {
    let (one, two) = (t.path("one"), t.path("two"));
    small_tree(&one, 1);
    small_tree(&two, 2);
    let take = |paths: &[&Path], args: &[&str]| id(&t.snapshot(paths, args)).to_owned();
    [
        take(
            &[&one],
            &["--host", "alpha", "--tag", "daily", "--time", "2026-01-01"],
        ),
        take(
            &[&two],
            &[
                "--host",
                "beta",
                "--tag",
                "daily",
                "--tag",
                "db",
                "--time",
                "2026-01-02",
            ],
        ),
        take(
            &[&one, &two],
            &["--host", "alpha", "--tag", "weekly", "--time", "2026-01-03"],
        ),
    ]
}

// `forget @WHEN` chose among every host's snapshots whatever the filters
// said: `--host alpha` forgot beta's snapshot of that day.
#[test]
fn forget_at_a_date_chooses_among_the_filtered_snapshots_of_this_host() {
    let t = TestEnv::with_store();
    let [s1, s2, _] = three_snapshots(&t);
    let forgotten = |args: &[&str]| {
        let mut all = vec!["--json", "forget", "--dry-run", "@2026-01-02"];
        all.extend_from_slice(args);
        let out = t.cairn(&all).assert().success();
        let json = parse_json(&out.get_output().stdout);
        json["forgotten"].as_array().unwrap().clone()
    };
    assert_eq!(forgotten(&["--host", "alpha"]), [s1.as_str()]);
    assert_eq!(
        forgotten(&["--tag", "daily", "--host", "alpha"]),
        [s1.as_str()]
    );
    assert_eq!(forgotten(&["--all-hosts"]), [s2.as_str()]);
    assert_eq!(forgotten(&["--host", "beta"]), [s2.as_str()]);
    // Neither is this host's: nothing to forget at that date.
    let out = t.cairn(["forget", "@2026-01-02"]).assert().failure();
    let err = stderr_of(out.get_output());
    assert!(err.contains("no snapshot"), "{err}");
    assert_eq!(t.snapshots(&[]).len(), 3);
    // An id names one snapshot; a filter it does not match refuses it.
    let out = t
        .cairn(["forget", "--dry-run", &s2, "--host", "alpha"])
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("does not match the filters"), "{err}");
    assert_eq!(forgotten_by_id(&t, &s2), [s2.as_str()]);
}

/// `forget --dry-run ID` with no filters: the snapshot it would forget.
fn forgotten_by_id(t: &TestEnv, id: &str) -> Vec<Value> {
    let out = t
        .cairn(["--json", "forget", "--dry-run", id])
        .assert()
        .success();
    let json = parse_json(&out.get_output().stdout);
    json["forgotten"].as_array().unwrap().clone()
}

#[test]
fn snapshots_can_be_filtered_by_host_tag_and_path() {
    let t = TestEnv::with_store();
    let [s1, s2, s3] = three_snapshots(&t);
    let one = t.path("one");
    let two = t.path("two");
    let (one, two) = (one.to_str().unwrap(), two.to_str().unwrap());

    let cases: [(&[&str], Vec<&String>); 8] = [
        (&[], vec![&s1, &s2, &s3]),
        (&["--host", "alpha"], vec![&s1, &s3]),
        (&["--tag", "daily"], vec![&s1, &s2]),
        (&["--tag", "daily", "--tag", "db"], vec![&s2]),
        (&["--path", one], vec![&s1, &s3]),
        (&["--path", one, "--path", two], vec![&s3]),
        (&["--path", "two"], vec![&s2, &s3]),
        (&["--host", "beta", "--tag", "weekly"], vec![]),
    ];
    for (filter, want) in cases {
        let got: Vec<String> = t
            .snapshots(filter)
            .iter()
            .map(|s| id(s).to_owned())
            .collect();
        let want: Vec<String> = want.into_iter().cloned().collect();
        assert_eq!(got, want, "snapshots {filter:?}");
    }
}

#[test]
fn restore_latest_honours_the_filters() {
    let t = TestEnv::with_store();
    let [_, s2, _] = three_snapshots(&t);
    let target = t.path("target");
    let out = t
        .cairn(["--json", "restore", "latest", "--tag", "db", "--target"])
        .arg(&target)
        .assert()
        .success();
    assert_eq!(parse_json(&out.get_output().stdout)["snapshot"], json!(s2));
    assert_trees_equal(&t.path("two"), &restored(&target, &t.path("two")));
    assert!(!restored(&target, &t.path("one")).exists());
}

#[test]
fn a_time_with_an_offset_is_recorded_as_given() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let snap = t.snapshot(&[&src], &["--time", "2026-02-15T02:00:00+01:00"]);
    assert_eq!(snap["time"], "2026-02-15T02:00:00+01:00");
    let civil = t.snapshot(&[&src], &["--time", "2026-02-15 14:30"]);
    assert_eq!(civil["time"], "2026-02-15T14:30:00+00:00", "TZ=UTC");
    let listed: Vec<Value> = t.snapshots(&[]).iter().map(|s| s["time"].clone()).collect();
    assert_eq!(listed, [snap["time"].clone(), civil["time"].clone()]);
}

#[test]
fn tags_are_repeatable_and_recorded_sorted_once_each() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let snap = t.snapshot(
        &[&src],
        &["--tag", "zeta", "--tag", "alpha", "--tag", "zeta"],
    );
    assert_eq!(snap["tags"], json!(["alpha", "zeta"]));
}

#[test]
fn init_refuses_out_of_range_settings_as_usage_errors() {
    let t = TestEnv::new();
    for args in [
        ["init", "--compression", "0"],
        ["init", "--compression", "23"],
        ["init", "--pack-size", "1K"],
        ["init", "--pack-size", "2GiB"],
        ["init", "--sqlite-page-run", "256"],
        ["init", "--sqlite-page-run", "2MiB"],
    ] {
        t.cairn(args).assert().code(2);
        assert!(!t.store.exists(), "{args:?} created the store");
    }
    let out = t
        .cairn([
            "--json",
            "init",
            "--compression",
            "19",
            "--pack-size",
            "1MiB",
        ])
        .assert()
        .success();
    let init = parse_json(&out.get_output().stdout);
    assert_eq!(init["version"], 8);
    assert_eq!(init["store"], json!(t.store));
}

// `unprotect @WHEN` (and `protect latest`) chose among every host's
// snapshots: another host's protection could be lifted by a date.
#[test]
fn protect_and_unprotect_by_date_choose_this_hosts_snapshots_or_the_filtered_ones() {
    let t = TestEnv::with_store();
    let [s1, s2, _] = three_snapshots(&t);
    let out = t.cairn(["protect", "@2026-01-02"]).assert().failure();
    assert!(stderr_of(out.get_output()).contains("no snapshot"));
    t.cairn(["protect", "@2026-01-02", "--host", "alpha"])
        .assert()
        .success();
    t.cairn(["protect", "@2026-01-02", "--all-hosts"])
        .assert()
        .success();
    let protected: Vec<String> = t
        .snapshots(&[])
        .iter()
        .filter(|s| s["protected"] == true)
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(protected.len(), 2, "{protected:?}");
    assert!(protected.contains(&s1) && protected.contains(&s2));
    let out = t
        .cairn(["unprotect", &s2, "--host", "alpha"])
        .assert()
        .code(1);
    assert!(stderr_of(out.get_output()).contains("does not match the filters"));
    // Every name resolved before any is changed: one refused, none changed.
    let out = t
        .cairn(["unprotect", &s1, &s2, "--host", "alpha"])
        .assert()
        .code(1);
    assert!(stderr_of(out.get_output()).contains("nothing was done"));
    let still = t
        .snapshots(&[])
        .iter()
        .filter(|s| s["protected"] == true)
        .count();
    assert_eq!(still, 2, "s1 still protected");
}

#[test]
fn an_empty_host_or_tag_filter_is_a_usage_error_in_every_command() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    t.snapshot(&[&src], &[]);
    for args in [
        &["forget", "--host", "", "--keep-last", "1"][..],
        &["forget", "--tag", " ", "--keep-last", "1", "--prune"],
        &["snapshots", "--host", ""],
        &["find", "*", "--tag", ""],
        &["stats", "--host", ""],
        &["ls", "--host", ""],
    ] {
        let out = t.cairn(args).assert().code(2);
        let err = stderr_of(out.get_output());
        assert!(err.contains("must not be empty"), "{args:?}: {err}");
    }
    assert_eq!(t.snapshots(&[]).len(), 1);
}

#[test]
fn a_forget_whose_filters_choose_no_snapshot_says_so() {
    // A misspelt host in a nightly job forgot nothing, silently.
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    t.snapshot(&[&src], &[]);
    t.snapshot(&[&src], &[]);
    for extra in [&["--dry-run"][..], &[]] {
        let out = t
            .cairn(["forget", "--host", "web-1", "--keep-last", "1"])
            .args(extra)
            .assert()
            .success();
        let err = stderr_of(out.get_output());
        assert!(
            err.contains("no snapshot in the store matches host web-1"),
            "{err}"
        );
    }
    assert_eq!(t.snapshots(&[]).len(), 2);
}

#[test]
fn ls_cat_and_find_refuse_command_line_mistakes_with_exit_2_as_other_commands_do() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    t.snapshot(&[&src], &[]);
    for args in [
        &["ls", "@2026-02-30"][..],
        &["ls", "zzzz"],
        &["cat", "2a", "/x"],
        &["ls", "--at", "2026-12-31", "latest", "/"],
        &["cat", "latest"],
        &["cat", "@garbage", "/x"],
        &["find", ""],
    ] {
        t.cairn(args).assert().code(2);
    }
}

#[test]
fn quiet_snapshots_still_lists_them_without_the_count() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    // Nothing to list: nothing printed (a cron job mails any output).
    t.cairn(["-q", "snapshots"]).assert().success().stdout("");
    let snap = t.snapshot(&[&src], &[]);
    let out = t.cairn(["-q", "snapshots"]).assert().success();
    let listed = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(listed.contains(&id(&snap)[..8]), "{listed}");
    assert_eq!(stderr_of(out.get_output()), "");
}
