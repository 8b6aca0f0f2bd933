//! `cairn forget`: remove snapshots by retention policy or by id, and
//! optionally prune right after.

use std::io::{self, Write};

use anyhow::bail;
use clap::Args;
use serde::Serialize;

use cairn::id::SnapshotId;
use cairn::outcome::Outcome;
use cairn::rawname::escaped;
use cairn::retention::{self, ForgetPlan, GroupDecision, GroupKey};
use cairn::snapshot::SnapshotList;
use cairn::snapshot::forget::{Forgotten, forget};
use cairn::snapshot::protect::protected;
use cairn::snapshot::select::SnapshotRef;
use cairn::store::Store;

use super::exit::AfterCommit;
use super::filter::{FilterArgs, NamedScope, outside_filters};
use super::output::{plural, print_table, snapshots_named};
use super::policy::{PolicyArgs, describe};
use super::prune::{PruneOptionArgs, Pruned, prune_store};
use super::stdout::Out;
use super::{Ctx, choose, print_json};

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Snapshots to forget (ids, unique prefixes or @WHEN); without them,
    /// the policy decides
    #[arg(value_name = "SNAPSHOT", conflicts_with = "PolicyArgs", value_parser = choose::snapshot_ref)]
    snapshots: Vec<SnapshotRef>,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Apply the policy to every host's snapshots (each host grouped apart);
    /// by default only this host's are considered
    #[arg(long, conflicts_with = "host")]
    all_hosts: bool,
    /// Show what would be forgotten; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Then prune: delete the data only forgotten snapshots needed
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_options: PruneOptionArgs,
}

/// `--json` output.
#[derive(Serialize)]
struct ForgetJson<'a> {
    dry_run: bool,
    policy: Option<String>,
    groups: &'a [GroupDecision],
    forgotten: Vec<SnapshotId>,
    /// Protected by another process while the forget ran: put back.
    kept_protected: Vec<SnapshotId>,
    prune: Option<Pruned>,
    /// Why the prune after a committed forget failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    prune_error: Option<String>,
}

pub fn run(ctx: &Ctx, args: ForgetArgs) -> anyhow::Result<Outcome> {
    let mut store = ctx.open_for_prune(args.dry_run)?;
    let list = ctx.snapshot_list(&store)?;
    let (policy, groups, doomed) = if args.snapshots.is_empty() {
        let (policy, plan) = decide(&store, &list, &args, ctx.quiet)?;
        (Some(policy), plan.groups, plan.doomed)
    } else {
        (None, Vec::new(), resolve_all(&list, &args)?)
    };
    cairn::crash::point("forget-decided");
    let talk = !ctx.json && !ctx.quiet;
    let mut out = Out::deferring();
    if talk {
        print_groups(&mut out, &groups)?;
    }
    let done = match args.dry_run {
        true => Forgotten {
            forgotten: doomed.clone(),
            kept_protected: Vec::new(),
        },
        false => forget(&store, &doomed)?,
    };
    if talk {
        let hint = policy.is_some() && !args.prune;
        print_outcome(&mut out, &done, &groups, args.dry_run, hint)?;
    }
    let pruned = match args.prune {
        true => Some(prune_after(ctx, &mut out, &mut store, &args, &doomed)),
        false => None,
    };
    let nothing_committed = args.dry_run || done.forgotten.is_empty();
    let (prune, failed) = split(pruned, nothing_committed)?;
    let committed = committed(&done.forgotten, args.dry_run, prune.is_some());
    let report = ForgetJson {
        dry_run: args.dry_run,
        policy,
        groups: &groups,
        forgotten: done.forgotten.clone(),
        kept_protected: done.kept_protected,
        prune,
        prune_error: failed.as_ref().map(super::exit::describe),
    };
    let outcome = out.report(Outcome::Done, committed, |out| match ctx.json {
        true => print_json(out, &report),
        false => Ok(()),
    })?;
    match failed {
        Some(e) => Err(prune_failed(e, &done.forgotten)),
        None => Ok(outcome),
    }
}

