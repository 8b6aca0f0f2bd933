//! The command line: argument definitions and dispatch. Each command's file
//! parses nothing itself and touches no store file directly: it calls the
//! library and renders what comes back.

mod cat;
mod choose;
mod diff;
pub mod exit;
mod find;
mod forget;
mod init;
mod ls;
mod mount;
mod output;
mod policy;
mod protect;
mod prune;
mod repair;
mod restore;
mod snapshot;
mod snapshots;
mod stdout;
mod verify;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};

use cairn::backend::RemoteOptions;
use cairn::store::{Location, LockMode, OpenOptions, Store};
use exit::Exit;

/// cairn: snapshots of files, directories and SQLite databases in a
/// deduplicated, compressed store, on this machine or in S3-compatible
/// object storage.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes, before or after the command name.
#[derive(Debug, Args)]
struct Global {
    /// The store: a directory, file://PATH or s3://BUCKET/PREFIX [default: $XDG_DATA_HOME/cairn or ~/.local/share/cairn]
    #[arg(long, global = true, env = "CAIRN_STORE", value_name = "STORE")]
    store: Option<Location>,
    /// Where a remote store's catalog and cache go [default: $XDG_CACHE_HOME/cairn or ~/.cache/cairn]
    #[arg(long, global = true, env = "CAIRN_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Requests in flight at once to a remote store
    #[arg(long, global = true, value_name = "N", default_value_t = RemoteOptions::default().connections as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
    connections: u16,
    /// Retries of a request to a remote store that failed for a transient reason
    #[arg(long, global = true, value_name = "N", default_value_t = RemoteOptions::default().retries)]
    retries: usize,
    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    json: bool,
    /// Print only warnings and errors
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Wait this long for a store locked by another cairn process (e.g. 30s, 5m)
    #[arg(long, global = true, value_name = "DURATION", value_parser = cairn::when::parse_duration)]
    lock_wait: Option<Duration>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new store
    Init(init::InitArgs),
    /// Take a snapshot of files and directories (or standard input)
    Snapshot(snapshot::SnapshotArgs),
    /// List snapshots
    Snapshots(snapshots::SnapshotsArgs),
    /// Restore a snapshot (or some of its paths) into a directory or a tar stream
    Restore(restore::RestoreArgs),
    /// List a directory of a snapshot
    Ls(ls::LsArgs),
    /// Write a file of a snapshot to stdout
    Cat(cat::CatArgs),
    /// Show what changed between two snapshots
    Diff(diff::DiffArgs),
    /// Find the snapshots that hold paths matching a glob
    Find(find::FindArgs),
    /// Show every snapshot as a read-only file system (FUSE), by date, host and tag
    Mount(mount::MountArgs),
    /// Forget snapshots by retention policy (or by id), optionally pruning
    Forget(forget::ForgetArgs),
    /// Delete data no snapshot needs any more and repack mostly-empty packs
    Prune(prune::PruneArgs),
    /// Protect snapshots from forget and retention policies
    Protect(protect::ProtectArgs),
    /// Remove the protection of snapshots
    Unprotect(protect::ProtectArgs),
    /// Save, show or clear the store's retention policy
    Policy(policy::PolicyCommand),
    /// Check the store: structure, and with --read-data every byte; exit 4 on damage
    Verify(verify::VerifyArgs),
    /// Rebuild the catalog, or salvage damaged snapshots into new records
    Repair(repair::RepairCommand),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let ctx = Ctx::new(cli.global)?;
    match cli.command {
        Command::Init(args) => init::run(&ctx, args),
        Command::Snapshot(args) => snapshot::run(&ctx, args),
        Command::Snapshots(args) => snapshots::run(&ctx, args),
        Command::Restore(args) => restore::run(&ctx, args),
        Command::Ls(args) => ls::run(&ctx, args),
        Command::Cat(args) => cat::run(&ctx, args),
        Command::Diff(args) => diff::run(&ctx, args),
        Command::Find(args) => find::run(&ctx, args),
        Command::Mount(args) => mount::run(&ctx, args),
        Command::Forget(args) => forget::run(&ctx, args),
        Command::Prune(args) => prune::run(&ctx, args),
        Command::Protect(args) => protect::run(&ctx, args, true),
        Command::Unprotect(args) => protect::run(&ctx, args, false),
        Command::Policy(args) => policy::run(&ctx, args),
        Command::Verify(args) => verify::run(&ctx, args),
        Command::Repair(args) => repair::run(&ctx, args),
    }
}

/// What every command needs from the global options.
struct Ctx {
    store: Location,
    store_is_default: bool,
    cache_dir: Option<PathBuf>,
    remote: RemoteOptions,
    json: bool,
    quiet: bool,
    lock_wait: Duration,
}

impl Ctx {
    fn new(global: Global) -> anyhow::Result<Self> {
        let (store, store_is_default) = match global.store {
            Some(location) => (location, false),
            None => (Location::Local(default_store()?), true),
        };
        Ok(Self {
            store,
            store_is_default,
            cache_dir: global.cache_dir,
            remote: RemoteOptions {
                connections: usize::from(global.connections),
                retries: global.retries,
            },
            json: global.json,
            quiet: global.quiet,
            lock_wait: global.lock_wait.unwrap_or(Duration::ZERO),
        })
    }

    fn open(&self, lock: LockMode) -> anyhow::Result<Store> {
        let store = Store::open(&self.store, self.open_options(lock))?;
        self.print_notices(&store);
        Ok(store)
    }

    fn open_options(&self, lock: LockMode) -> OpenOptions {
        OpenOptions {
            lock,
            lock_wait: self.lock_wait,
            cache_dir: self.cache_dir.clone(),
            remote: self.remote,
        }
    }

    fn print_notices(&self, store: &Store) {
        for notice in store.notices() {
            eprintln!("cairn: {}", cairn::rawname::printable(&notice.to_string()));
        }
    }

    /// Every snapshot, after warning about each record that cannot be read
    /// (such a record is invisible to `latest` and to listings).
    fn snapshot_list(&self, store: &Store) -> anyhow::Result<cairn::snapshot::SnapshotList> {
        let list = store.snapshots()?;
        for (key, cause) in &list.unreadable {
            output::warn(format_args!(
                "{key} is damaged ({cause}); it is not listed and `latest` ignores it"
            ));
        }
        Ok(list)
    }

    /// Progress bars only for people: not with --quiet or --json.
    fn wants_progress(&self) -> bool {
        !self.quiet && !self.json
    }
}

/// `$XDG_DATA_HOME/cairn`, else `~/.local/share/cairn`.
fn default_store() -> anyhow::Result<PathBuf> {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(data).join("cairn"));
    }
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
        bail!("no store given: pass --store DIR or set CAIRN_STORE (HOME is not set)");
    };
    Ok(PathBuf::from(home).join(".local/share/cairn"))
}

/// Prints `value` as pretty JSON.
fn print_json<T: serde::Serialize>(out: &mut stdout::Out, value: &T) -> std::io::Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    writeln!(out, "{text}")
}
