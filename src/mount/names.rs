//! The mount's namespace above the snapshots, as a pure function of the
//! snapshot list and the time zone:
//!
//! ```text
//! snapshots/2026-02-15T02:30:00_4acb031c/   one per snapshot (local time), `latest` -> the newest
//! by-date/2026/02/15/2026-02-15T02:30:00_4acb031c/   the snapshots taken that day
//! by-date/2026-02-15/                        the newest at or before the end of that day (@WHEN)
//! hosts/HOST/...  tags/TAG/...               the same per host and per tag, each with `latest`
//! ```
//!
//! A day name is looked up with the same rule as `--at 2026-02-15`, so any
//! date resolves (to the last snapshot before it), not only listed ones.
//! `latest` and dates pass over snapshots that have a repaired copy, as
//! everywhere else ([`select::resolve`]). Hosts and tags that are not
//! usable as a file name (empty, `.`, `..`, holding `/` or NUL) are left
//! out of `hosts/` and `tags/`; their snapshots are still in `snapshots/`.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::rawname::RawName;
use crate::snapshot::Snapshot;
use crate::snapshot::select::{self, Filter, SnapshotRef};
use crate::when::{self, DayEnd};

/// A directory of the namespace (everything that is not inside a snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dir {
    /// The mount point.
    Root,
    /// `snapshots/`.
    Snapshots,
    /// `by-date/`.
    ByDate,
    /// `by-date/YYYY/`.
    Year(i16),
    /// `by-date/YYYY/MM/`.
    Month(i16, i8),
    /// `by-date/YYYY/MM/DD/`.
    Day(i16, i8, i8),
    /// `hosts/`.
    Hosts,
    /// `hosts/HOST/`.
    Host(String),
    /// `tags/`.
    Tags,
    /// `tags/TAG/`.
    Tag(String),
}

impl Dir {
    /// Its path below the mount point (`by-date/2026/02/15`; empty for the root).
    pub fn path(&self) -> String {
        match self {
            Dir::Root => String::new(),
            Dir::Snapshots => "snapshots".into(),
            Dir::ByDate => "by-date".into(),
            Dir::Year(y) => format!("by-date/{y:04}"),
            Dir::Month(y, m) => format!("by-date/{y:04}/{m:02}"),
            Dir::Day(y, m, d) => format!("by-date/{y:04}/{m:02}/{d:02}"),
            Dir::Hosts => "hosts".into(),
            Dir::Host(h) => format!("hosts/{h}"),
            Dir::Tags => "tags".into(),
            Dir::Tag(t) => format!("tags/{t}"),
        }
    }
}

/// What a name in a namespace directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Child {
    /// Another namespace directory.
    Dir(Dir),
    /// A snapshot's root directory: the index into [`Namespace::snapshots`].
    Snapshot(usize),
    /// The `latest` symlink of a directory, with its target.
    Latest(String),
}

/// The name `latest` links carry.
pub const LATEST: &str = "latest";

/// The namespace built from one snapshot list.
#[derive(Debug)]
pub struct Namespace {
    snapshots: Vec<Snapshot>,
    names: Vec<String>,
    by_name: HashMap<String, usize>,
    days: BTreeMap<(i16, i8, i8), Vec<usize>>,
    hosts: BTreeMap<String, Vec<usize>>,
    tags: BTreeMap<String, Vec<usize>>,
    tz: TimeZone,
}

impl Namespace {
    /// The namespace of the snapshots `filter` keeps, named in `tz`.
    pub fn build(all: Vec<Snapshot>, filter: &Filter, tz: TimeZone) -> Self {
        let snapshots: Vec<Snapshot> = all.into_iter().filter(|s| filter.matches(s)).collect();
        let mut ns = Namespace {
            snapshots: Vec::new(),
            names: Vec::new(),
            by_name: HashMap::new(),
            days: BTreeMap::new(),
            hosts: BTreeMap::new(),
            tags: BTreeMap::new(),
            tz,
        };
        for (i, s) in snapshots.iter().enumerate() {
            let name = ns.name_of(s);
            ns.by_name.insert(name.clone(), i);
            ns.names.push(name);
            ns.days.entry(ns.day_of(s)).or_default().push(i);
            if is_file_name(&s.record.host) {
                ns.hosts.entry(s.record.host.clone()).or_default().push(i);
            }
            for tag in s.record.tags.iter().filter(|t| is_file_name(t)) {
                ns.tags.entry(tag.clone()).or_default().push(i);
            }
        }
        ns.snapshots = snapshots;
        ns
    }

    /// The snapshots, oldest first.
    pub fn snapshots(&self) -> &[Snapshot] {
        &self.snapshots
    }

    /// The directory name of snapshot `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// `2026-02-15T02:30:00_4acb031c`: local time, sortable, and the short id.
    fn name_of(&self, s: &Snapshot) -> String {
        let local = s.record.time.timestamp.to_zoned_datetime(self.tz.clone());
        format!("{}_{}", local.strftime("%Y-%m-%dT%H:%M:%S"), s.id.short())
    }

    fn day_of(&self, s: &Snapshot) -> (i16, i8, i8) {
        let date = s
            .record
            .time
            .timestamp
            .to_zoned_datetime(self.tz.clone())
            .date();
        (date.year(), date.month(), date.day())
    }

