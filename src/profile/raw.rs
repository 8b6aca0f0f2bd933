//! The TOML of `cairn.toml` as serde reads it, and its conversion into
//! checked [`Setting`]s.
//!
//! Every table refuses unknown keys (`deny_unknown_fields`), and every
//! value keeps its span, so an error can name its line.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Origin, Setting, Value, line_of};
use crate::retention::{Count, GroupBy, Within};

/// A whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    profiles: BTreeMap<String, RawProfile>,
}

/// One `[profiles.NAME]` table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    store: Option<Spanned<String>>,
    cache_dir: Option<Spanned<String>>,
    lock_wait: Option<Spanned<String>>,
    progress_interval: Option<Spanned<String>>,
    connections: Option<Spanned<toml::Value>>,
    retries: Option<Spanned<toml::Value>>,
    request_timeout: Option<Spanned<String>>,
    sources: Option<Spanned<Vec<String>>>,
    files_from: Option<Spanned<Vec<String>>>,
    excludes: Option<Spanned<Vec<String>>>,
    exclude_files: Option<Spanned<Vec<String>>>,
    exclude_caches: Option<Spanned<bool>>,
    exclude_if_present: Option<Spanned<Vec<String>>>,
    exclude_larger_than: Option<Spanned<String>>,
    one_file_system: Option<Spanned<bool>>,
    tags: Option<Spanned<Vec<String>>>,
    host: Option<Spanned<String>>,
    all_hosts: Option<Spanned<bool>>,
    sqlite: Option<Spanned<String>>,
    sqlite_timeout: Option<Spanned<String>>,
    keep_last: Option<Spanned<toml::Value>>,
    keep_hourly: Option<Spanned<toml::Value>>,
    keep_daily: Option<Spanned<toml::Value>>,
    keep_weekly: Option<Spanned<toml::Value>>,
    keep_monthly: Option<Spanned<toml::Value>>,
    keep_yearly: Option<Spanned<toml::Value>>,
    keep_within: Option<Spanned<String>>,
    keep_within_hourly: Option<Spanned<String>>,
    keep_within_daily: Option<Spanned<String>>,
    keep_within_weekly: Option<Spanned<String>>,
    keep_within_monthly: Option<Spanned<String>>,
    keep_within_yearly: Option<Spanned<String>>,
    keep_tags: Option<Spanned<Vec<String>>>,
    group_by: Option<Spanned<String>>,
    max_unused: Option<Spanned<String>>,
    grace: Option<Spanned<String>>,
    // Read only to be refused with the reason (see NO_PASSPHRASE).
    password_file: Option<Spanned<String>>,
    password_command: Option<Spanned<String>>,
    #[serde(default)]
    verify: RawVerify,
    #[serde(default)]
    hooks: RawHooks,
}

/// `[profiles.NAME.verify]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    budget: Option<Spanned<String>>,
    max_age: Option<Spanned<String>>,
    read_data_subset: Option<Spanned<String>>,
}

/// `[profiles.NAME.hooks]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    before: Option<Spanned<String>>,
    after: Option<Spanned<String>>,
    on_failure: Option<Spanned<String>>,
    commands: Option<Spanned<Vec<String>>>,
}

/// Why a profile's `password_file` and `password_command` are refused.
const NO_PASSPHRASE: &str = "a profile holds no passphrase source (refused for now): \
     set CAIRN_PASSWORD_FILE or CAIRN_PASSWORD_COMMAND in the cron line or unit instead";

/// A value's check: `Err(why)` if it makes no sense.
type Check = fn(&str) -> Result<(), String>;

/// Turns spanned values into settings, checking each.
struct Convert<'a> {
    path: &'a Path,
    text: &'a str,
    out: Vec<Setting>,
}

/// Every profile of the file `path` (with content `text`), checked.
pub(super) fn parse(path: &Path, text: &str) -> Result<Vec<(String, Vec<Setting>)>, ConfigError> {
    let file: File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().trim_end().to_owned(),
    })?;
    file.profiles
        .into_iter()
        .map(|(name, raw)| Ok((name, settings(path, text, raw)?)))
        .collect()
}

