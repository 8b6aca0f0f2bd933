//! `cairn config show`: the profiles of `cairn.toml`, or one profile merged
//! from every file, each value with the file and line it comes from.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};

use cairn::outcome::Outcome;
use cairn::profile::{self, Profile, Setting};
use cairn::rawname::{RawName, escaped};

use super::output::print_table;
use super::stdout::Out;
use super::{Global, print_json};

#[derive(Debug, Args)]
pub struct ConfigCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// With -P NAME: the profile's keys, merged, and where each comes from;
    /// without: the profiles the configuration files define
    #[command(after_help = "Examples:
  cairn -P app config show
  cairn config show")]
    Show,
}

/// Environment variables that override a profile's key.
const OVERRIDES: &[(&str, &str)] = &[("store", "CAIRN_STORE"), ("cache_dir", "CAIRN_CACHE_DIR")];

pub fn run(
    global: &Global,
    command: ConfigCommand,
    profile: Option<&Profile>,
) -> anyhow::Result<Outcome> {
    let Action::Show = command.action;
    let out = Out::streaming();
    match profile {
        Some(profile) => out.report(Outcome::Done, None, |out| show(out, global.json, profile)),
        None => {
            let (files, names) = profiles(global)?;
            out.report(Outcome::Done, None, |out| {
                list(out, global.json, &files, &names)
            })
        }
    }
}

/// The configuration files read and the profiles they define.
fn profiles(global: &Global) -> anyhow::Result<(Vec<PathBuf>, Vec<String>)> {
    let files = match global.config.is_empty() {
        true => profile::read_files(&profile::default_files(), false)?,
        false => profile::read_files(&global.config, true)?,
    };
    let names = profile::names(&files)?;
    Ok((files.into_iter().map(|(path, _)| path).collect(), names))
}

fn list(out: &mut Out, json: bool, files: &[PathBuf], names: &[String]) -> io::Result<()> {
    if json {
        let files: Vec<RawName> = files.iter().map(|f| RawName::from_path(f)).collect();
        let json = serde_json::json!({"files": files, "profiles": names});
        return print_json(out, &json);
    }
    if files.is_empty() {
        let searched: Vec<String> = profile::default_files()
            .iter()
            .map(|f| escaped(f).to_string())
            .collect();
        return writeln!(out, "no configuration file ({})", searched.join(", "));
    }
    for file in files {
        writeln!(out, "file {}", escaped(file))?;
    }
    let names: Vec<String> = names.iter().map(|n| escaped(n).to_string()).collect();
    match names.as_slice() {
        [] => writeln!(out, "no profiles"),
        names => writeln!(out, "profiles: {}", names.join(", ")),
    }
}

fn show(out: &mut Out, json: bool, profile: &Profile) -> io::Result<()> {
    if json {
        let settings: Vec<_> = profile.settings.iter().map(setting_json).collect();
        let json = serde_json::json!({"profile": profile.name, "settings": settings});
        return print_json(out, &json);
    }
    writeln!(out, "profile {}", escaped(&profile.name))?;
    let rows: Vec<Vec<String>> = profile
        .settings
        .iter()
        .map(|s| vec![s.key.to_owned(), s.value.to_string(), origin(s)])
        .collect();
    print_table(out, &["KEY", "VALUE", "FROM"], &rows)
}

/// Where a setting comes from, and what overrides it.
fn origin(s: &Setting) -> String {
    match overridden_by(s) {
        Some(var) => format!("{} (overridden by {var})", s.origin),
        None => s.origin.to_string(),
    }
}

fn overridden_by(s: &Setting) -> Option<&'static str> {
    OVERRIDES
        .iter()
        .find(|(key, var)| *key == s.key && std::env::var_os(var).is_some_and(|v| !v.is_empty()))
        .map(|(_, var)| *var)
}

fn setting_json(s: &Setting) -> serde_json::Value {
    let value = match &s.value {
        profile::Value::One(v) => serde_json::json!(v),
        profile::Value::Many(vs) => serde_json::json!(vs),
        profile::Value::Switch(b) => serde_json::json!(b),
    };
    serde_json::json!({
        "key": s.key,
        "value": value,
        "file": RawName::from_path(&s.origin.file),
        "line": s.origin.line,
        "overridden_by": overridden_by(s),
    })
}
