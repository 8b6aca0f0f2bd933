//! Reading the binary form, whole or as a stream, checking what tree.md
//! says a decoder refuses.

use std::io::{BufRead, Read};

use super::{
    ANY_KIND, CTIME, DIR, FILE, FILE_ONLY, GROUP, HOLES, LINK, SQLITE, SYMLINK, USER, XATTRS,
};
use crate::id::{BlobId, ID_LEN, TreeId};
use crate::rawname::RawName;
use crate::tree::attrs::{Hole, Xattr, xattrs_error};
use crate::tree::{ChangeKey, Content, DatabaseInfo, Entry, Meta, SideFileKey, Timespec, TreeRefs};

/// Why binary tree bytes do not decode.
pub type Error = String;

/// Every entry of a binary tree; `input` is past the magic and holds at
/// most `len` bytes (0 if that is not known), which bounds what a count
/// read from the tree may reserve.
pub fn decode_entries(input: impl BufRead, len: usize) -> Result<Vec<Entry>, Error> {
    let mut input = Input { r: input, len };
    let mut entries = Vec::new();
    while !input.at_end()? {
        entries.push(input.entry()?);
    }
    Ok(entries)
}

/// What a binary tree references; `input` is past the magic. Names and
/// metadata are skipped unread. `len` as for [`decode_entries`].
pub fn decode_refs(input: impl BufRead, len: usize) -> Result<TreeRefs, Error> {
    let mut input = Input { r: input, len };
    let mut refs = TreeRefs::default();
    while !input.at_end()? {
        input.entry_refs(&mut refs)?;
    }
    Ok(refs)
}

/// Tree bytes being read.
struct Input<R> {
    r: R,
    /// The length of the whole input, if known (else 0): no count read
    /// from it can describe more.
    len: usize,
}

/// An entry's kind and the optional fields it has.
#[derive(Clone, Copy)]
struct Head {
    kind: u8,
    flags: u64,
}

impl Head {
    fn has(self, flag: u64) -> bool {
        self.flags & flag != 0
    }
}

impl<R: BufRead> Input<R> {
    fn entry(&mut self) -> Result<Entry, Error> {
        let name = RawName::from_bytes(self.bytes()?);
        match self.body() {
            Ok((meta, content)) => Ok(Entry {
                name,
                meta,
                content,
            }),
            Err(e) => Err(format!("entry {name:?}: {e}")),
        }
    }

    /// An entry's metadata and content, after its name.
    fn body(&mut self) -> Result<(Meta, Content), Error> {
        let head = self.head()?;
        let mut meta = self.meta(head)?;
        let content = match head.kind {
            FILE => self.file(head)?,
            DIR => Content::Dir {
                tree: TreeId::from_bytes(self.id()?),
            },
            _ => Content::Symlink {
                target: RawName::from_bytes(self.bytes()?),
            },
        };
        if head.has(XATTRS) {
            meta.xattrs = self.xattrs()?;
        }
        Ok((meta, content))
    }

    /// An entry's references, the rest skipped as leniently as the JSON
    /// form's refs reading does: values are not checked, only the
    /// structure that says where the references are.
    fn entry_refs(&mut self, refs: &mut TreeRefs) -> Result<(), Error> {
        self.skip_bytes()?; // the name
        let head = self.head()?;
        self.skip_varints(6)?; // mode, uid, gid, size, mtime
        for flag in [USER, GROUP] {
            if head.has(flag) {
                self.skip_bytes()?;
            }
        }
        match head.kind {
            FILE => self.file_refs(head, &mut refs.chunks)?,
            DIR => refs.subtrees.push(TreeId::from_bytes(self.id()?)),
            _ => self.skip_bytes()?,
        }
        if head.has(XATTRS) {
            for _ in 0..self.varint()?.saturating_mul(2) {
                self.skip_bytes()?;
            }
        }
        Ok(())
    }

