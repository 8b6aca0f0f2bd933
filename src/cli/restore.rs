//! `cairn restore`: put a snapshot (or some of its paths) back into a
//! directory, or write it as a tar stream.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use cairn::backend::RequestStats;
use cairn::progress::Progress;
use cairn::rawname::{RawName, escaped, printable};
use cairn::restore::{self, RestoreOptions, RestoreOutcome, Selection};
use cairn::snapshot::select::SnapshotRef;
use cairn::snapshot::{Snapshot, SnapshotList};
use cairn::store::LockMode;

use super::choose::{self, AtArgs};
use super::exit::Exit;
use super::output::{describe_requests, human_bytes, with_progress};
use super::snapshots::FilterArgs;
use super::stdout::Out;
use super::{Ctx, print_json};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot: an id, a unique prefix of at least 4 hex digits, `latest` or @WHEN (or use --at)
    #[arg(value_name = "SNAPSHOT", value_parser = choose::snapshot_ref)]
    snapshot: Option<SnapshotRef>,
    #[command(flatten)]
    at: AtArgs,
    /// Directory to restore into (each source path is recreated under it)
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "tar",
        conflicts_with = "tar"
    )]
    target: Option<PathBuf>,
    /// Write a tar stream to FILE (`-` for stdout) instead of restoring into a directory
    #[arg(long, value_name = "FILE")]
    tar: Option<PathBuf>,
    /// Restore only this path of the snapshot and what is below it (repeatable)
    #[arg(long = "include", value_name = "PATH")]
    include: Vec<PathBuf>,
    /// Drop this leading directory from restored paths: with /var/lib/app, /var/lib/app/app.db lands at TARGET/app.db
    #[arg(long, value_name = "DIR")]
    strip_prefix: Option<PathBuf>,
    /// Replace files that already exist in the target
    #[arg(long)]
    overwrite: bool,
    /// Run PRAGMA integrity_check on every restored SQLite database (exit 4 if one fails)
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, args: RestoreArgs) -> anyhow::Result<Exit> {
    let filter = args.filter.to_filter()?;
    let reference = choose::one(args.snapshot.clone(), args.at.at)?;
    let selection = Selection {
        include: args.include.clone(),
        strip_prefix: args.strip_prefix.clone(),
    };
    let store = ctx.open(LockMode::Read)?;
    let list = ctx.snapshot_list(&store)?;
    let snapshot = list.resolve(&reference, &filter)?;
    let hint = repaired_copy_hint(&list, snapshot);
    if let Some(copy) = list.repaired_copy(&snapshot.id) {
        eprintln!(
            "cairn: note: snapshot {} has a repaired copy, {}, that leaves out its lost files; restoring {0} itself",
            snapshot.id.short(),
            copy.id.short()
        );
    }
    let Some(target) = args.target.clone() else {
        return write_tar(ctx, &store, snapshot, &selection, args.tar.as_deref())
            .map_err(|e| with_hint(e, &hint));
    };
    let options = RestoreOptions {
        target,
        overwrite: args.overwrite,
        selection,
    };
    // A restore stopped by a signal removes the files it was writing.
    cairn::interrupt::catch_signals().context("catching SIGINT and SIGTERM")?;
    let survey = restore::survey(&store, snapshot, &options.selection, &options.target)
        .map_err(|e| with_hint(e.into(), &hint))?;
    let total = survey.bytes;
    let progress = Progress::default();
    let outcome = with_progress(
        &progress,
        ctx.wants_progress(),
        |p| {
            let (files, bytes, _) = p.read();
            format!(
                "{files} files, {} of {}",
                human_bytes(bytes),
                human_bytes(total)
            )
        },
        |_| restore::execute(&store, snapshot, survey, &options, &progress),
    )
    .map_err(|e| with_hint(e.into(), &hint))?;
    let checks = if args.check {
        cairn::database::integrity_check_all(&outcome.databases)
    } else {
        Vec::new()
    };
    let damaged: Vec<_> = checks
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    let exit = if damaged.is_empty() {
        Exit::Ok
    } else {
        Exit::Damage
    };
    // Printed before the failures are told on stderr, as it always was; a
    // closed stdout does not hide them.
    let printed = Out::streaming().report(exit, None, |out| {
        if ctx.json {
            print_restore_json(
                out,
                snapshot,
                &options,
                &outcome,
                &checks,
                store.backend().requests(),
            )
        } else if !ctx.quiet {
            let requests = store.backend().requests();
            print_restored(out, snapshot, &options, &outcome, &checks)?;
            print_requests(out, requests)
        } else {
            Ok(())
        }
    });
    for e in &damaged {
        eprintln!("cairn: DAMAGED: {}", printable(&e.to_string()));
    }
    if !outcome.failed.is_empty() {
        for (path, error) in &outcome.failed {
            let line = format!("cairn: error: {}: {error}", escaped(path));
            eprintln!("{}", printable(&line));
        }
        let failed = anyhow::anyhow!("{} item(s) could not be restored", outcome.failed.len());
        return Err(with_hint(failed, &hint));
    }
    if !damaged.is_empty() {
        eprintln!(
            "cairn: {} restored database(s) failed PRAGMA integrity_check",
            damaged.len()
        );
    }
    printed
}

type Checks = [(PathBuf, Result<(), cairn::database::CheckError>)];

