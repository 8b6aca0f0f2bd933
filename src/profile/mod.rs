//! Profiles: named sets of options in `cairn.toml`, so that a cron line or
//! a systemd unit says `cairn -P app snapshot` instead of repeating the
//! sources and flags on every host.
//!
//! The files are read lowest precedence first: `/etc/cairn/cairn.toml`,
//! then `$XDG_CONFIG_HOME/cairn/cairn.toml` (`~/.config/...`); or only the
//! `--config FILE`s given, in order. A later file's key replaces an earlier
//! one's, key by key. Every key is checked when read: an unknown key (a
//! misspelt `exlude` that would silently back up everything) or a value of
//! the wrong kind is an error naming the file, the line and the key. Each
//! value keeps where it came from, for `cairn config show`.
//!
//! This module knows keys and values; which command-line flag each key
//! stands for is the binary's business.

pub mod hooks;
mod raw;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::rawname::escaped;

pub use hooks::Hooks;

/// Where a value was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The configuration file.
    pub file: PathBuf,
    /// Its line (1-based).
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", escaped(&self.file), self.line)
    }
}

/// A value as the command line would take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// One value (`store = "..."`, `keep_daily = 7`).
    One(String),
    /// A list (`excludes = ["*.tmp", "cache"]`).
    Many(Vec<String>),
    /// A switch (`force = true`).
    Switch(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::One(v) => write!(f, "{v:?}"),
            Self::Many(vs) => {
                let quoted: Vec<String> = vs.iter().map(|v| format!("{v:?}")).collect();
                write!(f, "[{}]", quoted.join(", "))
            }
            Self::Switch(b) => write!(f, "{b}"),
        }
    }
}

/// One key of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The key, `verify.budget` for a key of a sub-table.
    pub key: &'static str,
    /// Its value.
    pub value: Value,
    /// Where it was set.
    pub origin: Origin,
}

/// A profile, merged from every file that defines it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Its name.
    pub name: String,
    /// Its keys, in the order of [`KEYS`].
    pub settings: Vec<Setting>,
    /// Its hooks.
    pub hooks: Hooks,
}

impl Profile {
    /// The setting of `key`, if the profile has one.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }
}

/// Every key a profile may have, in the order `config show` lists them.
pub const KEYS: &[&str] = &[
    "store",
    "cache_dir",
    "lock_wait",
    "progress_interval",
    "connections",
    "retries",
    "request_timeout",
    "sources",
    "files_from",
    "excludes",
    "exclude_files",
    "exclude_caches",
    "exclude_if_present",
    "exclude_larger_than",
    "one_file_system",
    "tags",
    "host",
    "all_hosts",
    "sqlite",
    "sqlite_timeout",
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "keep_within",
    "keep_within_hourly",
    "keep_within_daily",
    "keep_within_weekly",
    "keep_within_monthly",
    "keep_within_yearly",
    "keep_tags",
    "group_by",
    "max_unused",
    "grace",
    "verify.budget",
    "verify.max_age",
    "verify.read_data_subset",
    "hooks.before",
    "hooks.after",
    "hooks.on_failure",
    "hooks.commands",
];

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", escaped(path))]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A file is not TOML, or has a key that is unknown or of the wrong kind.
    #[error("{}: {}{message}", escaped(path), at_line(*line))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where, if known.
        line: Option<usize>,
        /// What TOML or the key's type said.
        message: String,
    },
    /// A key's value does not make sense (a duration that is not one).
    #[error("{origin}: {key} = {value:?}: {why}")]
    Value {
        /// Where it was set.
        origin: Origin,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Why.
        why: String,
    },
    /// The profile cannot be used for the command asked (`forget` with a
    /// profile that names no paths).
    #[error("profile {name:?}: {why}")]
    Unusable {
        /// The profile.
        name: String,
        /// Why.
        why: String,
    },
    /// No file read defines the profile.
    #[error("profile {name:?} is not defined in {}", describe_files(files))]
    NoProfile {
        /// The profile asked for.
        name: String,
        /// The files read.
        files: Vec<PathBuf>,
    },
}