    /// Everything in `dir`, sorted by name.
    pub fn children(&self, dir: &Dir) -> Vec<(String, Child)> {
        let mut out = match dir {
            Dir::Root => ["snapshots", "by-date", "hosts", "tags"]
                .iter()
                .filter_map(|n| Some((n.to_string(), self.lookup(dir, n)?)))
                .collect(),
            Dir::Snapshots => {
                self.with_latest((0..self.snapshots.len()).collect(), &Filter::default())
            }
            Dir::ByDate => self.by_date(),
            Dir::Year(y) => self
                .periods(|&(yy, m, _)| (yy == *y).then(|| (format!("{m:02}"), Dir::Month(yy, m)))),
            Dir::Month(y, m) => self.periods(|&(yy, mm, d)| {
                (yy == *y && mm == *m).then(|| (format!("{d:02}"), Dir::Day(yy, mm, d)))
            }),
            Dir::Day(y, m, d) => self.listed(self.days.get(&(*y, *m, *d))),
            Dir::Hosts => keys(&self.hosts, Dir::Host),
            Dir::Host(h) => self.with_latest(
                self.hosts.get(h).cloned().unwrap_or_default(),
                &host_filter(h),
            ),
            Dir::Tags => keys(&self.tags, Dir::Tag),
            Dir::Tag(t) => self.with_latest(
                self.tags.get(t).cloned().unwrap_or_default(),
                &tag_filter(t),
            ),
        };
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }

    /// The name `name` in `dir`, if it exists.
    pub fn lookup(&self, dir: &Dir, name: &str) -> Option<Child> {
        match dir {
            Dir::Root => match name {
                "snapshots" => Some(Child::Dir(Dir::Snapshots)),
                "by-date" => Some(Child::Dir(Dir::ByDate)),
                "hosts" => Some(Child::Dir(Dir::Hosts)),
                "tags" => Some(Child::Dir(Dir::Tags)),
                _ => None,
            },
            Dir::ByDate => self.date_lookup(name),
            _ => self
                .children(dir)
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| c),
        }
    }

    /// `by-date/`: the years, and each day that has a snapshot as `YYYY-MM-DD`.
    fn by_date(&self) -> Vec<(String, Child)> {
        let mut out = self.periods(|&(y, _, _)| Some((format!("{y:04}"), Dir::Year(y))));
        for (y, m, d) in self.days.keys() {
            if let Some(child) = self.date_lookup(&format!("{y:04}-{m:02}-{d:02}")) {
                out.push((format!("{y:04}-{m:02}-{d:02}"), child));
            }
        }
        out
    }

    /// A year directory, or a date resolved as `--at DATE` resolves it.
    fn date_lookup(&self, name: &str) -> Option<Child> {
        if name.len() == 4 {
            let year: i16 = name.parse().ok()?;
            return self
                .days
                .keys()
                .any(|k| k.0 == year)
                .then_some(Child::Dir(Dir::Year(year)));
        }
        if name.len() != 10 || name.parse::<Date>().is_err() {
            return None;
        }
        let end = when::parse_point(name, &self.tz, Timestamp::now(), DayEnd::End).ok()?;
        self.resolve(&SnapshotRef::At(end), &Filter::default())
            .map(Child::Snapshot)
    }

    /// The index of the snapshot `reference` names among those `filter` keeps.
    fn resolve(&self, reference: &SnapshotRef, filter: &Filter) -> Option<usize> {
        let found = select::resolve(&self.snapshots, reference, filter).ok()?;
        self.by_name.get(&self.name_of(found)).copied()
    }

    /// Snapshots `indices` by name, plus `latest` among those `filter` keeps.
    fn with_latest(&self, indices: Vec<usize>, filter: &Filter) -> Vec<(String, Child)> {
        let mut out = self.listed(Some(&indices));
        if let Some(newest) = self.resolve(&SnapshotRef::Latest, filter) {
            out.push((LATEST.into(), Child::Latest(self.names[newest].clone())));
        }
        out
    }

    fn listed(&self, indices: Option<&Vec<usize>>) -> Vec<(String, Child)> {
        indices
            .into_iter()
            .flatten()
            .map(|&i| (self.names[i].clone(), Child::Snapshot(i)))
            .collect()
    }

    /// One directory per distinct period `pick` finds among the days.
    fn periods(
        &self,
        pick: impl Fn(&(i16, i8, i8)) -> Option<(String, Dir)>,
    ) -> Vec<(String, Child)> {
        self.days
            .keys()
            .filter_map(pick)
            .map(|(name, dir)| (name, Child::Dir(dir)))
            .collect()
    }
}

fn keys(map: &BTreeMap<String, Vec<usize>>, dir: fn(String) -> Dir) -> Vec<(String, Child)> {
    map.keys()
        .map(|k| (k.clone(), Child::Dir(dir(k.clone()))))
        .collect()
}

fn host_filter(host: &str) -> Filter {
    Filter {
        host: Some(host.to_owned()),
        ..Filter::default()
    }
}

fn tag_filter(tag: &str) -> Filter {
    Filter {
        tags: vec![tag.to_owned()],
        ..Filter::default()
    }
}

/// Whether `name` can be a directory entry: a plain name, and no longer
/// than a file system takes (a record written before tags were limited,
/// or by something else, with a tag of 5,000 bytes made all of `tags/`
/// fail to list; such snapshots stay in `snapshots/`).
fn is_file_name(name: &str) -> bool {
    name.len() <= crate::snapshot::MAX_LABEL
        && RawName::from_bytes(name.as_bytes().to_vec()).is_valid_entry_name()
}

#[cfg(test)]
#[path = "names_tests.rs"]
mod tests;
