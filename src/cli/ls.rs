//! `cairn ls`: list a directory of a snapshot, like `ls -l`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use cairn::browse::{self, BrowseError, Flow, Node};
use cairn::store::LockMode;
use cairn::tree::{Content, Entry};

use super::Ctx;
use super::choose::{self, AtArgs, entry_json, local_time_short, mode_string};
use super::exit::Exit;
use super::snapshots::FilterArgs;

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Snapshot: an id, a unique prefix, `latest` or @WHEN (leave out with --at)
    #[arg(value_name = "SNAPSHOT")]
    snapshot: Option<String>,
    /// Directory (or file) of the snapshot to list [default: /]
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    #[command(flatten)]
    at: AtArgs,
    /// Show type, mode, owner, size and mtime
    #[arg(long, short = 'l')]
    long: bool,
    /// List everything below the directory
    #[arg(long, short = 'R')]
    recursive: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, args: LsArgs) -> anyhow::Result<Exit> {
    let (reference, path) =
        choose::reference_and_path(args.at.at, args.snapshot.as_deref(), args.path.as_deref())?;
    let store = ctx.open(LockMode::Shared)?;
    let list = ctx.snapshot_list(&store)?;
    let snapshot = list.resolve(&reference, &args.filter.to_filter()?)?;
    let path = browse::snapshot_path(path.as_deref().unwrap_or(Path::new("/")))?;
    let node = browse::lookup(&store, &snapshot.record.tree, &path)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut print = |p: &Path, e: &Entry| print_entry(&mut out, ctx.json, &args, p, e);
    match node {
        Node::Entry(entry) if entry.subtree().is_none() => print(&path, &entry)?,
        node => {
            let tree = node.tree().unwrap_or(snapshot.record.tree);
            let flow = if args.recursive {
                Flow::Descend
            } else {
                Flow::Skip
            };
            browse::walk(&store, &tree, &path, &mut |p, e| print(p, e).map(|()| flow))?;
        }
    }
    out.flush()?;
    Ok(Exit::Ok)
}

fn print_entry(
    out: &mut impl Write,
    json: bool,
    args: &LsArgs,
    path: &Path,
    entry: &Entry,
) -> Result<(), BrowseError> {
    let shown = if args.recursive {
        path.display().to_string()
    } else {
        entry.name.as_path().display().to_string()
    };
    let line = if json {
        entry_json(path, entry).to_string()
    } else if args.long {
        let m = &entry.meta;
        let mut line = format!(
            "{} {:>5} {:>5} {:>12} {} {shown}",
            mode_string(entry),
            m.uid,
            m.gid,
            m.size,
            local_time_short(m.mtime),
        );
        if let Content::Symlink { target } = &entry.content {
            line.push_str(&format!(" -> {}", target.as_path().display()));
        }
        line
    } else {
        shown
    };
    writeln!(out, "{line}").map_err(BrowseError::Output)
}
