//! Capturing standard input (`snapshot --stdin`) as a one-file snapshot.

use std::io;

use super::CaptureError;
use super::walk::Walker;
use crate::id::TreeId;
use crate::rawname::RawName;
use crate::tree::{ChangeKey, Content, Entry, Meta, Timespec};

impl Walker<'_, '_> {
    /// Stores standard input as the single file `/NAME`, owned by the
    /// running user, mode 0600 (a dump may hold secrets), stamped with the
    /// snapshot time. A read error on stdin is fatal: the snapshot would
    /// hold nothing else.
    pub fn capture_stdin(
        &mut self,
        name: &RawName,
        mtime: Timespec,
    ) -> Result<TreeId, CaptureError> {
        let (chunks, size) = self
            .store_content(io::stdin().lock(), u64::MAX)?
            .map_err(CaptureError::Stdin)?;
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
        self.put_tree(vec![entry])
    }
}
