//! The FUSE file system: kernel requests answered from the namespace
//! ([`names`](super::names)), the snapshots' trees and the [`reader`].
//!
//! Everything is read-only. Requests are served one at a time (one FUSE
//! thread, one lock over the state): the store's catalog connection is
//! not shared between threads, and a read that decodes a chunk keeps the
//! next read of the same chunk waiting for the cache rather than decoding
//! it twice. Decoding overlaps serving only through the read-ahead of
//! [`chunks`](super::chunks), whose threads never touch the catalog. A failure inside a snapshot answers `EIO` for that request
//! and says why on stderr, once per distinct message.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, Request,
};

use super::chunks::ChunkCache;
use super::inodes::{Inodes, Node, entry_ino};
use super::lru::Lru;
use super::names::{Child, Dir, LATEST};
use super::reader::{Bytes, OpenFile};
use super::source::Source;
use super::{GONE, Warn, is_gone, is_store_gone};
use crate::id::TreeId;
use crate::tree::{Content, Entry, Timespec, Tree};

/// How long the kernel may keep what it learned about the namespace:
/// short, so new snapshots show up.
const NAMESPACE_TTL: Duration = Duration::from_secs(1);
/// ... and about what is inside a snapshot, which never changes.
const SNAPSHOT_TTL: Duration = Duration::from_secs(3600);
/// Decoded trees kept, counted in entries.
const TREE_CACHE_ENTRIES: u64 = 1 << 20;
/// Read-ahead asked of the kernel: one average chunk.
const READ_AHEAD: u32 = 1 << 20;

/// The mounted file system.
pub struct CairnFs {
    state: Mutex<State>,
}

struct State {
    source: Source,
    inodes: Inodes,
    files: HashMap<u64, OpenFile>,
    dirs: HashMap<u64, Vec<(u64, FileType, OsString)>>,
    next_handle: u64,
    chunks: ChunkCache,
    trees: Lru<TreeId, Arc<Tree>>,
    warn: Arc<Warn>,
    mounted_at: SystemTime,
}

