//! A dump taken by running a command (`snapshot --stdin-from-command --
//! pg_dump app`): its standard output is the stream stored, and the
//! snapshot is committed only if it exits with status 0.
//!
//! In a pipeline (`pg_dump app | cairn snapshot --stdin`) a producer that
//! fails half-way still hands cairn a clean end of input, and only the
//! shell sees its status. Running the command itself, cairn sees it. The
//! command runs without a shell (argv as given), with cairn's standard
//! input; its standard error is read on a thread so that a chatty command
//! never blocks on a full pipe, and only its last lines are kept for the
//! message: memory stays bounded whatever it prints.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};

use super::CaptureError;

/// Lines of the command's standard error kept for the message.
pub const TAIL_LINES: usize = 20;
/// Bytes kept of each of those lines.
const LINE_BYTES: usize = 1000;

/// A running dump command.
pub struct Dump {
    command: String,
    child: Child,
    stderr: Option<JoinHandle<Vec<String>>>,
    waited: bool,
}

impl Dump {
    /// Starts `argv` (program, then its arguments).
    pub fn spawn(argv: &[OsString]) -> Result<Self, CaptureError> {
        let command = describe(argv);
        let Some((program, args)) = argv.split_first() else {
            return Err(CaptureError::CommandStart {
                command,
                source: io::Error::other("no command given"),
            });
        };
        let spawned = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = spawned.map_err(|source| CaptureError::CommandStart {
            command: command.clone(),
            source,
        })?;
        let stderr = child.stderr.take().map(|err| thread::spawn(|| tail(err)));
        Ok(Self {
            command,
            child,
            stderr,
            waited: false,
        })
    }

    /// How messages name the command: its argv joined by spaces.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The command's standard output, to be read to its end once.
    pub fn stdout(&mut self) -> Result<ChildStdout, CaptureError> {
        self.child
            .stdout
            .take()
            .ok_or_else(|| self.output_error(io::Error::other("its output was already read")))
    }

    /// An error reading the command's output.
    pub fn output_error(&self, source: io::Error) -> CaptureError {
        CaptureError::CommandOutput {
            command: self.command.clone(),
            source,
        }
    }

    /// Waits for the command to end; `Ok` with the last lines of its
    /// standard error if it exited with status 0, else the error to stop
    /// the snapshot with.
    pub fn finish(mut self) -> Result<Vec<String>, CaptureError> {
        let status = self.child.wait();
        self.waited = true;
        let lines = self
            .stderr
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default();
        let status = status.map_err(|e| self.output_error(e))?;
        if status.success() {
            return Ok(lines);
        }
        Err(CaptureError::CommandFailed {
            command: self.command.clone(),
            status: describe_status(status),
            stderr: lines,
        })
    }
}

impl Drop for Dump {
    /// A snapshot that stopped before the command ended does not leave it
    /// running, or a zombie.
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn describe(argv: &[OsString]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    words.join(" ")
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended with {status}"),
    }
}

/// Reads `stderr` to its end; returns its last [`TAIL_LINES`] lines (each
/// cut to [`LINE_BYTES`]).
fn tail(mut stderr: ChildStderr) -> Vec<String> {
    let mut lines = Tail::default();
    let mut buf = [0u8; 8192];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => lines.push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    lines.finish()
}

/// The last lines of a stream, as it arrives in pieces.
#[derive(Default)]
struct Tail {
    lines: VecDeque<Vec<u8>>,
    current: Vec<u8>,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.end_line();
            } else if self.current.len() < LINE_BYTES {
                self.current.push(b);
            }
        }
    }

    fn end_line(&mut self) {
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(std::mem::take(&mut self.current));
    }

    fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.end_line();
        }
        self.lines
            .into_iter()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines_cut_to_length_across_pieces() {
        let mut t = Tail::default();
        for i in 0..30 {
            t.push(format!("line {i}\n").as_bytes());
        }
        t.push(b"unfinished ");
        t.push(&[b'x'; 2000]);
        let lines = t.finish();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines[0], "line 11");
        assert_eq!(lines[TAIL_LINES - 1].len(), LINE_BYTES);
    }
}
