//! The binary form of a tree (format version 8, store-format/tree.md).
//!
//! JSON trees spelled every id as 64 hex digits and every field by name:
//! a database's directory, 140k page runs, was 9.6 MB of tree where its
//! ids are 4.5 MB, and decoding them was a fifth of a prune. Here ids are
//! their 32 bytes, integers LEB128, and which optional fields an entry has
//! is one flags varint. The encoding stays canonical (one listing, one
//! byte string): varints are minimal, flags name exactly the fields that
//! follow, and empty lists are not written.
//!
//! Reading goes through [`BufRead`], so a tree too large to hold twice is
//! decoded as it is decompressed; a length read from the tree never sizes
//! an allocation before its bytes have arrived.

mod decode;
mod encode;

pub use decode::{decode_entries, decode_refs};
pub use encode::push_entry;

/// The first bytes of a binary tree. A JSON tree starts with `{`, and no
/// JSON text starts with 0xFF.
pub const MAGIC: [u8; 4] = [0xff, b't', b'r', 1];

const FILE: u8 = 1;
const DIR: u8 = 2;
const SYMLINK: u8 = 3;

/// Flags: which optional fields follow.
const USER: u64 = 1;
const GROUP: u64 = 1 << 1;
const XATTRS: u64 = 1 << 2;
const CTIME: u64 = 1 << 3;
const LINK: u64 = 1 << 4;
const HOLES: u64 = 1 << 5;
const SQLITE: u64 = 1 << 6;
const ANY_KIND: u64 = USER | GROUP | XATTRS;
const FILE_ONLY: u64 = CTIME | LINK | HOLES | SQLITE;
