//! `cairn snapshot`: the nightly job.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args};
use serde::Serialize;

use cairn::capture::database::SqliteOptions;
use cairn::capture::dry_run::{self, DryRun};
use cairn::capture::excludes::ExcludeOptions;
use cairn::capture::{self, CaptureOptions, ParentChoice, Plan, Request, lists};
use cairn::database::SqliteMode;
use cairn::outcome::Outcome;
use cairn::progress::Progress;
use cairn::snapshot::select::SnapshotRef;
use cairn::snapshot::{Snapshot, SnapshotRecord};
use cairn::store::{LockMode, Store, StoreError};
use cairn::when::{self, SnapshotTime};

use super::output::{
    StderrReporter, describe_files, describe_requests, human_bytes, parse_size, plural, warn,
};
use super::progress::{self, FILES};
use super::stdout::Out;
use super::{Ctx, init, print_json};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("stream").args(["stdin", "stdin_from_command"])))]
pub struct SnapshotArgs {
    /// Files and directories to capture
    #[arg(
        value_name = "PATH",
        required_unless_present_any = ["stdin", "stdin_from_command", "files_from", "files_from_raw"],
        conflicts_with = "stream"
    )]
    paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Host name to record [default: this machine's]
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    /// Record this time instead of now (RFC 3339, "2026-02-15 14:30" or 2026-02-15)
    #[arg(long, value_name = "WHEN", value_parser = local_instant)]
    time: Option<SnapshotTime>,
    /// Leave out paths matching this glob (repeatable); without '/' it matches names
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
    /// Read --exclude patterns from FILE, one per line; '#' starts a comment (repeatable)
    #[arg(long = "exclude-file", value_name = "FILE")]
    exclude_files: Vec<PathBuf>,
    /// Of a directory holding a valid CACHEDIR.TAG, keep only the tag
    #[arg(long)]
    exclude_caches: bool,
    /// Of a directory holding an entry named NAME, keep only that entry (repeatable)
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    exclude_if_present: Vec<OsString>,
    /// Leave out files larger than SIZE (e.g. 500M, 2G)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    exclude_larger_than: Option<u64>,
    /// Do not cross mount points below each source (a mount point is kept, empty)
    #[arg(long, short = 'x')]
    one_file_system: bool,
    /// Also capture each path listed in FILE, one per line; '-' reads stdin (repeatable)
    #[arg(long = "files-from", value_name = "FILE", conflicts_with = "stream")]
    files_from: Vec<PathBuf>,
    /// Like --files-from, with paths separated by NUL bytes (find -print0)
    #[arg(
        long = "files-from-raw",
        value_name = "FILE",
        conflicts_with = "stream"
    )]
    files_from_raw: Vec<PathBuf>,
    /// Only show what would be read, reading no file and writing nothing to the store
    #[arg(long, conflicts_with = "stream")]
    dry_run: bool,
    /// Compare against this snapshot instead of the newest with the same host and paths
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "force")]
    parent: Option<SnapshotRef>,
    /// Read every file, trusting no parent snapshot
    #[arg(long)]
    force: bool,
    /// Store standard input as one file
    #[arg(long)]
    stdin: bool,
    /// Run the command given after `--` (no shell) and store its output; commit only if it exits 0
    #[arg(long, requires = "command", conflicts_with = "stdin")]
    stdin_from_command: bool,
    /// File name for --stdin or --stdin-from-command (the snapshot holds /NAME)
    #[arg(
        long,
        value_name = "NAME",
        default_value = "stdin",
        requires = "stream"
    )]
    stdin_name: String,
    /// Exit 0 when --stdin or the command gives no bytes at all (else a warning and exit 3)
    #[arg(long, requires = "stream")]
    allow_empty: bool,
    /// SQLite databases: capture a consistent image (auto) or store the file's bytes (raw)
    #[arg(long, value_name = "MODE", value_enum, default_value_t = SqliteArg::Auto)]
    sqlite: SqliteArg,
    /// How long to retry a busy or locked database before leaving it out
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = when::parse_duration)]
    sqlite_timeout: Duration,
    /// The command of --stdin-from-command and its arguments, after `--`
    #[arg(last = true, value_name = "COMMAND", requires = "stdin_from_command")]
    command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SqliteArg {
    Auto,
    Raw,
}

