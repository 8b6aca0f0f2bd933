//! `cairn restore`: put a snapshot (or some of its paths) back into a
//! directory, or write it as a tar stream.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use cairn::backend::RequestStats;
use cairn::outcome::Outcome;
use cairn::pattern::Patterns;
use cairn::progress::Progress;
use cairn::rawname::{RawName, escaped, printable};
use cairn::restore::delete::{Removal, Removed};
use cairn::restore::{self, MetaOptions, RestoreOptions, RestoreOutcome, Selection, Survey};
use cairn::snapshot::select::SnapshotRef;
use cairn::snapshot::{Snapshot, SnapshotList};
use cairn::store::LockMode;

use super::choose::{self, AtArgs};
use super::filter::FilterArgs;
use super::output::{describe_requests, human_bytes, plural, warn};
use super::progress::{self, FILES};
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
    /// Do not restore paths matching this glob (repeatable); without '/' it matches names
    #[arg(long = "exclude", value_name = "GLOB")]
    exclude: Vec<String>,
    /// Drop this leading directory from restored paths: with /var/lib/app, /var/lib/app/app.db lands at TARGET/app.db
    #[arg(long, value_name = "DIR")]
    strip_prefix: Option<PathBuf>,
    /// Replace files that already exist in the target
    #[arg(long)]
    overwrite: bool,
    /// Remove what the snapshot does not hold from the restored directories (with --overwrite)
    #[arg(long, requires = "overwrite", conflicts_with = "tar")]
    delete: bool,
    /// Only show what would be written, replaced and removed; write nothing
    #[arg(long, conflicts_with = "tar")]
    dry_run: bool,
    /// Run PRAGMA integrity_check on every restored SQLite database (exit 4 if one fails)
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    meta: MetaArgs,
    #[command(flatten)]
    filter: FilterArgs,
}

/// How metadata is restored.
#[derive(Debug, Args)]
struct MetaArgs {
    /// Give files their recorded uid/gid, not the ids their recorded user and group names have here
    /// (a tar stream carries both: extract it with `tar --numeric-owner`)
    #[arg(long, conflicts_with = "tar")]
    numeric_owner: bool,
    /// Also leave blocks of zeros unwritten, as holes (recorded holes always are)
    #[arg(long, conflicts_with = "tar")]
    sparse: bool,
    /// Exit 3 if any owner, xattr, ACL or hard link could not be restored (default: warn, exit 0)
    #[arg(long, conflicts_with = "tar")]
    strict_metadata: bool,
}

