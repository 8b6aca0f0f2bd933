//! `cairn tag`: change the tags of snapshots. Each changed snapshot gets a
//! new record (and so a new id); see `cairn::snapshot::retag`.

use std::io::Write;

use clap::{ArgGroup, Args};

use cairn::outcome::Outcome;
use cairn::snapshot::protect::protected;
use cairn::snapshot::retag::{self, Retagged, TagChange};
use cairn::snapshot::select::{Filter, SnapshotRef};
use cairn::store::LockMode;

use super::output::snapshots_named;
use super::stdout::Out;
use super::{Ctx, choose, print_json};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true).args(["add", "remove", "set"])))]
pub struct TagArgs {
    /// Snapshots (ids, unique prefixes, `latest` or @WHEN)
    #[arg(value_name = "SNAPSHOT", required = true, value_parser = choose::snapshot_ref)]
    snapshots: Vec<SnapshotRef>,
    /// Add this tag (repeatable)
    #[arg(long, value_name = "TAG")]
    add: Vec<String>,
    /// Remove this tag (repeatable)
    #[arg(long, value_name = "TAG")]
    remove: Vec<String>,
    /// Replace all tags with these (repeatable; --set '' removes every tag)
    #[arg(long, value_name = "TAG")]
    set: Vec<String>,
}

pub fn run(ctx: &Ctx, args: TagArgs) -> anyhow::Result<Outcome> {
    let change = TagChange {
        set: (!args.set.is_empty()).then(|| args.set.clone()),
        add: args.add.clone(),
        remove: args.remove.clone(),
    }
    .checked()
    .map_err(|e| super::Usage(e.to_string()))?;
    // Exclusive, as forget: no policy may run between the new record and
    // the removal of the old one.
    let store = ctx.open(LockMode::Exclusive)?;
    let list = ctx.snapshot_list(&store)?;
    let marked = protected(store.backend())?;
    let mut chosen = Vec::new();
    for reference in &args.snapshots {
        let snapshot = list.resolve(reference, &Filter::default())?;
        retag::check_no_copy(&list, snapshot)?;
        if !chosen
            .iter()
            .any(|s: &&cairn::snapshot::Snapshot| s.id == snapshot.id)
        {
            chosen.push(snapshot);
        }
    }
    let mut out = Out::deferring();
    let mut done: Vec<Retagged> = Vec::new();
    for snapshot in chosen {
        let result = retag::retag(&store, snapshot, marked.contains(&snapshot.id), &change)?;
        if !ctx.json && !ctx.quiet {
            print_one(&mut out, &result)?;
        }
        done.push(result);
    }
    let new: Vec<_> = done.iter().filter_map(|r| r.new).collect();
    let committed = (!new.is_empty()).then(|| format!("new tags as {}", snapshots_named(&new)));
    out.report(Outcome::Done, committed, |out| match ctx.json {
        true => print_json(out, &done.iter().map(as_json).collect::<Vec<_>>()),
        false => Ok(()),
    })
}

fn print_one(out: &mut Out, r: &Retagged) -> std::io::Result<()> {
    let tags = match r.tags.is_empty() {
        true => "no tags".to_owned(),
        false => format!("tags {}", cairn::rawname::escaped(&r.tags.join(","))),
    };
    match r.new {
        Some(new) => writeln!(
            out,
            "snapshot {} is now {} with {tags}",
            r.old.short(),
            new.short()
        ),
        None => writeln!(out, "snapshot {} already has {tags}", r.old.short()),
    }
}

fn as_json(r: &Retagged) -> serde_json::Value {
    serde_json::json!({
        "id": r.old,
        "new": r.new,
        "tags": r.tags,
        "changed": r.new.is_some(),
    })
}
