//! A pack read once from start to end a block at a time, hashed as it
//! goes: `verify --read-data` checks packs this way, and a repack of a
//! local pack proves and copies it this way, neither holding a pack whole
//! (16 MiB each by default, up to 1 GiB with `--pack-size`).

use std::io::{self, Read};

use crate::id::PackId;

/// A pack read once from start to end in blocks, each hashed whole as it
/// arrives (hashing blob by blob lost BLAKE3's SIMD: a tenth of the time).
pub struct PackStream {
    /// The file, cut off one byte past the size the catalog records: a
    /// longer file is damage, never loaded.
    file: io::Take<Box<dyn Read + Send>>,
    hasher: blake3::Hasher,
    block: Vec<u8>,
    /// How much of `block` was handed out.
    used: usize,
    /// File offset of `block[used]`.
    pos: u64,
    /// Why the stream broke off, if it did: every later read fails with it.
    broken: Option<Break>,
}

/// Why a pack's stream broke off.
enum Break {
    /// The file ended early: a short pack, whose hash then tells it apart
    /// from the real one.
    End,
    /// Reading failed.
    Io(String),
}

impl Break {
    fn why(&self) -> String {
        match self {
            Self::End => BEYOND_THE_END.to_owned(),
            Self::Io(why) => why.clone(),
        }
    }
}

const BEYOND_THE_END: &str = "lies beyond the end of the pack";

/// Bytes read and hashed at a time.
const BLOCK: usize = 1 << 20;

impl PackStream {
    /// Streams `file`, a pack the catalog records as `size` bytes long.
    pub fn new(file: Box<dyn Read + Send>, size: u64) -> Self {
        Self {
            file: file.take(size.saturating_add(1)),
            hasher: blake3::Hasher::new(),
            block: Vec::new(),
            used: 0,
            pos: 0,
            broken: None,
        }
    }

    /// Reads `len` bytes at `offset` into `buf`, passing over what lies
    /// before. Rows come sorted by offset; one that overlaps the previous
    /// (only a damaged catalog has those) or lies beyond `size` (what the
    /// catalog says the file holds) is an error.
    pub fn read_at(
        &mut self,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
        size: u64,
    ) -> Result<(), String> {
        if let Some(broken) = &self.broken {
            return Err(broken.why());
        }
        if offset < self.pos {
            return Err("overlaps the blob before it in the pack".to_owned());
        }
        if offset.saturating_add(len as u64) > size {
            return Err(BEYOND_THE_END.to_owned());
        }
        self.take(offset - self.pos, None)?;
        buf.clear();
        self.take(len as u64, Some(buf))
    }

    /// Whether the stream broke off because reading failed (the
    /// machine's or the connection's failure, not the pack's bytes).
    pub fn read_failed(&self) -> bool {
        matches!(self.broken, Some(Break::Io(_)))
    }

    /// Reads the rest; returns the bytes read and the file's hash.
    pub fn finish(&mut self, size: u64) -> Result<(u64, PackId), String> {
        while self.broken.is_none() {
            self.pos += (self.block.len() - self.used) as u64;
            self.used = self.block.len();
            if !self.refill()? {
                break;
            }
        }
        if let Some(Break::Io(why)) = &self.broken {
            return Err(why.clone());
        }
        if self.pos > size {
            return Err(format!("larger than the {size} bytes the catalog records"));
        }
        Ok((
            self.pos,
            PackId::from_bytes(*self.hasher.finalize().as_bytes()),
        ))
    }

    /// Consumes `len` bytes, appending them to `out` if given.
    fn take(&mut self, mut len: u64, mut out: Option<&mut Vec<u8>>) -> Result<(), String> {
        while len > 0 {
            if self.used == self.block.len() && !self.refill()? {
                self.broken = Some(Break::End);
                return Err(BEYOND_THE_END.to_owned());
            }
            let n = (self.block.len() - self.used).min(usize::try_from(len).unwrap_or(usize::MAX));
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(&self.block[self.used..self.used + n]);
            }
            self.used += n;
            self.pos += n as u64;
            len -= n as u64;
        }
        Ok(())
    }

    /// Reads and hashes the next block; false at the end of the file.
    fn refill(&mut self) -> Result<bool, String> {
        self.block.resize(BLOCK, 0);
        let n = loop {
            match self.file.read(&mut self.block) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.block.clear();
                    self.used = 0;
                    self.broken = Some(Break::Io(e.to_string()));
                    return Err(e.to_string());
                }
            }
        };
        self.block.truncate(n);
        self.used = 0;
        self.hasher.update(&self.block);
        Ok(n > 0)
    }
}
