//! `cairn snapshots`: list what the store holds.

use clap::Args;

use cairn::outcome::Outcome;
use cairn::rawname::escaped;
use cairn::snapshot::Snapshot;
use cairn::snapshot::select::Filter;
use cairn::store::LockMode;

use super::choose;
use super::filter::FilterArgs;
use super::output::{human_bytes, plural, print_table};
use super::snapshot::SnapshotJson;
use super::stdout::Out;
use super::{Ctx, print_json};

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Only snapshots taken at or before WHEN (a bare date: the end of that day)
    #[arg(long, value_name = "WHEN", value_parser = choose::at_point)]
    before: Option<jiff::Timestamp>,
    /// Only snapshots taken at or after WHEN (a bare date: the start of that day)
    #[arg(long, value_name = "WHEN", value_parser = choose::after_point)]
    after: Option<jiff::Timestamp>,
}

pub fn run(ctx: &Ctx, args: SnapshotsArgs) -> anyhow::Result<Outcome> {
    let filter = Filter {
        before: args.before,
        after: args.after,
        ..args.filter.to_filter()?
    };
    let store = ctx.open(LockMode::Read)?;
    let list = ctx.snapshot_list(&store)?;
    let shown: Vec<_> = list
        .snapshots
        .iter()
        .filter(|s| filter.matches(s))
        .collect();
    let protected = cairn::snapshot::protect::protected(store.backend())?;
    let out = Out::streaming();
    let copies = list.repaired_copies();
    let copy_of = |s: &Snapshot| copies.get(&s.id).map(|c| c.id);
    if ctx.json {
        #[derive(serde::Serialize)]
        struct Listed<'a> {
            #[serde(flatten)]
            snapshot: SnapshotJson<'a>,
            protected: bool,
            /// Written by `repair snapshots` (its summary names the original).
            repaired: bool,
            /// Has a repaired copy: it needs data that is lost.
            damaged: bool,
            /// That copy.
            #[serde(skip_serializing_if = "Option::is_none")]
            repaired_as: Option<String>,
        }
        let items: Vec<Listed> = shown
            .iter()
            .map(|s| Listed {
                snapshot: SnapshotJson::from(*s),
                protected: protected.contains(&s.id),
                repaired: s.record.summary.repaired_from.is_some(),
                damaged: copy_of(s).is_some(),
                repaired_as: copy_of(s).map(|c| c.to_hex()),
            })
            .collect();
        return out.report(Outcome::Done, None, |out| print_json(out, &items));
    }
    let any_protected = shown.iter().any(|s| protected.contains(&s.id));
    let repair_state = |s: &Snapshot| match (copy_of(s), s.record.summary.repaired_from) {
        (Some(copy), _) => format!("damaged, repaired as {}", copy.short()),
        (None, Some(_)) => "repaired".to_owned(),
        (None, None) => String::new(),
    };
    let any_repair = shown.iter().any(|s| !repair_state(s).is_empty());
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|s| {
            let r = &s.record;
            let mut row = vec![
                s.id.short(),
                r.time.display_local(),
                escaped(&r.host).to_string(),
                escaped(&r.tags.join(",")).to_string(),
                r.paths
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                human_bytes(r.summary.total_bytes),
            ];
            if any_protected {
                let mark = if protected.contains(&s.id) { "yes" } else { "" };
                row.push(mark.to_owned());
            }
            if any_repair {
                row.push(repair_state(s));
            }
            row
        })
        .collect();
    let mut header = vec!["ID", "TIME", "HOST", "TAGS", "PATHS", "SIZE"];
    if any_protected {
        header.push("PROTECTED");
    }
    if any_repair {
        header.push("REPAIR");
    }
    // With --quiet an empty listing prints nothing (not a bare header).
    let listed = match ctx.quiet && rows.is_empty() {
        true => Outcome::Done,
        false => out.report(Outcome::Done, None, |out| print_table(out, &header, &rows))?,
    };
    // A count is not data: on stderr, and not with --quiet, which keeps
    // the listing asked for (as ls, cat and find keep theirs).
    if !ctx.quiet {
        say!("{}", plural(rows.len() as u64, "snapshot"));
    }
    Ok(listed)
}
