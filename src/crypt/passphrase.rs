//! Where a passphrase comes from: a file, a command (a secret manager), or
//! a prompt without echo on the terminal. Never a command-line argument:
//! those show in `ps` and in shell history.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::rawname::escaped;

/// Largest passphrase file or command output read.
const MAX_LEN: usize = 64 * 1024;

/// Where to get a passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The first line of a file.
    File(PathBuf),
    /// The first line a shell command prints.
    Command(String),
    /// Ask on the terminal.
    Prompt,
}

/// Why no passphrase could be had.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    /// The file could not be read.
    #[error("cannot read the password file {path}: {source}")]
    File {
        /// The file, escaped.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command could not run or failed.
    #[error("the password command `{command}` {what}")]
    Command {
        /// The command line.
        command: String,
        /// What went wrong.
        what: String,
    },
    /// No source and no terminal to ask on.
    #[error(
        "{0} needs a password: give it with --password-file FILE, CAIRN_PASSWORD_FILE, --password-command CMD or CAIRN_PASSWORD_COMMAND (there is no terminal to ask on)"
    )]
    NoSource(String),
    /// The terminal prompt failed.
    #[error("cannot read the password from the terminal: {0}")]
    Prompt(std::io::Error),
    /// An empty passphrase where a new one is made.
    #[error("the new password is empty")]
    Empty,
    /// The two entries of a new passphrase differ.
    #[error("the two passwords differ")]
    Mismatch,
}

/// A passphrase, wiped from memory when dropped is beyond what we promise;
/// it is kept only as long as the key derivation needs it.
pub type Passphrase = Vec<u8>;

/// The passphrase from `source`; `what` names the store in a prompt.
pub fn read(source: &Source, what: &str) -> Result<Passphrase, PassphraseError> {
    match source {
        Source::File(path) => from_file(path),
        Source::Command(command) => from_command(command),
        Source::Prompt => prompt(&format!("password for {what}: "), what),
    }
}

/// A new passphrase from `source`: a prompt asks twice. Empty is refused.
pub fn read_new(source: &Source, what: &str) -> Result<Passphrase, PassphraseError> {
    let first = match source {
        Source::Prompt => {
            let first = prompt(&format!("new password for {what}: "), what)?;
            if prompt("the new password again: ", what)? != first {
                return Err(PassphraseError::Mismatch);
            }
            first
        }
        other => read(other, what)?,
    };
    if first.is_empty() {
        return Err(PassphraseError::Empty);
    }
    Ok(first)
}

fn from_file(path: &PathBuf) -> Result<Passphrase, PassphraseError> {
    let fail = |source| PassphraseError::File {
        path: escaped(path).to_string(),
        source,
    };
    let bytes = std::fs::File::open(path)
        .and_then(|file| read_at_most(file, MAX_LEN))
        .map_err(fail)?;
    if bytes.len() > MAX_LEN {
        return Err(fail(std::io::Error::other(
            "longer than 64 KiB: not a password file",
        )));
    }
    let phrase = first_line(bytes);
    match phrase.is_empty() {
        true => Err(fail(std::io::Error::other(
            "its first line, the password, is empty",
        ))),
        false => Ok(phrase),
    }
}

fn from_command(command: &str) -> Result<Passphrase, PassphraseError> {
    let fail = |what: String| PassphraseError::Command {
        command: command.to_owned(),
        what,
    };
    let mut child = Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| fail(format!("could not run: {e}")))?;
    let printed = child.stdout.take().map(|out| read_at_most(out, MAX_LEN));
    // Its stdout closed: a command still printing ends on SIGPIPE.
    let status = child
        .wait()
        .map_err(|e| fail(format!("could not run: {e}")))?;
    let printed = printed
        .unwrap_or_else(|| Ok(Vec::new()))
        .map_err(|e| fail(format!("could not be read: {e}")))?;
    if printed.len() > MAX_LEN {
        return Err(fail("printed more than 64 KiB".into()));
    }
    if !status.success() {
        return Err(fail(format!("failed ({status})")));
    }
    let phrase = first_line(printed);
    match phrase.is_empty() {
        true => Err(fail(
            "printed an empty first line, where the password goes".into(),
        )),
        false => Ok(phrase),
    }
}

/// At most `max` bytes of `source`, and one more if there are more: a
/// password file or command may be endless (`/dev/zero`, `yes`), and was
/// read whole before its length was checked.
fn read_at_most(source: impl std::io::Read, max: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    source.take(max as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The bytes up to the first line end (`\n` or `\r\n`), as restic reads
/// password files: an editor's final newline is not part of it.
fn first_line(mut bytes: Vec<u8>) -> Passphrase {
    if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
        bytes.truncate(end);
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    bytes
}

fn prompt(text: &str, what: &str) -> Result<Passphrase, PassphraseError> {
    if !std::io::stdin().is_terminal() {
        return Err(PassphraseError::NoSource(what.to_owned()));
    }
    rpassword::prompt_password(text)
        .map(String::into_bytes)
        .map_err(PassphraseError::Prompt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_gives_its_first_line_without_the_line_end() {
        assert_eq!(first_line(b"pass word\r\nrest".to_vec()), b"pass word");
        assert_eq!(first_line(b"x\n".to_vec()), b"x");
        assert_eq!(first_line(b"x".to_vec()), b"x");
    }

    #[test]
    fn a_failing_password_command_is_an_error_naming_it() {
        let err = read(&Source::Command("exit 3".into()), "s").unwrap_err();
        assert!(err.to_string().contains("`exit 3` failed"), "{err}");
        let ok = read(&Source::Command("printf 'abc\\n'".into()), "s").unwrap();
        assert_eq!(ok, b"abc");
    }
}
