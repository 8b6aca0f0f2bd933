//! Writing the binary form: an entry at a time, as tree.md lists its fields.

use super::{CTIME, DIR, FILE, GROUP, HOLES, LINK, SQLITE, SYMLINK, USER, XATTRS};
use crate::id::ID_LEN;
use crate::tree::{Content, DatabaseInfo, Entry, Timespec};

/// Appends the binary form of `entry` to `out`.
pub fn push_entry(out: &mut Vec<u8>, entry: &Entry) {
    let meta = &entry.meta;
    put_bytes(out, entry.name.as_bytes());
    out.push(kind_of(&entry.content));
    put_varint(out, flags_of(entry));
    for n in [meta.mode, meta.uid, meta.gid] {
        put_varint(out, u64::from(n));
    }
    put_varint(out, meta.size);
    put_time(out, meta.mtime);
    for name in [&meta.user, &meta.group].into_iter().flatten() {
        put_bytes(out, name.as_bytes());
    }
    match &entry.content {
        Content::File { .. } => push_file(out, &entry.content),
        Content::Dir { tree } => out.extend_from_slice(tree.as_bytes()),
        Content::Symlink { target } => put_bytes(out, target.as_bytes()),
    }
    if !meta.xattrs.is_empty() {
        put_varint(out, meta.xattrs.len() as u64);
        for x in &meta.xattrs {
            put_bytes(out, x.name.as_bytes());
            put_bytes(out, x.value.as_bytes());
        }
    }
}

fn kind_of(content: &Content) -> u8 {
    match content {
        Content::File { .. } => FILE,
        Content::Dir { .. } => DIR,
        Content::Symlink { .. } => SYMLINK,
    }
}

/// The flags of the optional fields `entry` has.
fn flags_of(entry: &Entry) -> u64 {
    let bit = |flag: u64, set: bool| if set { flag } else { 0 };
    let meta = &entry.meta;
    let mut flags = bit(USER, meta.user.is_some())
        | bit(GROUP, meta.group.is_some())
        | bit(XATTRS, !meta.xattrs.is_empty());
    if let Content::File {
        change,
        database,
        link,
        holes,
        ..
    } = &entry.content
    {
        flags |= bit(CTIME, change.ctime.is_some())
            | bit(LINK, link.is_some())
            | bit(HOLES, !holes.is_empty())
            | bit(SQLITE, database.is_some());
    }
    flags
}

/// A file's fields after the common ones, in the order of tree.md.
fn push_file(out: &mut Vec<u8>, content: &Content) {
    let Content::File {
        chunks,
        change,
        database,
        link,
        holes,
    } = content
    else {
        return;
    };
    put_varint(out, change.inode);
    if let Some(ctime) = change.ctime {
        put_time(out, ctime);
    }
    if let Some(link) = link {
        out.extend_from_slice(&link.to_le_bytes());
    }
    put_varint(out, chunks.len() as u64);
    // A database's list of page runs is most of its directory's tree:
    // room for it at once, not by doubling (which held up to twice it).
    out.reserve(chunks.len() * ID_LEN);
    for chunk in chunks {
        out.extend_from_slice(chunk.as_bytes());
    }
    if !holes.is_empty() {
        put_varint(out, holes.len() as u64);
        for hole in holes {
            put_varint(out, hole.offset);
            put_varint(out, hole.len);
        }
    }
    if let Some(db) = database {
        push_database(out, db);
    }
}

fn push_database(out: &mut Vec<u8>, db: &DatabaseInfo) {
    put_varint(out, u64::from(db.page_size));
    put_time(out, db.captured);
    put_varint(out, db.file_size);
    match &db.wal {
        None => out.push(0),
        Some(wal) => {
            out.push(1);
            put_varint(out, wal.inode);
            put_varint(out, wal.size);
            put_time(out, wal.mtime);
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Seconds zigzag-encoded (small negative times stay short), then nanoseconds.
fn put_time(out: &mut Vec<u8>, t: Timespec) {
    put_varint(out, ((t.sec << 1) ^ (t.sec >> 63)) as u64);
    put_varint(out, u64::from(t.nsec));
}
