//! `cairn prune`: delete the data no snapshot needs any more.

use std::io::{self, Write};

use clap::Args;

use cairn::id::SnapshotId;
use cairn::progress::Progress;
use cairn::prune::{self, Plan, PruneOptions, RepackRule, Report};
use cairn::store::Store;

use super::exit::Exit;
use super::output::{human_bytes, warn, with_progress};
use super::stdout::Out;
use super::{Ctx, print_json};

/// How prune repacks; shared with `forget --prune`.
#[derive(Debug, Args)]
pub struct PruneOptionArgs {
    /// Repack the emptiest packs until at most PERCENT of the store's pack
    /// bytes are unused (0 removes all unused space) [default: repack each
    /// pack more than 20% unused]
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    max_unused: Option<f64>,
    /// On a remote store: how long a pack condemned by one prune waits
    /// before a later prune deletes it (longer than the longest snapshot)
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = cairn::when::parse_duration)]
    grace: std::time::Duration,
}

impl PruneOptionArgs {
    fn options(&self, assume_forgotten: &[SnapshotId], dry_run: bool) -> PruneOptions {
        let defaults = PruneOptions::default();
        PruneOptions {
            repack: self
                .max_unused
                .map_or(defaults.repack, RepackRule::StoreWide),
            assume_forgotten: assume_forgotten.iter().copied().collect(),
            dry_run,
            grace: self.grace,
            host: cairn::capture::default_host(),
        }
    }
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Show what would be deleted and repacked; change nothing
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    options: PruneOptionArgs,
}

pub fn run(ctx: &Ctx, args: PruneArgs) -> anyhow::Result<Exit> {
    let mut store = ctx.open_for_prune()?;
    let mut out = Out::deferring();
    let outcome = prune_store(ctx, &mut out, &mut store, &args.options, args.dry_run, &[])?;
    let committed = (!args.dry_run).then(|| "the prune".to_owned());
    out.report(Exit::Ok, committed, |out| match ctx.json {
        true => print_json(out, &outcome),
        false => Ok(()),
    })
}

/// A dry run's plan or a real run's report.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Outcome {
    /// What a dry run found.
    Planned(Plan),
    /// What was done.
    Done(Report),
}

/// Plans and (unless `dry_run`) carries out a prune, printing what it does
/// unless --json or --quiet. A dry run plans as if `doomed` (snapshots a
/// dry-run forget would remove) were gone.
pub fn prune_store(
    ctx: &Ctx,
    out: &mut Out,
    store: &mut Store,
    options: &PruneOptionArgs,
    dry_run: bool,
    doomed: &[SnapshotId],
) -> anyhow::Result<Outcome> {
    let progress = Progress::default();
    let options = options.options(if dry_run { doomed } else { &[] }, dry_run);
    let plan = with_progress(
        &progress,
        ctx.wants_progress(),
        |p| format!("marking: {} snapshots", p.read().0),
        |_| prune::plan(store, &options, &progress),
    )?;
    // Warnings go to stderr whatever the output mode.
    for left in &plan.left_alone {
        warn(format_args!("{} left alone: {}", left.key, left.why));
    }
    let talk = !ctx.json && !ctx.quiet;
    if talk {
        print_plan(out, &plan, dry_run)?;
    }
    if dry_run {
        return Ok(Outcome::Planned(plan));
    }
    let progress = Progress::default();
    let report = with_progress(
        &progress,
        ctx.wants_progress() && !plan.choice.repack.is_empty(),
        |p| format!("repacking: {} packs", p.read().0),
        |_| prune::execute(store, plan, &progress),
    )?;
    if talk {
        print_report(out, &report)?;
    }
    Ok(Outcome::Done(report))
}

fn print_plan(out: &mut Out, plan: &Plan, dry_run: bool) -> io::Result<()> {
    if let Some(earlier) = &plan.interrupted {
        writeln!(out, "finishing an interrupted prune ({earlier})")?;
    }
    let c = &plan.choice;
    writeln!(
        out,
        "{} snapshots keep {} blobs; {} blobs are unused ({:.1}s)",
        plan.snapshots, c.blobs.live, c.blobs.dead, plan.mark_secs
    )?;
    writeln!(
        out,
        "{} packs ({}), {} unused: delete {}, repack {}; {} unreferenced pack(s) left by interrupted runs",
        plan.packs,
        human_bytes(c.bytes_total),
        human_bytes(c.bytes_unused),
        c.delete.len(),
        c.repack.len(),
        plan.unreferenced.len()
    )?;
    if dry_run && plan.is_empty() {
        writeln!(out, "dry run: nothing to do")?;
    } else if dry_run {
        let bytes = human_bytes(plan.bytes_to_free());
        writeln!(out, "dry run: would free about {bytes}")?;
    }
    Ok(())
}

fn print_report(out: &mut Out, r: &Report) -> io::Result<()> {
    if let Some(s) = &r.shared {
        writeln!(
            out,
            "two-phase prune (the store is shared): condemned {} pack(s), deleted after the grace period by a later prune; {} dead pack(s) younger than the grace period left for later; settled {} earlier condemnation(s), sparing {} pack(s) snapshots need again",
            s.packs_condemned, s.packs_too_young, s.condemnations_settled, s.packs_spared
        )?;
    }
    writeln!(
        out,
        "deleted {} packs, wrote {} ({} blobs, {} repacked), freed {}, removed {} leftover temporary file(s); took {:.1}s",
        r.packs_deleted,
        r.packs_written,
        r.blobs_repacked,
        human_bytes(r.bytes_repacked),
        human_bytes(r.bytes_freed),
        r.tmp_files_removed,
        r.duration_secs
    )
}

/// `10`, `10%` or `2.5%`, between 0 and 100; returned as a fraction.
fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!("{text:?} is not a percentage between 0 and 100")),
    }
}
