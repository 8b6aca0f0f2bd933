//! A profile's hooks around the command they wrap: `before` first (its
//! failure stops the command: exit 1, and `on_failure` runs), then `after`
//! when the command exited 0, or `on_failure` when it did not.
//!
//! A failing `after` or `on_failure` hook is a warning: the command's work
//! is done (and committed) whatever the hook does, and its exit code stays
//! the command's.

use std::sync::OnceLock;

use cairn::id::SnapshotId;
use cairn::profile::Profile;
use cairn::profile::hooks::{self, HookError};

use super::exit::Exit;
use super::output::warn;

/// The snapshot the command committed, for `CAIRN_SNAPSHOT_ID`.
static SNAPSHOT: OnceLock<SnapshotId> = OnceLock::new();

/// Tells the hooks which snapshot this command committed.
pub fn committed(id: SnapshotId) {
    let _ = SNAPSHOT.set(id);
}

/// The hooks of a profile, for a command they wrap.
pub struct Wrapped<'p> {
    profile: &'p Profile,
    command: String,
}

impl<'p> Wrapped<'p> {
    /// The hooks to run around `command`, if the profile has any for it.
    pub fn new(profile: Option<&'p Profile>, command: Option<&str>) -> Option<Self> {
        let (profile, command) = (profile?, command?);
        profile.hooks.wrap(command).then(|| Self {
            profile,
            command: command.to_owned(),
        })
    }

    /// Runs the `before` hook, if any.
    pub fn before(&self) -> Result<(), HookError> {
        match &self.profile.hooks.before {
            Some(hook) => hooks::run("before", hook, &self.env(None, None)),
            None => Ok(()),
        }
    }

    /// Runs `after` (exit 0) or `on_failure` (any other exit), telling it
    /// `exit` and the error `message`; a failing hook is a warning.
    pub fn after(&self, exit: Exit, message: Option<&str>) {
        let hooks = &self.profile.hooks;
        let (which, hook) = match exit {
            Exit::Ok => ("after", &hooks.after),
            _ => ("on_failure", &hooks.on_failure),
        };
        let Some(hook) = hook else {
            return;
        };
        if let Err(e) = hooks::run(which, hook, &self.env(Some(exit), message)) {
            warn(e);
        }
    }

    fn env(&self, exit: Option<Exit>, message: Option<&str>) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("CAIRN_PROFILE", self.profile.name.clone()),
            ("CAIRN_COMMAND", self.command.clone()),
        ];
        if let Some(exit) = exit {
            let snapshot = SNAPSHOT.get().map(|id| id.to_hex()).unwrap_or_default();
            env.push(("CAIRN_EXIT_CODE", (exit as u8).to_string()));
            env.push(("CAIRN_SNAPSHOT_ID", snapshot));
            env.push(("CAIRN_ERROR", message.unwrap_or_default().to_owned()));
        }
        env
    }
}
