//! From `argv` to a parsed command line: a profile's keys become the flags
//! they stand for, and a usage error shows the command's plain usage.
//!
//! With `-P NAME`, the command line is parsed once leniently to learn the
//! command and which options were given; each key of the profile that
//! applies to the command and was not given (on the command line or in its
//! environment variable) is added as its flag (`excludes` as `--exclude`
//! each; a switch such as `one_file_system = true` as the bare flag), and
//! the result is parsed for real. So the command line overrides
//! the profile key by key, an environment variable overrides it too, and
//! every value the profile gives is checked exactly as if it had been
//! typed. Which key stands for which flag is the table [`FLAGS`]; `forget`
//! also gets a `--path` for each path the profile's snapshots record
//! ([`forget_scope`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use cairn::capture::{lists, sources};
use cairn::profile::{self, ConfigError, Profile, Setting, Value};

use super::Cli;

mod flags;

use flags::{FLAGS, applies};

/// A command line ready to run.
pub struct Invocation {
    /// What clap parsed, profile keys included.
    pub cli: Cli,
    /// The profile, if one was named.
    pub profile: Option<Profile>,
    /// The command's name (`snapshot`), for hooks.
    pub command: Option<String>,
}

/// Why a command line cannot run.
pub enum Refused {
    /// Clap's error (or `--help`), usage already rewritten; print and exit
    /// with its code.
    Clap(clap::Error),
    /// The same, already rendered.
    Rendered { text: String, code: i32 },
    /// The configuration or profile is bad (exit 2).
    Config(ConfigError),
}

/// A command line that cannot run, and the profile named on it (or its
/// hooks alone, read leniently when the profile was refused), so that its
/// `on_failure` hook hears that the job did not run.
pub struct Refusal {
    /// Why it cannot run.
    pub why: Refused,
    /// The profile, if one was named and its hooks could be read.
    pub profile: Option<Profile>,
    /// The command's name (`snapshot`), for hooks.
    pub command: Option<String>,
}

/// Parses `args` (the program name first), applying the profile named.
pub fn parse(args: Vec<OsString>) -> Result<Invocation, Box<Refusal>> {
    let lenient = command()
        .ignore_errors(true)
        .try_get_matches_from(&args)
        .ok();
    let command = lenient
        .as_ref()
        .and_then(|m| m.subcommand_name().map(str::to_owned));
    let refusal = |why, profile| {
        Box::new(Refusal {
            why,
            profile,
            command: command.clone(),
        })
    };
    let named = lenient
        .as_ref()
        .and_then(|m| Some((m, m.get_one::<String>("profile")?.clone())));
    let Some((lenient, name)) = named else {
        let cli = strict(&args, lenient.as_ref()).map_err(|why| refusal(why, None))?;
        return Ok(Invocation {
            cli,
            profile: None,
            command,
        });
    };
    let files = config_files(lenient).map_err(|e| refusal(Refused::Config(e), None))?;
    let profile = match profile::load(&files, &name) {
        Ok(profile) => profile,
        Err(e) => return Err(refusal(Refused::Config(e), profile::salvage(&files, &name))),
    };
    let cli = apply(&args, lenient, &profile)
        .map_err(Refused::Config)
        .and_then(|with_profile| strict(&with_profile, Some(lenient)));
    match cli {
        Ok(cli) => Ok(Invocation {
            cli,
            profile: Some(profile),
            command,
        }),
        Err(why) => Err(refusal(why, Some(profile))),
    }
}

/// The configuration files to read, with their text.
pub fn config_files(
    matches: &ArgMatches,
) -> Result<Vec<(std::path::PathBuf, String)>, ConfigError> {
    match matches.get_many::<std::path::PathBuf>("config") {
        Some(given) => profile::read_files(&given.cloned().collect::<Vec<_>>(), true),
        None => profile::read_files(&profile::default_files(), false),
    }
}

/// The command line's definition, where an environment variable that is
/// set but empty counts as not set: `CAIRN_STORE=` in a cron line is no
/// store (as `config show` reads it, and so the profile's applies), not the
/// store "".
fn command() -> clap::Command {
    without_empty_env(Cli::command())
}

fn without_empty_env(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| {
        let empty = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|v| v.is_empty());
        match empty {
            true => arg.env(None),
            false => arg,
        }
    })
    .mut_subcommands(without_empty_env)
}

fn strict(args: &[OsString], lenient: Option<&ArgMatches>) -> Result<Cli, Refused> {
    let matches = command()
        .try_get_matches_from(args)
        .map_err(|e| plain_usage(e, lenient))?;
    Cli::from_arg_matches(&matches).map_err(|e| plain_usage(e, lenient))
}