    /// The kind and flags, refused if the flags name a field this kind
    /// cannot have or one this form does not know.
    fn head(&mut self) -> Result<Head, Error> {
        let kind = self.byte()?;
        let flags = self.varint()?;
        let allowed = match kind {
            FILE => ANY_KIND | FILE_ONLY,
            DIR | SYMLINK => ANY_KIND,
            other => return Err(format!("unknown entry type {other}")),
        };
        if flags & !allowed != 0 {
            return Err(format!("flags {flags:#x} name fields type {kind} has not"));
        }
        Ok(Head { kind, flags })
    }

    fn meta(&mut self, head: Head) -> Result<Meta, Error> {
        Ok(Meta {
            mode: self.u32("mode")?,
            uid: self.u32("uid")?,
            gid: self.u32("gid")?,
            size: self.varint()?,
            mtime: self.time()?,
            user: self.name_if(head.has(USER))?,
            group: self.name_if(head.has(GROUP))?,
            xattrs: Vec::new(),
        })
    }

    fn file(&mut self, head: Head) -> Result<Content, Error> {
        let change = ChangeKey {
            inode: self.varint()?,
            ctime: head.has(CTIME).then(|| self.time()).transpose()?,
        };
        let link = head.has(LINK).then(|| self.u64_le()).transpose()?;
        let mut chunks = Vec::new();
        self.chunks(&mut chunks)?;
        let holes = match head.has(HOLES) {
            true => self.holes()?,
            false => Vec::new(),
        };
        let database = head.has(SQLITE).then(|| self.database()).transpose()?;
        Ok(Content::File {
            chunks,
            change,
            database,
            link,
            holes,
        })
    }

    fn file_refs(&mut self, head: Head, chunks: &mut Vec<BlobId>) -> Result<(), Error> {
        self.skip_varints(if head.has(CTIME) { 3 } else { 1 })?;
        if head.has(LINK) {
            self.u64_le()?;
        }
        self.chunks(chunks)?;
        if head.has(HOLES) {
            let count = self.varint()?;
            self.skip_varints(count.saturating_mul(2))?;
        }
        if head.has(SQLITE) {
            self.skip_varints(4)?; // page size, captured, file size
            if self.byte()? != 0 {
                self.skip_varints(4)?; // the -wal's inode, size, mtime
            }
        }
        Ok(())
    }

    fn skip_varints(&mut self, count: u64) -> Result<(), Error> {
        for _ in 0..count {
            self.varint()?;
        }
        Ok(())
    }

    fn chunks(&mut self, out: &mut Vec<BlobId>) -> Result<(), Error> {
        let count = self.varint()?;
        // No more than the bytes left can hold (a count is untrusted);
        // exactly, for a file's own list, and amortized when many files'
        // chunks go into one list (refs).
        let room = (self.len / ID_LEN).max(1 << 12) as u64;
        let wanted = count.min(room) as usize;
        match out.is_empty() {
            true => out.reserve_exact(wanted),
            false => out.reserve(wanted),
        }
        for _ in 0..count {
            out.push(BlobId::from_bytes(self.id()?));
        }
        Ok(())
    }

    fn holes(&mut self) -> Result<Vec<Hole>, Error> {
        let count = self.nonzero_count("holes")?;
        let mut holes = Vec::with_capacity(count.min(1 << 12) as usize);
        for _ in 0..count {
            let (offset, len) = (self.varint()?, self.varint()?);
            holes.push(Hole { offset, len });
        }
        Ok(holes)
    }

    fn database(&mut self) -> Result<DatabaseInfo, Error> {
        let page_size = self.u32("page size")?;
        if !crate::database::is_valid_page_size(page_size) {
            return Err(format!(
                "sqlite page size {page_size} is not a power of two in 512..=65536"
            ));
        }
        let captured = self.time()?;
        let file_size = self.varint()?;
        let wal = match self.byte()? {
            0 => None,
            1 => Some(SideFileKey {
                inode: self.varint()?,
                size: self.varint()?,
                mtime: self.time()?,
            }),
            other => return Err(format!("sqlite wal marker {other} is not 0 or 1")),
        };
        Ok(DatabaseInfo {
            page_size,
            captured,
            file_size,
            wal,
        })
    }