/// The prune's report, or the failure of a prune after a committed forget
/// (kept for after the forget's report); a failure after nothing was
/// committed is the command's error.
fn split(
    pruned: Option<anyhow::Result<Pruned>>,
    nothing_committed: bool,
) -> anyhow::Result<(Option<Pruned>, Option<anyhow::Error>)> {
    match pruned {
        Some(Ok(p)) => Ok((Some(p), None)),
        Some(Err(e)) if nothing_committed => Err(e),
        Some(Err(e)) => Ok((None, Some(e))),
        None => Ok((None, None)),
    }
}

/// The error of a prune that failed after `forgotten` were forgotten: it
/// names them, so that exit 1 ("nothing committed") is not what it means.
fn prune_failed(e: anyhow::Error, forgotten: &[SnapshotId]) -> anyhow::Error {
    e.context(AfterCommit {
        committed: format!("forgetting {}", snapshots_named(forgotten)),
        failed: "the prune after it",
        again: "cairn prune",
    })
}

/// The prune of `forget --prune`; a dry run plans it as if `doomed` were
/// gone.
fn prune_after(
    ctx: &Ctx,
    out: &mut Out,
    store: &mut Store,
    args: &ForgetArgs,
    doomed: &[SnapshotId],
) -> anyhow::Result<Pruned> {
    let options = &args.prune_options;
    prune_store(ctx, out, store, options, args.dry_run, doomed)
}

/// What a forget committed, for the message when its report is lost.
fn committed(forgotten: &[SnapshotId], dry_run: bool, pruned: bool) -> Option<String> {
    match (dry_run, forgotten.is_empty(), pruned) {
        (true, _, _) | (false, true, false) => None,
        (false, true, true) => Some("the prune".to_owned()),
        (false, false, false) => Some(format!("forgetting {}", snapshots_named(forgotten))),
        (false, false, true) => Some(format!(
            "forgetting {} and the prune after it",
            snapshots_named(forgotten)
        )),
    }
}

/// Applies the given (or saved) policy to the snapshots the filters keep.
fn decide(
    store: &Store,
    list: &SnapshotList,
    args: &ForgetArgs,
    quiet: bool,
) -> anyhow::Result<(String, ForgetPlan)> {
    let saved = args.policy.or_saved(store.config().saved_policy()?);
    let protected = protected(store.backend())?;
    let mut filter = args.filter.to_filter()?;
    if filter.host.is_none() && !args.all_hosts {
        filter.host = Some(cairn::capture::default_host());
        if !quiet {
            note_other_hosts(list, &filter);
        }
    }
    let context = retention::Context::system();
    let plan = retention::plan(&list.snapshots, &filter, &protected, &saved, &context)?;
    if plan.groups.is_empty() && !list.snapshots.is_empty() {
        warn_none_selected(&filter);
    }
    Ok((describe(&saved), plan))
}

/// Warns that the filters chose none of the store's snapshots: a misspelt
/// `--host` or `--tag` in a nightly job forgot nothing, and said nothing.
fn warn_none_selected(filter: &cairn::snapshot::select::Filter) {
    let mut chosen = Vec::new();
    if let Some(host) = &filter.host {
        chosen.push(format!("host {}", escaped(host)));
    }
    for tag in &filter.tags {
        chosen.push(format!("tag {}", escaped(tag)));
    }
    if !filter.paths.is_empty() {
        let paths: Vec<String> = filter.paths.iter().map(ToString::to_string).collect();
        chosen.push(format!("paths {}", paths.join(", ")));
    }
    super::output::warn(format_args!(
        "no snapshot in the store matches {}: the policy applied to none",
        chosen.join(" and ")
    ));
}

