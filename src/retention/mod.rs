//! Retention: which snapshots a policy keeps, and why.
//!
//! A pure function of the snapshots, the policy and the grouping: it reads
//! no clock and no store. The rules follow restic's `forget` exactly:
//! snapshots are taken newest first; each `--keep-PERIOD N` keeps the
//! newest snapshot of each of the N most recent buckets (local calendar
//! hour, day, ISO week, month, year, or each snapshot for `last`) that
//! hold one; `--keep-within D` keeps what is newer than D before the
//! group's *newest snapshot* (not before now, so a month without backups
//! forgets nothing extra; a snapshot dated in the future does not count as
//! the newest); `--keep-within-PERIOD D` keeps one per bucket within D;
//! `--keep-tag` keeps snapshots carrying all the tags of a list (an empty
//! tag: snapshots without tags). Buckets are on the wall clock of the UTC
//! offset recorded with each snapshot, the one it was taken by. The version
//! followed is restic 0.14, checked against its output (tests/retention.rs).
//!
//! Two deliberate additions: the newest snapshot of every group is always
//! kept (reason `newest`), and protected snapshots are always kept (reason
//! `protected`). A policy that names nothing is refused.

mod plan;
mod policy;
mod within;

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::{Serialize, Serializer};

pub use plan::{ForgetPlan, plan};
pub use policy::{Count, GroupBy, Period, Policy, SavedPolicy};
pub use within::Within;

use crate::id::SnapshotId;
use crate::rawname::RawName;
use crate::snapshot::Snapshot;
use crate::when::SnapshotTime;

/// What retention needs to know about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its id.
    pub id: SnapshotId,
    /// When it was taken, with the offset that was local then.
    pub time: SnapshotTime,
    /// Host recorded.
    pub host: String,
    /// Source paths, sorted.
    pub paths: Vec<RawName>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Protected with `cairn protect`: never forgotten.
    pub protected: bool,
}

impl Candidate {
    /// The candidate for a stored snapshot.
    pub fn of(snapshot: &Snapshot, protected: bool) -> Self {
        let r = &snapshot.record;
        Self {
            id: snapshot.id,
            time: r.time,
            host: r.host.clone(),
            paths: r.paths.clone(),
            tags: r.tags.clone(),
            protected,
        }
    }
}

/// Why a snapshot is kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The N-th bucket of a `--keep-PERIOD` rule.
    Bucket(Period, u32),
    /// `--keep-within`.
    Within(Within),
    /// `--keep-within-PERIOD`.
    BucketWithin(Period, Within),
    /// `--keep-tag` (the tag list it matched).
    Tag(String),
    /// The newest of its group, which is never forgotten.
    Newest,
    /// Protected with `cairn protect`.
    Protected,
    /// Another record of the same restore point, which this one follows: a
    /// repaired copy's damaged original, or a twin a killed `tag` left.
    SameAs(SnapshotId),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bucket(p, n) => write!(f, "{} #{n}", p.name()),
            Self::Within(w) => write!(f, "within {w}"),
            Self::BucketWithin(p, w) => write!(f, "{} within {w}", p.name()),
            Self::Tag(tags) if tags.split(',').all(str::is_empty) => f.write_str("untagged"),
            Self::Tag(tags) => write!(f, "tag {tags}"),
            Self::Newest => f.write_str("newest"),
            Self::Protected => f.write_str("protected"),
            Self::SameAs(id) => write!(f, "same as {}", id.short()),
        }
    }
}

impl Serialize for Reason {
    /// As displayed, but a snapshot named by its full id, as JSON does
    /// everywhere.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::SameAs(id) => s.collect_str(&format_args!("same as {}", id.to_hex())),
            reason => s.collect_str(reason),
        }
    }
}

/// The verdict on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The snapshot.
    pub id: SnapshotId,
    /// When it was taken.
    pub time: SnapshotTime,
    /// Kept (true) or forgotten.
    pub keep: bool,
    /// Every rule that keeps it; empty when forgotten.
    pub reasons: Vec<Reason>,
}

