//! `cairn repair catalog|snapshots`: rebuild the catalog, or salvage a
//! damaged store into new snapshot records. Nothing is ever deleted:
//! damaged packs go to `quarantine/`, original records stay.

use std::io::{self, Write};

use clap::{Args, Subcommand};

use cairn::outcome::Outcome;
use cairn::progress::Progress;
use cairn::repair::snapshots::{RepairReport, repair};

use super::output::{plural, snapshots_named, some_paths, warn};
use super::progress;
use super::stdout::Out;
use super::{Ctx, print_json};

#[derive(Debug, Args)]
pub struct RepairCommand {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Rebuild catalog.db from the pack headers and snapshots/
    #[command(after_help = "Example:
  cairn repair catalog")]
    Catalog,
    /// Re-point, salvage and quarantine damaged data, and write new
    /// snapshot records without what is lost (the originals are kept)
    #[command(after_help = "Examples:
  cairn repair snapshots --dry-run
  cairn repair snapshots")]
    Snapshots {
        /// Show what would be done; change nothing
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(ctx: &Ctx, command: RepairCommand) -> anyhow::Result<Outcome> {
    let mut store = ctx.open(ctx.rewrite_lock())?;
    // On a remote store, a repair acts like a prune: alone, under the lease.
    let _lease = match store.backend().is_remote() {
        true => Some(cairn::prune::lease::Lease::acquire(
            store.backend(),
            &cairn::capture::default_host(),
        )?),
        false => None,
    };
    match command.what {
        What::Catalog => {
            let report = store.rebuild_catalog()?;
            for (key, cause) in &report.unreadable {
                warn(format_args!("{key} left out of the catalog: {cause}"));
            }
            let committed = Some("the rebuilt catalog".to_owned());
            Out::deferring().report(Outcome::Done, committed, |out| {
                if ctx.json {
                    let json = serde_json::json!({
                        "index_objects": report.indexes,
                        "packs": report.packs + report.from_headers,
                        "packs_from_headers": report.from_headers,
                        "unreadable": report.unreadable,
                    });
                    print_json(out, &json)
                } else if !ctx.quiet {
                    writeln!(out, "rebuilt the catalog from {}", report.describe())
                } else {
                    Ok(())
                }
            })
        }
        What::Snapshots { dry_run } => {
            let progress = Progress::default();
            let units = progress::Units {
                items: "snapshots/packs checked",
                bytes: "",
            };
            let report = progress::run(
                ctx.progress(),
                &progress,
                units,
                |_| String::new(),
                |_| repair(&mut store, dry_run, &progress),
            )?;
            if let Some(old) = report.upgraded_from {
                super::snapshot::announce_upgrade(&store, old);
            }
            Out::deferring().report(Outcome::Done, committed(&report), |out| {
                if ctx.json {
                    print_json(out, &report)
                } else if !ctx.quiet {
                    print_report(out, &report)
                } else {
                    Ok(())
                }
            })
        }
    }
}

/// What a repair committed, for the message when its report is lost.
fn committed(r: &RepairReport) -> Option<String> {
    let new: Vec<_> = r.snapshots.iter().filter_map(|s| s.new).collect();
    if r.dry_run || (new.is_empty() && nothing_repaired(r)) {
        return None;
    }
    Some(match new.is_empty() {
        true => "the repair".to_owned(),
        false => format!("the repair (new records: {})", snapshots_named(&new)),
    })
}

fn nothing_repaired(r: &RepairReport) -> bool {
    r.snapshots.is_empty()
        && r.mended_records.is_empty()
        && r.quarantined.is_empty()
        && r.missing_packs.is_empty()
        && r.repointed == 0
}

/// Lost paths a repaired snapshot's line names (one lost pack of a real
/// store can hold thousands of files; `--json` lists the first 1000).
const PATHS_SHOWN: usize = 10;

fn print_report(out: &mut Out, r: &RepairReport) -> io::Result<()> {
    let would = if r.dry_run { "would " } else { "" };
    if r.repointed > 0 {
        writeln!(
            out,
            "{would}re-point {} to intact copies in other packs",
            plural(r.repointed, "lost blob")
        )?;
    }
    for id in &r.quarantined {
        writeln!(
            out,
            "{would}move damaged pack {} to quarantine/",
            id.short()
        )?;
    }
    for id in &r.missing_packs {
        writeln!(
            out,
            "{would}drop missing pack {} from the catalog",
            id.short()
        )?;
    }
    if r.salvaged_blobs > 0 {
        writeln!(
            out,
            "salvaged {} from damaged packs",
            plural(r.salvaged_blobs, "intact blob")
        )?;
    }
    for s in &r.snapshots {
        let paths = some_paths(&s.lost, s.lost_count, PATHS_SHOWN);
        match s.new {
            Some(new) => writeln!(
                out,
                "snapshot {} repaired as {}; left out {}: {}",
                s.original.short(),
                new.short(),
                plural(s.lost_count, "path"),
                paths
            )?,
            None => writeln!(
                out,
                "snapshot {} {would}lose {}: {}",
                s.original.short(),
                plural(s.lost_count, "path"),
                paths
            )?,
        }
    }
    for key in &r.mended_records {
        match r.dry_run {
            true => writeln!(
                out,
                "{key} is damaged: would write back the copy this host checked"
            )?,
            false => writeln!(
                out,
                "{key} was damaged: wrote back the copy this host checked"
            )?,
        }
    }
    for key in &r.damaged_records {
        writeln!(
            out,
            "{key} is damaged and cannot be repaired: forget it with `cairn forget ID`"
        )?;
    }
    for id in &r.refused_snapshots {
        writeln!(
            out,
            "snapshot {} has trees no reader expands (see `cairn verify`) and cannot be repaired: forget it with `cairn forget ID`",
            id.short()
        )?;
    }
    if nothing_repaired(r) {
        writeln!(out, "nothing to repair")?;
    } else if !r.snapshots.is_empty() && !r.dry_run {
        writeln!(
            out,
            "the original snapshots are kept; forget them once the repaired ones suffice"
        )?;
    }
    Ok(())
}
