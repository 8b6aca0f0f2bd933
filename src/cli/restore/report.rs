//! What `cairn restore` tells: the summary on stdout (or JSON), the
//! failures on stderr, and what a `--dry-run` would do.

use std::io::{self, Write};
use std::path::PathBuf;

use cairn::backend::RequestStats;
use cairn::outcome::Outcome;
use cairn::rawname::{RawName, escaped, printable};
use cairn::restore::delete::{Removal, Removed};
use cairn::restore::{self, RestoreOptions, RestoreOutcome, Survey};
use cairn::snapshot::Snapshot;

use super::super::output::{describe_requests, human_bytes, plural};
use super::super::stdout::Out;
use super::super::{Ctx, print_json};

/// The databases `--check` ran `PRAGMA integrity_check` on, and how each
/// fared.
pub type Checks = [(PathBuf, Result<(), cairn::database::CheckError>)];

/// A restore into a directory, done: what it wrote, removed and checked.
pub struct Report<'a> {
    pub snapshot: &'a Snapshot,
    pub options: &'a RestoreOptions,
    pub outcome: &'a RestoreOutcome,
    pub removed: &'a Removed,
    pub checks: &'a Checks,
    pub requests: Option<RequestStats>,
}

impl Report<'_> {
    /// How the restore ended: the worst of its items, its database checks,
    /// the paths `--delete` could not remove and (with `strict`) the
    /// metadata it could not restore.
    pub fn ending(&self, strict: bool) -> Outcome {
        let skipped = match strict {
            true => Outcome::partial_if(self.outcome.skipped.total()),
            false => Outcome::Done,
        };
        (self.outcome.outcome())
            .worst(Outcome::damage_if(self.damaged().count() as u64))
            .worst(skipped)
            .worst(Outcome::partial_if(self.removed.failed.len() as u64))
    }

    /// The restored databases that failed their check.
    fn damaged(&self) -> impl Iterator<Item = &cairn::database::CheckError> {
        self.checks.iter().filter_map(|(_, r)| r.as_ref().err())
    }

    /// The summary on stdout, as JSON or text (nothing with `--quiet`).
    pub fn print(&self, ctx: &Ctx, ending: Outcome) -> anyhow::Result<Outcome> {
        Out::streaming().report(ending, None, |out| {
            if ctx.json {
                self.print_json(out)
            } else if !ctx.quiet {
                self.print_text(out)?;
                print_removed(out, self.options, &self.removed.removed)?;
                print_requests(out, self.requests)
            } else {
                Ok(())
            }
        })
    }

    /// What could not be done, on stderr (after the summary, which a
    /// closed stdout does not hide them behind); `hint` names a repaired
    /// copy to restore instead, `remote` says the store is another host's.
    pub fn tell_failures(&self, strict: bool, hint: &Option<String>, remote: bool) {
        warn_skipped(&self.outcome.skipped, strict);
        for e in self.damaged() {
            say!("cairn: DAMAGED: {}", printable(&e.to_string()));
        }
        for (path, error) in &self.removed.failed {
            let line = format!("cairn: error: {}: cannot remove: {error}", escaped(path));
            say!("{}", printable(&line));
        }
        self.tell_failed_items(hint, remote);
        if !self.removed.failed.is_empty() {
            let n = self.removed.failed.len() as u64;
            say!(
                "cairn: {} the snapshot does not hold could not be removed",
                plural(n, "path")
            );
        }
        let damaged = self.damaged().count() as u64;
        if damaged > 0 {
            say!(
                "cairn: {} failed PRAGMA integrity_check",
                plural(damaged, "restored database")
            );
        }
    }

    /// Each item that could not be restored, and how many.
    fn tell_failed_items(&self, hint: &Option<String>, remote: bool) {
        let failed = &self.outcome.failed;
        if failed.is_empty() {
            return;
        }
        for (path, error) in failed {
            let line = format!("cairn: error: {}: {error}", escaped(path));
            say!("{}", printable(&line));
        }
        let mut said = format!(
            "{} could not be restored; everything else was",
            plural(failed.len() as u64, "item")
        );
        if let Some(hint) = hint {
            said = format!("{said}; {hint}");
        }
        say!("cairn: {}", printable(&said));
        warn_packs_gone(self.outcome.pack_gone, remote);
    }

    /// `--json`: the summary as one document.
    fn print_json(&self, out: &mut Out) -> io::Result<()> {
        let (snapshot, options, outcome) = (self.snapshot, self.options, self.outcome);
        let (removed, checks, requests) = (self.removed, self.checks, self.requests);
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
        super::super::print_json(
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

    /// The summary as text.
    fn print_text(&self, out: &mut Out) -> io::Result<()> {
        let (snapshot, options, outcome) = (self.snapshot, self.options, self.outcome);
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
        for (path, result) in self.checks {
            if result.is_ok() {
                writeln!(out, "  integrity_check ok: {}", escaped(path))?;
            }
        }
        Ok(())
    }
}

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
    say!("cairn: {what}: {next}");
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
        say!("{}", printable(&line));
    }
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
pub fn dry_run(
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

/// What a restore from a remote store cost (on S3 requests are billed).
fn print_requests(out: &mut Out, requests: Option<RequestStats>) -> io::Result<()> {
    match requests {
        Some(r) => writeln!(out, "  requests: {}", describe_requests(&r)),
        None => Ok(()),
    }
}
