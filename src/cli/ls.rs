//! `cairn ls`: list a directory of a snapshot, like `ls -l`.

use std::io::Write;
use std::path::Path;

use clap::Args;

use cairn::bound::Budget;
use cairn::browse::{self, BrowseError, Flow, Node};
use cairn::outcome::Outcome;
use cairn::owners::Accounts;
use cairn::rawname::escaped;
use cairn::tree::{Content, Entry};

use super::Ctx;
use super::choose::{SnapshotPathArgs, entry_json, local_time_short, mode_string};
use super::stdout::Out;

#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    target: SnapshotPathArgs,
    /// Show type, mode, owner (the name the snapshot recorded, else this machine's), size and mtime
    #[arg(long, short = 'l')]
    long: bool,
    /// List everything below the directory
    #[arg(long, short = 'R')]
    recursive: bool,
}

pub fn run(ctx: &Ctx, args: LsArgs) -> anyhow::Result<Outcome> {
    let (store, snapshot, path) = args.target.resolve(ctx)?;
    let node = browse::lookup(&store, &snapshot.record.tree, &path)?;
    let mut out = Out::streaming();
    let names = args.long.then(Accounts::of_host).unwrap_or_default();
    let mut print = |p: &Path, e: &Entry| print_entry(&mut out, ctx.json, &args, &names, p, e);
    match node {
        Node::Entry(entry) if entry.subtree().is_none() => print(&path, &entry)?,
        node => {
            let tree = node.tree().unwrap_or(snapshot.record.tree);
            let flow = if args.recursive {
                Flow::Descend
            } else {
                Flow::Skip
            };
            let mut budget = Budget::of(&snapshot);
            browse::walk(&store, &tree, &path, &mut budget, &mut |p, e| {
                print(p, e).map(|()| flow)
            })?;
        }
    }
    out.finish()?;
    Ok(Outcome::Done)
}

fn print_entry(
    out: &mut impl Write,
    json: bool,
    args: &LsArgs,
    names: &Accounts,
    path: &Path,
    entry: &Entry,
) -> Result<(), BrowseError> {
    let shown = if args.recursive {
        escaped(path).to_string()
    } else {
        entry.name.to_string()
    };
    let line = if json {
        entry_json(path, entry).to_string()
    } else if args.long {
        let m = &entry.meta;
        let mut line = format!(
            "{} {:<8} {:<8} {:>12} {} {shown}",
            mode_string(entry),
            names.show_user(m.user.as_ref(), m.uid),
            names.show_group(m.group.as_ref(), m.gid),
            m.size,
            local_time_short(m.mtime),
        );
        if let Content::Symlink { target } = &entry.content {
            line.push_str(&format!(" -> {target}"));
        }
        line
    } else {
        shown
    };
    writeln!(out, "{line}").map_err(BrowseError::Output)
}