pub fn run(ctx: &Ctx, args: SnapshotArgs) -> anyhow::Result<Outcome> {
    let plan = plan(&args)?;
    super::choose::warn_if_future(args.time);
    if args.dry_run {
        return run_dry(ctx, &plan);
    }
    let mut store = open_or_create(ctx)?;
    upgrade_for_writing(&mut store)?;
    let progress = Progress::default();
    let show = ctx.progress();
    let snapshot = progress::run(show, &progress, FILES, render_progress, |bar| {
        let reporter = StderrReporter {
            quiet: ctx.quiet,
            bar,
            verbose: ctx.verbose,
            json: ctx.json,
        };
        capture::run(&store, &plan, &reporter, &progress)
    })?;
    super::hooks::committed(snapshot.id);
    let empty = empty_stream(&args, &snapshot.record.summary);
    if let Some(what) = &empty {
        warn(format_args!(
            "{what} was empty: snapshot {} holds an empty /{} (pass --allow-empty if that is expected)",
            snapshot.id.short(),
            args.stdin_name
        ));
    }
    // A dump that printed nothing is an item not whole, as a file left out is.
    let outcome = snapshot
        .record
        .summary
        .outcome()
        .worst(Outcome::partial_if(u64::from(empty.is_some())));
    let committed = format!("snapshot {}", snapshot.id.short());
    Out::deferring().report(outcome, Some(committed), |out| report(out, ctx, &snapshot))
}

/// For a stream that gave no bytes at all without --allow-empty, what it
/// was: a dump that printed nothing is more likely broken than empty.
fn empty_stream(args: &SnapshotArgs, summary: &cairn::snapshot::Summary) -> Option<String> {
    if args.allow_empty || summary.total_bytes > 0 {
        return None;
    }
    if args.stdin {
        return Some("standard input".to_owned());
    }
    let words: Vec<_> = args.command.iter().map(|w| w.to_string_lossy()).collect();
    args.stdin_from_command
        .then(|| format!("the output of `{}`", words.join(" ")))
}

/// `--dry-run`: walks and compares, reading no file and writing nothing.
/// The store is opened to read only (its lock never stops another
/// process), and one that does not exist yet is not created.
fn run_dry(ctx: &Ctx, plan: &Plan) -> anyhow::Result<Outcome> {
    let store = match ctx.store_is_default && !Store::exists(&ctx.store) {
        true => None,
        false => Some(ctx.open_writing_nothing()?),
    };
    let reporter = StderrReporter {
        quiet: ctx.quiet,
        bar: None,
        verbose: ctx.verbose,
        json: ctx.json,
    };
    let report = dry_run::dry_run(store.as_ref(), plan, &reporter)?;
    Out::streaming().report(Outcome::Done, None, |out| print_dry_run(out, ctx, &report))
}

fn print_dry_run(out: &mut Out, ctx: &Ctx, r: &DryRun) -> io::Result<()> {
    if ctx.json {
        return print_json(out, &DryRunJson { dry_run: true, r });
    }
    if ctx.quiet {
        return Ok(());
    }
    match &r.parent {
        Some(id) => writeln!(
            out,
            "dry run, compared with snapshot {}: nothing was read or stored",
            id.short()
        )?,
        None => writeln!(
            out,
            "dry run, no parent snapshot: nothing was read or stored"
        )?,
    }
    writeln!(
        out,
        "  files: {} new, {} changed, {} unchanged ({} in all, {} dirs, {} symlinks)",
        r.files_new, r.files_changed, r.files_unchanged, r.files, r.dirs, r.symlinks
    )?;
    writeln!(
        out,
        "  data:  {} to read (of {} in all); only the chunks the store lacks would be added",
        human_bytes(r.bytes_to_read),
        human_bytes(r.total_bytes)
    )?;
    if r.errors > 0 || r.skipped > 0 {
        writeln!(
            out,
            "  would leave out: {} (errors), skip: {} (special files)",
            r.errors, r.skipped
        )?;
    }
    Ok(())
}

/// A dry run as `--json` shows it.
#[derive(Serialize)]
struct DryRunJson<'a> {
    dry_run: bool,
    #[serde(flatten)]
    r: &'a DryRun,
}

/// Everything checked before the store is opened (or created).
fn plan(args: &SnapshotArgs) -> anyhow::Result<Plan> {
    let parent = match (&args.parent, args.force) {
        (_, true) => ParentChoice::None,
        (Some(r), false) => ParentChoice::Given(r.clone()),
        (None, false) => ParentChoice::Auto,
    };
    let options = CaptureOptions {
        host: args.host.clone().unwrap_or_else(capture::default_host),
        tags: args.tags.clone(),
        time: args.time,
        excludes: exclude_options(args)?,
        parent,
        sqlite: SqliteOptions {
            mode: match args.sqlite {
                SqliteArg::Auto => SqliteMode::Auto,
                SqliteArg::Raw => SqliteMode::Raw,
            },
            timeout: args.sqlite_timeout,
        },
    };
    let name = args.stdin_name.as_str();
    let paths;
    let request = if args.stdin {
        Request::Stdin { name }
    } else if args.stdin_from_command {
        Request::Command {
            name,
            argv: &args.command,
        }
    } else {
        paths = lists::gather_paths(&args.paths, &args.files_from, &args.files_from_raw)?;
        Request::Paths(&paths)
    };
    Ok(capture::prepare(request, options)?)
}

