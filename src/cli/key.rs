//! `cairn key`: the passphrases of an encrypted store (`keys/`). Any key
//! opens the store; each change writes or deletes one key file, so a
//! crash leaves the old set or the new one.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use cairn::crypt::keyfile::KeyFile;
use cairn::crypt::passphrase;
use cairn::outcome::Outcome;
use cairn::rawname::escaped;
use cairn::store::keys::{self, KeyError, Unlocked};
use cairn::store::{LockMode, Store};

use super::init::KdfArgs;
use super::output::warn;
use super::stdout::Out;
use super::{Ctx, print_json};

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List the store's keys (`*` marks the one this password opened)
    List,
    /// Add a password: another key wrapping the same master key
    Add(NewPassword),
    /// Remove a key (by id or unique prefix); the last one is refused
    Remove {
        /// The key's id or a unique prefix of it
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Change the password that opened the store (adds the new key, then removes the old)
    Passwd(NewPassword),
}

/// Where a new password comes from.
#[derive(Debug, Args)]
struct NewPassword {
    /// The new password: the first line of FILE [default: asked twice on the terminal]
    #[arg(long, value_name = "FILE", conflicts_with = "new_password_command")]
    new_password_file: Option<PathBuf>,
    /// The new password: the first line CMD prints
    #[arg(long, value_name = "CMD")]
    new_password_command: Option<String>,
    #[command(flatten)]
    kdf: KdfArgs,
}

impl NewPassword {
    fn read(&self, store: &Store) -> Result<Vec<u8>, KeyError> {
        let source = super::password_source(
            self.new_password_file.clone(),
            self.new_password_command.clone(),
        );
        let what = format!("store {}", store.location());
        passphrase::read_new(&source, &what).map_err(|e| match e {
            passphrase::PassphraseError::NoSource(_) => KeyError::NewPasswordNeeded,
            other => other.into(),
        })
    }
}

pub fn run(ctx: &Ctx, args: KeyArgs) -> anyhow::Result<Outcome> {
    let store = ctx.open(LockMode::Read)?;
    let Some(unlocked) = store.keys() else {
        anyhow::bail!(
            "store {} is not encrypted: it has no keys",
            store.location()
        );
    };
    let out = Out::deferring();
    let said = match &args.action {
        Action::List => return list(ctx, &store, unlocked, out),
        Action::Add(new) => {
            let (phrase, check) = (new.read(&store)?, keys::Check::of(store.config()));
            let (backend, cost) = (store.backend(), new.kdf.cost());
            if let Some(id) = opened_by(backend, &phrase, &check)? {
                return Err(keys::KeyError::PasswordInUse(keys::short(&id)).into());
            }
            let id = keys::add(backend, &unlocked.master, &phrase, cost)?;
            format!("added key {}", keys::short(&id))
        }
        Action::Remove { id } => {
            let id = keys::remove(store.backend(), id, &unlocked.key_id)?;
            format!("removed key {}", keys::short(&id))
        }
        Action::Passwd(new) => passwd(&store, unlocked, new)?,
    };
    out.report(Outcome::Done, Some(said.clone()), |out| {
        match ctx.quiet || ctx.json {
            true => Ok(()),
            false => writeln!(out, "{said}"),
        }
    })
}

/// The key a new password opens already, if one does; a key that could
/// not be tried is named in a warning (it may have this password).
fn opened_by(
    backend: &cairn::backend::Backend,
    phrase: &[u8],
    check: &keys::Check<'_>,
) -> anyhow::Result<Option<String>> {
    let found = keys::in_use(backend, phrase, check)?;
    if let Some((key, why)) = &found.untried {
        warn(format_args!(
            "{key} could not be tried with the new password ({why}): if it has this password, the password now opens two keys"
        ));
    }
    Ok(found.opens)
}

/// A new key under the new passphrase first, then the old one removed: a
/// crash in between leaves both passphrases working, never neither. A new
/// password that opens another key already only retires the old key.
fn passwd(store: &Store, unlocked: &Unlocked, new: &NewPassword) -> anyhow::Result<String> {
    let (phrase, check) = (new.read(store)?, keys::Check::of(store.config()));
    let (backend, cost) = (store.backend(), new.kdf.cost());
    let (id, added) = match opened_by(backend, &phrase, &check)? {
        Some(id) if id == unlocked.key_id => {
            return Err(keys::KeyError::SamePassword(keys::short(&id)).into());
        }
        Some(id) => (id, "opens with it already"),
        None => (
            keys::add(backend, &unlocked.master, &phrase, cost)?,
            "added",
        ),
    };
    let (new, old) = (keys::short(&id), keys::short(&unlocked.key_id));
    Ok(match keys::retire(backend, &unlocked.key_id)? {
        true => format!("changed the password: key {new} {added}, key {old} removed"),
        false => format!(
            "changed the password: key {new} {added}; key {old} was already removed (by another `key passwd`?)"
        ),
    })
}

fn list(ctx: &Ctx, store: &Store, unlocked: &Unlocked, out: Out) -> anyhow::Result<Outcome> {
    let found = keys::list(store.backend())?;
    for (id, why) in &found.damaged {
        warn(format_args!(
            "{}{id}: {why}; it opens nothing",
            keys::PREFIX
        ));
    }
    let found = found.good;
    out.report(Outcome::Done, None, |out| match ctx.json {
        true => print_json(
            out,
            &found
                .iter()
                .map(|k| as_json(k, unlocked))
                .collect::<Vec<_>>(),
        ),
        false => print_table(out, &found, unlocked),
    })
}

fn print_table(
    out: &mut Out,
    found: &[(String, KeyFile)],
    unlocked: &Unlocked,
) -> std::io::Result<()> {
    writeln!(
        out,
        "  {:<8}  {:<4}  {:<19}  {:<20}  user",
        "id", "kind", "created", "host"
    )?;
    for (id, file) in found {
        let current = if *id == unlocked.key_id { '*' } else { ' ' };
        writeln!(
            out,
            "{current} {:<8}  {:<4}  {:<19}  {:<20}  {}",
            keys::short(id),
            "full",
            escaped(file.created.get(..19).unwrap_or(&file.created)),
            escaped(&file.host),
            escaped(&file.user)
        )?;
    }
    Ok(())
}

fn as_json((id, file): &(String, KeyFile), unlocked: &Unlocked) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "kind": file.kind,
        "created": file.created,
        "host": file.host,
        "user": file.user,
        "current": *id == unlocked.key_id,
        "kdf": file.kdf,
    })
}
