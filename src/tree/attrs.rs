//! What an entry records beyond `stat` (format version 4): extended
//! attributes and the holes of sparse files.
//!
//! Both are checked when a tree decodes or an entry is restored, since
//! tree bytes are untrusted: xattr names must be what the kernel accepts
//! and sorted (one listing, one encoding), values no larger than the
//! kernel allows; holes must be sorted, apart and inside the file.

use serde::{Deserialize, Serialize};

use crate::rawname::RawName;

/// Largest xattr value stored: Linux's own limit (`XATTR_SIZE_MAX`), so
/// every value a file system can hold fits, inline in the tree.
pub const MAX_XATTR_VALUE: usize = 64 * 1024;

/// Longest xattr name (`XATTR_NAME_MAX`).
const MAX_XATTR_NAME: usize = 255;

/// At most this many holes are recorded per file; the holes past them are
/// read as zeros like data, so that a file fragmented into millions of
/// holes cannot make its directory's tree unbounded.
pub const MAX_HOLES: usize = 16 * 1024;

/// One extended attribute: `namespace.name` and its value, byte for byte.
/// POSIX ACLs are the `system.posix_acl_access` and
/// `system.posix_acl_default` attributes, in the kernel's binary form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Xattr {
    /// The full name, e.g. `user.mime_type` or `security.capability`.
    pub name: RawName,
    /// The value (a NAME in JSON: a string if it is UTF-8, else hex).
    pub value: RawName,
}

impl Xattr {
    /// The namespace the name belongs to (`user`, `security`, ...).
    pub fn namespace(&self) -> &[u8] {
        let name = self.name.as_bytes();
        name.split(|&b| b == b'.').next().unwrap_or(name)
    }
}

/// A range of a file that reads as zeros and holds no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(u64, u64)", into = "(u64, u64)")]
pub struct Hole {
    /// Where it starts, in bytes from the start of the file.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

impl Hole {
    /// The first byte after it.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }
}

impl From<(u64, u64)> for Hole {
    fn from((offset, len): (u64, u64)) -> Self {
        Self { offset, len }
    }
}

impl From<Hole> for (u64, u64) {
    fn from(h: Hole) -> Self {
        (h.offset, h.len)
    }
}

/// Bytes of a file of `size` bytes that are not in `holes` (saturating,
/// for holes that are out of bounds; see [`holes_defect`]).
pub fn data_len(size: u64, holes: &[Hole]) -> u64 {
    let in_holes = holes.iter().fold(0u64, |sum, h| sum.saturating_add(h.len));
    size.saturating_sub(in_holes)
}

/// Why `holes` do not describe a file of `size` bytes, if they do not:
/// each is non-empty, they are sorted and apart (a data byte between
/// two), and none reaches past the end.
pub fn holes_defect(holes: &[Hole], size: u64) -> Option<&'static str> {
    // No capture records more; a crafted tree with 200k made every read
    // of the file through a mount scan them all, piece by piece.
    if holes.len() > MAX_HOLES {
        return Some("the file has more holes than any snapshot records");
    }
    if holes.iter().any(|h| h.len == 0) {
        return Some("the file has an empty hole");
    }
    if holes.windows(2).any(|w| w[0].end() >= w[1].offset) {
        return Some("the file's holes are not sorted and apart");
    }
    if holes
        .last()
        .is_some_and(|h| h.offset.checked_add(h.len).is_none_or(|end| end > size))
    {
        return Some("the file's holes reach past its end");
    }
    None
}

/// The ranges of a file of `size` bytes that hold data: between its
/// `holes` (which must have no defect), as `(offset, len)`.
pub fn data_regions(holes: &[Hole], size: u64) -> Vec<(u64, u64)> {
    let mut regions = Vec::with_capacity(holes.len() + 1);
    let mut pos = 0;
    for hole in holes {
        if hole.offset > pos {
            regions.push((pos, hole.offset - pos));
        }
        pos = hole.end();
    }
    if size > pos {
        regions.push((pos, size - pos));
    }
    regions
}

/// Where the bytes of a file's chunks go: in order, into the ranges
/// between its holes.
#[derive(Debug, Clone)]
pub struct Placement<'h> {
    holes: &'h [Hole],
    pos: u64,
}

impl<'h> Placement<'h> {
    /// The placement of data around `holes` (which must have no defect).
    pub fn new(holes: &'h [Hole]) -> Self {
        Self { holes, pos: 0 }
    }

