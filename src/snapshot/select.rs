//! Choosing snapshots: by reference (`latest`, an id, a unique prefix, the
//! newest at or before a point in time) and by filters (host, tags, paths,
//! time range).

use std::collections::HashSet;
use std::str::FromStr;

use jiff::Timestamp;

use super::Snapshot;
use crate::id::{SnapshotId, is_hex_prefix};
use crate::rawname::RawName;

/// Shortest id prefix accepted.
pub const MIN_PREFIX: usize = 4;

/// How the user names a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotRef {
    /// The newest snapshot (among those the filters keep).
    Latest,
    /// A full id.
    Id(SnapshotId),
    /// A unique prefix of an id.
    Prefix(String),
    /// The newest snapshot taken at or before this instant (`--at`).
    At(Timestamp),
}

impl FromStr for SnapshotRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "latest" {
            return Ok(Self::Latest);
        }
        let lower = text.to_ascii_lowercase();
        if !is_hex_prefix(&lower) || lower.len() > 64 {
            return Err(format!(
                "{text:?} is not a snapshot: give an id, a prefix of at least {MIN_PREFIX} hex digits, or `latest`"
            ));
        }
        if lower.len() < MIN_PREFIX {
            return Err(format!(
                "snapshot prefix {text:?} is too short: give at least {MIN_PREFIX} hex digits"
            ));
        }
        Ok(match lower.parse::<SnapshotId>() {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Prefix(lower),
        })
    }
}

/// Which snapshots a command considers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this host.
    pub host: Option<String>,
    /// Only snapshots carrying every one of these tags.
    pub tags: Vec<String>,
    /// Only snapshots whose source paths include every one of these.
    pub paths: Vec<RawName>,
    /// Only snapshots taken at or before this instant.
    pub before: Option<Timestamp>,
    /// Only snapshots taken at or after this instant.
    pub after: Option<Timestamp>,
}

impl Filter {
    /// Whether this filter keeps everything.
    pub fn is_empty(&self) -> bool {
        self.host.is_none()
            && self.tags.is_empty()
            && self.paths.is_empty()
            && self.before.is_none()
            && self.after.is_none()
    }

    /// Whether `s` passes every filter.
    pub fn matches(&self, s: &Snapshot) -> bool {
        let r = &s.record;
        self.host.as_ref().is_none_or(|h| &r.host == h)
            && self.tags.iter().all(|t| r.tags.contains(t))
            && self.paths.iter().all(|p| r.paths.contains(p))
            && self.before.is_none_or(|t| r.time.timestamp <= t)
            && self.after.is_none_or(|t| r.time.timestamp >= t)
    }
}

/// Why a reference names no single snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// The store (or the filtered set) is empty.
    #[error("there are no snapshots{0}")]
    Empty(&'static str),
    /// No id matches.
    #[error("no snapshot {0}")]
    NotFound(String),
    /// The id names a record file that is damaged.
    #[error("snapshot record {key} is damaged: {cause}")]
    Damaged {
        /// The record's store key.
        key: String,
        /// Why it does not read.
        cause: String,
    },
    /// `--at` names a time before every (matching) snapshot.
    #[error("no snapshot{filtered} was taken at or before {at}; {}", match oldest {
        Some(o) => format!("the oldest is {o}"),
        None => "there are none".to_owned(),
    })]
    NothingAt {
        /// The time asked for, in local time.
        at: String,
        /// " matching the filters", or nothing.
        filtered: &'static str,
        /// The oldest snapshot that would match, as "ID taken TIME".
        oldest: Option<String>,
    },
    /// Several ids share the prefix.
    #[error("snapshot prefix {prefix} is ambiguous: it matches {}", candidates.join(", "))]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// Matching ids.
        candidates: Vec<String>,
    },
}

/// The snapshots among `snapshots` that have a repaired copy there (a
/// record written by `repair snapshots` whose `repaired_from` names them).
/// A copy has its original's time, host, paths and tags, so the two tie in
/// every choice by time; the copy is the one that restores without errors.
pub fn superseded(snapshots: &[Snapshot]) -> HashSet<SnapshotId> {
    snapshots
        .iter()
        .filter_map(|s| s.record.summary.repaired_from)
        .collect()
}

/// Resolves `reference` among `snapshots` (sorted oldest first). `latest`
/// and a time pass over a snapshot that has a repaired copy (see
/// [`superseded`]); an id or prefix names exactly what it names.
pub fn resolve<'a>(
    snapshots: &'a [Snapshot],
    reference: &SnapshotRef,
    filter: &Filter,
) -> Result<&'a Snapshot, SelectError> {
    let mut kept = snapshots.iter().filter(|s| filter.matches(s));
    let filtered = if snapshots.is_empty() {
        ""
    } else {
        " matching the filters"
    };
    let superseded = match reference {
        SnapshotRef::Latest | SnapshotRef::At(_) => superseded(snapshots),
        _ => HashSet::new(),
    };
    let by_time = |s: &&Snapshot| !superseded.contains(&s.id);
    match reference {
        SnapshotRef::Latest => kept.rfind(by_time).ok_or(SelectError::Empty(filtered)),
        SnapshotRef::At(at) => {
            let all: Vec<&Snapshot> = kept.filter(by_time).collect();
            let found = all.iter().rev().find(|s| s.record.time.timestamp <= *at);
            found.copied().ok_or_else(|| SelectError::NothingAt {
                at: crate::when::SnapshotTime::local(*at).display_local(),
                filtered: if filter.is_empty() {
                    ""
                } else {
                    " matching the filters"
                },
                oldest: all
                    .first()
                    .map(|s| format!("{} taken {}", s.id.short(), s.record.time.display_local())),
            })
        }
        SnapshotRef::Id(id) => kept
            .find(|s| s.id == *id)
            .ok_or_else(|| SelectError::NotFound(id.to_string())),
        SnapshotRef::Prefix(prefix) => {
            let found: Vec<&Snapshot> =
                kept.filter(|s| s.id.to_hex().starts_with(prefix)).collect();
            match found.as_slice() {
                [one] => Ok(one),
                [] => Err(SelectError::NotFound(prefix.clone())),
                many => Err(SelectError::Ambiguous {
                    prefix: prefix.clone(),
                    candidates: many.iter().map(|s| s.id.to_hex()).collect(),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_latest_ids_and_prefixes() {
        assert_eq!(
            "latest".parse::<SnapshotRef>().unwrap(),
            SnapshotRef::Latest
        );
        assert_eq!(
            "ABCD".parse::<SnapshotRef>().unwrap(),
            SnapshotRef::Prefix("abcd".into())
        );
        let id = SnapshotId::of(b"x");
        assert_eq!(
            id.to_hex().parse::<SnapshotRef>().unwrap(),
            SnapshotRef::Id(id)
        );
        assert!(
            "abc"
                .parse::<SnapshotRef>()
                .unwrap_err()
                .contains("too short")
        );
        assert!("xyz1".parse::<SnapshotRef>().is_err());
    }
}