/// A usage error shows the command's own usage line, not clap's line built
/// from what was given (which showed `--store` as required when
/// `CAIRN_STORE` was set, or a mistyped flag's suggestion as the usage).
fn plain_usage(e: clap::Error, lenient: Option<&ArgMatches>) -> Refused {
    if !e.use_stderr() {
        return Refused::Clap(e);
    }
    let mut cmd = command();
    cmd.build();
    let mut sub = &cmd;
    let mut matches = lenient;
    while let Some((name, next)) = matches.and_then(ArgMatches::subcommand) {
        match sub.find_subcommand(name) {
            Some(found) => sub = found,
            None => break,
        }
        matches = Some(next);
    }
    let usage = sub.clone().render_usage().to_string();
    let text = e.render().to_string();
    let text: Vec<String> = text
        .lines()
        .map(|line| match line.starts_with("Usage: ") {
            true => usage.trim_end().to_owned(),
            false => line.to_owned(),
        })
        .collect();
    Refused::Rendered {
        text: format!("{}\n", text.join("\n")),
        code: e.exit_code(),
    }
}

/// `args` with the profile's keys added as flags where they apply.
fn apply(
    args: &[OsString],
    lenient: &ArgMatches,
    profile: &Profile,
) -> Result<Vec<OsString>, ConfigError> {
    let Some((command, sub)) = lenient.subcommand() else {
        return Ok(args.to_vec());
    };
    let given = |id: &str| given(lenient, id) || given(sub, id);
    let mut flags: Vec<OsString> = Vec::new();
    let mut positionals: Vec<OsString> = Vec::new();
    for f in FLAGS.iter().filter(|f| applies(f, command)) {
        let Some(setting) = profile.get(f.key) else {
            continue;
        };
        if given(f.id) || f.unless.iter().any(|id| given(id)) {
            continue;
        }
        match f.flag {
            Some(flag) => flags.extend(as_flags(flag, &setting.value)),
            None => positionals.extend(values(&setting.value).map(as_positional)),
        }
    }
    if command == "forget" {
        flags.extend(forget_scope(profile, given)?);
    }
    Ok(splice(args, flags, positionals))
}

/// Why `forget` refuses a profile that names no paths.
const NO_SCOPE: &str = "it names no sources or files_from, so forget cannot tell its \
     snapshots from the host's others and would apply its policy to all of them: \
     give --path (a snapshot of --stdin-name NAME records /NAME)";

/// `--path` for each path the profile's snapshots record, so that `forget`
/// applies its policy to them only, not to every snapshot of the host. A
/// profile that names no paths (one for a `--stdin-from-command` dump) is
/// refused, unless `--path` or snapshot ids are given: a wider scope could
/// forget the snapshots of other sources.
fn forget_scope(
    profile: &Profile,
    given: impl Fn(&str) -> bool,
) -> Result<Vec<OsString>, ConfigError> {
    if given("paths") {
        return Ok(Vec::new());
    }
    let paths = recorded_paths(profile)?;
    if paths.is_empty() && !given("snapshots") {
        let names_some = profile.get("sources").is_some() || profile.get("files_from").is_some();
        return Err(unusable(
            profile,
            if names_some { EMPTY_SCOPE } else { NO_SCOPE },
        ));
    }
    Ok(paths.into_iter().map(as_path_flag).collect())
}

/// Why `forget` refuses a profile whose `files_from` lists name no path.
const EMPTY_SCOPE: &str = "its sources and files_from lists name no path, so forget cannot \
     tell its snapshots from the host's others: give --path";

/// The paths a snapshot of the profile records: its `sources`, and the
/// paths its `files_from` lists name, read now as `snapshot` reads them,
/// made absolute and collapsed as `snapshot` records them (`/srv` and
/// `/srv/app` record `/srv`: asked for both, forget matched nothing).
fn recorded_paths(profile: &Profile) -> Result<Vec<PathBuf>, ConfigError> {
    let mut paths: Vec<PathBuf> = match profile.get("sources") {
        Some(sources) => values(&sources.value).map(PathBuf::from).collect(),
        None => Vec::new(),
    };
    if let Some(setting) = profile.get("files_from") {
        for list in values(&setting.value) {
            paths.extend(listed_paths(profile, setting, &list)?);
        }
    }
    let absolute: std::io::Result<Vec<PathBuf>> =
        paths.iter().map(|p| sources::absolute(p)).collect();
    let absolute = absolute.map_err(|e| unusable(profile, &format!("its paths: {e}")))?;
    Ok(sources::collapse(absolute))
}

/// The paths the `files_from` list `list` names. A list on standard input
/// cannot be read again for forget.
fn listed_paths(
    profile: &Profile,
    setting: &Setting,
    list: &str,
) -> Result<Vec<PathBuf>, ConfigError> {
    if list == "-" {
        return Err(unusable(
            profile,
            "its files_from list is standard input, which forget cannot read: give --path",
        ));
    }
    lists::read_paths(Path::new(list), false).map_err(|e| ConfigError::Value {
        origin: setting.origin.clone(),
        key: setting.key.to_owned(),
        value: list.to_owned(),
        why: e.to_string(),
    })
}

