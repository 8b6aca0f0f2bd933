//! The PAX extended header records of `restore --tar`: what a tar header
//! has no field for, in the keywords GNU tar reads.
//!
//! - `mtime` with nanoseconds.
//! - `SCHILY.xattr.NAME` per extended attribute (GNU tar, bsdtar and star
//!   read these; `tar --xattrs` restores them, `--xattrs-include='*'` also
//!   those outside `user.`).
//! - `SCHILY.acl.access` and `SCHILY.acl.default`: POSIX ACLs as text with
//!   numeric ids, for `tar --acls`.
//! - `GNU.sparse.*` (GNU sparse format 1.0) for a file with holes: its
//!   data is preceded by a map of where the data goes, so the holes are
//!   neither stored in the stream nor written when it is extracted.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::tree::{Meta, Xattr};

/// The records of one entry's extended header, as bytes.
#[derive(Default)]
pub(super) struct Records(Vec<u8>);

impl Records {
    /// The records every entry with `meta` gets: its exact mtime, its
    /// xattrs and its ACLs.
    pub fn of(meta: &Meta) -> Self {
        let mut records = Self::default();
        let mtime = decimal_seconds(meta.mtime.sec, meta.mtime.nsec);
        records.add(b"mtime", mtime.as_bytes());
        for xattr in &meta.xattrs {
            records.add_xattr(xattr);
        }
        records
    }

    /// The records of a file with holes, `size` bytes long, whose real
    /// name is `path` (GNU sparse format 1.0).
    pub fn sparse(&mut self, path: &Path, size: u64) {
        self.add(b"GNU.sparse.major", b"1");
        self.add(b"GNU.sparse.minor", b"0");
        self.add(b"GNU.sparse.name", path.as_os_str().as_bytes());
        self.add(b"GNU.sparse.realsize", size.to_string().as_bytes());
    }

    /// The bytes of the extended header's data.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn add_xattr(&mut self, xattr: &Xattr) {
        let name = xattr.name.as_bytes();
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(&escape_keyword(name));
        self.add(&key, xattr.value.as_bytes());
        let acl = match name {
            b"system.posix_acl_access" => b"SCHILY.acl.access".as_slice(),
            b"system.posix_acl_default" => b"SCHILY.acl.default".as_slice(),
            _ => return,
        };
        if let Some(text) = acl_text(xattr.value.as_bytes()) {
            self.add(acl, text.as_bytes());
        }
    }

    /// Appends `LEN key=value\n`, where LEN counts the whole record, its
    /// own digits included. Values are bytes (xattr values are binary).
    fn add(&mut self, key: &[u8], value: &[u8]) {
        let body = key.len() + value.len() + 3; // space, '=', newline
        let mut len = body + body.to_string().len();
        if len.to_string().len() + body != len {
            len += 1;
        }
        self.0.extend_from_slice(len.to_string().as_bytes());
        self.0.push(b' ');
        self.0.extend_from_slice(key);
        self.0.push(b'=');
        self.0.extend_from_slice(value);
        self.0.push(b'\n');
    }
}

/// An xattr name as GNU tar writes it in a keyword: `%` and `=` (which
/// would end the keyword) percent-encoded.
fn escape_keyword(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for &b in name {
        match b {
            b'%' => out.extend_from_slice(b"%25"),
            b'=' => out.extend_from_slice(b"%3D"),
            _ => out.push(b),
        }
    }
    out
}

/// `sec + nsec / 10^9` as a decimal, the way PAX times are written: before
/// 1970 the whole value is negative (-1.25 is sec -2, nsec 750000000).
pub(super) fn decimal_seconds(sec: i64, nsec: u32) -> String {
    let total = i128::from(sec) * 1_000_000_000 + i128::from(nsec);
    let sign = if total < 0 { "-" } else { "" };
    let abs = total.unsigned_abs();
    format!("{sign}{}.{:09}", abs / 1_000_000_000, abs % 1_000_000_000)
}

/// A POSIX ACL in the kernel's binary xattr form as the text `acl(5)`
/// describes (`user::rw-,user:1000:r--,group::r--,mask::r--,other::---`),
/// with numeric ids; `None` if the bytes are not such an ACL.
pub(super) fn acl_text(bytes: &[u8]) -> Option<String> {
    let (version, entries) = bytes.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != 2 || entries.len() % 8 != 0 {
        return None;
    }
    let mut parts = Vec::with_capacity(entries.len() / 8);
    for e in entries.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let who = match tag {
            0x01 => "user:".to_owned(),
            0x02 => format!("user:{id}"),
            0x04 => "group:".to_owned(),
            0x08 => format!("group:{id}"),
            0x10 => "mask:".to_owned(),
            0x20 => "other:".to_owned(),
            _ => return None,
        };
        let bit = |mask: u16, c: char| if perm & mask != 0 { c } else { '-' };
        parts.push(format!(
            "{who}:{}{}{}",
            bit(4, 'r'),
            bit(2, 'w'),
            bit(1, 'x')
        ));
    }
    Some(parts.join(","))
}

