//! Capturing a stream as a one-file snapshot: standard input (`snapshot
//! --stdin`) or the output of a dump command (`--stdin-from-command`).

use std::ffi::OsString;
use std::io;

use super::CaptureError;
use super::command::Dump;
use super::report::Warning;
use super::walk::Walker;
use crate::id::TreeId;
use crate::rawname::RawName;
use crate::tree::{ChangeKey, Content, Entry, Meta, Timespec};

impl Walker<'_, '_> {
    /// Stores `stream` as the single file `/NAME`, owned by the running
    /// user, mode 0600 (a dump may hold secrets), stamped with the snapshot
    /// time. The outer error stops the snapshot (the store failed); the
    /// inner one is the stream's read error, fatal too: the snapshot would
    /// hold nothing else.
    pub fn capture_stream(
        &mut self,
        name: &RawName,
        stream: impl io::Read,
        mtime: Timespec,
    ) -> Result<io::Result<TreeId>, CaptureError> {
        let (chunks, size) = match self.store_content(stream, u64::MAX)? {
            Ok(stored) => stored,
            Err(e) => return Ok(Err(e)),
        };
        self.summary.files_new = 1;
        let entry = self.count_file(Entry {
            name: name.clone(),
            meta: Meta {
                mode: 0o600,
                uid: rustix::process::geteuid().as_raw(),
                gid: rustix::process::getegid().as_raw(),
                size,
                mtime,
                user: None,
                group: None,
                xattrs: Vec::new(),
            },
            content: Content::File {
                chunks,
                change: ChangeKey {
                    inode: 0,
                    ctime: None,
                },
                database: None,
                link: None,
                holes: Vec::new(),
            },
        });
        self.put_tree(vec![entry]).map(Ok)
    }

    /// Runs `argv` and stores its standard output as `/NAME`; fails, so
    /// that nothing is committed, unless it exits with status 0. What a
    /// successful command said on its standard error is passed on as a
    /// warning: a dump's warnings are worth reading.
    pub fn capture_command(
        &mut self,
        name: &RawName,
        argv: &[OsString],
        mtime: Timespec,
    ) -> Result<TreeId, CaptureError> {
        let mut dump = Dump::spawn(argv)?;
        let stdout = dump.stdout()?;
        let tree = self
            .capture_stream(name, stdout, mtime)?
            .map_err(|e| dump.output_error(e))?;
        let command = dump.command().to_owned();
        let said = dump.finish()?;
        if !said.is_empty() {
            self.reporter.warn(&Warning::CommandStderr {
                command,
                lines: said,
            });
        }
        Ok(tree)
    }
}