fn settings(path: &Path, text: &str, p: RawProfile) -> Result<Vec<Setting>, ConfigError> {
    let mut c = Convert {
        path,
        text,
        out: Vec::new(),
    };
    c.one("store", p.store, check_store)?;
    c.refuse("password_file", p.password_file, NO_PASSPHRASE)?;
    c.refuse("password_command", p.password_command, NO_PASSPHRASE)?;
    c.one("cache_dir", p.cache_dir, not_empty)?;
    c.one("lock_wait", p.lock_wait, check_duration)?;
    c.one("progress_interval", p.progress_interval, check_duration)?;
    c.number("connections", p.connections, check_connections)?;
    c.number("retries", p.retries, check_retries)?;
    c.one("request_timeout", p.request_timeout, check_request_timeout)?;
    c.many("sources", p.sources, not_empty)?;
    c.many("files_from", p.files_from, not_empty)?;
    c.many("excludes", p.excludes, check_exclude)?;
    c.many("exclude_files", p.exclude_files, not_empty)?;
    c.switch("exclude_caches", p.exclude_caches);
    c.many("exclude_if_present", p.exclude_if_present, not_empty)?;
    c.one("exclude_larger_than", p.exclude_larger_than, check_size)?;
    c.switch("one_file_system", p.one_file_system);
    c.many("tags", p.tags, crate::snapshot::check_label)?;
    c.one("host", p.host, crate::snapshot::check_label)?;
    c.switch("all_hosts", p.all_hosts);
    c.one("sqlite", p.sqlite, check_sqlite)?;
    c.one("sqlite_timeout", p.sqlite_timeout, check_duration)?;
    for (key, count) in [
        ("keep_last", p.keep_last),
        ("keep_hourly", p.keep_hourly),
        ("keep_daily", p.keep_daily),
        ("keep_weekly", p.keep_weekly),
        ("keep_monthly", p.keep_monthly),
        ("keep_yearly", p.keep_yearly),
    ] {
        c.count(key, count)?;
    }
    for (key, within) in [
        ("keep_within", p.keep_within),
        ("keep_within_hourly", p.keep_within_hourly),
        ("keep_within_daily", p.keep_within_daily),
        ("keep_within_weekly", p.keep_within_weekly),
        ("keep_within_monthly", p.keep_within_monthly),
        ("keep_within_yearly", p.keep_within_yearly),
    ] {
        c.one(key, within, check_within)?;
    }
    c.many("keep_tags", p.keep_tags, |_| Ok(()))?;
    c.one("group_by", p.group_by, check_group_by)?;
    c.one("max_unused", p.max_unused, check_percent)?;
    c.one("grace", p.grace, check_duration)?;
    c.one("verify.budget", p.verify.budget, check_duration)?;
    c.one("verify.max_age", p.verify.max_age, check_duration)?;
    c.one(
        "verify.read_data_subset",
        p.verify.read_data_subset,
        check_subset,
    )?;
    c.one("hooks.before", p.hooks.before, not_empty)?;
    c.one("hooks.after", p.hooks.after, not_empty)?;
    c.one("hooks.on_failure", p.hooks.on_failure, not_empty)?;
    c.many("hooks.commands", p.hooks.commands, check_hook_command)?;
    Ok(c.out)
}