fn exclude_options(args: &SnapshotArgs) -> anyhow::Result<ExcludeOptions> {
    let mut patterns = args.excludes.clone();
    for file in &args.exclude_files {
        patterns.extend(lists::read_patterns(file)?);
    }
    Ok(ExcludeOptions {
        patterns,
        caches: args.exclude_caches,
        if_present: args.exclude_if_present.clone(),
        larger_than: args.exclude_larger_than,
        one_file_system: args.one_file_system,
    })
}

fn local_instant(text: &str) -> Result<SnapshotTime, String> {
    when::parse_instant(text, &jiff::tz::TimeZone::system())
}

/// Brings an older store up to the format this cairn writes before it
/// writes to it, and says so.
fn upgrade_for_writing(store: &mut Store) -> anyhow::Result<()> {
    if let Some(old) = store.upgrade_for_writing()? {
        announce_upgrade(store, old);
    }
    Ok(())
}

/// Tells that `store` was upgraded from format `old`: older cairn
/// versions can no longer open it.
pub(super) fn announce_upgrade(store: &Store, old: u32) {
    say!(
        "cairn: upgraded store {} from format version {old} to {} (older cairn versions can no longer open it)",
        store.location(),
        store.config().version
    );
}

/// Opens the store; the default store is created on first use. Of two first
/// runs racing to create it, one creates it and the other opens it.
fn open_or_create(ctx: &Ctx) -> anyhow::Result<Store> {
    if ctx.store_is_default && !Store::exists(&ctx.store) {
        match init::init_default(ctx) {
            Ok(store) => {
                say!("cairn: created a new store at {}", ctx.store);
                return Ok(store);
            }
            Err(StoreError::Exists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.open(LockMode::Shared)
}

/// What a snapshot adds to the progress line.
fn render_progress(p: &Progress) -> String {
    format!(", {} added", human_bytes(p.read().2))
}

/// A snapshot as `--json` shows it: the id, then every record field.
#[derive(Serialize)]
pub struct SnapshotJson<'a> {
    pub id: String,
    #[serde(flatten)]
    pub record: &'a SnapshotRecord,
}

impl<'a> From<&'a Snapshot> for SnapshotJson<'a> {
    fn from(s: &'a Snapshot) -> Self {
        Self {
            id: s.id.to_hex(),
            record: &s.record,
        }
    }
}

fn report(out: &mut Out, ctx: &Ctx, snapshot: &Snapshot) -> io::Result<()> {
    if ctx.json {
        return print_json(out, &SnapshotJson::from(snapshot));
    }
    if ctx.quiet {
        return Ok(());
    }
    let s = &snapshot.record.summary;
    writeln!(out, "snapshot {} saved", snapshot.id.short())?;
    writeln!(out, "  files: {}", describe_files(s))?;
    writeln!(
        out,
        "  data:  {} read, {} added to the store ({}, {} reused)",
        human_bytes(s.bytes_read),
        human_bytes(s.bytes_added),
        plural(s.data_blobs_new, "new chunk"),
        s.data_blobs_reused
    )?;
    report_databases(out, s)?;
    if s.errors > 0 || s.skipped > 0 {
        writeln!(
            out,
            "  left out: {} (errors), skipped: {} (special files)",
            s.errors, s.skipped
        )?;
    }
    if s.files_inconsistent > 0 {
        writeln!(
            out,
            "  changed while read: {}, stored as read (may be inconsistent)",
            plural(s.files_inconsistent, "file")
        )?;
    }
    if let Some(requests) = &s.requests {
        writeln!(out, "  requests: {}", describe_requests(requests))?;
    }
    writeln!(out, "  took {:.1}s", s.duration_secs)
}

fn report_databases(out: &mut Out, s: &cairn::snapshot::Summary) -> io::Result<()> {
    for db in &s.databases {
        let path = &db.path;
        if db.unchanged {
            writeln!(out, "  database {path}: unchanged")?;
            continue;
        }
        writeln!(
            out,
            "  database {path}: {} captured in {:.1}s, {} of {} new ({})",
            human_bytes(db.size),
            db.capture_secs,
            db.chunks_new,
            plural(db.chunks, "chunk"),
            human_bytes(db.bytes_new)
        )?;
    }
    if let Some(n) = s.database_fallbacks.filter(|n| *n > 0) {
        writeln!(
            out,
            "  stored as plain bytes: {} that looked like databases but SQLite refused",
            plural(n, "file")
        )?;
    }
    Ok(())
}
