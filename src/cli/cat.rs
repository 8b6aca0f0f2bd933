//! `cairn cat`: one file of a snapshot to stdout, streamed and verified.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::Args;

use cairn::browse::{self, BrowseError, Node};
use cairn::store::LockMode;

use super::Ctx;
use super::choose::{self, AtArgs};
use super::exit::Exit;
use super::snapshots::FilterArgs;

#[derive(Debug, Args)]
pub struct CatArgs {
    /// Snapshot: an id, a unique prefix, `latest` or @WHEN (leave out with --at)
    #[arg(value_name = "SNAPSHOT")]
    snapshot: Option<String>,
    /// The file, by its absolute path as snapshotted
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    #[command(flatten)]
    at: AtArgs,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, args: CatArgs) -> anyhow::Result<Exit> {
    let (reference, path) =
        choose::reference_and_path(args.at.at, args.snapshot.as_deref(), args.path.as_deref())?;
    let Some(path) = path else {
        anyhow::bail!("name the file to print: cairn cat SNAPSHOT PATH");
    };
    let store = ctx.open(LockMode::Shared)?;
    let list = ctx.snapshot_list(&store)?;
    let snapshot = list.resolve(&reference, &args.filter.to_filter()?)?;
    let path = browse::snapshot_path(&path)?;
    let entry = match browse::lookup(&store, &snapshot.record.tree, &path)? {
        Node::Entry(entry) => entry,
        Node::Root(_) => {
            return Err(BrowseError::NotAFile { path, kind: "dir" }.into());
        }
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    browse::write_content(&store, &path, &entry, &mut out)?;
    out.flush()?;
    Ok(Exit::Ok)
}
