//! `cairn verify`: check the store at the depth asked, report damage with
//! the snapshots and paths it affects; exit 4 when damage was found.

use std::collections::HashSet;
use std::io::{self, Write};
use std::time::Duration;

use clap::Args;

use cairn::outcome::Outcome;
use cairn::progress::Progress;
use cairn::rawname::{escaped, printable};
use cairn::snapshot::select::{Filter, SnapshotRef};
use cairn::store::LockMode;
use cairn::verify::{self, DataOptions, ReadData, Report, VerifyOptions, parse_subset};

use super::output::{human_bytes, plural, some_paths, warn};
use super::progress::{self, Units};
use super::stdout::Out;
use super::{Ctx, choose, print_json};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Also read every pack: check each file's id and every blob's hash
    #[arg(long)]
    read_data: bool,
    /// Read only part of the packs: N/M (the N-th of M fixed slices, e.g.
    /// $(date +%d)/31) or P% (a random share)
    #[arg(long, value_name = "N/M|P%", value_parser = parse_subset)]
    read_data_subset: Option<ReadData>,
    /// Read only packs not verified within DURATION (e.g. 30d); implies --read-data
    #[arg(long, value_name = "DURATION", value_parser = cairn::when::parse_duration)]
    max_age: Option<Duration>,
    /// Stop starting new packs after DURATION of reading (e.g. 10m), least
    /// recently verified first; implies --read-data
    #[arg(long, value_name = "DURATION", value_parser = cairn::when::parse_duration)]
    budget: Option<Duration>,
    /// Also check every captured SQLite database with PRAGMA integrity_check
    #[arg(long)]
    sqlite: bool,
    /// Only these snapshots and the data they need (repeatable; id, prefix, latest or @WHEN)
    #[arg(long = "snapshot", value_name = "SNAPSHOT", value_parser = choose::snapshot_ref)]
    snapshots: Vec<SnapshotRef>,
}

impl VerifyArgs {
    fn read_data(&self) -> ReadData {
        match self.read_data_subset {
            Some(subset) => subset,
            None if self.read_data || self.max_age.is_some() || self.budget.is_some() => {
                ReadData::All
            }
            None => ReadData::Skip,
        }
    }
}

pub fn run(ctx: &Ctx, args: VerifyArgs) -> anyhow::Result<Outcome> {
    let mut store = ctx.open(LockMode::Read)?;
    let snapshots = if args.snapshots.is_empty() {
        None
    } else {
        let list = ctx.snapshot_list(&store)?;
        let ids: anyhow::Result<HashSet<_>> = args
            .snapshots
            .iter()
            .map(|r| Ok(list.resolve(r, &Filter::default())?.id))
            .collect();
        Some(ids?)
    };
    let options = VerifyOptions {
        data: DataOptions {
            which: args.read_data(),
            max_age: args.max_age,
            budget: args.budget,
            now: jiff::Timestamp::now().as_second(),
            again: Vec::new(),
        },
        sqlite: args.sqlite,
        snapshots,
    };
    let progress = Progress::default();
    // Snapshots are counted while the structure is checked, packs while
    // they are read.
    let units = Units {
        items: "snapshots/packs",
        bytes: "",
    };
    let report = progress::run(
        ctx.progress(),
        &progress,
        units,
        |_| String::new(),
        |_| verify::verify(&mut store, &options, &progress),
    )?;
    if !ctx.json {
        for w in &report.warnings {
            warn(w);
        }
    }
    Out::streaming().report(report.outcome(), None, |out| match ctx.json {
        true => print_json(out, &report),
        false => print_report(out, &report, args.read_data(), ctx.quiet),
    })
}

fn print_report(out: &mut Out, r: &Report, which: ReadData, quiet: bool) -> io::Result<()> {
    for d in &r.damage {
        let lost = match d.blobs_lost {
            0 => String::new(),
            n => format!(" ({} lost)", plural(n, "blob")),
        };
        let (key, cause) = (escaped(&d.key), printable(&d.cause));
        writeln!(out, "DAMAGED {} {key}: {cause}{lost}", d.kind)?;
        for a in &d.affected {
            let total = a.paths.len() as u64 + a.more_paths;
            writeln!(
                out,
                "  snapshot {} ({}): {}",
                a.snapshot.short(),
                a.time.display_local(),
                some_paths(&a.paths, total, a.paths.len())
            )?;
        }
    }
    if quiet && r.ok {
        return Ok(());
    }
    writeln!(
        out,
        "checked {}, {}, {}, {}",
        plural(r.snapshots, "snapshot"),
        plural(r.trees, "tree"),
        plural(r.blobs, "blob"),
        plural(r.packs, "pack")
    )?;
    if which != ReadData::Skip && which != ReadData::All {
        writeln!(
            out,
            "the subset {which} selected {} of the {} to read",
            r.packs_selected,
            plural(r.packs, "pack")
        )?;
    }
    if r.packs_read > 0 || r.packs_left_unread > 0 {
        let rate = r.bytes_read as f64 / r.read_secs.max(1e-9);
        writeln!(
            out,
            "read {}, {} in {:.1}s ({}/s){}",
            plural(r.packs_read, "pack"),
            human_bytes(r.bytes_read),
            r.read_secs,
            human_bytes(rate as u64),
            match r.packs_left_unread {
                0 => String::new(),
                n => format!("; {n} left for another run (budget)"),
            }
        )?;
    }
    if r.databases_checked > 0 {
        writeln!(
            out,
            "checked {} with integrity_check",
            plural(r.databases_checked, "database")
        )?;
    }
    let never = r.ledger.packs_never_verified;
    match r.ledger.oldest_verification_age_secs {
        Some(age) if never == 0 => {
            let age = age_text(age);
            writeln!(
                out,
                "every pack verified; the oldest verification is {age} old"
            )?
        }
        Some(age) => {
            let age = age_text(age);
            writeln!(
                out,
                "{} never read whole by verify; the oldest verification of the others is {age} old",
                plural(never, "pack")
            )?
        }
        None => writeln!(
            out,
            "{}, none yet read whole by verify --read-data",
            plural(never, "pack")
        )?,
    }
    if r.ok {
        writeln!(out, "ok: no damage found")?;
    } else {
        let problems = plural(r.damage.len() as u64, "problem");
        writeln!(out, "DAMAGE FOUND: {problems}")?;
    }
    Ok(())
}

fn age_text(secs: u64) -> String {
    match secs {
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
