//! `cairn protect` / `cairn unprotect`: keep snapshots out of reach of
//! retention policies and `forget ID`.

use std::io::Write;

use clap::Args;

use cairn::id::SnapshotId;
use cairn::outcome::Outcome;
use cairn::snapshot::SnapshotList;
use cairn::snapshot::protect;
use cairn::snapshot::select::SnapshotRef;
use cairn::store::LockMode;

use super::filter::{FilterArgs, NamedScope};
use super::output::snapshots_named;
use super::stdout::Out;
use super::{Ctx, print_json};

#[derive(Debug, Args)]
pub struct ProtectArgs {
    /// Snapshots (ids, unique prefixes, `latest` or @WHEN: this host's unless --host or --all-hosts)
    #[arg(value_name = "SNAPSHOT", required = true, value_parser = super::choose::snapshot_ref)]
    snapshots: Vec<SnapshotRef>,
    /// `latest` and @WHEN choose among every host's snapshots
    #[arg(long)]
    all_hosts: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Protects (`on`) or unprotects the named snapshots. A damaged record can
/// be unprotected (by id or prefix), so that it can then be forgotten.
pub fn run(ctx: &Ctx, args: ProtectArgs, on: bool) -> anyhow::Result<Outcome> {
    // Shared: a forget on this host holds the store exclusively; one
    // elsewhere is caught by `protect::protect` looking at the record after
    // its mark is written.
    let store = ctx.open(LockMode::Shared)?;
    let list = ctx.snapshot_list(&store)?;
    let mut out = Out::deferring();
    let mut done = Vec::new();
    let mut changed_ids = Vec::new();
    for id in resolve_all(&list, &args, on)? {
        let changed = match on {
            true if protect::protect(store.backend(), &id)? => true,
            true => anyhow::bail!(
                "snapshot {} was forgotten by another process while it was being protected; nothing protects it",
                id.short()
            ),
            false => protect::unprotect(store.backend(), &id)?,
        };
        if !ctx.json && !ctx.quiet {
            match (on, changed) {
                (true, _) => writeln!(out, "protected snapshot {}", id.short())?,
                (false, true) => writeln!(out, "unprotected snapshot {}", id.short())?,
                (false, false) => writeln!(out, "snapshot {} was not protected", id.short())?,
            }
        }
        if changed {
            changed_ids.push(id);
        }
        done.push(serde_json::json!({"id": id, "protected": on, "changed": changed}));
    }
    let verb = if on { "protecting" } else { "unprotecting" };
    let committed =
        (!changed_ids.is_empty()).then(|| format!("{verb} {}", snapshots_named(&changed_ids)));
    out.report(Outcome::Done, committed, |out| match ctx.json {
        true => print_json(out, &done),
        false => Ok(()),
    })
}

/// Every snapshot named, resolved before any is changed: one that does not
/// resolve must not leave the ones before it changed under a message that
/// says nothing was done. A damaged record can be unprotected (by id or
/// prefix), never protected.
fn resolve_all(
    list: &SnapshotList,
    args: &ProtectArgs,
    on: bool,
) -> anyhow::Result<Vec<SnapshotId>> {
    let scope = NamedScope::new(&args.filter, args.all_hosts)?;
    let mut ids = Vec::new();
    for reference in &args.snapshots {
        let filter = scope.for_ref(reference);
        let id = match on {
            true => list.resolve(reference, filter).map(|s| s.id),
            false => list.resolve_id(reference, filter),
        };
        let id = id.map_err(|e| super::filter::outside_filters(list, reference, e))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}