pub fn run(ctx: &Ctx, args: RestoreArgs) -> anyhow::Result<Outcome> {
    let filter = args.filter.to_filter()?;
    let reference = choose::one(args.snapshot.clone(), args.at.at)?;
    let selection = Selection {
        include: includes(&args, &filter, ctx.quiet),
        strip_prefix: args.strip_prefix.clone(),
        exclude: Patterns::new(&args.exclude)?,
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
        meta: MetaOptions {
            numeric_owner: args.meta.numeric_owner,
            sparse: args.meta.sparse,
        },
    };
    // A restore stopped by a signal removes the files it was writing.
    cairn::interrupt::catch_signals().context("catching SIGINT and SIGTERM")?;
    // Opened once: every step works in the directory the survey looked at,
    // whatever is swapped in at its path meanwhile.
    let root = restore::open_target(&options.target)
        .with_context(|| format!("opening {}", options.target.display()))?;
    let (selection, target) = (&options.selection, &options.target);
    let survey = restore::survey(&store, snapshot, selection, target, root.as_ref())
        .map_err(|e| with_hint(e.into(), &hint))?;
    let plan = match args.delete {
        true => restore::delete::plan(&store, snapshot, selection, target, root.as_ref())?,
        false => restore::delete::Plan::default(),
    };
    for spared in &plan.spared {
        warn(format_args!(
            "{}: another file system is mounted there; --delete does not clean inside it",
            escaped(&target.join(spared))
        ));
    }
    if args.dry_run {
        return dry_run(ctx, snapshot, &options, &survey, &plan);
    }
    cairn::crash::point("restore-surveyed");
    // Removed before anything is written (so that each directory's
    // metadata is set last), and only once the restore cannot refuse.
    if let Some(refused) = survey.refusal(options.overwrite) {
        return Err(refused.into());
    }
    let removed = restore::delete::remove(&options.target, root.as_ref(), &plan);
    let progress = Progress::default();
    let outcome = progress::run(
        ctx.progress(),
        &progress,
        FILES,
        |_| String::new(),
        |_| restore::execute(&store, snapshot, survey, &options, root, &progress),
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
    // Metadata left unrestored is a partial restore only when asked
    // (--strict-metadata); paths --delete could not remove are items left
    // undone, as files that could not be written are.
    let strict = match args.meta.strict_metadata {
        true => Outcome::partial_if(outcome.skipped.total()),
        false => Outcome::Done,
    };
    let result = outcome
        .outcome()
        .worst(Outcome::damage_if(damaged.len() as u64))
        .worst(strict)
        .worst(Outcome::partial_if(removed.failed.len() as u64));
    // Printed before the failures are told on stderr, as it always was; a
    // closed stdout does not hide them.
    let printed = Out::streaming().report(result, None, |out| {
        if ctx.json {
            print_restore_json(
                out,
                snapshot,
                &options,
                (&outcome, &removed),
                &checks,
                store.backend().requests(),
            )
        } else if !ctx.quiet {
            let requests = store.backend().requests();
            print_restored(out, snapshot, &options, &outcome, &checks)?;
            print_removed(out, &options, &removed.removed)?;
            print_requests(out, requests)
        } else {
            Ok(())
        }
    });
    warn_skipped(&outcome.skipped, args.meta.strict_metadata);
    for e in &damaged {
        eprintln!("cairn: DAMAGED: {}", printable(&e.to_string()));
    }
    for (path, error) in &removed.failed {
        let line = format!("cairn: error: {}: cannot remove: {error}", escaped(path));
        eprintln!("{}", printable(&line));
    }
    if !outcome.failed.is_empty() {
        for (path, error) in &outcome.failed {
            let line = format!("cairn: error: {}: {error}", escaped(path));
            eprintln!("{}", printable(&line));
        }
        let mut failed = format!(
            "{} could not be restored; everything else was",
            plural(outcome.failed.len() as u64, "item")
        );
        if let Some(hint) = &hint {
            failed = format!("{failed}; {hint}");
        }
        eprintln!("cairn: {}", printable(&failed));
        warn_packs_gone(outcome.pack_gone, store.backend().is_remote());
    }
    if !removed.failed.is_empty() {
        let n = removed.failed.len() as u64;
        eprintln!(
            "cairn: {} the snapshot does not hold could not be removed",
            plural(n, "path")
        );
    }
    if !damaged.is_empty() {
        eprintln!(
            "cairn: {} failed PRAGMA integrity_check",
            plural(damaged.len() as u64, "restored database")
        );
    }
    printed
}

/// What to restore: `--include`, or else the paths `--path` chose the
/// snapshot by (restic's `--path` only chooses; restoring the rest of a
/// snapshot of `/srv/app /etc` when `/srv/app` was asked for surprised).
fn includes(
    args: &RestoreArgs,
    filter: &cairn::snapshot::select::Filter,
    quiet: bool,
) -> Vec<PathBuf> {
    if !args.include.is_empty() || filter.paths.is_empty() {
        return args.include.clone();
    }
    let paths: Vec<PathBuf> = filter
        .paths
        .iter()
        .map(|p| p.as_path().to_owned())
        .collect();
    if !quiet {
        let named: Vec<String> = paths.iter().map(|p| escaped(p).to_string()).collect();
        eprintln!(
            "cairn: note: restoring only {} (the --path given); add --include to restore other paths of the snapshot",
            named.join(", ")
        );
    }
    paths
}

type Checks = [(PathBuf, Result<(), cairn::database::CheckError>)];

/// What to do about files that need packs the store does not have: on a
/// store other hosts prune, this host's catalog may be behind a prune that
/// moved their blobs (a repair brings it up to date); else they are lost.
fn warn_packs_gone(files: u64, remote: bool) {
    if files == 0 {
        return;
    }
    let verb = if files == 1 { "needs" } else { "need" };
    let what = format!(
        "{} {verb} a pack the store does not have",
        plural(files, "file")
    );
    let next = if remote {
        "if another host pruned this store, `cairn repair catalog` (run while no other host writes) brings this host's catalog up to date and the restore can be run again; `cairn verify` says what is lost"
    } else {
        "`cairn verify` says what is lost"
    };
    eprintln!("cairn: {what}: {next}");
}

/// One warning per kind of metadata that could not be restored.
fn warn_skipped(skipped: &restore::Skipped, strict: bool) {
    for (kind, k) in &skipped.kinds {
        let line = format!(
            "cairn: warning: {} {kind} could not be restored (first: {}: {}){}",
            k.count,
            escaped(&k.path),
            k.cause,
            if strict {
                ""
            } else {
                "; --strict-metadata makes this exit 3"
            }
        );
        eprintln!("{}", printable(&line));
    }
}

fn print_restore_json(
    out: &mut Out,
    snapshot: &Snapshot,
    options: &RestoreOptions,
    (outcome, removed): (&RestoreOutcome, &Removed),
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
    let skipped: Vec<_> = outcome
        .skipped
        .kinds
        .iter()
        .map(|(kind, k)| {
            serde_json::json!({"kind": kind, "count": k.count, "path": RawName::from_path(&k.path), "error": k.cause})
        })
        .collect();
    print_json(
        out,
        &serde_json::json!({
            "snapshot": snapshot.id.to_hex(),
            "target": RawName::from_path(&options.target),
            "files": outcome.files,
            "dirs": outcome.dirs,
            "symlinks": outcome.symlinks,
            "hardlinks": outcome.hardlinks,
            "bytes": outcome.bytes,
            "failed": failed,
            "metadata_skipped": skipped,
            "databases": outcome.databases.len(),
            "stale_side_files_removed": stale,
            "leftovers_removed": outcome.leftovers_removed,
            "checked": checked,
            "removed": paths_of(options, &removed.removed),
            "delete_spared": spared_of(options, &removed.spared),
            "requests": requests,
        }),
    )
}

/// Where each of `removals` is (or was) in the target, for JSON.
fn paths_of(options: &RestoreOptions, removals: &[Removal]) -> Vec<RawName> {
    removals
        .iter()
        .map(|r| RawName::from_path(&options.target.join(&r.rel)))
        .collect()
}

/// Where each directory `--delete` did not clean is, for JSON.
fn spared_of(options: &RestoreOptions, spared: &[PathBuf]) -> Vec<RawName> {
    (spared.iter())
        .map(|rel| RawName::from_path(&options.target.join(rel)))
        .collect()
}

/// `--delete`: each path removed, a directory with a `/`.
fn print_removed(out: &mut Out, options: &RestoreOptions, removed: &[Removal]) -> io::Result<()> {
    for r in removed {
        let path = options.target.join(&r.rel);
        let slash = if r.is_dir { "/ (and all in it)" } else { "" };
        writeln!(out, "  removed {}{slash}", escaped(&path))?;
    }
    Ok(())
}

/// `--dry-run`: what the restore would do, or the refusal it would stop
/// with; nothing is written.
fn dry_run(
    ctx: &Ctx,
    snapshot: &Snapshot,
    options: &RestoreOptions,
    survey: &Survey,
    plan: &restore::delete::Plan,
) -> anyhow::Result<Outcome> {
    let removals = &plan.removals;
    if let Some(refused) = survey.refusal(options.overwrite) {
        return Err(refused.into());
    }
    let replaced: Vec<RawName> = survey
        .conflicts
        .iter()
        .map(|c| RawName::from_path(&c.path))
        .collect();
    Out::streaming().report(Outcome::Done, None, |out| {
        if ctx.json {
            return print_json(
                out,
                &serde_json::json!({
                    "dry_run": true,
                    "snapshot": snapshot.id.to_hex(),
                    "target": RawName::from_path(&options.target),
                    "files": survey.files,
                    "bytes": survey.bytes,
                    "replace": replaced,
                    "remove": paths_of(options, removals),
                    "delete_spared": spared_of(options, &plan.spared),
                }),
            );
        }
        if ctx.quiet {
            return Ok(());
        }
        writeln!(
            out,
            "dry run: restoring snapshot {} to {} would write {} files ({}); nothing was written",
            snapshot.id.short(),
            escaped(&options.target),
            survey.files,
            human_bytes(survey.bytes)
        )?;
        for c in &survey.conflicts {
            writeln!(out, "  would replace {} ({})", escaped(&c.path), c.existing)?;
        }
        for r in removals {
            let slash = if r.is_dir { "/ (and all in it)" } else { "" };
            writeln!(
                out,
                "  would remove {}{slash}",
                escaped(&options.target.join(&r.rel))
            )?;
        }
        Ok(())
    })
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
        "restored snapshot {} to {}: {}, {}, {}, {}",
        snapshot.id.short(),
        escaped(&options.target),
        plural(outcome.files, "file"),
        plural(outcome.dirs, "dir"),
        plural(outcome.symlinks, "symlink"),
        human_bytes(outcome.bytes)
    )?;
    if outcome.hardlinks > 0 {
        writeln!(out, "  {} of the files as hard links", outcome.hardlinks)?;
    }
    if outcome.leftovers_removed > 0 {
        writeln!(
            out,
            "  removed {} left by an interrupted restore",
            plural(outcome.leftovers_removed, "temporary file")
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
) -> anyhow::Result<Outcome> {
    let file = file.unwrap_or(std::path::Path::new("-"));
    if file == std::path::Path::new("-") {
        let mut out = Out::streaming();
        restore::tar::write(store, snapshot, selection, &mut out)?;
        out.finish()?;
        return Ok(Outcome::Done);
    }
    // Stopped by a signal, the temporary file beside FILE is removed.
    cairn::interrupt::catch_signals().context("catching SIGINT and SIGTERM")?;
    let outcome = restore::tar::write_file(store, snapshot, selection, file)?;
    Out::streaming().report(Outcome::Done, None, |out| {
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
                "wrote snapshot {} to {}: {}, {}, {}, {}",
                snapshot.id.short(),
                escaped(file),
                plural(outcome.files, "file"),
                plural(outcome.dirs, "dir"),
                plural(outcome.symlinks, "symlink"),
                human_bytes(outcome.bytes)
            )
        } else {
            Ok(())
        }
    })
}