impl Convert<'_> {
    fn origin<T>(&self, value: &Spanned<T>) -> Origin {
        Origin {
            file: self.path.to_owned(),
            line: line_of(self.text, value.span().start),
        }
    }

    fn bad(&self, origin: Origin, key: &str, value: &str, why: String) -> ConfigError {
        ConfigError::Value {
            origin,
            key: key.to_owned(),
            value: value.to_owned(),
            why,
        }
    }

    fn one(
        &mut self,
        key: &'static str,
        value: Option<Spanned<String>>,
        check: Check,
    ) -> Result<(), ConfigError> {
        let Some(value) = value else {
            return Ok(());
        };
        let origin = self.origin(&value);
        self.checked(key, origin, value.into_inner(), check)
    }

    /// Pushes `text` as `key`'s value once `check` takes it.
    fn checked(
        &mut self,
        key: &'static str,
        origin: Origin,
        text: String,
        check: Check,
    ) -> Result<(), ConfigError> {
        check(&text).map_err(|why| self.bad(origin.clone(), key, &text, why))?;
        self.out.push(Setting {
            key,
            value: Value::One(text),
            origin,
        });
        Ok(())
    }

    /// Refuses `key` outright, if it is set, saying `why`: a key the README
    /// names as refused is told apart from a misspelt one.
    fn refuse(
        &self,
        key: &str,
        value: Option<Spanned<String>>,
        why: &str,
    ) -> Result<(), ConfigError> {
        match value {
            Some(value) => Err(self.bad(self.origin(&value), key, value.get_ref(), why.to_owned())),
            None => Ok(()),
        }
    }

    fn many(
        &mut self,
        key: &'static str,
        value: Option<Spanned<Vec<String>>>,
        check: Check,
    ) -> Result<(), ConfigError> {
        let Some(value) = value else {
            return Ok(());
        };
        let origin = self.origin(&value);
        let items = value.into_inner();
        for item in &items {
            check(item).map_err(|why| self.bad(origin.clone(), key, item, why))?;
        }
        self.out.push(Setting {
            key,
            value: Value::Many(items),
            origin,
        });
        Ok(())
    }

    fn switch(&mut self, key: &'static str, value: Option<Spanned<bool>>) {
        if let Some(value) = value {
            let origin = self.origin(&value);
            self.out.push(Setting {
                key,
                value: Value::Switch(value.into_inner()),
                origin,
            });
        }
    }

    /// A count, as `--keep-daily` takes it: a number here too (`7`), and
    /// anything else (`-1`, `1.5`) refused saying what a count is.
    /// `key` given as a number (or a string of one), checked as text.
    fn number(
        &mut self,
        key: &'static str,
        value: Option<Spanned<toml::Value>>,
        check: Check,
    ) -> Result<(), ConfigError> {
        let Some(value) = value else {
            return Ok(());
        };
        let origin = self.origin(&value);
        let text = match value.into_inner() {
            toml::Value::String(text) => text,
            other => other.to_string(),
        };
        self.checked(key, origin, text, check)
    }

    fn count(
        &mut self,
        key: &'static str,
        value: Option<Spanned<toml::Value>>,
    ) -> Result<(), ConfigError> {
        let Some(value) = value else {
            return Ok(());
        };
        let origin = self.origin(&value);
        let count = match value.get_ref() {
            toml::Value::Integer(n) => u32::try_from(*n).ok().map(Count::Limited),
            toml::Value::String(text) => text.parse().ok(),
            _ => None,
        };
        let Some(count) = count else {
            let shown = match value.into_inner() {
                toml::Value::String(text) => text,
                other => other.to_string(),
            };
            let why = format!(
                "a count is a whole number from 0 to {} or \"unlimited\"",
                u32::MAX
            );
            return Err(self.bad(origin, key, &shown, why));
        };
        self.out.push(Setting {
            key,
            value: Value::One(count.to_string()),
            origin,
        });
        Ok(())
    }
}

fn not_empty(text: &str) -> Result<(), String> {
    match text.trim().is_empty() {
        true => Err("must not be empty".to_owned()),
        false => Ok(()),
    }
}

/// A pattern that compiles, as `snapshot` compiles each `--exclude`.
fn check_exclude(text: &str) -> Result<(), String> {
    not_empty(text)?;
    crate::pattern::Patterns::new(&[text.to_owned()])
        .map(|_| ())
        .map_err(|e| e.cause)
}

/// One of cairn's commands (see [`super::hooks::COMMANDS`]).
fn check_hook_command(text: &str) -> Result<(), String> {
    let commands = super::hooks::COMMANDS;
    match commands.contains(&text) {
        true => Ok(()),
        false => Err(format!(
            "not a command of cairn (one of {})",
            commands.join(", ")
        )),
    }
}