fn print_restore_json(
    out: &mut Out,
    snapshot: &Snapshot,
    options: &RestoreOptions,
    outcome: &RestoreOutcome,
    checks: &Checks,
    requests: Option<cairn::backend::RequestStats>,
) -> io::Result<()> {
    let checked: Vec<_> = checks
        .iter()
        .map(|(p, r)| {
            let error = r.as_ref().err().map(ToString::to_string);
            serde_json::json!({"path": RawName::from_path(p), "ok": error.is_none(), "error": error})
        })
        .collect();
    let stale: Vec<_> = outcome
        .stale_removed
        .iter()
        .map(|p| RawName::from_path(p))
        .collect();
    let failed: Vec<_> = outcome
        .failed
        .iter()
        .map(|(p, e)| serde_json::json!({"path": RawName::from_path(p), "error": e}))
        .collect();
    print_json(
        out,
        &serde_json::json!({
            "snapshot": snapshot.id.to_hex(),
            "target": RawName::from_path(&options.target),
            "files": outcome.files,
            "dirs": outcome.dirs,
            "symlinks": outcome.symlinks,
            "bytes": outcome.bytes,
            "failed": failed,
            "databases": outcome.databases.len(),
            "stale_side_files_removed": stale,
            "leftovers_removed": outcome.leftovers_removed,
            "checked": checked,
            "requests": requests,
        }),
    )
}

fn print_restored(
    out: &mut Out,
    snapshot: &Snapshot,
    options: &RestoreOptions,
    outcome: &RestoreOutcome,
    checks: &Checks,
) -> io::Result<()> {
    writeln!(
        out,
        "restored snapshot {} to {}: {} files, {} dirs, {} symlinks, {}",
        snapshot.id.short(),
        escaped(&options.target),
        outcome.files,
        outcome.dirs,
        outcome.symlinks,
        human_bytes(outcome.bytes)
    )?;
    if outcome.leftovers_removed > 0 {
        writeln!(
            out,
            "  removed {} temporary file(s) left by an interrupted restore",
            outcome.leftovers_removed
        )?;
    }
    for path in &outcome.stale_removed {
        writeln!(
            out,
            "  removed stale {} (from an older database)",
            escaped(path)
        )?;
    }
    for (path, result) in checks {
        if result.is_ok() {
            writeln!(out, "  integrity_check ok: {}", escaped(path))?;
        }
    }
    Ok(())
}

/// What a restore from a remote store cost (on S3 requests are billed).
fn print_requests(out: &mut Out, requests: Option<RequestStats>) -> io::Result<()> {
    match requests {
        Some(r) => writeln!(out, "  requests: {}", describe_requests(&r)),
        None => Ok(()),
    }
}

/// For a snapshot `repair snapshots` wrote a copy of: which one to
/// restore instead when it fails for lack of its lost data.
fn repaired_copy_hint(list: &SnapshotList, snapshot: &Snapshot) -> Option<String> {
    list.repaired_copy(&snapshot.id).map(|copy| {
        format!(
            "snapshot {} needs data that is lost: restore its repaired copy {} instead",
            snapshot.id.short(),
            copy.id.short()
        )
    })
}

fn with_hint(e: anyhow::Error, hint: &Option<String>) -> anyhow::Error {
    match hint {
        Some(hint) => anyhow::anyhow!("{}; {hint}", super::exit::describe(&e)),
        None => e,
    }
}

/// `--tar FILE` or `--tar -`.
fn write_tar(
    ctx: &Ctx,
    store: &cairn::store::Store,
    snapshot: &cairn::snapshot::Snapshot,
    selection: &Selection,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Exit> {
    let file = file.unwrap_or(std::path::Path::new("-"));
    if file == std::path::Path::new("-") {
        let mut out = Out::streaming();
        restore::tar::write(store, snapshot, selection, &mut out)?;
        out.finish()?;
        return Ok(Exit::Ok);
    }
    let outcome = {
        // Written under a temporary name beside it and linked into place
        // only when complete: a failed run leaves no truncated archive.
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
        let tmp = tempfile::Builder::new()
            .prefix(".cairn-tar-")
            .tempfile_in(dir.unwrap_or(std::path::Path::new(".")))
            .with_context(|| format!("creating a temporary file beside {}", escaped(file)))?;
        let outcome = restore::tar::write(
            store,
            snapshot,
            selection,
            std::io::BufWriter::new(tmp.as_file()),
        )?;
        tmp.as_file()
            .sync_all()
            .with_context(|| format!("writing {}", escaped(file)))?;
        tmp.persist_noclobber(file)
            .map_err(|e| e.error)
            .with_context(|| format!("creating {} (it must not exist yet)", escaped(file)))?;
        outcome
    };
    Out::streaming().report(Exit::Ok, None, |out| {
        if ctx.json {
            print_json(
                out,
                &serde_json::json!({
                    "snapshot": snapshot.id.to_hex(),
                    "tar": RawName::from_path(file),
                    "files": outcome.files,
                    "dirs": outcome.dirs,
                    "symlinks": outcome.symlinks,
                    "bytes": outcome.bytes,
                }),
            )
        } else if !ctx.quiet {
            writeln!(
                out,
                "wrote snapshot {} to {}: {} files, {} dirs, {} symlinks, {}",
                snapshot.id.short(),
                escaped(file),
                outcome.files,
                outcome.dirs,
                outcome.symlinks,
                human_bytes(outcome.bytes)
            )
        } else {
            Ok(())
        }
    })
}
