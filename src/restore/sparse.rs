//! Writing a restored file around its holes.
//!
//! A file captured with holes gets its chunks written between them and
//! its size set at the end, so the holes stay unallocated: a sparse
//! virtual disk restores as sparse as it was. With `--sparse`, blocks of
//! zeros in the data are left unwritten too (as restic and GNU tar do),
//! which makes holes of zeros that a non-sparse source stored as data.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use crate::tree::{Hole, Placement};

/// The granularity at which `--sparse` looks for zeros: a common file
/// system block, aligned to the file's offsets.
const BLOCK: u64 = 4096;

/// A file's content as it is written: chunk bytes in, runs of data out at
/// their offsets (with `pwrite`).
pub(super) struct SparseOut<'f> {
    file: &'f File,
    place: Placement<'f>,
    zeros_as_holes: bool,
}

impl<'f> SparseOut<'f> {
    /// A writer of `file`'s data around `holes`; with `zeros_as_holes`,
    /// blocks of zeros are not written either.
    pub fn new(file: &'f File, holes: &'f [Hole], zeros_as_holes: bool) -> Self {
        Self {
            file,
            place: Placement::new(holes),
            zeros_as_holes,
        }
    }

    /// Writes `data` at `at`, leaving out whole zero blocks if asked to.
    fn write_run(&self, data: &[u8], at: u64) -> io::Result<()> {
        if !self.zeros_as_holes {
            return self.file.write_all_at(data, at);
        }
        let mut start = 0usize;
        while start < data.len() {
            let pos = at + start as u64;
            let end = data.len().min(start + (BLOCK - pos % BLOCK) as usize);
            let block = &data[start..end];
            // Only whole blocks become holes: a partial one shares its
            // block with data written before or after it.
            let whole = block.len() as u64 == BLOCK;
            if !(whole && block.iter().all(|&b| b == 0)) {
                self.file.write_all_at(block, pos)?;
            }
            start = end;
        }
        Ok(())
    }
}

impl Write for SparseOut<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (at, len) = self.place.next_run(buf.len() as u64);
        let run = &buf[..len as usize];
        self.write_run(run, at)?;
        Ok(run.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn written(holes: &[Hole], zeros_as_holes: bool, data: &[u8], size: u64) -> (Vec<u8>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let mut out = io::BufWriter::new(SparseOut::new(&file, holes, zeros_as_holes));
        out.write_all(data).unwrap();
        out.flush().unwrap();
        drop(out);
        file.set_len(size).unwrap();
        (
            std::fs::read(&path).unwrap(),
            file.metadata().unwrap().blocks(),
        )
    }

    #[test]
    fn data_lands_between_the_holes_which_stay_unallocated() {
        let mib = 1 << 20;
        let holes = [
            Hole {
                offset: 0,
                len: mib,
            },
            Hole {
                offset: mib + 2,
                len: 3 * mib,
            },
        ];
        let (bytes, blocks) = written(&holes, false, b"ab", 4 * mib + 2);
        assert_eq!(bytes.len() as u64, 4 * mib + 2);
        assert_eq!(&bytes[mib as usize..mib as usize + 2], b"ab");
        assert!(bytes.iter().filter(|&&b| b != 0).count() == 2);
        assert!(blocks * 512 < mib, "{blocks} blocks allocated");
    }

    #[test]
    fn with_sparse_whole_zero_blocks_are_not_written() {
        let mut data = vec![0u8; 8 * BLOCK as usize];
        data[BLOCK as usize + 1] = 1;
        let (bytes, blocks) = written(&[], true, &data, data.len() as u64);
        assert_eq!(bytes, data);
        assert!(blocks * 512 <= 2 * BLOCK, "{blocks} blocks allocated");
        let (_, all) = written(&[], false, &data, data.len() as u64);
        assert!(all * 512 >= 8 * BLOCK, "{all}");
    }
}
