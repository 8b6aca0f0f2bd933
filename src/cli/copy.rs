//! `cairn copy --to STORE [SNAPSHOT...]`: snapshots into another store (an
//! off-site copy), only what it lacks; created with this store's settings
//! if it does not exist yet.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use cairn::copy::{self, CopyReport};
use cairn::crypt::passphrase::Source;
use cairn::outcome::Outcome;
use cairn::progress::Progress;
use cairn::snapshot::select::SnapshotRef;
use cairn::snapshot::{Snapshot, SnapshotList};
use cairn::store::keys::KeyError;
use cairn::store::{InitOptions, Location, LockMode, OpenOptions, Store, StoreError};

use super::choose::AtArgs;
use super::filter::FilterArgs;
use super::output::{human_bytes, note, plural, warn};
use super::progress::{self, PACKS};
use super::stdout::Out;
use super::{Ctx, print_json};

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to copy into: a directory, file://PATH or s3://BUCKET/PREFIX (created if missing)
    #[arg(long, value_name = "STORE")]
    to: Location,
    /// Cache directory for the target store, if remote [default: $XDG_CACHE_HOME/cairn]
    #[arg(long, value_name = "DIR")]
    to_cache_dir: Option<PathBuf>,
    /// The target's password, if it differs from the source's: the first line of FILE
    #[arg(
        long,
        value_name = "FILE",
        env = "CAIRN_TO_PASSWORD_FILE",
        conflicts_with = "to_password_command"
    )]
    to_password_file: Option<PathBuf>,
    /// The target's password, if it differs from the source's: the first line CMD prints
    #[arg(long, value_name = "CMD", env = "CAIRN_TO_PASSWORD_COMMAND")]
    to_password_command: Option<String>,
    /// Snapshots to copy: ids, unique prefixes, `latest` or @WHEN [default: all, after the filters]
    #[arg(value_name = "SNAPSHOT", value_parser = super::choose::snapshot_ref)]
    snapshots: Vec<SnapshotRef>,
    #[command(flatten)]
    at: AtArgs,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(ctx: &Ctx, args: CopyArgs) -> anyhow::Result<Outcome> {
    let from = ctx.open(LockMode::Read)?;
    let list = ctx.snapshot_list(&from)?;
    let chosen = choose(&list, &args)?;
    let mut to = open_target(ctx, &from, &args)?;
    let progress = Progress::default();
    let report = progress::run(
        ctx.progress(),
        &progress,
        PACKS,
        |_| " copied".to_owned(),
        |_| copy::copy(&from, &mut to, &chosen, &progress),
    )?;
    if report.target_packs_lost > 0 {
        warn(format_args!(
            "{} lacked {} its catalog named (lost, deleted behind cairn's back, or by a prune meanwhile): they are left out of its catalog, so that what the copied snapshots need of them is copied again; `cairn verify` on it says what else they held",
            to.location(),
            plural(report.target_packs_lost, "pack")
        ));
    }
    if report.chunking_differs && !ctx.json {
        note(format_args!(
            "{} cuts files differently from {}: the copied snapshots do not deduplicate with its own",
            to.location(),
            from.location()
        ));
    }
    let committed = (report.snapshots_copied > 0).then(|| {
        format!(
            "the copy of {}",
            plural(report.snapshots_copied, "snapshot")
        )
    });
    Out::deferring().report(Outcome::Done, committed, |out| match ctx.json {
        true => print_json(out, &report),
        false => print_report(out, &report, to.location()),
    })
}

/// The snapshots named, or the one `--at` names, or all the filters keep.
fn choose(list: &SnapshotList, args: &CopyArgs) -> anyhow::Result<Vec<Snapshot>> {
    let filter = args.filter.to_filter()?;
    let mut references = args.snapshots.clone();
    references.extend(args.at.at.map(SnapshotRef::At));
    if references.is_empty() {
        return Ok(list
            .snapshots
            .iter()
            .filter(|s| filter.matches(s))
            .cloned()
            .collect());
    }
    let mut chosen: Vec<Snapshot> = Vec::new();
    for reference in &references {
        let snapshot = list.resolve(reference, &filter)?;
        if !chosen.iter().any(|s| s.id == snapshot.id) {
            chosen.push(snapshot.clone());
        }
    }
    Ok(chosen)
}

