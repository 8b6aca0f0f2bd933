//! `cairn stats`: the store's size, how much deduplication and compression
//! save, snapshots per host, and with `--growth` a chart of what the last
//! snapshots added and the store's size over time.

use std::io::{self, Write};

use clap::Args;

use cairn::outcome::Outcome;
use cairn::stats::{self, Growth, Stats};
use cairn::store::LockMode;

use super::filter::FilterArgs;
use super::output::{human_bytes, plural, print_table};
use super::stdout::Out;
use super::{Ctx, print_json};

/// Width of a bar of the growth chart, in characters.
const BAR: usize = 24;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Chart what each of the last N snapshots (of the filters) added, and
    /// the store's size after each
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "30")]
    growth: Option<usize>,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, args: StatsArgs) -> anyhow::Result<Outcome> {
    let filter = args.filter.to_filter()?;
    let store = ctx.open(LockMode::Read)?;
    let list = ctx.snapshot_list(&store)?;
    let figures = stats::stats(&store, &list.snapshots)?;
    let chosen: Vec<_> = list
        .snapshots
        .iter()
        .filter(|s| filter.matches(s))
        .collect();
    let last = args.growth.unwrap_or(chosen.len());
    let growth = stats::growth(&chosen[chosen.len().saturating_sub(last)..]);
    Out::streaming().report(Outcome::Done, None, |out| {
        if ctx.json {
            let json = serde_json::json!({"store": figures, "snapshots": growth});
            return print_json(out, &json);
        }
        print_figures(out, &figures)?;
        match args.growth {
            Some(_) => chart(out, &growth),
            None => Ok(()),
        }
    })
}

fn print_figures(out: &mut Out, s: &Stats) -> io::Result<()> {
    let c = &s.catalog;
    writeln!(
        out,
        "store: {} ({} in {})",
        human_bytes(s.store_bytes),
        human_bytes(c.pack_bytes),
        plural(c.packs, "pack")
    )?;
    writeln!(
        out,
        "data:  {} in {}; {} after deduplication ({:.2}x), {} compressed ({:.2}x); {:.2}x in all",
        human_bytes(s.logical_bytes),
        plural(s.snapshots, "snapshot"),
        human_bytes(c.data_raw_bytes),
        s.dedup_ratio,
        human_bytes(c.data_stored_bytes),
        s.compression_ratio,
        s.total_ratio
    )?;
    for h in &s.hosts {
        writeln!(
            out,
            "host {}: {}, the newest {}",
            cairn::rawname::escaped(&h.host),
            plural(h.snapshots, "snapshot"),
            h.newest.display_local()
        )?;
    }
    Ok(())
}

/// One line per snapshot: what it added and the store's size after it,
/// each with a bar scaled to the largest.
fn chart(out: &mut Out, growth: &[Growth]) -> io::Result<()> {
    writeln!(out)?;
    let sizes = store_sizes(growth);
    let max_added = growth.iter().map(|g| g.bytes_added).max().unwrap_or(0);
    let max_store = sizes.iter().map(|(s, _)| *s).max().unwrap_or(0);
    let rows: Vec<Vec<String>> = growth
        .iter()
        .zip(&sizes)
        .map(|(g, (size, estimated))| {
            vec![
                g.id.short(),
                g.time.display_local(),
                human_bytes(g.bytes_added),
                bar(g.bytes_added, max_added),
                format!(
                    "{}{}",
                    if *estimated { "~" } else { "" },
                    human_bytes(*size)
                ),
                bar(*size, max_store),
            ]
        })
        .collect();
    print_table(out, &["SNAPSHOT", "TIME", "ADDED", "", "STORE", ""], &rows)?;
    if sizes.iter().any(|(_, estimated)| *estimated) {
        writeln!(
            out,
            "~: recorded by an older cairn without the store's size: the sum of what the snapshots listed added"
        )?;
    }
    Ok(())
}

/// The store's size after each snapshot: as recorded at its commit, else
/// (records of older versions) the sum of what the snapshots so far added,
/// marked as an estimate.
fn store_sizes(growth: &[Growth]) -> Vec<(u64, bool)> {
    let mut added = 0u64;
    growth
        .iter()
        .map(|g| {
            added = added.saturating_add(g.bytes_added);
            match g.store_bytes {
                Some(size) => (size, false),
                None => (added, true),
            }
        })
        .collect()
}

/// `value` of `max` as a bar of up to [`BAR`] blocks (at least one for
/// anything above zero).
fn bar(value: u64, max: u64) -> String {
    if max == 0 || value == 0 {
        return String::new();
    }
    let blocks = ((value as f64 / max as f64) * BAR as f64).round() as usize;
    "█".repeat(blocks.clamp(1, BAR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_show_anything_above_zero() {
        assert_eq!(bar(10, 10).chars().count(), BAR);
        assert_eq!(bar(5, 10).chars().count(), BAR / 2);
        assert_eq!(bar(1, 1_000_000).chars().count(), 1);
        assert_eq!(bar(0, 10), "");
    }
}
