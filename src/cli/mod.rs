//! The command line: argument definitions and dispatch. Each command's file
//! parses nothing itself and touches no store file directly: it calls the
//! library and renders what comes back.

/// `eprintln!` that never panics: a line for stderr, lost if stderr takes
/// nothing (a closed pipe, a full disk). `eprintln!` panicked there, and a
/// warning during a snapshot then lost the snapshot (exit 101) before it
/// committed. Everything the CLI says on stderr goes through this.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::output::to_stderr(format_args!($($arg)*))
    };
}

mod cat;
mod choose;
mod config;
mod copy;
mod diff;
pub mod exit;
mod filter;
mod find;
mod forget;
mod hooks;
mod init;
mod invocation;
mod key;
mod ls;
mod manual;
mod mount;
mod output;
mod policy;
mod progress;
mod protect;
mod prune;
mod repair;
mod restore;
mod snapshot;
mod snapshots;
mod stats;
mod stdout;
mod tag;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{ArgAction, Args, Parser, Subcommand};

use cairn::backend::{DEFAULT_TIMEOUT, RemoteOptions};
use cairn::crypt::passphrase::Source;
use cairn::outcome::Outcome;
use cairn::profile::Profile;
use cairn::rawname::printable;
use cairn::store::{Location, LockMode, OpenOptions, Store};
use exit::Exit;
use invocation::{Refusal, Refused};

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
    #[arg(long, global = true, value_name = "N", default_value_t = RemoteOptions::default().connections as u16, value_parser = cairn::backend::parse_connections)]
    connections: u16,
    /// Retries of a request to a remote store that failed for a transient reason
    #[arg(long, global = true, value_name = "N", default_value_t = RemoteOptions::default().retries)]
    retries: usize,
    /// How long one request to a remote store may take, its upload or download included, before it is retried (raise it for a slow link) [default: 10m]
    #[arg(long, global = true, value_name = "DURATION", value_parser = cairn::backend::parse_timeout)]
    request_timeout: Option<Duration>,
    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    json: bool,
    /// Print only warnings and errors
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Wait this long for a store locked by another cairn process (e.g. 30s, 5m)
    #[arg(long, global = true, value_name = "DURATION", value_parser = cairn::when::parse_duration)]
    lock_wait: Option<Duration>,
    /// List files as a snapshot captures them: -v new (+) and modified (M), -vv also unchanged (=)
    #[arg(long, short, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Print a progress line on stderr at this interval (e.g. 1m), also when
    /// stderr is not a terminal (for the journal of a systemd unit)
    #[arg(long, global = true, value_name = "DURATION", value_parser = cairn::when::parse_duration)]
    progress_interval: Option<Duration>,
    /// Take options from this profile of cairn.toml (see `cairn config show`)
    #[arg(long, short = 'P', global = true, value_name = "NAME")]
    profile: Option<String>,
    /// The password of an encrypted store: the first line of FILE
    #[arg(
        long,
        global = true,
        env = "CAIRN_PASSWORD_FILE",
        value_name = "FILE",
        conflicts_with = "password_command"
    )]
    password_file: Option<PathBuf>,
    /// The password of an encrypted store: the first line CMD prints (run with sh -c; e.g. a secret manager)
    #[arg(
        long,
        global = true,
        env = "CAIRN_PASSWORD_COMMAND",
        value_name = "CMD"
    )]
    password_command: Option<String>,
    /// Read profiles from FILE instead of /etc/cairn/cairn.toml and
    /// ~/.config/cairn/cairn.toml (repeatable: a later file's keys win)
    #[arg(long, global = true, value_name = "FILE")]
    config: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new store
    #[command(after_help = "Examples:
  cairn init --store /var/backups/cairn
  cairn init --store s3://backups-acme/web1 --compression 6")]
    Init(init::InitArgs),
    /// Take a snapshot of files and directories (or standard input)
    #[command(after_help = "Examples:
  cairn snapshot /srv/app /etc --tag nightly --exclude '*.tmp'
  cairn -P app snapshot            # the sources and options of profile app
  cairn snapshot / --one-file-system --exclude-caches --exclude-file /etc/cairn/excludes --dry-run
  cairn snapshot --stdin-from-command --stdin-name app.sql -- pg_dump app")]
    Snapshot(snapshot::SnapshotArgs),
    /// List snapshots
    #[command(after_help = "Examples:
  cairn snapshots --after 2026-02-01 --before 2026-02-28
  cairn snapshots --host web1 --tag nightly")]
    Snapshots(snapshots::SnapshotsArgs),
    /// Restore a snapshot (or some of its paths) into a directory or a tar stream
    #[command(after_help = "Examples:
  cairn restore latest --target /tmp/r
  cairn restore --at 2026-02-15 --include /var/lib/app/app.db --strip-prefix /var/lib/app --target /tmp/r --check
  cairn restore latest --tar - --include /etc | tar -tv
  cairn restore latest --include /srv/app --target / --overwrite --delete --dry-run")]
    Restore(restore::RestoreArgs),
    /// List a directory of a snapshot (the latest unless one is named)
    #[command(after_help = "Examples:
  cairn ls /var/lib/app -l          # in the latest snapshot
  cairn ls @yesterday /etc -R")]
    Ls(ls::LsArgs),
    /// Write a file of a snapshot (the latest unless one is named) to stdout
    #[command(after_help = "Examples:
  cairn cat /etc/hosts              # from the latest snapshot
  cairn cat --at 2026-02-15 /var/lib/app/config.toml > config.old")]
    Cat(cat::CatArgs),
    /// Show what changed between two snapshots
    #[command(after_help = "Examples:
  cairn diff @2026-02-14 @2026-02-15
  cairn diff 4acb @now /var/lib/app")]
    Diff(diff::DiffArgs),
    /// Find the snapshots that hold paths matching a glob
    #[command(after_help = "Examples:
  cairn find '*.db'
  cairn find '/var/lib/**/app.db' --host web1")]
    Find(find::FindArgs),
    /// Show every snapshot as a read-only file system (FUSE), by date, host and tag
    #[command(after_help = "Examples:
  cairn mount /mnt/cairn            # until Ctrl-C; browse /mnt/cairn/by-date/2026-02-15/etc
  cairn mount /mnt/cairn --host web1 --cache-size 1GiB")]
    Mount(mount::MountArgs),
    /// Forget snapshots by retention policy (or by id), optionally pruning
    #[command(after_help = "Examples:
  cairn forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run
  cairn -P app forget --prune       # the retention policy of profile app
  cairn forget 4acb031c @2026-02-15
  cairn forget --all-hosts --keep-daily 7 --prune --grace 48h")]
    Forget(forget::ForgetArgs),
    /// Delete data no snapshot needs any more and repack mostly-empty packs
    #[command(after_help = "Examples:
  cairn prune --dry-run
  cairn prune --max-unused 5")]
    Prune(prune::PruneArgs),
    /// Protect snapshots from forget and retention policies
    #[command(after_help = "Examples:
  cairn protect 4acb031c
  cairn protect @2026-02-15")]
    Protect(protect::ProtectArgs),
    /// Remove the protection of snapshots
    #[command(after_help = "Example:
  cairn unprotect 4acb031c")]
    Unprotect(protect::ProtectArgs),
    /// Change the tags of snapshots (a new record replaces each)
    #[command(after_help = "Examples:
  cairn tag latest --add before-upgrade
  cairn tag 4acb031c 9f3e --remove nightly --add monthly
  cairn tag @2026-02-15 --set release")]
    Tag(tag::TagArgs),
    /// Manage the passwords of an encrypted store
    #[command(after_help = "Examples:
  cairn key list
  cairn key add --new-password-file /root/.cairn-ops
  cairn key passwd
  cairn key remove 4acb031c")]
    Key(key::KeyArgs),
    /// Save, show or clear the store's retention policy
    #[command(after_help = "Examples:
  cairn policy set --keep-daily 7 --keep-weekly 4 --keep-monthly 12
  cairn policy show")]
    Policy(policy::PolicyCommand),
    /// Check the store: structure, and with --read-data every byte; exit 4 on damage
    #[command(after_help = "Examples:
  cairn verify
  cairn verify --budget 10m --max-age 30d      # nightly: a share of the packs
  cairn verify --read-data-subset $(date +%d)/31")]
    Verify(verify::VerifyArgs),
    /// Rebuild the catalog, or salvage damaged snapshots into new records
    #[command(after_help = "Examples:
  cairn repair snapshots --dry-run
  cairn repair catalog")]
    Repair(repair::RepairCommand),
    /// Copy snapshots into another store (an off-site copy), only what it lacks
    #[command(after_help = "Examples:
  cairn copy --to /mnt/offsite/cairn
  cairn copy latest --to s3://bucket/cairn --to-cache-dir /var/cache/cairn-offsite
  cairn copy --to /mnt/offsite/cairn --tag nightly")]
    Copy(copy::CopyArgs),
    /// The store's size, deduplication and compression, and its growth
    #[command(after_help = "Examples:
  cairn stats
  cairn stats --growth 30 --tag nightly
  cairn --json stats")]
    Stats(stats::StatsArgs),
    /// Show the profiles of cairn.toml, merged, and where each value comes from
    #[command(after_help = "Examples:
  cairn -P app config show
  cairn config show --config ./cairn.toml")]
    Config(config::ConfigCommand),
    /// Print a shell's completion script for cairn
    #[command(after_help = "Examples:
  cairn completions bash > /etc/bash_completion.d/cairn
  cairn completions zsh > /usr/local/share/zsh/site-functions/_cairn
  cairn completions fish > ~/.config/fish/completions/cairn.fish")]
    Completions(manual::CompletionsArgs),
    /// Write man pages: one per command into --dir, or one command's to stdout
    #[command(after_help = "Examples:
  cairn man --dir /usr/local/share/man/man1
  cairn man snapshot | man -l -")]
    Man(manual::ManArgs),
}