fn check_store(text: &str) -> Result<(), String> {
    not_empty(text)?;
    text.parse::<crate::store::Location>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn check_duration(text: &str) -> Result<(), String> {
    crate::when::parse_duration(text).map(|_| ())
}

/// As `--connections` takes it.
fn check_connections(text: &str) -> Result<(), String> {
    crate::backend::parse_connections(text).map(|_| ())
}

/// As `--retries` takes it.
fn check_retries(text: &str) -> Result<(), String> {
    text.parse::<usize>()
        .map(|_| ())
        .map_err(|_| "retries are a whole number".to_owned())
}

/// As `--request-timeout` takes it.
fn check_request_timeout(text: &str) -> Result<(), String> {
    crate::backend::parse_timeout(text).map(|_| ())
}

/// `500M`, as `--exclude-larger-than` takes it.
fn check_size(text: &str) -> Result<(), String> {
    crate::size::parse_size(text).map(|_| ())
}

/// `N/M` or `P%`, as `--read-data-subset` takes it.
fn check_subset(text: &str) -> Result<(), String> {
    crate::verify::parse_subset(text).map(|_| ())
}

fn check_within(text: &str) -> Result<(), String> {
    text.parse::<Within>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn check_group_by(text: &str) -> Result<(), String> {
    text.parse::<GroupBy>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn check_sqlite(text: &str) -> Result<(), String> {
    match text {
        "auto" | "raw" => Ok(()),
        _ => Err("must be \"auto\" or \"raw\"".to_owned()),
    }
}

fn check_percent(text: &str) -> Result<(), String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(()),
        _ => Err("must be a percentage between 0 and 100".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Vec<(String, Vec<Setting>)>, ConfigError> {
        parse(Path::new("/etc/cairn/cairn.toml"), text)
    }

    // Regression: #19 (a misspelt key must not silently back up everything)
    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let text = "[profiles.app]\nsources = [\"/srv\"]\nexlude = [\"*.tmp\"]\n";
        let err = parse_text(text).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("exlude"), "{err}");
        assert!(err.contains("/etc/cairn/cairn.toml"), "{err}");
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_named_with_its_line() {
        let text = "[profiles.app]\n\ntags = \"nightly\"\n";
        let err = parse_text(text).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn a_count_that_is_none_is_named_with_key_line_and_what_a_count_is() {
        for value in ["-1", "1.5", "\"seven\"", "4294967296"] {
            let text = format!("[profiles.app]\n\nkeep_daily = {value}\n");
            let err = parse_text(&text).unwrap_err().to_string();
            assert!(err.contains(":3: keep_daily"), "{err}");
            assert!(err.contains("whole number"), "{err}");
        }
    }

    #[test]
    fn a_duration_that_is_none_is_named_with_key_and_line() {
        let text = "[profiles.app]\n[profiles.app.verify]\nbudget = \"ten minutes\"\n";
        let err = parse_text(text).unwrap_err().to_string();
        assert!(err.contains(":3: verify.budget"), "{err}");
    }

    #[test]
    fn a_passphrase_source_is_refused_with_its_line_and_what_to_do_instead() {
        for key in ["password_file", "password_command"] {
            let text = format!("[profiles.app]\n{key} = \"/etc/cairn/key\"\n");
            let err = parse_text(&text).unwrap_err().to_string();
            assert!(err.contains(&format!(":2: {key}")), "{err}");
            assert!(err.contains("CAIRN_PASSWORD_FILE"), "{err}");
        }
    }

    #[test]
    fn each_setting_remembers_its_line() {
        let text =
            "[profiles.app]\nstore = \"/b\"\n\nkeep_daily = 7\nkeep_monthly = \"unlimited\"\n";
        let profiles = parse_text(text).unwrap();
        let (name, settings) = &profiles[0];
        assert_eq!(name, "app");
        let line = |key: &str| settings.iter().find(|s| s.key == key).unwrap().origin.line;
        assert_eq!(
            (line("store"), line("keep_daily"), line("keep_monthly")),
            (2, 4, 5)
        );
        let daily = settings.iter().find(|s| s.key == "keep_daily").unwrap();
        assert_eq!(daily.value, Value::One("7".into()));
    }

    #[test]
    fn switches_are_booleans_and_a_string_is_refused_with_its_line() {
        let profiles = parse_text(
            "[profiles.app]
one_file_system = true
",
        )
        .unwrap();
        let setting = &profiles[0].1[0];
        assert_eq!(
            (setting.key, &setting.value),
            ("one_file_system", &Value::Switch(true))
        );
        let err = parse_text(
            "[profiles.app]

exclude_caches = \"yes\"
",
        )
        .unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
