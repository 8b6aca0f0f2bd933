//! Standard output: the one writer every command prints through (nothing in
//! `cli/` uses `println!`, which panics when stdout fails).
//!
//! A write to stdout can fail: the reader of a pipe went away (`cairn find
//! '*' | head -1`), or the file behind a redirection is on a full disk. Each
//! such error is marked as stdout's own ([`StdoutError`]), so that
//! `exit::ending` tells it from a failure of the work and decides, in one
//! place, what it means.

use std::fmt;
use std::io::{self, BufWriter, IsTerminal, StdoutLock, Write};

use cairn::outcome::Outcome;

use super::exit::Finished;

/// The command's stdout, buffered (flushed at every write on a terminal, so
/// that a person sees each line as it is printed).
pub struct Out {
    inner: BufWriter<StdoutLock<'static>>,
    interactive: bool,
    mode: Mode,
    /// The first failure, kept by a deferring writer.
    failed: Option<io::Error>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Stream,
    Defer,
}

impl Out {
    /// For commands that read: the first failed write is returned at once,
    /// so that a listing or a `cat` stops as soon as its reader is gone.
    pub fn streaming() -> Self {
        Self::new(Mode::Stream)
    }

    /// For commands that commit: a failed write never stops the work (a
    /// reader going away must not decide whether a forget happens); it is
    /// kept, later output is dropped, and [`Out::report`] returns it.
    pub fn deferring() -> Self {
        Self::new(Mode::Defer)
    }

    fn new(mode: Mode) -> Self {
        let stdout = io::stdout();
        Self {
            interactive: stdout.is_terminal(),
            inner: BufWriter::new(stdout.lock()),
            mode,
            failed: None,
        }
    }

    /// Ends a command whose work is done and ended with `outcome`: prints
    /// its report with `print` and flushes. If that fails, the error carries
    /// `outcome` and what was `committed` (see [`Finished`]), so that a
    /// closed pipe still ends with the outcome's exit code and a full disk
    /// names the commit.
    pub fn report(
        mut self,
        outcome: Outcome,
        committed: Option<String>,
        print: impl FnOnce(&mut Self) -> io::Result<()>,
    ) -> anyhow::Result<Outcome> {
        let printed = print(&mut self).and_then(|()| self.finish());
        match printed {
            Ok(()) => Ok(outcome),
            Err(e) => Err(anyhow::Error::new(e).context(Finished { outcome, committed })),
        }
    }

    /// Flushes, and returns the first failure (a deferring writer's too).
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()?;
        self.failed.take().map_or(Ok(()), Err)
    }

    fn fail(&mut self, e: io::Error) -> io::Result<()> {
        let e = io::Error::new(e.kind(), StdoutError(e));
        match self.mode {
            Mode::Stream => Err(e),
            Mode::Defer => {
                self.failed = Some(e);
                Ok(())
            }
        }
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failed.is_some() {
            return Ok(buf.len());
        }
        let written = self.inner.write(buf).and_then(|n| {
            if self.interactive {
                self.inner.flush()?;
            }
            Ok(n)
        });
        match written {
            Ok(n) => Ok(n),
            Err(e) => self.fail(e).map(|()| buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.failed.is_some() {
            return Ok(());
        }
        match self.inner.flush() {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }
}

/// A failed write to stdout (the OS's error inside).
#[derive(Debug)]
pub struct StdoutError(io::Error);

impl StdoutError {
    /// Whether `e` is a failed write to stdout; the OS's error if so.
    pub fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
        let io = e.downcast_ref::<io::Error>()?;
        Some(&io.get_ref()?.downcast_ref::<Self>()?.0)
    }
}

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "writing to standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}
