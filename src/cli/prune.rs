//! `cairn prune`: delete the data no snapshot needs any more.

use std::io::{self, Write};

use clap::Args;

use cairn::id::SnapshotId;
use cairn::outcome::Outcome;
use cairn::progress::Progress;
use cairn::prune::{self, Plan, PruneOptions, RepackRule, Report};
use cairn::store::Store;

use super::output::{human_bytes, plural, warn};
use super::progress::{self, PACKS, Units};
use super::stdout::Out;
use super::{Ctx, print_json};

/// How prune repacks; shared with `forget --prune`.
#[derive(Debug, Args)]
pub struct PruneOptionArgs {
    /// Repack the emptiest packs until at most PERCENT of the store's pack
    /// bytes are unused, and every pack about half unused or more (0
    /// removes all unused space, 100 repacks nothing) [default: 20]
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

pub fn run(ctx: &Ctx, args: PruneArgs) -> anyhow::Result<Outcome> {
    let mut store = ctx.open_for_prune(args.dry_run)?;
    let mut out = Out::deferring();
    let outcome = prune_store(ctx, &mut out, &mut store, &args.options, args.dry_run, &[])?;
    let committed = (!args.dry_run).then(|| "the prune".to_owned());
    out.report(Outcome::Done, committed, |out| match ctx.json {
        true => print_json(out, &outcome),
        false => Ok(()),
    })
}

/// A dry run's plan or a real run's report.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Pruned {
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
) -> anyhow::Result<Pruned> {
    let progress = Progress::default();
    let options = options.options(if dry_run { doomed } else { &[] }, dry_run);
    let marking = Units {
        items: "trees read",
        bytes: "",
    };
    let plan = progress::run(
        ctx.progress(),
        &progress,
        marking,
        |_| String::new(),
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
        return Ok(Pruned::Planned(plan));
    }
    let progress = Progress::default();
    let show = match plan.choice.repack.is_empty() {
        true => progress::Show::Off,
        false => ctx.progress(),
    };
    let report = progress::run(
        show,
        &progress,
        PACKS,
        |_| " repacked".to_owned(),
        |_| prune::execute(store, plan, &progress),
    )?;
    if talk {
        print_report(out, &report)?;
    }
    Ok(Pruned::Done(report))
}

fn print_plan(out: &mut Out, plan: &Plan, dry_run: bool) -> io::Result<()> {
    if let Some(earlier) = &plan.interrupted {
        writeln!(out, "finishing an interrupted prune ({earlier})")?;
    }
    let c = &plan.choice;
    writeln!(
        out,
        "{} keep {}; {} unused ({:.1}s)",
        plural(plan.snapshots, "snapshot"),
        plural(c.blobs.live, "blob"),
        plural(c.blobs.dead, "blob"),
        plan.mark_secs
    )?;
    writeln!(
        out,
        "{} ({}), {} unused: delete {}, repack {}; {} left by interrupted runs",
        plural(plan.packs, "pack"),
        human_bytes(c.bytes_total),
        human_bytes(c.bytes_unused),
        c.delete.len(),
        c.repack.len(),
        plural(plan.unreferenced.len() as u64, "unreferenced pack")
    )?;
    if dry_run && plan.is_empty() {
        writeln!(out, "dry run: nothing to do")?;
    } else if dry_run {
        let bytes = human_bytes(plan.bytes_to_free());
        writeln!(out, "dry run: would free about {bytes}")?;
        let (rewritten, freed) = plan.repack_trade();
        if !c.repack.is_empty() {
            writeln!(
                out,
                "dry run: repacking rewrites {} of live blobs to free {} (--max-unused trades one for the other)",
                human_bytes(rewritten),
                human_bytes(freed)
            )?;
        }
    }
    Ok(())
}

fn print_report(out: &mut Out, r: &Report) -> io::Result<()> {
    if let Some(s) = &r.shared {
        writeln!(
            out,
            "two-phase prune (the store is shared): condemned {}, deleted after the grace period by a later prune; {} younger than the grace period left for later; settled {}, sparing {} snapshots need again",
            plural(s.packs_condemned, "pack"),
            plural(s.packs_too_young, "dead pack"),
            plural(s.condemnations_settled, "earlier condemnation"),
            plural(s.packs_spared, "pack")
        )?;
    }
    writeln!(
        out,
        "deleted {}, wrote {} ({}, {} repacked), freed {}, removed {}; took {:.1}s",
        plural(r.packs_deleted, "pack"),
        r.packs_written,
        plural(r.blobs_repacked, "blob"),
        human_bytes(r.bytes_repacked),
        human_bytes(r.bytes_freed),
        plural(r.tmp_files_removed, "leftover temporary file"),
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
