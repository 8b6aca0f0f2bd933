//! `cairn protect` / `cairn unprotect`: keep snapshots out of reach of
//! retention policies and `forget ID`.

use clap::Args;

use cairn::snapshot::protect;
use cairn::snapshot::select::{Filter, SnapshotRef};
use cairn::store::LockMode;

use super::Ctx;
use super::exit::Exit;

#[derive(Debug, Args)]
pub struct ProtectArgs {
    /// Snapshots (ids, unique prefixes or `latest`)
    #[arg(value_name = "SNAPSHOT", required = true)]
    snapshots: Vec<SnapshotRef>,
}

/// Protects (`on`) or unprotects the named snapshots.
pub fn run(ctx: &Ctx, args: ProtectArgs, on: bool) -> anyhow::Result<Exit> {
    // Shared: a forget holds the store exclusively, so it never runs between
    // this check and a protection it should see.
    let store = ctx.open(LockMode::Shared)?;
    let list = ctx.snapshot_list(&store)?;
    for reference in &args.snapshots {
        let id = list.resolve(reference, &Filter::default())?.id;
        let message = if on {
            protect::protect(store.backend(), &id)?;
            "protected"
        } else if protect::unprotect(store.backend(), &id)? {
            "unprotected"
        } else {
            "was not protected:"
        };
        if !ctx.quiet {
            println!("{message} snapshot {}", id.short());
        }
    }
    Ok(Exit::Ok)
}