/// The fields a group shares (those not grouped by are `None`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GroupKey {
    /// The host, when grouping by host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The paths, when grouping by paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<RawName>>,
    /// The tags, when grouping by tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

impl GroupKey {
    fn of(c: &Candidate, by: GroupBy) -> Self {
        Self {
            host: by.host.then(|| c.host.clone()),
            paths: by.paths.then(|| c.paths.clone()),
            tags: by.tags.then(|| c.tags.clone()),
        }
    }
}

/// One group's verdicts, newest snapshot first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupDecision {
    /// What the group's snapshots share.
    pub group: GroupKey,
    /// Each snapshot, newest first.
    pub snapshots: Vec<Decision>,
}

/// Why a policy cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The policy keeps nothing by itself.
    #[error(
        "the retention policy keeps nothing: it needs a --keep-* option above 0 (given to forget, or saved by `cairn policy set`)"
    )]
    Empty,
}

/// Where and when a policy is applied: the only inputs besides the
/// snapshots that can change its outcome.
#[derive(Debug, Clone)]
pub struct Context {
    /// Now: a snapshot dated after it does not anchor `--keep-within`.
    pub now: Timestamp,
    /// The local time zone, for counting `--keep-within` back by calendar.
    pub zone: TimeZone,
}

impl Context {
    /// The real clock and the system's time zone.
    pub fn system() -> Self {
        Self {
            now: Timestamp::now(),
            zone: TimeZone::system(),
        }
    }
}

/// Applies `policy` to `candidates`, grouped by `group_by`. The result does
/// not depend on the order of `candidates`; groups come sorted by key.
pub fn apply(
    candidates: &[Candidate],
    policy: &Policy,
    group_by: GroupBy,
    context: &Context,
) -> Result<Vec<GroupDecision>, PolicyError> {
    if policy.is_empty() {
        return Err(PolicyError::Empty);
    }
    let mut groups: BTreeMap<GroupKey, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        groups.entry(GroupKey::of(c, group_by)).or_default().push(c);
    }
    Ok(groups
        .into_iter()
        .map(|(group, mut members)| {
            // Newest first; equal times by id, so input order never matters.
            members.sort_by_key(|c| std::cmp::Reverse((c.time, c.id)));
            GroupDecision {
                group,
                snapshots: decide_group(&members, policy, context),
            }
        })
        .collect())
}

/// A `--keep-PERIOD` rule's progress through a group.
struct BucketRule {
    period: Period,
    left: Count,
    used: u32,
    last: Option<i64>,
}

impl BucketRule {
    /// Keeps `c` if it opens a new bucket while the rule has room.
    fn visit(&mut self, c: &Candidate, nr: usize) -> Option<Reason> {
        let bucket = bucket_of(self.period, &c.time, nr);
        if self.left == Count::Limited(0) || self.last == Some(bucket) {
            return None;
        }
        self.last = Some(bucket);
        self.used += 1;
        if let Count::Limited(n) = &mut self.left {
            *n -= 1;
        }
        Some(Reason::Bucket(self.period, self.used))
    }
}

/// A `--keep-within-PERIOD` rule's progress through a group.
struct WithinRule {
    period: Period,
    within: Within,
    last: Option<i64>,
}

/// Every rule of a policy, with its state, for one group.
struct Rules<'p> {
    policy: &'p Policy,
    buckets: Vec<BucketRule>,
    withins: Vec<WithinRule>,
    tag_sets: Vec<Vec<&'p str>>,
    /// restic's anchor for `--keep-within`: the newest snapshot not in the
    /// future; none if all are (then everything is within).
    anchor: Option<SnapshotTime>,
    zone: &'p TimeZone,
}

