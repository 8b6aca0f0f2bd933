//! `cairn snapshot`: the nightly job.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use cairn::capture::database::SqliteOptions;
use cairn::capture::{self, CaptureOptions, ParentChoice, Plan};
use cairn::database::SqliteMode;
use cairn::progress::Progress;
use cairn::snapshot::select::SnapshotRef;
use cairn::snapshot::{Snapshot, SnapshotRecord};
use cairn::store::{LockMode, Store, StoreError};
use cairn::when::{self, SnapshotTime};

use super::exit::Exit;
use super::output::{StderrReporter, describe_requests, human_bytes, with_progress};
use super::stdout::Out;
use super::{Ctx, init, print_json};

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Files and directories to capture
    #[arg(
        value_name = "PATH",
        required_unless_present = "stdin",
        conflicts_with = "stdin"
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
    /// Compare against this snapshot instead of the newest with the same host and paths
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "force")]
    parent: Option<SnapshotRef>,
    /// Read every file, trusting no parent snapshot
    #[arg(long)]
    force: bool,
    /// Store standard input as one file
    #[arg(long)]
    stdin: bool,
    /// File name for --stdin (the snapshot holds /NAME)
    #[arg(long, value_name = "NAME", default_value = "stdin", requires = "stdin")]
    stdin_name: String,
    /// SQLite databases: capture a consistent image (auto) or store the file's bytes (raw)
    #[arg(long, value_name = "MODE", value_enum, default_value_t = SqliteArg::Auto)]
    sqlite: SqliteArg,
    /// How long to retry a busy or locked database before leaving it out
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = when::parse_duration)]
    sqlite_timeout: Duration,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SqliteArg {
    Auto,
    Raw,
}

pub fn run(ctx: &Ctx, args: SnapshotArgs) -> anyhow::Result<Exit> {
    let plan = plan(&args)?;
    let mut store = open_or_create(ctx)?;
    if let Some(old) = store.upgrade_for_writing()? {
        eprintln!(
            "cairn: upgraded store {} from format version {old} to {} (older cairn versions can no longer open it)",
            store.location(),
            store.config().version
        );
    }
    let progress = Progress::default();
    let snapshot = with_progress(&progress, ctx.wants_progress(), render_progress, |bar| {
        let reporter = StderrReporter {
            quiet: ctx.quiet,
            bar,
        };
        capture::run(&store, &plan, &reporter, &progress)
    })?;
    let summary = &snapshot.record.summary;
    let exit = if summary.errors > 0
        || summary.database_fallbacks > 0
        || summary.files_inconsistent > 0
        || summary.xattrs_unread > 0
    {
        Exit::Partial
    } else {
        Exit::Ok
    };
    let committed = format!("snapshot {}", snapshot.id.short());
    Out::deferring().report(exit, Some(committed), |out| report(out, ctx, &snapshot))
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
        excludes: args.excludes.clone(),
        parent,
        sqlite: SqliteOptions {
            mode: match args.sqlite {
                SqliteArg::Auto => SqliteMode::Auto,
                SqliteArg::Raw => SqliteMode::Raw,
            },
            timeout: args.sqlite_timeout,
        },
    };
    let stdin_name = args.stdin.then_some(args.stdin_name.as_str());
    Ok(capture::prepare(&args.paths, stdin_name, options)?)
}

fn local_instant(text: &str) -> Result<SnapshotTime, String> {
    when::parse_instant(text, &jiff::tz::TimeZone::system())
}

/// Opens the store; the default store is created on first use. Of two first
/// runs racing to create it, one creates it and the other opens it.
fn open_or_create(ctx: &Ctx) -> anyhow::Result<Store> {
    if ctx.store_is_default && !Store::exists(&ctx.store) {
        match init::init_default(ctx) {
            Ok(store) => {
                eprintln!("cairn: created a new store at {}", ctx.store);
                return Ok(store);
            }
            Err(StoreError::Exists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.open(LockMode::Shared)
}

fn render_progress(p: &Progress) -> String {
    let (files, bytes, stored) = p.read();
    format!(
        "{files} files, {} read, {} added",
        human_bytes(bytes),
        human_bytes(stored)
    )
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
    writeln!(
        out,
        "  files: {} new, {} changed, {} unchanged ({} in all, {} dirs, {} symlinks)",
        s.files_new, s.files_changed, s.files_unchanged, s.files, s.dirs, s.symlinks
    )?;
    writeln!(
        out,
        "  data:  {} read, {} added to the store ({} new chunks, {} reused)",
        human_bytes(s.bytes_read),
        human_bytes(s.bytes_added),
        s.data_blobs_new,
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
            "  changed while read: {} file(s), stored as read (may be inconsistent)",
            s.files_inconsistent
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
            "  database {path}: {} captured in {:.1}s, {} of {} chunks new ({})",
            human_bytes(db.size),
            db.capture_secs,
            db.chunks_new,
            db.chunks,
            human_bytes(db.bytes_new)
        )?;
    }
    if s.database_fallbacks > 0 {
        writeln!(
            out,
            "  {} file(s) looked like databases but SQLite refused them: stored as plain bytes",
            s.database_fallbacks
        )?;
    }
    Ok(())
}
