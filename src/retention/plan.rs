//! The plan of a `forget` by policy: which of the snapshots a filter keeps
//! in view a saved or given policy forgets, and why each is kept.

use std::collections::HashSet;

use super::{Candidate, Context, GroupDecision, PolicyError, SavedPolicy, apply};
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
pub fn plan(
    snapshots: &[Snapshot],
    filter: &Filter,
    protected: &HashSet<SnapshotId>,
    saved: &SavedPolicy,
    context: &Context,
) -> Result<ForgetPlan, PolicyError> {
    let candidates: Vec<Candidate> = snapshots
        .iter()
        .filter(|s| filter.matches(s))
        .map(|s| Candidate::of(s, protected.contains(&s.id)))
        .collect();
    let groups = apply(&candidates, &saved.policy, saved.group_by, context)?;
    let doomed = groups
        .iter()
        .flat_map(|g| &g.snapshots)
        .filter(|d| !d.keep)
        .map(|d| d.id)
        .collect();
    Ok(ForgetPlan { groups, doomed })
}