impl<'p> Rules<'p> {
    fn new(policy: &'p Policy, members: &[&Candidate], context: &'p Context) -> Self {
        let buckets = Period::ALL
            .iter()
            .filter_map(|&period| {
                let left = policy.count(period)?;
                Some(BucketRule {
                    period,
                    left,
                    used: 0,
                    last: None,
                })
            })
            .collect();
        let withins = Period::ALL
            .iter()
            .filter_map(|&period| {
                let within = policy.within_period(period)?;
                Some(WithinRule {
                    period,
                    within,
                    last: None,
                })
            })
            .collect();
        let anchor = members
            .iter()
            .find(|c| c.time.timestamp < context.now)
            .map(|c| c.time);
        Self {
            policy,
            buckets,
            withins,
            tag_sets: policy.tag_sets().collect(),
            anchor,
            zone: &context.zone,
        }
    }

    /// Whether `c` was taken within `w` before the anchor.
    fn is_within(&self, w: &Within, c: &Candidate) -> bool {
        self.anchor
            .and_then(|a| w.before(a.timestamp, a.offset, self.zone))
            .is_none_or(|start| c.time.timestamp > start)
    }

    /// Every reason the policy keeps `c`, the `nr`-th newest, in restic's
    /// order: tags, within, buckets, buckets within.
    fn reasons(&mut self, c: &Candidate, nr: usize) -> Vec<Reason> {
        let mut reasons: Vec<Reason> = (self.tag_sets.iter())
            .filter(|set| has_tags(c, set))
            .map(|set| Reason::Tag(set.join(",")))
            .collect();
        if let Some(w) = self.policy.within
            && self.is_within(&w, c)
        {
            reasons.push(Reason::Within(w));
        }
        reasons.extend(self.buckets.iter_mut().filter_map(|rule| rule.visit(c, nr)));
        for i in 0..self.withins.len() {
            let (period, within) = (self.withins[i].period, self.withins[i].within);
            let bucket = bucket_of(period, &c.time, nr);
            if self.is_within(&within, c) && self.withins[i].last != Some(bucket) {
                self.withins[i].last = Some(bucket);
                reasons.push(Reason::BucketWithin(period, within));
            }
        }
        reasons
    }
}

/// Decides one group, given newest first.
fn decide_group(members: &[&Candidate], policy: &Policy, context: &Context) -> Vec<Decision> {
    let mut rules = Rules::new(policy, members, context);
    members
        .iter()
        .enumerate()
        .map(|(nr, c)| {
            let mut reasons = rules.reasons(c, nr);
            if nr == 0 && reasons.is_empty() {
                reasons.push(Reason::Newest);
            }
            if c.protected {
                reasons.push(Reason::Protected);
            }
            Decision {
                id: c.id,
                time: c.time,
                keep: !reasons.is_empty(),
                reasons,
            }
        })
        .collect()
}

/// restic's `HasTags`: every tag of the list is carried, except that an
/// empty tag met first matches a snapshot without tags.
fn has_tags(c: &Candidate, list: &[&str]) -> bool {
    for tag in list {
        if tag.is_empty() && c.tags.is_empty() {
            return true;
        }
        if !c.tags.iter().any(|have| have == tag) {
            return false;
        }
    }
    true
}

/// The bucket a snapshot falls into for `period`, on the wall clock of its
/// recorded offset. `nr` (its position, newest first) is the bucket for
/// `last`, so each snapshot is a bucket of its own.
fn bucket_of(period: Period, time: &SnapshotTime, nr: usize) -> i64 {
    let wall: DateTime = time.offset.to_datetime(time.timestamp);
    let (y, m, d, h) = (
        i64::from(wall.year()),
        i64::from(wall.month()),
        i64::from(wall.day()),
        i64::from(wall.hour()),
    );
    match period {
        Period::Last => nr as i64,
        Period::Hourly => ((y * 100 + m) * 100 + d) * 100 + h,
        Period::Daily => (y * 100 + m) * 100 + d,
        Period::Weekly => {
            let week = wall.date().iso_week_date();
            i64::from(week.year()) * 100 + i64::from(week.week())
        }
        Period::Monthly => y * 100 + m,
        Period::Yearly => y,
    }
}

#[cfg(test)]
mod tests;
