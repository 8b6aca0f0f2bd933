//! `cairn stats` and `cairn tag` (#19).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::Value;

fn stats_json(t: &TestEnv, extra: &[&str]) -> Value {
    let out = t.cairn(["--json", "stats"]).args(extra).assert().success();
    parse_json(&out.get_output().stdout)
}

#[test]
fn stats_json_gives_sizes_ratios_hosts_and_what_each_snapshot_added() {
    let t = TestEnv::with_store();
    let (a, b) = (t.path("a"), t.path("b"));
    std::fs::create_dir_all(&a).unwrap();
    write_random_file(&a.join("data.bin"), 7, 3 << 20);
    copy_tree(&a, &b);
    let first = t.snapshot(&[&a], &["--host", "web1"]);
    // The same bytes under another path: stored once.
    let second = t.snapshot(&[&b], &["--host", "web2"]);
    let doc = stats_json(&t, &[]);
    let store = &doc["store"];
    assert_eq!(store["snapshots"], 2);
    let logical = store["logical_bytes"].as_u64().unwrap();
    assert_eq!(logical, 2 * (3 << 20));
    let unique = store["catalog"]["data_raw_bytes"].as_u64().unwrap();
    assert_eq!(unique, 3 << 20, "{doc}");
    assert!(
        (store["dedup_ratio"].as_f64().unwrap() - 2.0).abs() < 1e-9,
        "{doc}"
    );
    // Random bytes do not compress: about 1.
    let compression = store["compression_ratio"].as_f64().unwrap();
    assert!((0.99..=1.01).contains(&compression), "{doc}");
    let store_bytes = store["store_bytes"].as_u64().unwrap();
    assert!(store_bytes >= t.packs_size(), "{doc}");
    assert!(store_bytes < t.packs_size() + 64 * 1024, "{doc}");
    let hosts: Vec<(&str, u64)> = store["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap(),
                h["snapshots"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(hosts, [("web1", 1), ("web2", 1)]);

    let snaps = doc["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[0]["id"], id(&first));
    assert_eq!(snaps[0]["bytes_added"], summary(&first, "bytes_added"));
    assert_eq!(snaps[1]["bytes_added"], summary(&second, "bytes_added"));
    assert!(summary(&second, "bytes_added") < 64 * 1024, "{second}");
    let size = |i: usize| snaps[i]["store_bytes"].as_u64().unwrap();
    assert!(size(0) >= summary(&first, "bytes_added"), "{doc}");
    assert!(size(1) >= size(0), "{doc}");
    assert_eq!(size(1), t.packs_size(), "{doc}");
}

#[test]
fn stats_growth_charts_the_last_snapshots_of_the_filter() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for night in 0..4u64 {
        write_random_file(
            &src.join(format!("log-{night}")),
            night,
            (night + 1) * 100_000,
        );
        t.snapshot(&[&src], &["--tag", "nightly"]);
    }
    t.snapshot(&[&src], &["--tag", "manual"]);
    let out = t
        .cairn(["stats", "--growth", "3", "--tag", "nightly"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let listed = t.snapshots(&["--tag", "nightly"]);
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("SNAPSHOT"))
        .unwrap();
    let rows = &lines[header + 1..];
    assert_eq!(rows.len(), 3, "{text}");
    for (row, snap) in rows.iter().zip(&listed[1..]) {
        assert!(row.starts_with(&id(snap)[..8]), "{text}");
    }
    // The night that added most has the longest bar.
    assert!(rows[2].contains(&"█".repeat(24)), "{text}");
    let doc = stats_json(&t, &["--growth", "2"]);
    assert_eq!(doc["snapshots"].as_array().unwrap().len(), 2);
}

fn tags_of(t: &TestEnv, snapshot: &str) -> Vec<String> {
    let all = t.snapshots(&[]);
    let s = all
        .iter()
        .find(|s| id(s) == snapshot)
        .unwrap_or_else(|| panic!("{snapshot} not listed"));
    s["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

fn tag(t: &TestEnv, args: &[&str]) -> Vec<Value> {
    let out = t.cairn(["--json", "tag"]).args(args).assert().success();
    match parse_json(&out.get_output().stdout) {
        Value::Array(items) => items,
        other => panic!("{other}"),
    }
}

#[test]
fn tag_writes_a_new_record_with_the_new_tags_and_removes_the_old_one() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let snap = t.snapshot(&[&src], &["--tag", "nightly"]);
    let old = id(&snap).to_owned();
    let done = tag(&t, &[&old[..8], "--add", "release", "--remove", "nightly"]);
    let new = done[0]["new"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(tags_of(&t, &new), ["release"]);
    assert_eq!(t.snapshots(&[]).len(), 1, "the old record is gone");
    assert!(!t.store.join(format!("snapshots/{old}.json")).exists());
    assert_trees_equal(&src, &restored(&t.restore(&new), &src));
    // --set replaces; tags already there change nothing.
    let done = tag(&t, &["latest", "--set", "a", "--set", "b"]);
    let newer = done[0]["new"].as_str().unwrap().to_owned();
    assert_eq!(tags_of(&t, &newer), ["a", "b"]);
    let done = tag(&t, &["latest", "--add", "a"]);
    assert_eq!(done[0]["changed"], false);
    assert_eq!(done[0]["new"], Value::Null);
    let done = tag(&t, &["latest", "--set", ""]);
    let bare = done[0]["new"].as_str().unwrap();
    assert!(tags_of(&t, bare).is_empty());
}

#[test]
fn tag_keeps_protection_and_refuses_an_empty_tag() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let old = id(&t.snapshot(&[&src], &[])).to_owned();
    t.cairn(["protect", &old]).assert().success();
    let done = tag(&t, &[&old, "--add", "kept"]);
    let new = done[0]["new"].as_str().unwrap().to_owned();
    let listed = &t.snapshots(&[])[0];
    assert_eq!(listed["protected"], true, "{listed}");
    assert!(!t.store.join(format!("protected/{old}")).exists());
    let err = stderr_of(t.cairn(["forget", &new]).assert().code(1).get_output());
    assert!(err.contains("protected"), "{err}");
    let err = stderr_of(
        t.cairn(["tag", &new, "--add", ""])
            .assert()
            .code(2)
            .get_output(),
    );
    assert!(err.contains("must not be empty"), "{err}");
}

#[test]
fn a_tag_killed_after_the_new_record_leaves_both_snapshots_protected() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let old = id(&t.snapshot(&[&src], &[])).to_owned();
    t.cairn(["protect", &old]).assert().success();
    no_core_dumps();
    let out = t
        .command(["tag", &old, "--add", "x"])
        .env("CAIRN_CRASH_AT", "retag-new-written")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let listed = t.snapshots(&[]);
    assert_eq!(listed.len(), 2, "both records are there");
    assert!(listed.iter().all(|s| s["protected"] == true), "{listed:?}");
    for s in &listed {
        assert_trees_equal(&src, &restored(&t.restore(id(s)), &src));
    }
}

/// A `tag` killed after its new record leaves the snapshot listed twice
/// (durability.md): retention counted both, so `forget --keep-last 2`
/// kept the one snapshot twice and forgot an older, distinct one.
#[test]
fn retention_counts_a_snapshot_listed_twice_by_a_killed_tag_once() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    let older = id(&t.snapshot(&[&src], &["--tag", "A"])).to_owned();
    write_file(&src.join("new"), b"changed");
    settle();
    t.snapshot(&[&src], &["--tag", "B"]);
    no_core_dumps();
    let out = t
        .command(["tag", "latest", "--add", "X"])
        .env("CAIRN_CRASH_AT", "retag-new-written")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(t.snapshots(&[]).len(), 3);
    t.cairn(["forget", "--keep-last", "2"]).assert().success();
    let left = t.snapshots(&[]);
    assert!(left.iter().any(|s| id(s) == older), "{left:?}");
    assert_eq!(left.len(), 3, "{left:?}");
    // Kept or forgotten together: --keep-last 1 keeps both records of the
    // newer snapshot, and forgets the older one.
    t.cairn(["forget", "--keep-last", "1"]).assert().success();
    let left = t.snapshots(&[]);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|s| id(s) != older), "{left:?}");
}

