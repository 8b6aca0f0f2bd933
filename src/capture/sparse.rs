//! Reading sparse files: their data, never their holes.
//!
//! A 10 GiB virtual disk with 1 MiB written reads as 10 GiB of zeros;
//! reading and hashing them took minutes. The file system knows where the
//! data is: `lseek` with `SEEK_DATA` and `SEEK_HOLE` finds the holes, and
//! only the ranges between them are read. The holes are recorded in the
//! entry (tree.md), so a restore leaves them unwritten too. A file system
//! without these calls reports the whole file as data.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use crate::tree::{Hole, MAX_HOLES};

/// Holes shorter than this are read as zeros like data: a few blocks of
/// zeros cost little to read, and a hole each would cost a tree entry
/// field.
pub const MIN_HOLE: u64 = 64 * 1024;

/// The holes of `file`, which is `size` bytes long: at least [`MIN_HOLE`]
/// bytes each, at most [`MAX_HOLES`] of them (the rest is read as data).
/// Moves the file's position.
pub fn holes(file: &File, size: u64) -> Vec<Hole> {
    let mut holes = Vec::new();
    let mut pos = 0;
    while size - pos >= MIN_HOLE && holes.len() < MAX_HOLES {
        let data = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(data) => data.min(size),
            // No data after `pos`: the rest is a hole.
            Err(Errno::NXIO) => size,
            // Not supported here (or the file changed): no holes.
            Err(_) => return Vec::new(),
        };
        if data - pos >= MIN_HOLE {
            holes.push(Hole {
                offset: pos,
                len: data - pos,
            });
        }
        if data >= size {
            break;
        }
        pos = match rustix::fs::seek(file, SeekFrom::Hole(data)) {
            Ok(hole) if hole > data => hole.min(size),
            _ => return Vec::new(),
        };
    }
    holes
}

/// The data of a file around its holes, in order, read with `pread` (the
/// file's position does not matter) up to the size it had when its holes
/// were found: exactly the bytes its chunks hold.
pub struct DataReader<'f> {
    file: &'f File,
    holes: &'f [Hole],
    size: u64,
    pos: u64,
}

impl<'f> DataReader<'f> {
    /// A reader of `file` of `size` bytes, skipping `holes`.
    pub fn new(file: &'f File, size: u64, holes: &'f [Hole]) -> Self {
        Self {
            file,
            holes,
            size,
            pos: 0,
        }
    }

    /// A reader of all of `file` from its start to its end, whatever its
    /// size was: a file that grew is read whole (and so found changed).
    pub fn to_end(file: &'f File) -> Self {
        Self::new(file, u64::MAX, &[])
    }

    /// Where the data that `pos` is in ends: the next hole, or the end.
    fn data_end(&mut self) -> u64 {
        while let Some((hole, rest)) = self.holes.split_first() {
            if self.pos < hole.offset {
                return hole.offset;
            }
            self.pos = self.pos.max(hole.end());
            self.holes = rest;
        }
        self.size
    }
}

impl Read for DataReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let end = self.data_end();
        let want = usize::try_from(end.saturating_sub(self.pos))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn only_the_data_between_holes_is_read_and_the_holes_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("sparse"))
            .unwrap();
        let mib = 1 << 20;
        file.write_all_at(b"head", 0).unwrap();
        file.write_all_at(b"middle", 4 * mib).unwrap();
        file.set_len(16 * mib).unwrap();
        let holes = holes(&file, 16 * mib);
        if holes.is_empty() {
            eprintln!("skipped: this file system reports no holes");
            return;
        }
        // Holes are whole file system blocks around the data.
        assert_eq!(holes.len(), 2, "{holes:?}");
        assert_eq!(holes[0].offset % 4096, 0);
        assert!(holes[0].offset >= 4 && holes[0].end() <= 4 * mib);
        assert_eq!(holes[1].end(), 16 * mib);
        let mut data = Vec::new();
        DataReader::new(&file, 16 * mib, &holes)
            .read_to_end(&mut data)
            .unwrap();
        assert_eq!(data.len() as u64, crate::tree::data_len(16 * mib, &holes));
        assert!(data.starts_with(b"head"));
        assert!(data.windows(6).any(|w| w == b"middle"));
    }
}
