//! `cairn mount`: every snapshot as a read-only file system, in the
//! foreground until Ctrl-C, SIGTERM or `fusermount -u`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use cairn::mount::{self, Ended, MountOptions};
use cairn::rawname::escaped;
use cairn::store::LockMode;

use super::Ctx;
use super::filter::FilterArgs;
use super::output::{parse_size, warn};
use cairn::outcome::Outcome;

#[derive(Debug, Args)]
pub struct MountArgs {
    /// An empty directory to mount on
    #[arg(value_name = "MOUNTPOINT")]
    mountpoint: PathBuf,
    /// Memory for decoded file chunks, shared by all reads (e.g. 64MiB, 1GiB)
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    cache_size: u64,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, args: MountArgs) -> anyhow::Result<Outcome> {
    let options = MountOptions {
        mountpoint: args.mountpoint.clone(),
        location: ctx.store.clone(),
        open: ctx.open_options(LockMode::Read),
        filter: args.filter.to_filter()?,
        cache_size: args.cache_size,
    };
    let quiet = ctx.quiet;
    let at = escaped(&args.mountpoint).to_string();
    let mounted = |m: &mount::Mounted| {
        if !quiet {
            say!(
                "cairn: {} snapshots of {} mounted on {at}; Ctrl-C or `fusermount -u {at}` unmounts",
                m.snapshots,
                ctx.store
            );
        }
    };
    let ended = mount::run(options, Arc::new(|m: &str| warn(m)), mounted)?;
    if !quiet {
        let why = match ended {
            Ended::Signal(signal) => format!(" ({})", signal.name()),
            Ended::Unmounted => String::new(),
        };
        say!("cairn: unmounted {at}{why}");
    }
    Ok(Outcome::Done)
}
