use super::*;
use crate::id::{SnapshotId, TreeId};
use crate::snapshot::{RECORD_VERSION, SnapshotRecord, Summary};

fn snap(n: u8, time: &str, host: &str, tags: &[&str]) -> Snapshot {
    Snapshot {
        id: SnapshotId::from_bytes([n; 32]),
        record: SnapshotRecord {
            version: RECORD_VERSION,
            format: None,
            time: time.parse().unwrap(),
            host: host.into(),
            paths: vec![],
            tags: tags.iter().map(|t| t.to_string()).collect(),
            tree: TreeId::from_bytes([n; 32]),
            parent: None,
            program: "test".into(),
            summary: Summary::default(),
        },
    }
}

fn ns() -> Namespace {
    let all = vec![
        snap(1, "2026-02-14T02:30:00Z", "web1", &["nightly"]),
        snap(2, "2026-02-15T02:30:00Z", "web1", &["nightly"]),
        snap(3, "2026-02-15T14:00:00Z", "db1", &[]),
        snap(4, "2026-03-01T02:30:00Z", "web/x", &["bad/tag", "nightly"]),
    ];
    Namespace::build(all, &Filter::default(), TimeZone::UTC)
}

fn names(children: Vec<(String, Child)>) -> Vec<String> {
    children.into_iter().map(|(n, _)| n).collect()
}

#[test]
fn snapshots_are_named_by_local_time_and_short_id_with_latest() {
    let ns = ns();
    assert_eq!(
        names(ns.children(&Dir::Snapshots)),
        [
            "2026-02-14T02:30:00_01010101",
            "2026-02-15T02:30:00_02020202",
            "2026-02-15T14:00:00_03030303",
            "2026-03-01T02:30:00_04040404",
            "latest"
        ]
    );
    assert_eq!(
        ns.lookup(&Dir::Snapshots, "latest"),
        Some(Child::Latest("2026-03-01T02:30:00_04040404".into()))
    );
}

#[test]
fn by_date_lists_years_months_days_and_resolves_any_date_to_the_last_snapshot_by_then() {
    let ns = ns();
    assert_eq!(
        names(ns.children(&Dir::ByDate)),
        ["2026", "2026-02-14", "2026-02-15", "2026-03-01"]
    );
    assert_eq!(names(ns.children(&Dir::Year(2026))), ["02", "03"]);
    assert_eq!(names(ns.children(&Dir::Month(2026, 2))), ["14", "15"]);
    assert_eq!(
        names(ns.children(&Dir::Day(2026, 2, 15))),
        [
            "2026-02-15T02:30:00_02020202",
            "2026-02-15T14:00:00_03030303"
        ]
    );
    assert_eq!(
        ns.lookup(&Dir::ByDate, "2026-02-15"),
        Some(Child::Snapshot(2))
    );
    assert_eq!(
        ns.lookup(&Dir::ByDate, "2026-02-20"),
        Some(Child::Snapshot(2)),
        "a day without snapshots is the last one before it"
    );
    assert_eq!(ns.lookup(&Dir::ByDate, "2026-02-13"), None);
    assert_eq!(ns.lookup(&Dir::ByDate, "2026-13-01"), None);
}

#[test]
fn hosts_and_tags_group_snapshots_and_skip_names_that_cannot_be_files() {
    let ns = ns();
    assert_eq!(names(ns.children(&Dir::Hosts)), ["db1", "web1"]);
    assert_eq!(names(ns.children(&Dir::Tags)), ["nightly"]);
    assert_eq!(
        ns.lookup(&Dir::Host("web1".into()), "latest"),
        Some(Child::Latest("2026-02-15T02:30:00_02020202".into()))
    );
    assert_eq!(
        names(ns.children(&Dir::Tag("nightly".into()))).len(),
        4,
        "three snapshots and latest"
    );
}

#[test]
fn hosts_and_tags_longer_than_a_file_name_are_left_out() {
    let (long, longest) = ("t".repeat(256), "h".repeat(255));
    let all = vec![
        snap(1, "2026-02-14T02:30:00Z", &longest, &[&long, "nightly"]),
        snap(2, "2026-02-15T02:30:00Z", &long, &[&longest]),
    ];
    let ns = Namespace::build(all, &Filter::default(), TimeZone::UTC);
    assert_eq!(
        names(ns.children(&Dir::Hosts)),
        std::slice::from_ref(&longest)
    );
    assert_eq!(names(ns.children(&Dir::Tags)), [longest, "nightly".into()]);
    assert_eq!(
        names(ns.children(&Dir::Snapshots)).len(),
        3,
        "both and latest"
    );
}

#[test]
fn a_filter_limits_every_directory() {
    let filter = Filter {
        host: Some("db1".into()),
        ..Filter::default()
    };
    let ns = Namespace::build(ns().snapshots().to_vec(), &filter, TimeZone::UTC);
    assert_eq!(
        names(ns.children(&Dir::Snapshots)),
        ["2026-02-15T14:00:00_03030303", "latest"]
    );
    assert_eq!(
        ns.lookup(&Dir::ByDate, "2026-03-05"),
        Some(Child::Snapshot(0))
    );
}
