//! The JSON shape of an entry: flat, with only the fields its type uses,
//! in the order of store-format/tree.md. Fields added in format version 4
//! (`user`, `group`, `link`, `holes`, `xattrs`) are omitted when empty, so
//! an entry without them encodes as it did before.

use serde::{Deserialize, Serialize};

use super::attrs::{Hole, Xattr, xattrs_error};
use super::{ChangeKey, Content, DatabaseInfo, Entry, Meta, Timespec};
use crate::id::{BlobId, TreeId};
use crate::rawname::RawName;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EntryRepr {
    name: RawName,
    #[serde(rename = "type")]
    kind: KindRepr,
    mode: u32,
    uid: u32,
    gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<RawName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<RawName>,
    size: u64,
    mtime: Timespec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inode: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ctime: Option<Timespec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunks: Option<Vec<BlobId>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    holes: Vec<Hole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sqlite: Option<DatabaseInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tree: Option<TreeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<RawName>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    xattrs: Vec<Xattr>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum KindRepr {
    File,
    Dir,
    Symlink,
}

impl From<Entry> for EntryRepr {
    fn from(e: Entry) -> Self {
        let mut repr = EntryRepr {
            name: e.name,
            kind: KindRepr::File,
            mode: e.meta.mode,
            uid: e.meta.uid,
            gid: e.meta.gid,
            user: e.meta.user,
            group: e.meta.group,
            size: e.meta.size,
            mtime: e.meta.mtime,
            inode: None,
            ctime: None,
            link: None,
            chunks: None,
            holes: Vec::new(),
            sqlite: None,
            tree: None,
            target: None,
            xattrs: e.meta.xattrs,
        };
        match e.content {
            Content::File {
                chunks,
                change,
                database,
                link,
                holes,
            } => {
                repr.chunks = Some(chunks);
                repr.sqlite = database;
                repr.inode = Some(change.inode);
                repr.ctime = change.ctime;
                repr.link = link;
                repr.holes = holes;
            }
            Content::Dir { tree } => {
                repr.kind = KindRepr::Dir;
                repr.tree = Some(tree);
            }
            Content::Symlink { target } => {
                repr.kind = KindRepr::Symlink;
                repr.target = Some(target);
            }
        }
        repr
    }
}

impl TryFrom<EntryRepr> for Entry {
    type Error = String;

    fn try_from(r: EntryRepr) -> Result<Self, String> {
        r.check()?;
        let missing = |field: &str| format!("entry {:?}: missing {field}", r.name);
        let content = match r.kind {
            KindRepr::File => Content::File {
                chunks: r.chunks.ok_or_else(|| missing("chunks"))?,
                change: ChangeKey {
                    inode: r.inode.ok_or_else(|| missing("inode"))?,
                    ctime: r.ctime,
                },
                database: r.sqlite,
                link: r.link,
                holes: r.holes,
            },
            KindRepr::Dir => Content::Dir {
                tree: r.tree.ok_or_else(|| missing("tree"))?,
            },
            KindRepr::Symlink => Content::Symlink {
                target: r.target.ok_or_else(|| missing("target"))?,
            },
        };
        Ok(Entry {
            name: r.name,
            meta: Meta {
                mode: r.mode,
                uid: r.uid,
                gid: r.gid,
                size: r.size,
                mtime: r.mtime,
                user: r.user,
                group: r.group,
                xattrs: r.xattrs,
            },
            content,
        })
    }
}

impl EntryRepr {
    /// What must hold whatever the kind: every time's nanoseconds in range
    /// (as tree.md says of TIME; the database's times were not checked
    /// before, and a hostile parent's would have been carried into a new
    /// binary tree that refuses them), xattrs valid,
    /// file-only fields only on files.
    fn check(&self) -> Result<(), String> {
        let name = &self.name;
        let db = self.sqlite.as_ref();
        let db_times = [
            db.map(|d| d.captured),
            db.and_then(|d| d.wal.as_ref()).map(|w| w.mtime),
        ];
        for t in [Some(self.mtime), self.ctime]
            .into_iter()
            .chain(db_times)
            .flatten()
        {
            if t.nsec >= 1_000_000_000 {
                return Err(format!(
                    "entry {name:?}: nanoseconds {} out of range",
                    t.nsec
                ));
            }
        }
        if let Some(why) = xattrs_error(&self.xattrs) {
            return Err(format!("entry {name:?}: {why}"));
        }
        let is_file = matches!(self.kind, KindRepr::File);
        let file_only = [
            ("sqlite info", self.sqlite.is_some()),
            ("a link group", self.link.is_some()),
            ("holes", !self.holes.is_empty()),
        ];
        if let Some((what, _)) = file_only.iter().find(|(_, set)| *set && !is_file) {
            return Err(format!("entry {name:?}: {what} on a non-file"));
        }
        if let Some(db) = &self.sqlite
            && !crate::database::is_valid_page_size(db.page_size)
        {
            return Err(format!(
                "entry {name:?}: sqlite page size {} is not a power of two in 512..=65536",
                db.page_size
            ));
        }
        Ok(())
    }
}
