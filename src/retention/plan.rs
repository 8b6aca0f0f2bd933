//! The plan of a `forget` by policy: which of the snapshots a filter keeps
//! in view a saved or given policy forgets, and why each is kept.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Candidate, Context, Decision, GroupDecision, PolicyError, Reason, SavedPolicy, apply};
use crate::id::SnapshotId;
use crate::snapshot::Snapshot;
use crate::snapshot::select::Filter;

/// What a forget by policy would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetPlan {
    /// Every group's verdicts, with reasons.
    pub groups: Vec<GroupDecision>,
    /// The snapshots to forget, group by group, newest first.
    pub doomed: Vec<SnapshotId>,
}

/// Applies `saved` to the `snapshots` that `filter` keeps; snapshots in
/// `protected` are always kept. Pure: the clock and zone come in `context`.
///
/// A policy counts restore points, not records: a damaged original and its
/// repaired copy, or the two records a `tag` killed midway leaves (the same
/// record but for its tags), are one snapshot, kept or forgotten together,
/// unless grouping by tags puts them in different groups. Counted as two,
/// `--keep-last 7` after a repair kept the newest snapshot twice and forgot
/// an older one, copy and all.
pub fn plan(
    snapshots: &[Snapshot],
    filter: &Filter,
    protected: &HashSet<SnapshotId>,
    saved: &SavedPolicy,
    context: &Context,
) -> Result<ForgetPlan, PolicyError> {
    let matched: Vec<&Snapshot> = snapshots.iter().filter(|s| filter.matches(s)).collect();
    let points = RestorePoints::of(&matched, saved.group_by.tags);
    let candidates = points.candidates(protected);
    let mut groups = apply(&candidates, &saved.policy, saved.group_by, context)?;
    points.add_others(&mut groups);
    let doomed = groups
        .iter()
        .flat_map(|g| &g.snapshots)
        .filter(|d| !d.keep)
        .map(|d| d.id)
        .collect();
    Ok(ForgetPlan { groups, doomed })
}

/// Snapshots grouped into restore points: each record that is another's
/// twin (see [`plan`]) mapped to the one that stands for them both.
struct RestorePoints<'a> {
    /// Every snapshot that stands for a restore point, with its others.
    points: Vec<(&'a Snapshot, Vec<&'a Snapshot>)>,
}

impl<'a> RestorePoints<'a> {
    fn of(matched: &[&'a Snapshot], by_tags: bool) -> Self {
        let copy_of: HashMap<SnapshotId, SnapshotId> = matched
            .iter()
            .filter_map(|s| Some((s.record.summary.repaired_from?, s.id)))
            .collect();
        let by_id: HashMap<SnapshotId, &'a Snapshot> = matched.iter().map(|s| (s.id, *s)).collect();
        let mut by_point: BTreeMap<PointKey, Vec<(bool, &'a Snapshot)>> = BTreeMap::new();
        for s in matched {
            let stand_in = last_copy(&copy_of, s.id);
            let standing = by_id.get(&stand_in).unwrap_or(s);
            let stands = standing.id == s.id;
            by_point
                .entry(PointKey::of(standing, by_tags))
                .or_default()
                .push((!stands, s));
        }
        let points = by_point
            .into_values()
            .map(|mut members| {
                // The last copy first, or of twins the smallest id.
                members.sort_by_key(|(follows, s)| (*follows, s.id));
                let mut members = members.into_iter().map(|(_, s)| s);
                let first = members.next();
                (first, members.collect())
            })
            .filter_map(|(first, others)| Some((first?, others)))
            .collect();
        Self { points }
    }

    /// One candidate per restore point: its tags all its records' tags,
    /// protected if any record is.
    fn candidates(&self, protected: &HashSet<SnapshotId>) -> Vec<Candidate> {
        self.points
            .iter()
            .map(|(first, others)| {
                let all = || std::iter::once(*first).chain(others.iter().copied());
                let mut c = Candidate::of(first, all().any(|s| protected.contains(&s.id)));
                c.tags = all().flat_map(|s| s.record.tags.iter().cloned()).collect();
                c.tags.sort();
                c.tags.dedup();
                c
            })
            .collect()
    }

    /// Puts each restore point's other records beside the decision on it,
    /// with the same verdict.
    fn add_others(&self, groups: &mut [GroupDecision]) {
        let others: HashMap<SnapshotId, &Vec<&Snapshot>> =
            self.points.iter().map(|(s, o)| (s.id, o)).collect();
        for group in groups {
            let decided = std::mem::take(&mut group.snapshots);
            for decision in decided {
                let twins = others.get(&decision.id).map_or(&[][..], |o| o.as_slice());
                let same = twins.iter().map(|s| Decision {
                    id: s.id,
                    time: s.record.time,
                    keep: decision.keep,
                    reasons: match decision.keep {
                        true => vec![Reason::SameAs(decision.id)],
                        false => Vec::new(),
                    },
                });
                let same: Vec<Decision> = same.collect();
                group.snapshots.push(decision);
                group.snapshots.extend(same);
            }
        }
    }
}

/// The last repaired copy of `id` among `copy_of` (original to copy), or
/// `id` itself.
fn last_copy(copy_of: &HashMap<SnapshotId, SnapshotId>, id: SnapshotId) -> SnapshotId {
    let mut at = id;
    // A chain of copies is at most as long as the map.
    for _ in 0..=copy_of.len() {
        match copy_of.get(&at) {
            Some(next) => at = *next,
            None => break,
        }
    }
    at
}

/// What makes two records one restore point: the same record but for its
/// tags (a killed `tag` leaves such twins; two snapshots taken on purpose
/// differ at least in their summaries), or a record and the repaired copy
/// standing for it. Grouping by tags keeps records of other tags apart:
/// merged, they would be counted in a group neither has.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct PointKey {
    untagged: [u8; 32],
    tags: Option<Vec<String>>,
}

impl PointKey {
    fn of(s: &Snapshot, by_tags: bool) -> Self {
        let mut untagged = s.record.clone();
        untagged.tags.clear();
        Self {
            untagged: *blake3::hash(&untagged.encode()).as_bytes(),
            tags: by_tags.then(|| s.record.tags.clone()),
        }
    }
}
