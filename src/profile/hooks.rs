//! A profile's hooks: shell commands run around a command (`pg_dump` into a
//! spool directory before a snapshot, a `curl` to a health-check URL after
//! it), told the outcome in environment variables.
//!
//! Each hook runs as `sh -c COMMAND`, with standard input closed and its
//! standard output sent to cairn's standard error (cairn's stdout may be a
//! JSON report). The environment names the profile and command
//! (`CAIRN_PROFILE`, `CAIRN_COMMAND`) and, after the command,
//! `CAIRN_EXIT_CODE`, `CAIRN_SNAPSHOT_ID` (a snapshot's id, empty if none
//! was committed) and `CAIRN_ERROR` (the error, empty if none).

use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

use super::{Setting, Value};

/// The hooks of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Run before the command; if it fails, the command does not run.
    pub before: Option<String>,
    /// Run after the command when it exited 0.
    pub after: Option<String>,
    /// Run when the `before` hook or the command failed (any exit but 0).
    pub on_failure: Option<String>,
    /// The commands the hooks wrap (`snapshot` unless the profile says).
    pub commands: Vec<String>,
}

/// The commands hooks wrap when a profile does not say.
pub const DEFAULT_COMMANDS: &[&str] = &["snapshot"];

/// Every command of cairn, the names `hooks.commands` may list: a misspelt
/// one (`snapshto`) is refused, as it would silently leave the hooks out.
/// The binary's tests hold this to its list of commands.
pub const COMMANDS: &[&str] = &[
    "init",
    "snapshot",
    "snapshots",
    "restore",
    "ls",
    "cat",
    "diff",
    "find",
    "mount",
    "forget",
    "prune",
    "protect",
    "unprotect",
    "tag",
    "key",
    "policy",
    "verify",
    "repair",
    "copy",
    "stats",
    "config",
    "completions",
    "man",
];

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The shell could not be started.
    #[error("the {which} hook `{command}` could not be started: {source}")]
    Spawn {
        /// `before`, `after` or `on_failure`.
        which: &'static str,
        /// The hook's command.
        command: String,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The hook ran and failed.
    #[error("the {which} hook `{command}` failed ({status})")]
    Failed {
        /// `before`, `after` or `on_failure`.
        which: &'static str,
        /// The hook's command.
        command: String,
        /// How it ended.
        status: ExitStatus,
    },
}

impl Hooks {
    /// The hooks among a profile's settings.
    pub(super) fn of(settings: &[Setting]) -> Self {
        let one = |key: &str| {
            settings
                .iter()
                .find(|s| s.key == key)
                .and_then(|s| match &s.value {
                    Value::One(v) => Some(v.clone()),
                    _ => None,
                })
        };
        let commands = settings
            .iter()
            .find(|s| s.key == "hooks.commands")
            .and_then(|s| match &s.value {
                Value::Many(v) => Some(v.clone()),
                _ => None,
            })
            .unwrap_or_else(|| DEFAULT_COMMANDS.iter().map(|c| c.to_string()).collect());
        Self {
            before: one("hooks.before"),
            after: one("hooks.after"),
            on_failure: one("hooks.on_failure"),
            commands,
        }
    }

    /// Whether the hooks wrap `command` (and there is any hook at all).
    pub fn wrap(&self, command: &str) -> bool {
        let any = self.before.is_some() || self.after.is_some() || self.on_failure.is_some();
        any && self.commands.iter().any(|c| c == command)
    }
}

/// The hooks of profile `name`, read leniently from `files` (path and text,
/// lowest precedence first), for a profile refused as a whole: a bad value
/// anywhere in its files stops a nightly job, and its `on_failure` hook
/// (the operator's alert) should still hear of it. A hook that is not a
/// string is left out; `commands` is the known commands it lists, or the
/// default when it lists none (`snapshto` alone).
pub fn salvage(files: &[(PathBuf, String)], name: &str) -> Hooks {
    let mut table = toml::Table::new();
    for (_, text) in files {
        if let Some(hooks) = hooks_table(text, name) {
            table.extend(hooks);
        }
    }
    let one = |key: &str| table.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    Hooks {
        before: one("before"),
        after: one("after"),
        on_failure: one("on_failure"),
        commands: known_commands(table.get("commands"))
            .unwrap_or_else(|| DEFAULT_COMMANDS.iter().map(|c| c.to_string()).collect()),
    }
}

/// `[profiles.NAME.hooks]` of a file's text: from the whole file, or, when
/// the file is not TOML (an unquoted `keep_within = 30d` elsewhere in it),
/// from that table's own lines alone.
fn hooks_table(text: &str, name: &str) -> Option<toml::Table> {
    let Ok(file) = text.parse::<toml::Table>() else {
        return hooks_section(text, name)?.parse().ok();
    };
    match file.get("profiles")?.get(name)?.get("hooks")? {
        toml::Value::Table(hooks) => Some(hooks.clone()),
        _ => None,
    }
}

/// The lines of the `[profiles.NAME.hooks]` table in `text` (from its
/// header to the next one), found as written, spaces aside. A line inside
/// a multi-line string is no header: an example config quoted in another
/// profile's string must not give this one its hooks.
fn hooks_section(text: &str, name: &str) -> Option<String> {
    let wanted = [
        format!("[profiles.{name}.hooks]"),
        format!("[profiles.\"{name}\".hooks]"),
    ];
    let lines = outside_strings(text);
    let at = lines
        .iter()
        .position(|(line, header)| *header && wanted.contains(&compact(line)))?;
    let section = lines[at + 1..].iter().take_while(|(_, header)| !header);
    Some(
        section
            .map(|(line, _)| *line)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Each line of `text`, and whether it may be a table header: it starts
/// with `[` outside any multi-line string (`"""` or `'''`).
fn outside_strings(text: &str) -> Vec<(&str, bool)> {
    let mut open: Option<&str> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let header = open.is_none() && line.trim_start().starts_with('[');
        out.push((line, header));
        for quote in multi_line_quotes(line) {
            open = match open {
                None => Some(quote),
                Some(q) if q == quote => None,
                still => still,
            };
        }
    }
    out
}

/// The multi-line string delimiters in `line`, in order.
fn multi_line_quotes(line: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find(['"', '\'']) {
        rest = &rest[at..];
        match ["\"\"\"", "\'\'\'"]
            .into_iter()
            .find(|q| rest.starts_with(q))
        {
            Some(quote) => {
                found.push(quote);
                rest = &rest[3..];
            }
            None => rest = &rest[1..],
        }
    }
    found
}

/// A line without its comment and spaces (a table header as compared).
fn compact(line: &str) -> String {
    line.split('#')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect()
}

/// The known commands `hooks.commands` lists, if it lists any.
fn known_commands(value: Option<&toml::Value>) -> Option<Vec<String>> {
    let known: Vec<String> = value?
        .as_array()?
        .iter()
        .filter_map(|c| c.as_str().filter(|c| COMMANDS.contains(c)))
        .map(str::to_owned)
        .collect();
    (!known.is_empty()).then_some(known)
}

/// Runs the `which` hook `command` with `env` added to cairn's environment.
pub fn run(which: &'static str, command: &str, env: &[(&str, String)]) -> Result<(), HookError> {
    let spawn_error = |source| HookError::Spawn {
        which,
        command: command.to_owned(),
        source,
    };
    let stdout = io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(spawn_error)?;
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .status()
        .map_err(spawn_error)?;
    match status.success() {
        true => Ok(()),
        false => Err(HookError::Failed {
            which,
            command: command.to_owned(),
            status,
        }),
    }
}
