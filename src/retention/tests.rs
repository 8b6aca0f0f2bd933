use super::*;

/// A clock far after every test snapshot, in UTC.
fn ctx() -> Context {
    Context {
        now: "2100-01-01T00:00:00Z".parse().unwrap(),
        zone: TimeZone::UTC,
    }
}

fn candidate(n: u8, time: &str) -> Candidate {
    Candidate {
        id: SnapshotId::from_bytes([n; 32]),
        time: time.parse().unwrap(),
        host: "h".into(),
        paths: vec![RawName::from_bytes(b"/data".to_vec())],
        tags: Vec::new(),
        protected: false,
    }
}

fn kept(groups: &[GroupDecision]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|g| &g.snapshots)
        .filter(|d| d.keep)
        .map(|d| {
            format!(
                "{} {}",
                d.time,
                d.reasons
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect()
}

#[test]
fn keep_daily_keeps_the_newest_snapshot_of_each_of_the_last_n_days() {
    let snaps = [
        candidate(1, "2026-01-01T01:00:00+01:00"),
        candidate(2, "2026-01-01T23:00:00+01:00"),
        candidate(3, "2026-01-02T12:00:00+01:00"),
        candidate(4, "2026-01-04T12:00:00+01:00"),
    ];
    let policy = Policy {
        daily: Some(Count::Limited(2)),
        ..Policy::default()
    };
    let groups = apply(&snaps, &policy, GroupBy::default(), &ctx()).unwrap();
    assert_eq!(
        kept(&groups),
        [
            "2026-01-04T12:00:00+01:00 daily #1",
            "2026-01-02T12:00:00+01:00 daily #2"
        ]
    );
}

#[test]
fn keep_within_counts_back_from_the_newest_snapshot_not_from_now() {
    let snaps = [
        candidate(1, "2025-01-01T00:00:00Z"),
        candidate(2, "2025-01-20T00:00:00Z"),
        candidate(3, "2025-01-30T00:00:00Z"),
    ];
    let policy = Policy {
        within: Some("15d".parse().unwrap()),
        ..Policy::default()
    };
    let groups = apply(&snaps, &policy, GroupBy::default(), &ctx()).unwrap();
    assert_eq!(
        kept(&groups),
        [
            "2025-01-30T00:00:00+00:00 within 15d",
            "2025-01-20T00:00:00+00:00 within 15d"
        ]
    );
}

#[test]
fn the_newest_and_protected_snapshots_survive_a_policy_that_keeps_neither() {
    let mut snaps = vec![
        candidate(1, "2026-01-01T00:00:00Z"),
        candidate(2, "2026-01-02T00:00:00Z"),
        candidate(3, "2026-01-03T00:00:00Z"),
    ];
    snaps[0].protected = true;
    let policy = Policy {
        tags: vec!["keep".into()],
        ..Policy::default()
    };
    let groups = apply(&snaps, &policy, GroupBy::default(), &ctx()).unwrap();
    assert_eq!(
        kept(&groups),
        [
            "2026-01-03T00:00:00+00:00 newest",
            "2026-01-01T00:00:00+00:00 protected"
        ]
    );
}

#[test]
fn an_empty_policy_is_refused() {
    let snaps = [candidate(1, "2026-01-01T00:00:00Z")];
    let zero = Policy {
        daily: Some(Count::Limited(0)),
        ..Policy::default()
    };
    assert_eq!(
        apply(&snaps, &zero, GroupBy::default(), &ctx()),
        Err(PolicyError::Empty)
    );
}

#[test]
fn groups_split_by_host_and_paths_but_not_by_tags_by_default() {
    let mut other_host = candidate(2, "2026-01-01T00:00:00Z");
    other_host.host = "g".into();
    let mut tagged = candidate(3, "2026-01-02T00:00:00Z");
    tagged.tags = vec!["x".into()];
    let snaps = [candidate(1, "2026-01-01T00:00:00Z"), other_host, tagged];
    let policy = Policy {
        last: Some(Count::Limited(1)),
        ..Policy::default()
    };
    let groups = apply(&snaps, &policy, GroupBy::default(), &ctx()).unwrap();
    assert_eq!(groups.len(), 2);
    let everything: GroupBy = "".parse().unwrap();
    assert_eq!(apply(&snaps, &policy, everything, &ctx()).unwrap().len(), 1);
}
