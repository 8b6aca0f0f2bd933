//! `cairn completions SHELL` and `cairn man`: the shell completion scripts
//! and man pages, generated from the same definitions as `--help`, so that
//! a package installs them with one command each.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use cairn::outcome::Outcome;
use cairn::rawname::escaped;

use super::Cli;
use super::stdout::Out;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish (or elvish, powershell)
    #[arg(value_name = "SHELL", value_enum)]
    shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write cairn.1 and one page per command (cairn-snapshot.1, ...) into DIR
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    dir: Option<PathBuf>,
    /// Print only this command's page (cairn's own without one), e.g.
    /// `snapshot` or `policy set`
    #[arg(value_name = "COMMAND", num_args = 0..)]
    command: Vec<String>,
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "cairn", &mut script);
    let mut out = Out::streaming();
    out.write_all(&script)?;
    out.finish()?;
    Ok(Outcome::Done)
}

pub fn man(args: ManArgs) -> anyhow::Result<Outcome> {
    let mut cmd = Cli::command();
    cmd.build();
    if let Some(dir) = &args.dir {
        return write_pages(&cmd, dir);
    }
    let page = match args.command.is_empty() {
        true => cmd,
        false => named(&cmd, &args.command.join(" "))?,
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff)?;
    let mut out = Out::streaming();
    out.write_all(&roff)?;
    out.finish()?;
    Ok(Outcome::Done)
}

/// The command `name` (`snapshot`, or `policy set`/`policy-set`).
fn named(cmd: &clap::Command, name: &str) -> anyhow::Result<clap::Command> {
    let mut found = cmd;
    for word in name.split([' ', '-']).filter(|w| !w.is_empty()) {
        found = found
            .find_subcommand(word)
            .ok_or_else(|| super::Usage(format!("no command {name:?}: see `cairn --help`")))?;
    }
    Ok(found.clone())
}

/// `cairn.1`, and `cairn-COMMAND.1` for each command and sub-command.
fn write_pages(cmd: &clap::Command, dir: &std::path::Path) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", escaped(dir)))?;
    let mut pages = Vec::new();
    collect(cmd, &mut pages);
    for page in pages {
        let path = dir.join(format!(
            "{}.1",
            page.get_display_name().unwrap_or(page.get_name())
        ));
        let mut roff = Vec::new();
        clap_mangen::Man::new(page).render(&mut roff)?;
        std::fs::write(&path, roff).with_context(|| format!("writing {}", escaped(&path)))?;
    }
    Ok(Outcome::Done)
}

/// `cmd` and every command below it, each named for its page
/// (`cairn-policy-set`).
fn collect(cmd: &clap::Command, pages: &mut Vec<clap::Command>) {
    pages.push(cmd.clone());
    let prefix = cmd.get_display_name().unwrap_or(cmd.get_name()).to_owned();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("{prefix}-{}", sub.get_name());
        collect(&sub.clone().display_name(name), pages);
    }
}
