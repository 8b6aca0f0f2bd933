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
    /// Run PRAGMA integrity_check on every restored SQLite database (exit 4 if one fails)
    #[arg(long)]
    check: bool,
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
    let checks = if args.check {
        check_databases(&outcome.databases)
    } else {
        Vec::new()
    };
    if ctx.json {
        let checked: Vec<_> = checks
            .iter()
            .map(|(p, r)| {
                let error = r.as_ref().err().map(ToString::to_string);
                serde_json::json!({"path": RawName::from_path(p), "ok": error.is_none(), "error": error})
            })
            .collect();
        let stale: Vec<_> = outcome
            .stale_removed
            .iter()
            .map(|p| RawName::from_path(p))
            .collect();
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
            "databases": outcome.databases.len(),
            "stale_side_files_removed": stale,
            "checked": checked,
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
        for path in &outcome.stale_removed {
            println!(
                "  removed stale {} (from an older database)",
                path.display()
            );
        }
        for (path, result) in &checks {
            if result.is_ok() {
                println!("  integrity_check ok: {}", path.display());
            }
        }
    }
    let damaged: Vec<_> = checks
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    for e in &damaged {
        eprintln!("cairn: DAMAGED: {e}");
    }
    if !outcome.failed.is_empty() {
        for (path, error) in &outcome.failed {
            eprintln!("cairn: error: {}: {error}", path.display());
        }
        bail!("{} item(s) could not be restored", outcome.failed.len());
    }
    if !damaged.is_empty() {
        eprintln!(
            "cairn: {} restored database(s) failed PRAGMA integrity_check",
            damaged.len()
        );
        return Ok(Exit::Damage);
    }
    Ok(Exit::Ok)
}

type CheckResult = Result<(), cairn::database::CheckError>;

/// Checks each restored database, in parallel (each check reads the whole file).
fn check_databases(paths: &[PathBuf]) -> Vec<(PathBuf, CheckResult)> {
    use rayon::prelude::*;
    paths
        .par_iter()
        .map(|p| (p.clone(), cairn::database::integrity_check(p)))
        .collect()
}