/// The map that starts the data of a sparse file in GNU sparse format
/// 1.0: the number of data regions, then each region's offset and length,
/// one decimal per line, padded with NULs to a whole 512-byte block. A
/// file that ends in a hole gets a last region of length 0 at its end,
/// which tells the extractor its size.
pub(super) fn sparse_map(regions: &[(u64, u64)], size: u64) -> Vec<u8> {
    let mut regions = regions.to_vec();
    if regions.last().is_none_or(|&(at, len)| at + len < size) {
        regions.push((size, 0));
    }
    let mut map = format!("{}\n", regions.len());
    for (at, len) in &regions {
        map.push_str(&format!("{at}\n{len}\n"));
    }
    let mut map = map.into_bytes();
    map.resize(map.len().next_multiple_of(512), 0);
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rawname::RawName;

    #[test]
    fn pax_times_before_1970_are_negative_decimals() {
        assert_eq!(decimal_seconds(5, 1), "5.000000001");
        assert_eq!(decimal_seconds(-2, 750_000_000), "-1.250000000");
        assert_eq!(decimal_seconds(-1, 250_000_000), "-0.750000000");
        assert_eq!(
            decimal_seconds(-2_000_000_000, 250_000_001),
            "-1999999999.749999999"
        );
    }

    #[test]
    fn pax_records_count_their_own_length() {
        let one = |key: &str, value: &str| {
            let mut r = Records::default();
            r.add(key.as_bytes(), value.as_bytes());
            String::from_utf8(r.0).unwrap()
        };
        assert_eq!(one("mtime", "1.5"), "13 mtime=1.5\n");
        let r = one("mtime", "1767323045.123456789");
        assert_eq!(r.len().to_string(), r.split(' ').next().unwrap());
        let r = one("path", &"x".repeat(95));
        assert_eq!(r.len().to_string(), r.split(' ').next().unwrap());
    }

    #[test]
    fn acls_read_as_text_with_numeric_ids_and_xattrs_as_schily_records() {
        let mut acl = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 4, 65534),
            (4, 5, u32::MAX),
            (0x10, 7, u32::MAX),
            (0x20, 0, u32::MAX),
        ] {
            acl.extend_from_slice(&tag.to_le_bytes());
            acl.extend_from_slice(&perm.to_le_bytes());
            acl.extend_from_slice(&id.to_le_bytes());
        }
        assert_eq!(
            acl_text(&acl).unwrap(),
            "user::rw-,user:65534:r--,group::r-x,mask::rwx,other::---"
        );
        assert_eq!(acl_text(&acl[..7]), None);
        let meta = Meta {
            xattrs: vec![
                Xattr {
                    name: RawName::from_bytes(b"system.posix_acl_access".to_vec()),
                    value: RawName::from_bytes(acl),
                },
                Xattr {
                    name: RawName::from_bytes(b"user.a=b%".to_vec()),
                    value: RawName::from_bytes(b"v\n".to_vec()),
                },
            ],
            ..Meta::default()
        };
        let text = String::from_utf8_lossy(Records::of(&meta).bytes()).into_owned();
        assert!(
            text.contains(" SCHILY.acl.access=user::rw-,user:65534:r--,"),
            "{text}"
        );
        assert!(
            text.contains(" SCHILY.xattr.system.posix_acl_access=\u{2}\0\0\0"),
            "{text}"
        );
        assert!(text.contains(" SCHILY.xattr.user.a%3Db%25=v\n\n"), "{text}");
    }

    #[test]
    fn a_sparse_map_lists_the_data_and_marks_a_trailing_hole() {
        let map = sparse_map(&[(0, 4), (100, 2)], 1000);
        assert_eq!(map.len(), 512);
        assert!(map.starts_with(b"3\n0\n4\n100\n2\n1000\n0\n\0"));
        let ends_in_data = sparse_map(&[(100, 900)], 1000);
        assert!(ends_in_data.starts_with(b"1\n100\n900\n\0"));
        assert!(sparse_map(&[], 10).starts_with(b"1\n10\n0\n\0"));
    }
}