/// Parses the command line (with its profile), runs the command between
/// the profile's hooks, and says how it ended.
pub fn main() -> ExitCode {
    let invocation = match invocation::parse(std::env::args_os().collect()) {
        Ok(invocation) => invocation,
        Err(refusal) => return refuse(*refusal),
    };
    let hooks = hooks::Wrapped::new(invocation.profile.as_ref(), invocation.command.as_deref());
    if let Some(hooks) = &hooks
        && let Err(e) = hooks.before()
    {
        let message = printable(&format!("error: {e}; the command did not run")).into_owned();
        say!("cairn: {message}");
        hooks.after(Exit::Error, Some(&message));
        return Exit::Error.code();
    }
    let result = run(invocation.cli, invocation.profile.as_ref());
    let (exit, message) = exit::ending(&result);
    if let Some(message) = &message {
        say!("cairn: {message}");
    }
    if let Some(hooks) = &hooks {
        hooks.after(exit, message.as_deref());
    }
    exit.code()
}

/// Ends a command line that cannot run: clap's own message (or help), or
/// a bad configuration (exit 2); the profile's `on_failure` hook hears of
/// it, help and `--version` aside.
fn refuse(refusal: Refusal) -> ExitCode {
    let (code, message) = match refusal.why {
        Refused::Clap(e) => {
            let _ = e.print();
            let code = u8::try_from(e.exit_code()).unwrap_or(2);
            (code, e.use_stderr().then(|| e.to_string()))
        }
        Refused::Rendered { text, code } => {
            let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
            (u8::try_from(code).unwrap_or(2), (code != 0).then_some(text))
        }
        Refused::Config(e) => {
            let message = printable(&format!("error: {e}")).into_owned();
            say!("cairn: {message}");
            (Exit::Usage as u8, Some(message))
        }
    };
    let hooks = hooks::Wrapped::new(refusal.profile.as_ref(), refusal.command.as_deref());
    if let (Some(hooks), Some(message)) = (hooks, message) {
        let first_line = message.lines().next().unwrap_or_default();
        hooks.after(Exit::Usage, Some(first_line));
    }
    ExitCode::from(code)
}