    fn xattrs(&mut self) -> Result<Vec<Xattr>, Error> {
        let count = self.nonzero_count("xattrs")?;
        let mut xattrs = Vec::with_capacity(count.min(1 << 8) as usize);
        for _ in 0..count {
            let name = RawName::from_bytes(self.bytes()?);
            let value = RawName::from_bytes(self.bytes()?);
            xattrs.push(Xattr { name, value });
        }
        match xattrs_error(&xattrs) {
            Some(why) => Err(why),
            None => Ok(xattrs),
        }
    }

    /// A count of a list that is written only when it is not empty.
    fn nonzero_count(&mut self, what: &str) -> Result<u64, Error> {
        match self.varint()? {
            0 => Err(format!("an empty list of {what} is flagged")),
            n => Ok(n),
        }
    }

    fn name_if(&mut self, present: bool) -> Result<Option<RawName>, Error> {
        present
            .then(|| self.bytes().map(RawName::from_bytes))
            .transpose()
    }

    fn time(&mut self) -> Result<Timespec, Error> {
        let zigzag = self.varint()?;
        let sec = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
        let nsec = self.u32("nanoseconds")?;
        if nsec >= 1_000_000_000 {
            return Err(format!("nanoseconds {nsec} out of range"));
        }
        Ok(Timespec { sec, nsec })
    }

    fn u32(&mut self, what: &str) -> Result<u32, Error> {
        let n = self.varint()?;
        u32::try_from(n).map_err(|_| format!("{what} {n} does not fit in 32 bits"))
    }

    /// A minimal LEB128 varint of at most 64 bits.
    fn varint(&mut self) -> Result<u64, Error> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err("a varint overflows 64 bits".into());
            }
            n |= bits << shift;
            if b & 0x80 == 0 {
                return match b == 0 && shift > 0 {
                    true => Err("a varint is not minimal".into()),
                    false => Ok(n),
                };
            }
        }
        Err("a varint overflows 64 bits".into())
    }

    fn byte(&mut self) -> Result<u8, Error> {
        let buf = self.r.fill_buf().map_err(|e| e.to_string())?;
        let Some(&b) = buf.first() else {
            return Err(truncated());
        };
        self.r.consume(1);
        Ok(b)
    }

    fn u64_le(&mut self) -> Result<u64, Error> {
        let mut bytes = [0; 8];
        self.exact(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn id(&mut self) -> Result<[u8; ID_LEN], Error> {
        let mut id = [0; ID_LEN];
        self.exact(&mut id)?;
        Ok(id)
    }

    fn exact(&mut self, into: &mut [u8]) -> Result<(), Error> {
        self.r.read_exact(into).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => truncated(),
            _ => e.to_string(),
        })
    }

    /// Length-prefixed bytes, read as they arrive (a length from the tree
    /// never sizes an allocation).
    fn bytes(&mut self) -> Result<Vec<u8>, Error> {
        let len = self.varint()?;
        let buffered = self.r.fill_buf().map_err(|e| e.to_string())?;
        if let Some(whole) = usize::try_from(len).ok().and_then(|n| buffered.get(..n)) {
            let bytes = whole.to_vec();
            self.r.consume(bytes.len());
            return Ok(bytes);
        }
        let mut bytes = Vec::new();
        let read = (&mut self.r).take(len).read_to_end(&mut bytes);
        match read.map_err(|e| e.to_string())? as u64 == len {
            true => Ok(bytes),
            false => Err(truncated()),
        }
    }

    fn skip_bytes(&mut self) -> Result<(), Error> {
        let len = self.varint()?;
        let skipped = std::io::copy(&mut (&mut self.r).take(len), &mut std::io::sink());
        match skipped.map_err(|e| e.to_string())? == len {
            true => Ok(()),
            false => Err(truncated()),
        }
    }

    fn at_end(&mut self) -> Result<bool, Error> {
        Ok(self.r.fill_buf().map_err(|e| e.to_string())?.is_empty())
    }
}

fn truncated() -> Error {
    "the tree ends inside an entry".into()
}
