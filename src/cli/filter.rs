//! The snapshot filters (`--host`, `--tag`, `--path`) that every command
//! choosing snapshots takes.

use std::path::PathBuf;

use clap::Args;

use cairn::capture::sources::absolute;
use cairn::rawname::{RawName, escaped};
use cairn::snapshot::SnapshotList;
use cairn::snapshot::select::{Filter, SelectError, SnapshotRef};

use super::output::some_paths;

/// Snapshot filters shared by the commands that choose snapshots.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only snapshots of this host
    #[arg(long, value_name = "HOST", value_parser = given)]
    pub host: Option<String>,
    /// Only snapshots with this tag (repeatable: all must match)
    #[arg(long = "tag", value_name = "TAG", value_parser = given)]
    pub tags: Vec<String>,
    /// Only snapshots that include this source path (repeatable)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// A host or tag to filter by: an empty one matched no snapshot, so that a
/// nightly `forget --host "$HOST"` whose variable was unset forgot nothing
/// and said nothing (exit 2 now, as for `snapshot --host ''`).
fn given(text: &str) -> Result<String, String> {
    match text.trim().is_empty() {
        true => Err("must not be empty".to_owned()),
        false => Ok(text.to_owned()),
    }
}

impl FilterArgs {
    pub fn to_filter(&self) -> anyhow::Result<Filter> {
        let paths = self
            .paths
            .iter()
            .map(|p| Ok(RawName::from_path(&absolute(p)?)))
            .collect::<std::io::Result<_>>()?;
        Ok(Filter {
            host: self.host.clone(),
            tags: self.tags.clone(),
            paths,
            before: None,
            after: None,
        })
    }
}

/// The filters for snapshots named on the command line of a command that
/// changes them (`forget`, `protect`, `unprotect`): those given for an id;
/// for a date or `latest`, also this host unless `--host` or `--all-hosts`
/// say otherwise, as a retention policy chooses (`forget @2026-02-15`
/// forgot another host's snapshot of that night).
pub struct NamedScope {
    given: Filter,
    by_time: Filter,
}

impl NamedScope {
    pub fn new(filter: &FilterArgs, all_hosts: bool) -> anyhow::Result<Self> {
        let given = filter.to_filter()?;
        let mut by_time = given.clone();
        if by_time.host.is_none() && !all_hosts {
            by_time.host = Some(cairn::capture::default_host());
        }
        Ok(Self { given, by_time })
    }

    /// The filter that `reference` chooses among.
    pub fn for_ref(&self, reference: &SnapshotRef) -> &Filter {
        match reference {
            SnapshotRef::Latest | SnapshotRef::At(_) => &self.by_time,
            _ => &self.given,
        }
    }
}

/// "no snapshot ID" for an id that names a snapshot the filters leave out
/// (`--host`, `--tag`, `--path`, a profile's paths) says so instead.
pub fn outside_filters(
    list: &SnapshotList,
    reference: &SnapshotRef,
    e: SelectError,
) -> anyhow::Error {
    let unfiltered = list.resolve(reference, &Filter::default());
    match (&e, unfiltered, reference) {
        (SelectError::NotFound(_), Ok(found), SnapshotRef::Id(_) | SnapshotRef::Prefix(_)) => {
            anyhow::anyhow!(
                "snapshot {} (host {}, paths {}) does not match the filters given (--host, --tag, --path, or the profile's paths): nothing was done",
                found.id.short(),
                escaped(&found.record.host),
                some_paths(&found.record.paths, found.record.paths.len() as u64, 5)
            )
        }
        _ => e.into(),
    }
}