/// A mistake on the command line that only shows once it is parsed (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Runs the parsed command line.
pub fn run(cli: Cli, profile: Option<&Profile>) -> anyhow::Result<Outcome> {
    let Cli { global, command } = cli;
    match command {
        Command::Completions(args) => return manual::completions(args),
        Command::Man(args) => return manual::man(args),
        Command::Config(args) => return config::run(&global, args, profile),
        _ => {}
    }
    let ctx = Ctx::new(global)?;
    match command {
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
        Command::Tag(args) => tag::run(&ctx, args),
        Command::Key(args) => key::run(&ctx, args),
        Command::Stats(args) => stats::run(&ctx, args),
        Command::Copy(args) => copy::run(&ctx, args),
        Command::Completions(_) | Command::Man(_) | Command::Config(_) => {
            unreachable!("run above, without a store")
        }
    }
}

/// Where an encrypted store's passphrase comes from: a file, a command,
/// else a prompt on the terminal.
fn password_source(file: Option<PathBuf>, command: Option<String>) -> Source {
    match (file, command) {
        (Some(file), _) => Source::File(file),
        (None, Some(command)) => Source::Command(command),
        (None, None) => Source::Prompt,
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
    verbose: u8,
    progress_interval: Option<Duration>,
    lock_wait: Duration,
    password: Source,
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
                timeout: global.request_timeout.unwrap_or(DEFAULT_TIMEOUT),
            },
            json: global.json,
            quiet: global.quiet,
            verbose: global.verbose,
            progress_interval: global.progress_interval,
            lock_wait: global.lock_wait.unwrap_or(Duration::ZERO),
            password: password_source(global.password_file, global.password_command),
        })
    }

    /// Whether a password source was given (not just a terminal to ask).
    fn password_given(&self) -> bool {
        self.password != Source::Prompt
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
            write_nothing: false,
            password: self.password.clone(),
            catalog_in_use: None,
        }
    }

    /// Opens the store to read it without writing anything to it, not even
    /// to its catalog, and under a lock that stops no other process.
    fn open_writing_nothing(&self) -> anyhow::Result<Store> {
        let options = OpenOptions {
            write_nothing: true,
            ..self.open_options(LockMode::Read)
        };
        let store = Store::open(&self.store, options)?;
        self.print_notices(&store);
        Ok(store)
    }

    fn print_notices(&self, store: &Store) {
        for notice in store.notices() {
            say!("cairn: {}", cairn::rawname::printable(&notice.to_string()));
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
        for key in &list.altered_in_store {
            output::warn(format_args!(
                "{key} in the store is not the record this host checked: damaged or replaced there; listed from this host's copy, which other hosts do not have; `cairn repair snapshots` writes it back"
            ));
        }
        Ok(list)
    }

    /// The lock of a command that rewrites the store (repair, policy):
    /// exclusive on a local store; on a remote one only shared on this host
    /// (the store's prune lease keeps other hosts' rewrites out).
    fn rewrite_lock(&self) -> LockMode {
        match self.store {
            Location::Local(_) => LockMode::Exclusive,
            Location::S3(_) => LockMode::Shared,
        }
    }

    /// Opens the store for `forget` and `prune`. A local store is taken
    /// exclusively when nothing else has it open (a prune then deletes at
    /// once); when snapshots are running, and `--lock-wait` was not given,
    /// it is opened shared instead and pruned in two phases beside them, as
    /// a remote store always is (prune::shared). A dry run only reads:
    /// held exclusively, it made the snapshots beside it fail as locked.
    fn open_for_prune(&self, dry_run: bool) -> anyhow::Result<Store> {
        if dry_run {
            return self.open(LockMode::Read);
        }
        if matches!(self.store, Location::S3(_)) || !self.lock_wait.is_zero() {
            return self.open(self.rewrite_lock());
        }
        match Store::open(&self.store, self.open_options(LockMode::Exclusive)) {
            Ok(store) => {
                self.print_notices(&store);
                Ok(store)
            }
            Err(cairn::store::StoreError::Locked { .. }) => self.open(LockMode::Shared),
            Err(e) => Err(e.into()),
        }
    }

    /// How progress is shown: nothing with --quiet; lines at
    /// `--progress-interval` when asked; a bar on a terminal (not with
    /// --json); else nothing.
    fn progress(&self) -> progress::Show {
        progress::Show::choose(self.quiet, self.json, self.progress_interval)
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
