//! `cairn policy set|show|clear`: the retention policy saved in the store,
//! and the `--keep-*` options `forget` and `policy set` share.

use std::io::Write;

use clap::{Args, Subcommand};

use cairn::outcome::Outcome;
use cairn::retention::{Count, GroupBy, Policy, SavedPolicy, Within};
use cairn::store::LockMode;

use super::stdout::Out;
use super::{Ctx, print_json};

/// The rules of a retention policy, as options.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Keep the N newest snapshots (a number or `unlimited`)
    #[arg(long, value_name = "N")]
    keep_last: Option<Count>,
    /// Keep the newest snapshot of each of the N most recent hours that have one
    #[arg(long, value_name = "N")]
    keep_hourly: Option<Count>,
    /// Keep the newest snapshot of each of the N most recent days that have one
    #[arg(long, value_name = "N")]
    keep_daily: Option<Count>,
    /// Keep the newest snapshot of each of the N most recent ISO weeks that have one
    #[arg(long, value_name = "N")]
    keep_weekly: Option<Count>,
    /// Keep the newest snapshot of each of the N most recent months that have one
    #[arg(long, value_name = "N")]
    keep_monthly: Option<Count>,
    /// Keep the newest snapshot of each of the N most recent years that have one
    #[arg(long, value_name = "N")]
    keep_yearly: Option<Count>,
    /// Keep every snapshot taken within DURATION before the group's newest (e.g. 30d, 2w, 1y6m)
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<Within>,
    /// Keep one snapshot per hour within DURATION before the group's newest
    #[arg(long, value_name = "DURATION")]
    keep_within_hourly: Option<Within>,
    /// Keep one snapshot per day within DURATION before the group's newest
    #[arg(long, value_name = "DURATION")]
    keep_within_daily: Option<Within>,
    /// Keep one snapshot per week within DURATION before the group's newest
    #[arg(long, value_name = "DURATION")]
    keep_within_weekly: Option<Within>,
    /// Keep one snapshot per month within DURATION before the group's newest
    #[arg(long, value_name = "DURATION")]
    keep_within_monthly: Option<Within>,
    /// Keep one snapshot per year within DURATION before the group's newest
    #[arg(long, value_name = "DURATION")]
    keep_within_yearly: Option<Within>,
    /// Keep snapshots carrying TAG (repeatable; `a,b` means both tags)
    #[arg(long = "keep-tag", value_name = "TAG")]
    keep_tags: Vec<String>,
    /// Group snapshots by these fields before applying the policy: a
    /// comma-separated subset of host,paths,tags, or "" for one group [default: host,paths]
    #[arg(long, value_name = "FIELDS")]
    group_by: Option<GroupBy>,
}

impl PolicyArgs {
    /// The policy the options give (possibly empty).
    pub fn policy(&self) -> Policy {
        Policy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: self.keep_within,
            within_hourly: self.keep_within_hourly,
            within_daily: self.keep_within_daily,
            within_weekly: self.keep_within_weekly,
            within_monthly: self.keep_within_monthly,
            within_yearly: self.keep_within_yearly,
            tags: self.keep_tags.clone(),
        }
    }

    /// The policy and grouping the options give, or, when no `--keep-*`
    /// option was given, the one saved in the store (with `--group-by`
    /// still applied). `--keep-daily 0` is given: a policy that keeps
    /// nothing daily, refused when that is all it says; taking it for no
    /// option applied the saved policy instead.
    pub fn or_saved(&self, saved: Option<SavedPolicy>) -> SavedPolicy {
        let given = self.policy();
        let base = match saved {
            Some(saved) if given == Policy::default() => saved,
            _ => SavedPolicy {
                policy: given,
                group_by: GroupBy::default(),
            },
        };
        SavedPolicy {
            group_by: self.group_by.unwrap_or(base.group_by),
            ..base
        }
    }
}

#[derive(Debug, Args)]
pub struct PolicyCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Save a policy for `cairn forget` without --keep-* options
    #[command(after_help = "Example:
  cairn policy set --keep-daily 7 --keep-weekly 4 --keep-monthly 12")]
    Set(Box<PolicyArgs>),
    /// Show the saved policy
    #[command(after_help = "Example:
  cairn policy show")]
    Show,
    /// Remove the saved policy
    #[command(after_help = "Example:
  cairn policy clear")]
    Clear,
}

pub fn run(ctx: &Ctx, command: PolicyCommand) -> anyhow::Result<Outcome> {
    match command.action {
        Action::Set(args) => set(ctx, &args),
        Action::Show => show(ctx),
        Action::Clear => clear(ctx),
    }
}

fn set(ctx: &Ctx, args: &PolicyArgs) -> anyhow::Result<Outcome> {
    let saved = args.or_saved(None);
    if saved.policy.is_empty() {
        anyhow::bail!(cairn::retention::PolicyError::Empty);
    }
    let mut store = ctx.open(ctx.rewrite_lock())?;
    let config = store.config().with_policy(Some(&saved));
    store.rewrite_config(config)?;
    let committed = format!("the retention policy {}", describe(&saved));
    Out::deferring().report(Outcome::Done, Some(committed), |out| {
        if ctx.json {
            print_json(out, &saved)
        } else if !ctx.quiet {
            writeln!(out, "saved retention policy: {}", describe(&saved))
        } else {
            Ok(())
        }
    })
}

fn show(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let store = ctx.open(LockMode::Read)?;
    let saved = store.config().saved_policy()?;
    Out::streaming().report(Outcome::Done, None, |out| match (ctx.json, saved) {
        (true, saved) => print_json(out, &saved),
        (false, Some(saved)) => writeln!(out, "{}", describe(&saved)),
        (false, None) => writeln!(
            out,
            "no retention policy saved (set one with `cairn policy set --keep-...`)"
        ),
    })
}

fn clear(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut store = ctx.open(ctx.rewrite_lock())?;
    let config = store.config().with_policy(None);
    store.rewrite_config(config)?;
    let committed = "removing the retention policy".to_owned();
    Out::deferring().report(Outcome::Done, Some(committed), |out| {
        if ctx.json {
            print_json(out, &None::<SavedPolicy>)
        } else if !ctx.quiet {
            writeln!(out, "removed the saved retention policy")
        } else {
            Ok(())
        }
    })
}

/// `--keep-daily 7 --keep-weekly 4 --group-by host,paths`.
pub fn describe(saved: &SavedPolicy) -> String {
    format!("{} --group-by {}", saved.policy, saved.group_by)
}