    /// Where the next data bytes go, and how many of the next `len` go
    /// there in one run (all of them unless a hole comes first).
    pub fn next_run(&mut self, len: u64) -> (u64, u64) {
        while let Some((hole, rest)) = self.holes.split_first() {
            if hole.offset > self.pos {
                break;
            }
            self.pos = self.pos.max(hole.end());
            self.holes = rest;
        }
        let room = self.holes.first().map_or(u64::MAX, |h| h.offset - self.pos);
        let run = (self.pos, len.min(room));
        self.pos += run.1;
        run
    }
}

/// Why `xattrs` are not a valid list, if they are not: names non-empty,
/// without NUL, within the kernel's limit, strictly ascending by bytes;
/// values within [`MAX_XATTR_VALUE`].
pub fn xattrs_error(xattrs: &[Xattr]) -> Option<String> {
    for x in xattrs {
        let name = x.name.as_bytes();
        if name.is_empty() || name.len() > MAX_XATTR_NAME || name.contains(&0) {
            return Some(format!("xattr name {:?} is not valid", x.name));
        }
        if x.value.as_bytes().len() > MAX_XATTR_VALUE {
            return Some(format!(
                "xattr {:?} is larger than {MAX_XATTR_VALUE} bytes",
                x.name
            ));
        }
    }
    if let Some(w) = xattrs
        .windows(2)
        .find(|w| w[0].name.as_bytes() >= w[1].name.as_bytes())
    {
        return Some(format!(
            "xattrs are not sorted and unique at {:?}",
            w[1].name
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holes(list: &[(u64, u64)]) -> Vec<Hole> {
        list.iter().map(|&h| Hole::from(h)).collect()
    }

    #[test]
    fn holes_must_be_sorted_apart_non_empty_and_inside_the_file() {
        assert_eq!(holes_defect(&holes(&[(0, 4), (5, 5)]), 10), None);
        assert_eq!(data_len(10, &holes(&[(0, 4), (5, 5)])), 1);
        assert!(holes_defect(&holes(&[(0, 4), (4, 5)]), 10).is_some());
        assert!(holes_defect(&holes(&[(5, 1), (0, 1)]), 10).is_some());
        assert!(holes_defect(&holes(&[(0, 0)]), 10).is_some());
        assert!(holes_defect(&holes(&[(8, 3)]), 10).is_some());
        assert!(holes_defect(&holes(&[(u64::MAX, 3)]), u64::MAX).is_some());
        let most: Vec<(u64, u64)> = (0..MAX_HOLES as u64 + 1).map(|i| (2 * i, 1)).collect();
        let size = 2 * most.len() as u64;
        assert_eq!(holes_defect(&holes(&most[1..]), size), None);
        assert!(holes_defect(&holes(&most), size).is_some());
    }

    #[test]
    fn data_goes_between_the_holes_and_regions_are_their_complement() {
        let h = holes(&[(0, 4), (6, 2)]);
        let mut place = Placement::new(&h);
        assert_eq!(place.next_run(1), (4, 1));
        assert_eq!(place.next_run(5), (5, 1));
        assert_eq!(place.next_run(5), (8, 5));
        assert_eq!(data_regions(&h, 10), [(4, 2), (8, 2)]);
        assert_eq!(data_regions(&holes(&[(2, 8)]), 10), [(0, 2)]);
        assert_eq!(data_regions(&[], 3), [(0, 3)]);
    }

    #[test]
    fn xattrs_must_be_sorted_unique_and_within_the_kernels_limits() {
        let x = |name: &[u8], len: usize| Xattr {
            name: RawName::from_bytes(name.to_vec()),
            value: RawName::from_bytes(vec![b'v'; len]),
        };
        assert_eq!(
            xattrs_error(&[x(b"user.a", 1), x(b"user.b", MAX_XATTR_VALUE)]),
            None
        );
        assert!(xattrs_error(&[x(b"user.b", 1), x(b"user.a", 1)]).is_some());
        assert!(xattrs_error(&[x(b"user.a", 1), x(b"user.a", 1)]).is_some());
        assert!(xattrs_error(&[x(b"", 1)]).is_some());
        assert!(xattrs_error(&[x(b"user.\0", 1)]).is_some());
        assert!(xattrs_error(&[x(b"user.a", MAX_XATTR_VALUE + 1)]).is_some());
        assert_eq!(x(b"security.capability", 1).namespace(), b"security");
    }
}
