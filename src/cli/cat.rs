//! `cairn cat`: one file of a snapshot to stdout, streamed and verified.

use clap::Args;

use cairn::browse::{self, BrowseError, Node};
use cairn::outcome::Outcome;

use super::Ctx;
use super::choose::SnapshotPathArgs;
use super::stdout::Out;

#[derive(Debug, Args)]
pub struct CatArgs {
    #[command(flatten)]
    target: SnapshotPathArgs,
}

pub fn run(ctx: &Ctx, args: CatArgs) -> anyhow::Result<Outcome> {
    if !args.target.has_path()? {
        return Err(
            super::Usage("name the file to print: cairn cat [SNAPSHOT] PATH".to_owned()).into(),
        );
    }
    let (store, snapshot, path) = args.target.resolve(ctx)?;
    let entry = match browse::lookup(&store, &snapshot.record.tree, &path)? {
        Node::Entry(entry) => entry,
        Node::Root(_) => {
            return Err(BrowseError::NotAFile { path, kind: "dir" }.into());
        }
    };
    let mut out = Out::streaming();
    browse::write_content(&store, &path, &entry, &mut out)?;
    out.finish()?;
    Ok(Outcome::Done)
}