fn at_line(line: Option<usize>) -> String {
    line.map_or_else(String::new, |l| format!("line {l}: "))
}

fn describe_files(files: &[PathBuf]) -> String {
    match files {
        [] => "any configuration file (none exists)".to_owned(),
        files => {
            let names: Vec<String> = files.iter().map(|f| escaped(f).to_string()).collect();
            names.join(" or ")
        }
    }
}

/// The configuration files read when no `--config` is given, lowest
/// precedence first: `/etc/cairn/cairn.toml`, then the user's.
pub fn default_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("/etc/cairn/cairn.toml")];
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        });
    if let Some(dir) = config_home {
        files.push(dir.join("cairn/cairn.toml"));
    }
    files
}

/// The files of `candidates` that exist, read. A default file that does
/// not exist is skipped; a file named with `--config` (`required`) must.
pub fn read_files(
    candidates: &[PathBuf],
    required: bool,
) -> Result<Vec<(PathBuf, String)>, ConfigError> {
    let mut read = Vec::new();
    for path in candidates {
        match read_config(path) {
            Ok(text) => read.push((path.clone(), text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !required => {}
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.clone(),
                    source,
                });
            }
        }
    }
    Ok(read)
}

/// The largest configuration file read: `--config /dev/zero` (or a log
/// named by mistake) was read until memory ran out.
const MAX_CONFIG_LEN: u64 = 1 << 20;

/// The text of the configuration file `path`, at most [`MAX_CONFIG_LEN`].
fn read_config(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_LEN + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_LEN {
        return Err(io::Error::other("larger than 1 MiB: not a cairn.toml"));
    }
    String::from_utf8(bytes).map_err(|_| io::Error::other("not UTF-8 text: not a cairn.toml"))
}

/// The profile `name`, merged from `files` (path and text, lowest
/// precedence first). Every file is checked whole, even where it does not
/// define the profile.
pub fn load(files: &[(PathBuf, String)], name: &str) -> Result<Profile, ConfigError> {
    let mut profile = Profile {
        name: name.to_owned(),
        ..Profile::default()
    };
    let mut found = false;
    for (path, text) in files {
        let parsed = raw::parse(path, text)?;
        if let Some(layer) = parsed.into_iter().find(|(n, _)| n == name) {
            found = true;
            merge(&mut profile.settings, layer.1);
        }
    }
    if !found {
        return Err(ConfigError::NoProfile {
            name: name.to_owned(),
            files: files.iter().map(|(p, _)| p.clone()).collect(),
        });
    }
    profile
        .settings
        .sort_by_key(|s| KEYS.iter().position(|k| *k == s.key));
    profile.hooks = Hooks::of(&profile.settings);
    Ok(profile)
}

/// Profile `name` with only its hooks, read leniently (see
/// [`hooks::salvage`]), when `load` refused it; `None` when it has none.
pub fn salvage(files: &[(PathBuf, String)], name: &str) -> Option<Profile> {
    let hooks = hooks::salvage(files, name);
    let any = hooks.before.is_some() || hooks.after.is_some() || hooks.on_failure.is_some();
    any.then(|| Profile {
        name: name.to_owned(),
        settings: Vec::new(),
        hooks,
    })
}

/// The names of the profiles `files` define, sorted.
pub fn names(files: &[(PathBuf, String)]) -> Result<Vec<String>, ConfigError> {
    let mut names = Vec::new();
    for (path, text) in files {
        names.extend(raw::parse(path, text)?.into_iter().map(|(n, _)| n));
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Replaces each key of `into` that `layer` sets.
fn merge(into: &mut Vec<Setting>, layer: Vec<Setting>) {
    for setting in layer {
        into.retain(|s| s.key != setting.key);
        into.push(setting);
    }
}

/// The line (1-based) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