/// How the target is opened: with its own passphrase if one is given,
/// else the source's (stores that share keys mostly share passphrases).
fn target_options(ctx: &Ctx, from: &Store, args: &CopyArgs) -> OpenOptions {
    let mut options = OpenOptions {
        cache_dir: args.to_cache_dir.clone(),
        catalog_in_use: Some(from.catalog_path()),
        ..ctx.open_options(LockMode::Shared)
    };
    if to_password_given(args) {
        let (file, command) = (
            args.to_password_file.clone(),
            args.to_password_command.clone(),
        );
        options.password = super::password_source(file, command);
    } else if !from.config().is_encrypted() {
        // The source's password is for the source only.
        options.password = Source::Prompt;
    }
    options
}

fn to_password_given(args: &CopyArgs) -> bool {
    args.to_password_file.is_some() || args.to_password_command.is_some()
}

/// Opens the target store beside the others that use it, creating it with
/// the source's settings (chunking, compression, packs) if it is not there.
fn open_target(ctx: &Ctx, from: &Store, args: &CopyArgs) -> anyhow::Result<Store> {
    if args.to == *from.location() {
        anyhow::bail!("--to names the store being copied from ({})", args.to);
    }
    let options = target_options(ctx, from, args);
    let opened = match Store::open(&args.to, options.clone()) {
        // The source's passphrase, tried on a plain target: open it plain,
        // so that copy refuses it for the real reason (the keys differ).
        Err(StoreError::Keys(KeyError::NotEncrypted(_))) if !to_password_given(args) => {
            let plain = OpenOptions {
                password: Source::Prompt,
                ..options.clone()
            };
            Store::open(&args.to, plain)
        }
        other => other,
    };
    match opened {
        Err(StoreError::NotAStore { .. } | StoreError::Missing { .. }) => {
            if to_password_given(args) && !from.config().is_encrypted() {
                anyhow::bail!(
                    "{} is not encrypted, so a copy of it made at {} would not be either: --to-password-file and --to-password-command are for an encrypted target",
                    from.location(),
                    args.to
                );
            }
            let config = from.config();
            let (keys, added) = match to_password_given(args) {
                true => from.shared_keys_with(&options.password)?,
                false => (from.shared_keys()?, None),
            };
            let init = InitOptions {
                compression: config.compression,
                pack: config.pack,
                sqlite: config.sqlite.unwrap_or_default(),
                keys,
            };
            let store = match Store::init(&args.to, &init, options.clone()) {
                // Another copy made it since it was found missing: it is
                // the target all the same.
                Err(StoreError::Exists { .. }) => return Ok(Store::open(&args.to, options)?),
                created => created.with_context(|| format!("creating {}", args.to))?,
            };
            cairn::crash::point("copy-target-created");
            ctx.print_notices(&store);
            if let Some(id) = added
                && !ctx.quiet
            {
                note(format_args!(
                    "added key {} to {} for the password given with --to-password-file or --to-password-command",
                    cairn::store::keys::short(&id),
                    args.to
                ));
            }
            if !ctx.quiet && !ctx.json {
                note(format_args!(
                    "created store {} with the settings of {}",
                    args.to,
                    from.location()
                ));
            }
            Ok(store)
        }
        result => Ok(result?),
    }
}

fn print_report(out: &mut Out, report: &CopyReport, to: &Location) -> std::io::Result<()> {
    writeln!(
        out,
        "copied {} to {to} ({} already there): {}, {} stored, in {}; {} already there",
        plural(report.snapshots_copied, "snapshot"),
        report.snapshots_present,
        plural(report.blobs_copied, "blob"),
        human_bytes(report.bytes_copied),
        plural(report.packs_written, "pack"),
        plural(report.blobs_present, "blob"),
    )
}