/// Two snapshots taken on purpose at one --time of the same data are two
/// restore points, and grouping by tags keeps records of other tags apart:
/// the first version of the twin rule merged them (same tree, time, host
/// and paths) into a group of both tags, and `--group-by tags
/// --keep-last 1` forgot the newest snapshot of groups `a` and `b`.
#[test]
fn snapshots_of_one_time_taken_on_purpose_are_not_twins_and_tag_groups_stay_apart() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 2);
    let at = "2026-03-01T00:00:00Z";
    t.snapshot(&[&src], &["--time", at, "--tag", "a"]);
    t.snapshot(&[&src], &["--time", at, "--tag", "b"]);
    t.snapshot(
        &[&src],
        &["--time", "2026-03-02T00:00:00Z", "--tag", "a", "--tag", "b"],
    );
    let out = t
        .cairn([
            "--json",
            "forget",
            "--group-by",
            "tags",
            "--keep-last",
            "1",
            "--dry-run",
        ])
        .assert()
        .success();
    let plan = parse_json(&out.get_output().stdout);
    assert_eq!(plan["forgotten"].as_array().unwrap().len(), 0, "{plan}");
    assert_eq!(plan["groups"].as_array().unwrap().len(), 3, "{plan}");
}

#[test]
fn stats_of_records_claiming_more_than_a_u64_holds_says_the_most_not_a_wrapped_sum() {
    // A record claiming 2^64 - 1 bytes beside another: the sum wrapped and
    // stats said 13 MiB of data.
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 1);
    t.snapshot(&[&src], &[]);
    let snap = t.snapshot(&[&src], &[]);
    forge_record(&t, &snap, |record| {
        record["summary"]["total_bytes"] = Value::from(u64::MAX);
    });
    let doc = stats_json(&t, &[]);
    assert_eq!(doc["store"]["logical_bytes"], u64::MAX, "{doc}");
}
