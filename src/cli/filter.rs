//! The snapshot filters (`--host`, `--tag`, `--path`) that every command
//! choosing snapshots takes.

use std::path::PathBuf;

use clap::Args;

use cairn::capture::sources::absolute;
use cairn::rawname::RawName;
use cairn::snapshot::select::Filter;

/// Snapshot filters shared by the commands that choose snapshots.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only snapshots of this host
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Only snapshots with this tag (repeatable: all must match)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only snapshots that include this source path (repeatable)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
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