impl CairnFs {
    /// A file system over `source`, with `cache_bytes` of decoded chunks.
    pub fn new(source: Source, cache_bytes: u64, warn: Arc<Warn>) -> Self {
        Self {
            state: Mutex::new(State {
                source,
                inodes: Inodes::default(),
                files: HashMap::new(),
                dirs: HashMap::new(),
                next_handle: 1,
                chunks: ChunkCache::new(cache_bytes),
                trees: Lru::new(TREE_CACHE_ENTRIES),
                warn,
                mounted_at: SystemTime::now(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while serving one request must not stop every later one.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Filesystem for CairnFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(max) = config.set_max_readahead(READ_AHEAD) {
            let _ = config.set_max_readahead(max);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.state();
        match st.child(parent, name) {
            Ok((node, path)) => {
                let attr = st.attr(&node);
                let ttl = ttl_of(&node);
                st.inodes.remember(node, path);
                reply.entry(&ttl, &attr, Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.state().inodes.forget(ino, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = self.state();
        match st.inodes.get(ino) {
            Some(known) => reply.attr(&ttl_of(&known.node), &st.attr(&known.node)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let st = self.state();
        match st.inodes.get(ino).and_then(|k| st.link_target(&k.node)) {
            Some(target) => reply.data(&target),
            None => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let mut st = self.state();
        match st.open_file(ino) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut st = self.state();
        match st.read(fh.0, offset, u64::from(size)) {
            Ok(data) => reply.data(data.as_slice()),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().files.remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.state();
        match st.list_dir(ino) {
            Ok(listing) => {
                let fh = st.handle();
                st.dirs.insert(fh, listing);
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let st = self.state();
        let Some(listing) = st.dirs.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (ino, kind, name)) in listing.iter().enumerate().skip(start) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.state().dirs.remove(&fh.0);
        reply.ok();
    }
}

impl State {
    fn handle(&mut self) -> u64 {
        self.next_handle += 1;
        self.next_handle
    }

    /// Says what went wrong (once per message) and answers `EIO`.
    fn fail(&self, what: &dyn std::fmt::Display, gone: bool) -> Errno {
        let why = if gone { GONE } else { "" };
        (self.warn)(&format!("{what}{why}; answered EIO"));
        Errno::EIO
    }

    /// The node `name` names in directory `parent`, and its path.
    fn child(&mut self, parent: INodeNo, name: &OsStr) -> Result<(Node, PathBuf), Errno> {
        let known = self.inodes.get(parent).ok_or(Errno::ENOENT)?;
        let (node, path) = (known.node.clone(), known.path.join(name));
        let child = match node {
            Node::Dir(dir) => self.namespace_child(&dir, name),
            Node::Snapshot { tree, .. } => self.tree_child(parent.0, tree, name, &path),
            Node::Entry { entry, .. } => match entry.subtree() {
                Some(tree) => self.tree_child(parent.0, tree, name, &path),
                None => Err(Errno::ENOTDIR),
            },
            Node::Latest(_) => Err(Errno::ENOTDIR),
        }?;
        Ok((child, path))
    }

    /// A name in a namespace directory; a name not there reads the
    /// snapshot list again (if it is stale) before it is called absent.
    fn namespace_child(&mut self, dir: &Dir, name: &OsStr) -> Result<Node, Errno> {
        let name = name.to_str().ok_or(Errno::ENOENT)?;
        let mut found = self.source.names.lookup(dir, name);
        if found.is_none() {
            self.source.refresh_if_stale();
            found = self.source.names.lookup(dir, name);
        }
        Ok(self.node_of(dir, found.ok_or(Errno::ENOENT)?))
    }

    fn node_of(&self, dir: &Dir, child: Child) -> Node {
        match child {
            Child::Dir(d) => Node::Dir(d),
            Child::Latest(_) => Node::Latest(dir.clone()),
            Child::Snapshot(i) => {
                let s = &self.source.names.snapshots()[i];
                Node::Snapshot {
                    within: Node::Dir(dir.clone()).ino(),
                    id: s.id,
                    tree: s.record.tree,
                    time: timespec(s.record.time.timestamp),
                }
            }
        }
    }

    /// The entry `name` of the directory numbered `within`, listed by `tree`.
    fn tree_child(
        &mut self,
        within: u64,
        tree: TreeId,
        name: &OsStr,
        path: &Path,
    ) -> Result<Node, Errno> {
        let listing = self.tree(tree, path)?;
        let entry = listing.find(name.as_encoded_bytes()).ok_or(Errno::ENOENT)?;
        Ok(Node::Entry {
            within,
            parent: tree,
            entry: entry.clone(),
        })
    }

    /// Tree `id` (of the directory at `path`), decoded once while it is
    /// in use.
    fn tree(&mut self, id: TreeId, path: &Path) -> Result<Arc<Tree>, Errno> {
        if let Some(tree) = self.trees.get(&id) {
            return Ok(tree);
        }
        match self.source.store.load_tree(&id) {
            Ok(tree) => {
                let tree = Arc::new(tree);
                self.trees
                    .insert(id, tree.clone(), tree.entries.len() as u64 + 1);
                Ok(tree)
            }
            Err(e) => {
                let what = format_args!("{}: {e}", crate::rawname::escaped(path));
                Err(self.fail(&what, is_store_gone(&e)))
            }
        }
    }

    /// Everything in directory `ino`, with numbers and kinds. Listing the
    /// namespace reads the snapshot list again if it is stale.
    fn list_dir(&mut self, ino: INodeNo) -> Result<Vec<(u64, FileType, OsString)>, Errno> {
        let known = self.inodes.get(ino).ok_or(Errno::ENOENT)?;
        let (node, path) = (known.node.clone(), known.path.clone());
        let tree = match node {
            Node::Dir(dir) => return Ok(self.list_namespace(&dir)),
            Node::Snapshot { tree, .. } => tree,
            Node::Entry { entry, .. } => entry.subtree().ok_or(Errno::ENOTDIR)?,
            Node::Latest(_) => return Err(Errno::ENOTDIR),
        };
        let listing = self.tree(tree, &path)?;
        Ok(listing
            .entries
            .iter()
            .map(|e| {
                let name = e.name.as_os_str().to_owned();
                (entry_ino(ino.0, &tree, e), kind_of(e), name)
            })
            .collect())
    }

    fn list_namespace(&mut self, dir: &Dir) -> Vec<(u64, FileType, OsString)> {
        self.source.refresh_if_stale();
        let children = self.source.names.children(dir);
        children
            .into_iter()
            .map(|(name, child)| {
                let node = self.node_of(dir, child);
                let kind = match node {
                    Node::Latest(_) => FileType::Symlink,
                    _ => FileType::Directory,
                };
                (node.ino(), kind, OsString::from(name))
            })
            .collect()
    }

    fn link_target(&self, node: &Node) -> Option<Vec<u8>> {
        match node {
            Node::Latest(dir) => match self.source.names.lookup(dir, LATEST)? {
                Child::Latest(target) => Some(target.into_bytes()),
                _ => None,
            },
            Node::Entry { entry, .. } => match &entry.content {
                Content::Symlink { target } => Some(target.as_bytes().to_vec()),
                _ => None,
            },
            _ => None,
        }
    }

    fn open_file(&mut self, ino: INodeNo) -> Result<u64, Errno> {
        let known = self.inodes.get(ino).ok_or(Errno::ENOENT)?;
        let Node::Entry { entry, .. } = &known.node else {
            return Err(Errno::EISDIR);
        };
        if entry.chunks().is_none() {
            return Err(Errno::EISDIR);
        }
        let path = Path::new("/").join(&known.path);
        let file = OpenFile::open(&self.source.store, &path, entry);
        let file = file.map_err(|e| self.fail(&e, is_gone(&e)))?;
        let fh = self.handle();
        self.files.insert(fh, file);
        Ok(fh)
    }

    fn read(&mut self, fh: u64, offset: u64, len: u64) -> Result<Bytes, Errno> {
        let file = self.files.get_mut(&fh).ok_or(Errno::EBADF)?;
        match file.read(&self.source.store, &self.chunks, offset, len) {
            Ok(data) => Ok(data),
            Err(e) => Err(self.fail(&e, is_gone(&e))),
        }
    }

    /// The attributes of `node`: the recorded ones inside a snapshot.
    fn attr(&self, node: &Node) -> FileAttr {
        match node {
            Node::Dir(_) => dir_attr(node.ino(), self.mounted_at),
            Node::Latest(_) => {
                let len = self.link_target(node).map_or(0, |t| t.len() as u64);
                FileAttr {
                    kind: FileType::Symlink,
                    perm: 0o777,
                    nlink: 1,
                    size: len,
                    ..dir_attr(node.ino(), self.mounted_at)
                }
            }
            Node::Snapshot { time, .. } => FileAttr {
                perm: 0o755,
                ..dir_attr(node.ino(), system_time(*time))
            },
            Node::Entry { entry, .. } => entry_attr(node.ino(), entry),
        }
    }
}

fn ttl_of(node: &Node) -> Duration {
    match node {
        Node::Dir(_) | Node::Latest(_) => NAMESPACE_TTL,
        Node::Snapshot { .. } | Node::Entry { .. } => SNAPSHOT_TTL,
    }
}

fn kind_of(entry: &Entry) -> FileType {
    match entry.content {
        Content::File { .. } => FileType::RegularFile,
        Content::Dir { .. } => FileType::Directory,
        Content::Symlink { .. } => FileType::Symlink,
    }
}

/// A namespace directory: read-only, root's, with the times of `time`.
fn dir_attr(ino: u64, time: SystemTime) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind: FileType::Directory,
        perm: 0o555,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn entry_attr(ino: u64, entry: &Entry) -> FileAttr {
    let m = &entry.meta;
    let mtime = system_time(m.mtime);
    FileAttr {
        size: m.size,
        blocks: m.size.div_ceil(512),
        kind: kind_of(entry),
        perm: (m.mode & 0o7777) as u16,
        nlink: nlink_of(entry),
        uid: m.uid,
        gid: m.gid,
        ..dir_attr(ino, mtime)
    }
}

fn system_time(t: Timespec) -> SystemTime {
    let since = Duration::new(t.sec.unsigned_abs(), t.nsec.min(999_999_999));
    if t.sec >= 0 {
        UNIX_EPOCH.checked_add(since).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(since).unwrap_or(UNIX_EPOCH)
    }
}

fn timespec(t: jiff::Timestamp) -> Timespec {
    Timespec {
        sec: t.as_second(),
        nsec: u32::try_from(t.subsec_nanosecond()).unwrap_or(0),
    }
}

/// A directory's link count, 2; a file of a hard link group's, 2: the tree
/// records the group, not how many names it has, and with 1 `cp -a`,
/// `rsync -H` and `tar` made a file of each name (they link names of one
/// inode only when its count says there are others).
fn nlink_of(entry: &Entry) -> u32 {
    match entry.subtree().is_some() || entry.link().is_some() {
        true => 2,
        false => 1,
    }
}
