//! Naming snapshots and points in time on the command line: `latest`, ids,
//! prefixes, `--at WHEN` and `@WHEN`, and entries rendered for listings.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use clap::Args;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use cairn::browse::{self, kind_name};
use cairn::rawname::RawName;
use cairn::snapshot::Snapshot;
use cairn::snapshot::select::SnapshotRef;
use cairn::store::{LockMode, Store};
use cairn::tree::{Entry, Timespec};
use cairn::when::{self, DayEnd, SnapshotTime};

use super::Ctx;
use super::filter::FilterArgs;

/// `--at WHEN`, for commands that take one snapshot.
#[derive(Debug, Args)]
pub struct AtArgs {
    /// Use the newest snapshot taken at or before WHEN: 2026-02-15 (the end of that day),
    /// "2026-02-15 14:30", 20260215, yesterday, "3 days ago", "2h ago" or RFC 3339
    #[arg(long, value_name = "WHEN", value_parser = at_point)]
    pub at: Option<Timestamp>,
}

/// `[SNAPSHOT] [PATH] [--at WHEN]` plus filters: one path of one snapshot,
/// for `ls` and `cat`.
#[derive(Debug, Args)]
pub struct SnapshotPathArgs {
    /// Snapshot: an id, a unique prefix, `latest` or @WHEN [default: latest]
    /// (leave out with --at; a first word starting with `/` is the PATH)
    #[arg(value_name = "SNAPSHOT")]
    snapshot: Option<OsString>,
    /// Path in the snapshot, absolute as it was captured [default: /]
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    #[command(flatten)]
    at: AtArgs,
    #[command(flatten)]
    filter: FilterArgs,
}

impl SnapshotPathArgs {
    /// Whether a path was given.
    pub fn has_path(&self) -> anyhow::Result<bool> {
        let (_, path) =
            reference_and_path(self.at.at, self.snapshot.as_deref(), self.path.as_deref())?;
        Ok(path.is_some())
    }

    /// Opens the store (shared lock) and resolves the snapshot and the
    /// path's canonical form (`/` if none was given). A snapshot chosen by
    /// time is named on stderr, so that the listing says what it shows.
    pub fn resolve(&self, ctx: &Ctx) -> anyhow::Result<(Store, Snapshot, PathBuf)> {
        let (reference, path) =
            reference_and_path(self.at.at, self.snapshot.as_deref(), self.path.as_deref())?;
        let store = ctx.open(LockMode::Read)?;
        let snapshot = ctx
            .snapshot_list(&store)?
            .resolve(&reference, &self.filter.to_filter()?)?
            .clone();
        if matches!(reference, SnapshotRef::At(_)) && !ctx.quiet {
            say!(
                "cairn: note: showing snapshot {}, taken {}",
                snapshot.id.short(),
                snapshot.record.time.display_local()
            );
        }
        let path = browse::snapshot_path(path.as_deref().unwrap_or(Path::new("/")))?;
        Ok((store, snapshot, path))
    }
}

/// Warns about a `--time` in the future: such a snapshot is `latest` until
/// then, and later snapshots of the same sources are not.
pub fn warn_if_future(time: Option<SnapshotTime>) {
    if let Some(t) = time.filter(|t| t.timestamp > Timestamp::now()) {
        super::output::warn(format_args!(
            "--time {} is in the future: until then this snapshot is `latest`, before any taken later",
            t.display_local()
        ));
    }
}

/// A point for `--at` and `--before`: a bare date is the end of that day.
pub fn at_point(text: &str) -> Result<Timestamp, String> {
    when::parse_point(text, &TimeZone::system(), Timestamp::now(), DayEnd::End)
}

/// A point for `--after`: a bare date is the start of that day.
pub fn after_point(text: &str) -> Result<Timestamp, String> {
    when::parse_point(text, &TimeZone::system(), Timestamp::now(), DayEnd::Start)
}

/// A snapshot reference: `latest`, an id or prefix, or `@WHEN`.
pub fn snapshot_ref(text: &str) -> Result<SnapshotRef, String> {
    match text.strip_prefix('@') {
        Some(point) => at_point(point).map(SnapshotRef::At),
        None => text.parse(),
    }
}

