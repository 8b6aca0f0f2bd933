//! `cairn restore`: put a snapshot back into a directory.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use cairn::progress::Progress;
use cairn::rawname::RawName;
use cairn::restore::{self, RestoreOptions};
use cairn::snapshot::select::SnapshotRef;
use cairn::store::LockMode;

use super::exit::Exit;
use super::output::{human_bytes, with_progress};
use super::snapshots::FilterArgs;
use super::{Ctx, print_json};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot: an id, a unique prefix of at least 4 hex digits, or `latest`
    #[arg(value_name = "SNAPSHOT")]
    snapshot: SnapshotRef,
    /// Directory to restore into (each source path is recreated under it)
    #[arg(long, value_name = "DIR")]
    target: PathBuf,
    /// Replace files that already exist in the target
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, args: RestoreArgs) -> anyhow::Result<Exit> {
    let filter = args.filter.to_filter()?;
    let store = ctx.open(LockMode::Shared)?;
    let list = ctx.snapshot_list(&store)?;
    let snapshot = list.resolve(&args.snapshot, &filter)?;
    let options = RestoreOptions {
        target: args.target,
        overwrite: args.overwrite,
    };
    let plan = restore::plan(&store, snapshot, &options)?;
    let total = plan.bytes;
    let progress = Progress::default();
    let outcome = with_progress(
        &progress,
        ctx.wants_progress(),
        |p| {
            let (files, bytes, _) = p.read();
            format!(
                "{files} files, {} of {}",
                human_bytes(bytes),
                human_bytes(total)
            )
        },
        |_| restore::execute(&store, plan, &options, &progress),
    )?;
    if ctx.json {
        let failed: Vec<_> = outcome
            .failed
            .iter()
            .map(|(p, e)| serde_json::json!({"path": RawName::from_path(p), "error": e}))
            .collect();
        print_json(&serde_json::json!({
            "snapshot": snapshot.id.to_hex(),
            "target": RawName::from_path(&options.target),
            "files": outcome.files,
            "dirs": outcome.dirs,
            "symlinks": outcome.symlinks,
            "bytes": outcome.bytes,
            "failed": failed,
        }))?;
    } else if !ctx.quiet {
        println!(
            "restored snapshot {} to {}: {} files, {} dirs, {} symlinks, {}",
            snapshot.id.short(),
            options.target.display(),
            outcome.files,
            outcome.dirs,
            outcome.symlinks,
            human_bytes(outcome.bytes)
        );
    }
    if !outcome.failed.is_empty() {
        for (path, error) in &outcome.failed {
            eprintln!("cairn: error: {}: {error}", path.display());
        }
        bail!("{} item(s) could not be restored", outcome.failed.len());
    }
    Ok(Exit::Ok)
}
