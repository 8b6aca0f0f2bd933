//! Which key of a profile stands for which flag of which commands: the
//! table [`FLAGS`] that [`super::parse`] applies.

/// A profile key and the flag it stands for in some commands.
pub struct Flag {
    /// The key in `cairn.toml`.
    pub key: &'static str,
    /// The commands it applies to (`*`: every command).
    pub commands: &'static [&'static str],
    /// The clap id of the option.
    pub id: &'static str,
    /// The flag, or `None` for the command's positional values.
    pub flag: Option<&'static str>,
    /// Options that, if given, stop the key from applying (a retention
    /// policy is taken whole from the command line or whole from the profile).
    pub unless: &'static [&'static str],
}

const EVERY: &[&str] = &["*"];
const SNAPSHOT: &[&str] = &["snapshot"];
const FORGET: &[&str] = &["forget"];
/// The commands that choose named snapshots by host (`latest`, `@WHEN`).
const NAMING: &[&str] = &["forget", "protect", "unprotect"];
const VERIFY: &[&str] = &["verify"];

/// What a snapshot captures: given any of these on the command line, the
/// profile's `sources` and `files_from` do not apply (each key also gives
/// way to its own option).
const CAPTURES: &[&str] = &[
    "paths",
    "files_from",
    "files_from_raw",
    "stdin",
    "stdin_from_command",
];

/// The options of a retention policy in `forget`, and its snapshot ids:
/// any of them given on the command line keeps the profile's policy out.
const POLICY: &[&str] = &[
    "snapshots",
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
];

const fn flag(
    key: &'static str,
    commands: &'static [&'static str],
    id: &'static str,
    flag: &'static str,
) -> Flag {
    Flag {
        key,
        commands,
        id,
        flag: Some(flag),
        unless: &[],
    }
}

const fn policy(key: &'static str, id: &'static str, flag: &'static str) -> Flag {
    Flag {
        key,
        commands: FORGET,
        id,
        flag: Some(flag),
        unless: POLICY,
    }
}

/// Every profile key that stands for a flag. Options that other work adds
/// to `snapshot` or `restore` are wired by adding a row (and the key in
/// `cairn::profile`).
pub const FLAGS: &[Flag] = &[
    flag("store", EVERY, "store", "--store"),
    flag("cache_dir", EVERY, "cache_dir", "--cache-dir"),
    flag("lock_wait", EVERY, "lock_wait", "--lock-wait"),
    flag("connections", EVERY, "connections", "--connections"),
    flag("retries", EVERY, "retries", "--retries"),
    flag(
        "request_timeout",
        EVERY,
        "request_timeout",
        "--request-timeout",
    ),
    flag(
        "progress_interval",
        EVERY,
        "progress_interval",
        "--progress-interval",
    ),
    Flag {
        key: "sources",
        commands: SNAPSHOT,
        id: "paths",
        flag: None,
        unless: CAPTURES,
    },
    // forget's --path, from sources and files_from: forget_scope.
    Flag {
        key: "files_from",
        commands: SNAPSHOT,
        id: "files_from",
        flag: Some("--files-from"),
        unless: CAPTURES,
    },
    flag("excludes", SNAPSHOT, "excludes", "--exclude"),
    flag("exclude_files", SNAPSHOT, "exclude_files", "--exclude-file"),
    flag(
        "exclude_caches",
        SNAPSHOT,
        "exclude_caches",
        "--exclude-caches",
    ),
    flag(
        "exclude_if_present",
        SNAPSHOT,
        "exclude_if_present",
        "--exclude-if-present",
    ),
    flag(
        "exclude_larger_than",
        SNAPSHOT,
        "exclude_larger_than",
        "--exclude-larger-than",
    ),
    flag(
        "one_file_system",
        SNAPSHOT,
        "one_file_system",
        "--one-file-system",
    ),
    flag("tags", SNAPSHOT, "tags", "--tag"),
    flag("host", SNAPSHOT, "host", "--host"),
    // --all-hosts on the command line sets the profile's host aside, and
    // --host the profile's all_hosts: forget takes one or the other, and
    // protect and unprotect choose `latest` and dates by them as it does.
    Flag {
        key: "host",
        commands: NAMING,
        id: "host",
        flag: Some("--host"),
        unless: &["all_hosts"],
    },
    Flag {
        key: "all_hosts",
        commands: NAMING,
        id: "all_hosts",
        flag: Some("--all-hosts"),
        unless: &["host"],
    },
    flag("sqlite", SNAPSHOT, "sqlite", "--sqlite"),
    flag(
        "sqlite_timeout",
        SNAPSHOT,
        "sqlite_timeout",
        "--sqlite-timeout",
    ),
    policy("keep_last", "keep_last", "--keep-last"),
    policy("keep_hourly", "keep_hourly", "--keep-hourly"),
    policy("keep_daily", "keep_daily", "--keep-daily"),
    policy("keep_weekly", "keep_weekly", "--keep-weekly"),
    policy("keep_monthly", "keep_monthly", "--keep-monthly"),
    policy("keep_yearly", "keep_yearly", "--keep-yearly"),
    policy("keep_within", "keep_within", "--keep-within"),
    policy(
        "keep_within_hourly",
        "keep_within_hourly",
        "--keep-within-hourly",
    ),
    policy(
        "keep_within_daily",
        "keep_within_daily",
        "--keep-within-daily",
    ),
    policy(
        "keep_within_weekly",
        "keep_within_weekly",
        "--keep-within-weekly",
    ),
    policy(
        "keep_within_monthly",
        "keep_within_monthly",
        "--keep-within-monthly",
    ),
    policy(
        "keep_within_yearly",
        "keep_within_yearly",
        "--keep-within-yearly",
    ),
    policy("keep_tags", "keep_tags", "--keep-tag"),
    policy("group_by", "group_by", "--group-by"),
    flag(
        "max_unused",
        &["forget", "prune"],
        "max_unused",
        "--max-unused",
    ),
    flag("grace", &["forget", "prune"], "grace", "--grace"),
    flag("verify.budget", VERIFY, "budget", "--budget"),
    flag("verify.max_age", VERIFY, "max_age", "--max-age"),
    flag(
        "verify.read_data_subset",
        VERIFY,
        "read_data_subset",
        "--read-data-subset",
    ),
];

/// Whether `f` applies to `command`.
pub(super) fn applies(f: &Flag, command: &str) -> bool {
    f.commands.iter().any(|c| *c == "*" || *c == command)
}