/// The snapshot and path of `cairn ls|cat [SNAPSHOT] [PATH]`: with `--at`
/// the first word is already the path; without a snapshot (or when the only
/// word is an absolute path), `latest`.
/// The first word is a path, any bytes, when no snapshot is named (with
/// `--at`, or starting with `/`); else a snapshot reference, which is text.
pub fn reference_and_path(
    at: Option<Timestamp>,
    first: Option<&OsStr>,
    second: Option<&Path>,
) -> anyhow::Result<(SnapshotRef, Option<std::path::PathBuf>)> {
    match (at, first, second) {
        (Some(t), None, None) => Ok((SnapshotRef::At(t), None)),
        (Some(t), Some(path), None) => Ok((SnapshotRef::At(t), Some(path.into()))),
        (Some(_), _, Some(_)) => Err(both_given()),
        (None, None, _) => Ok((SnapshotRef::Latest, None)),
        (None, Some(path), None) if path.as_bytes().starts_with(b"/") => {
            Ok((SnapshotRef::Latest, Some(path.into())))
        }
        (None, Some(reference), path) => {
            let Some(text) = reference.to_str() else {
                let why = "is not a snapshot (an id, a prefix, latest or @WHEN) nor a path (one starts with /)";
                return Err(super::Usage(format!(
                    "SNAPSHOT {} {why}",
                    RawName::from_os(reference)
                ))
                .into());
            };
            let reference = snapshot_ref(text).map_err(super::Usage)?;
            Ok((reference, path.map(Path::to_owned)))
        }
    }
}

/// The single snapshot of a command taking `SNAPSHOT` or `--at`.
pub fn one(reference: Option<SnapshotRef>, at: Option<Timestamp>) -> anyhow::Result<SnapshotRef> {
    match (reference, at) {
        (Some(r), None) => Ok(r),
        (None, Some(t)) => Ok(SnapshotRef::At(t)),
        (Some(_), Some(_)) => Err(both_given()),
        (None, None) => Err(super::Usage(
            "name a snapshot (an id, a prefix, latest) or pass --at WHEN".to_owned(),
        )
        .into()),
    }
}

/// A SNAPSHOT and `--at` given together: a usage error (exit 2), as every
/// other mistake of the command line.
fn both_given() -> anyhow::Error {
    super::Usage("give either a SNAPSHOT or --at WHEN, not both".to_owned()).into()
}

/// A file time in local time, RFC 3339 with nanoseconds.
pub fn local_time(t: Timespec) -> String {
    Timestamp::new(t.sec, i32::try_from(t.nsec).unwrap_or(0))
        .map(|ts| SnapshotTime::local(ts).to_string())
        .unwrap_or_else(|_| format!("{}.{:09}", t.sec, t.nsec))
}

/// A file time in local time to the second, for tables.
pub fn local_time_short(t: Timespec) -> String {
    Timestamp::new(t.sec, 0)
        .map(|ts| SnapshotTime::local(ts).display_local())
        .unwrap_or_else(|_| t.sec.to_string())
}

/// An entry as listings print it in JSON.
pub fn entry_json(path: &Path, entry: &Entry) -> serde_json::Value {
    let m = &entry.meta;
    let mut value = serde_json::json!({
        "path": RawName::from_path(path),
        "type": kind_name(entry),
        "mode": format!("{:04o}", m.mode),
        "uid": m.uid,
        "gid": m.gid,
        "size": m.size,
        "mtime": local_time(m.mtime),
    });
    if let cairn::tree::Content::Symlink { target } = &entry.content {
        value["target"] = serde_json::json!(target);
    }
    if let Some(db) = entry.database() {
        value["sqlite"] = serde_json::json!({"page_size": db.page_size});
    }
    value
}

/// `ls -l`-style mode: type letter and permission bits.
pub fn mode_string(entry: &Entry) -> String {
    let kind = match kind_name(entry) {
        "dir" => 'd',
        "symlink" => 'l',
        _ => '-',
    };
    let m = entry.meta.mode;
    let mut s = String::from(kind);
    for (shift, special, set_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (m >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, m & special != 0) {
            (true, true) => set_char,
            (false, true) => set_char.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}
