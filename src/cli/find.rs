//! `cairn find`: which snapshots hold a path matching a glob.

use std::io::Write;
use std::path::Path;

use clap::Args;

use cairn::bound::Budget;
use cairn::browse::BrowseError;
use cairn::browse::find::{Finder, Hit, Seen};
use cairn::outcome::Outcome;
use cairn::rawname::escaped;
use cairn::snapshot::Snapshot;
use cairn::store::LockMode;

use super::Ctx;
use super::choose::{entry_json, local_time_short};
use super::filter::FilterArgs;
use super::output::{human_bytes, plural, warn};
use super::stdout::Out;

#[derive(Debug, Args)]
pub struct FindArgs {
    /// Glob matched against names (`*.db`), or against whole paths if it has a `/` (`/var/**/app.db`)
    #[arg(value_name = "PATTERN")]
    pattern: String,
    #[command(flatten)]
    filter: FilterArgs,
}

/// One match, as a line of the table or of JSON.
fn print_hit(out: &mut Out, json: bool, snapshot: &Snapshot, hit: &Hit) -> std::io::Result<()> {
    if json {
        let mut value = entry_json(&hit.path, &hit.entry);
        value["snapshot"] = serde_json::json!(snapshot.id.to_hex());
        value["time"] = serde_json::json!(snapshot.record.time.to_string());
        return writeln!(out, "{value}");
    }
    writeln!(
        out,
        "{}  {}  {:>10}  {}  {}",
        snapshot.id.short(),
        snapshot.record.time.display_local(),
        human_bytes(hit.entry.meta.size),
        local_time_short(hit.entry.meta.mtime),
        escaped(&hit.path)
    )
}

pub fn run(ctx: &Ctx, args: FindArgs) -> anyhow::Result<Outcome> {
    let mut finder = Finder::new(&args.pattern)?;
    let filter = args.filter.to_filter()?;
    let store = ctx.open(LockMode::Read)?;
    let list = ctx.snapshot_list(&store)?;
    let mut out = Out::streaming();
    let (mut matches, mut unread) = (0u64, 0u64);
    for snapshot in list.snapshots.iter().rev().filter(|s| filter.matches(s)) {
        let mut budget = Budget::of(snapshot);
        let found = match finder.search(&store, &snapshot.record.tree, Path::new("/"), &mut budget)
        {
            Ok(found) => found,
            Err(e) if e.is_damage() => {
                unread += 1;
                warn_unread(snapshot, Path::new("/"), &e);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        found.try_for_each(&mut |seen| match seen {
            Seen::Hit(hit) => {
                matches += 1;
                print_hit(&mut out, ctx.json, snapshot, hit)
            }
            Seen::Unread(dir) => {
                unread += 1;
                warn_unread(snapshot, &dir.path, &dir.error);
                Ok(())
            }
        })?;
    }
    out.finish()?;
    // A count is not data: on stderr, so that `find ... | wc -l` counts hits.
    if !ctx.json && !ctx.quiet {
        say!("{}", plural(matches, "match"));
    }
    Ok(Outcome::damage_if(unread))
}

/// A directory of `snapshot` whose listing is lost or damaged: named on
/// stderr; the search went on beside it, and `find` ends with exit 4.
fn warn_unread(snapshot: &Snapshot, dir: &Path, e: &BrowseError) {
    warn(format_args!(
        "snapshot {}: {} not searched: {e} (`cairn verify` says what is lost)",
        snapshot.id.short(),
        escaped(dir)
    ));
}