fn unusable(profile: &Profile, why: &str) -> ConfigError {
    ConfigError::Unusable {
        name: profile.name.clone(),
        why: why.to_owned(),
    }
}

/// `--path=PATH`, for a path that need not be UTF-8.
fn as_path_flag(path: PathBuf) -> OsString {
    let mut flag = OsString::from("--path=");
    flag.push(path);
    flag
}

/// The words `value` adds as `flag`: a switch that is on the bare flag,
/// and each value `--flag=VALUE`, also an empty one (`--group-by=`, one
/// group): a bare `--group-by` would take no value and be refused.
fn as_flags(flag: &str, value: &Value) -> Vec<OsString> {
    match value {
        Value::Switch(on) => on.then(|| flag.into()).into_iter().collect(),
        value => values(value)
            .map(|v| format!("{flag}={v}").into())
            .collect(),
    }
}

/// The values of a key that takes one or many; none for a switch.
fn values(value: &Value) -> impl Iterator<Item = String> + '_ {
    let values: &[String] = match value {
        Value::One(v) => std::slice::from_ref(v),
        Value::Many(vs) => vs,
        Value::Switch(_) => &[],
    };
    values.iter().cloned()
}

/// `args` with `flags` and then `positionals` inserted before a `--` if
/// there is one (what follows `--` is `snapshot --stdin-from-command`'s
/// command, never paths), else at the end.
fn splice(args: &[OsString], flags: Vec<OsString>, positionals: Vec<OsString>) -> Vec<OsString> {
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let mut out: Vec<OsString> = args[..end].to_vec();
    out.extend(flags);
    out.extend(positionals);
    out.extend(args[end..].iter().cloned());
    out
}

/// A profile's source as a positional value: one starting with `-` is
/// written `./-name` (the same path), so that it is not taken for a flag.
fn as_positional(source: String) -> OsString {
    match source.starts_with('-') {
        true => format!("./{source}").into(),
        false => source.into(),
    }
}

/// Whether option `id` was given on the command line or by its
/// environment variable (not a default).
fn given(matches: &ArgMatches, id: &str) -> bool {
    matches.ids().any(|i| i.as_str() == id)
        && matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn every_flag_of_the_table_exists_in_the_commands_it_names() {
        let mut cmd = Cli::command();
        cmd.build();
        for f in FLAGS {
            let commands: Vec<&clap::Command> = match f.commands {
                ["*"] => vec![&cmd],
                names => names
                    .iter()
                    .map(|n| cmd.find_subcommand(n).expect("a command of the table"))
                    .collect(),
            };
            for c in commands {
                let ids: Vec<&str> = c.get_arguments().map(|a| a.get_id().as_str()).collect();
                for id in std::iter::once(&f.id).chain(f.unless) {
                    assert!(ids.contains(id), "{} has no {id} ({})", c.get_name(), f.key);
                }
                if let Some(flag) = f.flag {
                    let long = c
                        .get_arguments()
                        .find(|a| a.get_id() == f.id)
                        .and_then(|a| a.get_long());
                    assert_eq!(long, flag.strip_prefix("--"), "{}", f.key);
                }
            }
        }
    }

    #[test]
    fn the_commands_hooks_may_wrap_are_the_commands_of_the_command_line() {
        let cmd = Cli::command();
        let mut ours: Vec<&str> = cmd.get_subcommands().map(clap::Command::get_name).collect();
        let mut theirs = profile::hooks::COMMANDS.to_vec();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn every_key_of_the_profile_module_has_a_flag_or_is_a_hook() {
        for key in profile::KEYS {
            let known = FLAGS.iter().any(|f| f.key == *key) || key.starts_with("hooks.");
            assert!(known, "{key}");
        }
    }

    // Since `snapshot -- COMMAND...` (#16) what follows `--` is a command.
    #[test]
    fn flags_and_sources_go_before_a_double_dash() {
        let out = splice(
            &args(&["cairn", "snapshot", "--tag", "x"]),
            args(&["--exclude=*.tmp"]),
            vec![as_positional("/srv".into()), as_positional("-odd".into())],
        );
        assert_eq!(
            out,
            args(&[
                "cairn",
                "snapshot",
                "--tag",
                "x",
                "--exclude=*.tmp",
                "/srv",
                "./-odd"
            ])
        );
        let out = splice(
            &args(&["cairn", "snapshot", "--stdin-from-command", "--", "pg_dump"]),
            args(&["--host=a"]),
            Vec::new(),
        );
        assert_eq!(
            out,
            args(&[
                "cairn",
                "snapshot",
                "--stdin-from-command",
                "--host=a",
                "--",
                "pg_dump"
            ])
        );
    }
}
