//! `cairn diff`: what changed between two snapshots.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use cairn::bound::Budget;
use cairn::browse::diff::{self, Budgets, Change, ChangeKind};
use cairn::browse::{self, BrowseError, Node};
use cairn::outcome::Outcome;
use cairn::rawname::escaped;
use cairn::snapshot::select::SnapshotRef;
use cairn::store::LockMode;

use super::choose::{entry_json, snapshot_ref};
use super::filter::FilterArgs;
use super::output::human_bytes;
use super::stdout::Out;
use super::{Ctx, print_json};

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot: an id, a unique prefix, `latest` or @WHEN
    #[arg(value_name = "SNAPSHOT_A", value_parser = snapshot_ref)]
    a: SnapshotRef,
    /// The newer snapshot
    #[arg(value_name = "SNAPSHOT_B", value_parser = snapshot_ref)]
    b: SnapshotRef,
    /// Compare only this path (a directory or file) [default: /]
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, args: DiffArgs) -> anyhow::Result<Outcome> {
    let store = ctx.open(LockMode::Read)?;
    let list = ctx.snapshot_list(&store)?;
    let filter = args.filter.to_filter()?;
    let (a, b) = (
        list.resolve(&args.a, &filter)?,
        list.resolve(&args.b, &filter)?,
    );
    let path = browse::snapshot_path(args.path.as_deref().unwrap_or(Path::new("/")))?;
    let old = lookup_if_there(&store, a, &path)?;
    let new = lookup_if_there(&store, b, &path)?;
    if old.is_none() && new.is_none() {
        anyhow::bail!(
            "{} is in neither snapshot ({} nor {})",
            escaped(&path),
            a.id.short(),
            b.id.short()
        );
    }
    let (old, new) = (old.as_ref(), new.as_ref());
    let sources: Vec<&Path> = a
        .record
        .paths
        .iter()
        .chain(&b.record.paths)
        .map(|p| p.as_path())
        .collect();
    let mut out = Out::streaming();
    let budgets = || Budgets {
        old: Budget::of(a),
        new: Budget::of(b),
    };
    if ctx.json {
        // Grouped by kind, so held until the end: only the changes, never
        // the unchanged listing.
        let mut groups = [Vec::new(), Vec::new(), Vec::new()];
        diff::diff(
            &store,
            old,
            new,
            &path,
            &sources,
            &mut budgets(),
            &mut |c| {
                let slot = match c.kind {
                    ChangeKind::Added => 0,
                    ChangeKind::Removed => 1,
                    ChangeKind::Modified => 2,
                };
                groups[slot].push(change_json(c));
                Ok(())
            },
        )?;
        let [added, removed, modified] = groups;
        let json = serde_json::json!({
            "a": a.id.to_hex(),
            "b": b.id.to_hex(),
            "added": added,
            "removed": removed,
            "modified": modified,
        });
        return out.report(Outcome::Done, None, |out| print_json(out, &json));
    }
    let mut counts = [0u64; 3];
    diff::diff(
        &store,
        old,
        new,
        &path,
        &sources,
        &mut budgets(),
        &mut |c| {
            let (mark, i) = match c.kind {
                ChangeKind::Added => ('+', 0),
                ChangeKind::Removed => ('-', 1),
                ChangeKind::Modified => ('M', 2),
            };
            counts[i] += 1;
            writeln!(out, "{mark} {}", describe(c)).map_err(BrowseError::Output)
        },
    )?;
    out.finish()?;
    // A count is not data: on stderr, so that stdout holds only changes.
    if !ctx.quiet {
        say!(
            "{} added, {} removed, {} modified between {} and {}",
            counts[0],
            counts[1],
            counts[2],
            a.id.short(),
            b.id.short()
        );
    }
    Ok(Outcome::Done)
}

/// What `snapshot` has at `path`; `None` if nothing (one side of a diff
/// may well lack it).
fn lookup_if_there(
    store: &cairn::store::Store,
    snapshot: &cairn::snapshot::Snapshot,
    path: &Path,
) -> Result<Option<Node>, BrowseError> {
    match browse::lookup(store, &snapshot.record.tree, path) {
        Ok(node) => Ok(Some(node)),
        Err(BrowseError::NotFound { .. } | BrowseError::NotADirectory { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn describe(c: &Change<'_>) -> String {
    let path = escaped(c.path);
    match (c.old, c.new) {
        (Some(old), Some(_)) if old.subtree().is_some() => {
            format!("{path}/ ({})", c.what.join(", "))
        }
        (Some(old), Some(new)) => format!(
            "{path} ({}; {} -> {})",
            c.what.join(", "),
            human_bytes(old.meta.size),
            human_bytes(new.meta.size)
        ),
        (_, Some(e)) | (Some(e), None) if e.subtree().is_some() => format!("{path}/"),
        (_, Some(e)) | (Some(e), None) => format!("{path} ({})", human_bytes(e.meta.size)),
        (None, None) => path.to_string(),
    }
}

fn change_json(c: &Change<'_>) -> serde_json::Value {
    let entry = c.new.or(c.old);
    let mut value = entry.map_or_else(|| serde_json::json!({}), |e| entry_json(c.path, e));
    if let (Some(old), Some(_)) = (c.old, c.new) {
        value["changed"] = serde_json::json!(c.what);
        value["old_size"] = serde_json::json!(old.meta.size);
    }
    value
}