/// Says how many snapshots of other hosts a policy left alone, if any.
fn note_other_hosts(list: &SnapshotList, filter: &cairn::snapshot::select::Filter) {
    let others = list
        .snapshots
        .iter()
        .filter(|s| Some(&s.record.host) != filter.host.as_ref())
        .count();
    if others > 0 {
        super::output::note(format_args!(
            "{} of other hosts left alone (--all-hosts or --host HOST to include them)",
            plural(others as u64, "snapshot")
        ));
    }
}

/// Resolves explicit references among the snapshots the filters keep; a
/// date chooses among this host's only (unless `--host` or `--all-hosts`
/// say otherwise), as a policy does: `forget @2026-02-15` must not forget
/// another host's snapshot of that night. A damaged record may be named
/// too (by id or unique prefix), so that it can be removed.
fn resolve_all(list: &SnapshotList, args: &ForgetArgs) -> anyhow::Result<Vec<SnapshotId>> {
    let scope = NamedScope::new(&args.filter, args.all_hosts)?;
    let mut ids = Vec::new();
    for reference in &args.snapshots {
        if *reference == SnapshotRef::Latest {
            bail!("refusing to forget `latest` by name: give its id");
        }
        let id = list
            .resolve_id(reference, scope.for_ref(reference))
            .map_err(|e| outside_filters(list, reference, e))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn print_groups(out: &mut Out, groups: &[GroupDecision]) -> io::Result<()> {
    for g in groups {
        let kept = g.snapshots.iter().filter(|d| d.keep).count();
        writeln!(
            out,
            "{}: keep {kept}, forget {}",
            group_title(&g.group),
            g.snapshots.len() - kept
        )?;
        let rows: Vec<Vec<String>> = g
            .snapshots
            .iter()
            .map(|d| {
                let reasons: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
                vec![
                    d.id.short(),
                    d.time.display_local(),
                    if d.keep { "keep" } else { "forget" }.to_owned(),
                    reasons.join(", "),
                ]
            })
            .collect();
        print_table(out, &["ID", "TIME", "ACTION", "REASONS"], &rows)?;
        writeln!(out)?;
    }
    Ok(())
}

fn group_title(key: &GroupKey) -> String {
    let mut parts = Vec::new();
    if let Some(host) = &key.host {
        parts.push(format!("host {}", escaped(host)));
    }
    if let Some(paths) = &key.paths {
        let paths: Vec<String> = paths.iter().map(ToString::to_string).collect();
        parts.push(format!("paths {}", paths.join(", ")));
    }
    if let Some(tags) = &key.tags {
        parts.push(format!("tags [{}]", escaped(&tags.join(","))));
    }
    if parts.is_empty() {
        return "all snapshots".into();
    }
    parts.join(", ")
}

fn print_outcome(
    out: &mut Out,
    done: &Forgotten,
    groups: &[GroupDecision],
    dry_run: bool,
    hint: bool,
) -> io::Result<()> {
    let verb = if dry_run { "would forget" } else { "forgot" };
    if groups.is_empty() {
        for id in &done.forgotten {
            writeln!(out, "{verb} snapshot {}", id.short())?;
        }
        return print_kept_protected(out, &done.kept_protected);
    }
    let kept: usize = groups
        .iter()
        .map(|g| g.snapshots.iter().filter(|d| d.keep).count())
        .sum();
    let kept = kept + done.kept_protected.len();
    let forgotten = plural(done.forgotten.len() as u64, "snapshot");
    writeln!(out, "{verb} {forgotten}, kept {kept}")?;
    print_kept_protected(out, &done.kept_protected)?;
    if hint && !dry_run && !done.forgotten.is_empty() {
        writeln!(
            out,
            "run `cairn prune` (or `forget --prune`) to free their space"
        )?;
    }
    Ok(())
}

/// Names the snapshots another process protected while the forget ran.
fn print_kept_protected(out: &mut Out, kept: &[SnapshotId]) -> io::Result<()> {
    for id in kept {
        writeln!(
            out,
            "kept snapshot {}: protected by another process while forget ran",
            id.short()
        )?;
    }
    Ok(())
}
