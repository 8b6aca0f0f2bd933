//! `cairn restore`: put a snapshot (or some of its paths) back into a
//! directory, or write it as a tar stream.

mod report;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use cairn::outcome::Outcome;
use cairn::pattern::Patterns;
use cairn::progress::Progress;
use cairn::rawname::{RawName, escaped};
use cairn::restore::{self, MetaOptions, RestoreOptions, Selection};
use cairn::snapshot::select::SnapshotRef;
use cairn::snapshot::{Snapshot, SnapshotList};
use cairn::store::{LockMode, Store};

use super::choose::{self, AtArgs};
use super::filter::FilterArgs;
use super::output::{human_bytes, plural, warn};
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
        say!(
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
    into_directory(ctx, &args, &store, snapshot, &options, &hint)
}

/// The restore into `options.target`: surveyed, cleaned (`--delete`),
/// written, checked (`--check`) and reported.
fn into_directory(
    ctx: &Ctx,
    args: &RestoreArgs,
    store: &Store,
    snapshot: &Snapshot,
    options: &RestoreOptions,
    hint: &Option<String>,
) -> anyhow::Result<Outcome> {
    // A restore stopped by a signal removes the files it was writing.
    cairn::interrupt::catch_signals().context("catching SIGINT and SIGTERM")?;
    // Opened once: every step works in the directory the survey looked at,
    // whatever is swapped in at its path meanwhile.
    let root = restore::open_target(&options.target)
        .with_context(|| format!("opening {}", options.target.display()))?;
    let (selection, target) = (&options.selection, &options.target);
    let survey = restore::survey(store, snapshot, selection, target, root.as_ref())
        .map_err(|e| with_hint(e.into(), hint))?;
    let plan = delete_plan(args.delete, store, snapshot, options, root.as_ref())?;
    if args.dry_run {
        return report::dry_run(ctx, snapshot, options, &survey, &plan);
    }
    cairn::crash::point("restore-surveyed");
    // Removed before anything is written (so that each directory's
    // metadata is set last), and only once the restore cannot refuse.
    if let Some(refused) = survey.refusal(options.overwrite) {
        return Err(refused.into());
    }
    let removed = restore::delete::remove(target, root.as_ref(), &plan);
    let progress = Progress::default();
    let outcome = progress::run(
        ctx.progress(),
        &progress,
        FILES,
        |_| String::new(),
        |_| restore::execute(store, snapshot, survey, options, root, &progress),
    )
    .map_err(|e| with_hint(e.into(), hint))?;
    let checks = match args.check {
        true => cairn::database::integrity_check_all(&outcome.databases),
        false => Vec::new(),
    };
    let report = report::Report {
        snapshot,
        options,
        outcome: &outcome,
        removed: &removed,
        checks: &checks,
        requests: store.backend().requests(),
    };
    // Printed before the failures are told on stderr, as it always was; a
    // closed stdout does not hide them.
    let strict = args.meta.strict_metadata;
    let printed = report.print(ctx, report.ending(strict));
    report.tell_failures(strict, hint, store.backend().is_remote());
    printed
}

/// What `--delete` removes (nothing without it); each directory it spares
/// because another file system is mounted there is named on stderr.
fn delete_plan(
    delete: bool,
    store: &Store,
    snapshot: &Snapshot,
    options: &RestoreOptions,
    root: Option<&restore::DirFd>,
) -> anyhow::Result<restore::delete::Plan> {
    if !delete {
        return Ok(restore::delete::Plan::default());
    }
    let (selection, target) = (&options.selection, &options.target);
    let plan = restore::delete::plan(store, snapshot, selection, target, root)?;
    for spared in &plan.spared {
        warn(format_args!(
            "{}: another file system is mounted there; --delete does not clean inside it",
            escaped(&target.join(spared))
        ));
    }
    Ok(plan)
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
        say!(
            "cairn: note: restoring only {} (the --path given); add --include to restore other paths of the snapshot",
            named.join(", ")
        );
    }
    paths
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
