//! Content ids: BLAKE3-256 digests wrapped in one newtype per kind of object,
//! so that a pack id can never be passed where a blob id is expected.
//!
//! Every id shows as 64 lowercase hex digits; parsing accepts only that form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length of every id in bytes.
pub const ID_LEN: usize = 32;

/// A string that is not a valid id.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not an id: expected {} lowercase hex digits", ID_LEN * 2)]
pub struct ParseIdError {
    text: String,
}

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; ID_LEN]);

        impl $name {
            /// Wraps raw digest bytes.
            pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
                Self(bytes)
            }

            /// The id of `data`: its BLAKE3-256 digest.
            pub fn of(data: &[u8]) -> Self {
                Self(*blake3::hash(data).as_bytes())
            }

            /// The raw digest bytes.
            pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }

            /// The full 64-digit lowercase hex form.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hex digits, for tables meant for people.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }

            /// Builds an id from a slice that must be exactly 32 bytes (as read
            /// from the catalog); `None` for any other length.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; ID_LEN]>::try_from(bytes).ok().map(Self)
            }
        }

        impl From<blake3::Hash> for $name {
            fn from(hash: blake3::Hash) -> Self {
                Self(*hash.as_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(text: &str) -> Result<Self, ParseIdError> {
                parse_hex_id(text).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// Id of a blob: BLAKE3 of its uncompressed bytes.
    BlobId
);
define_id!(
    /// Id of a tree blob. A tree is a blob; this type marks where a directory is expected.
    TreeId
);
define_id!(
    /// Id of a pack: BLAKE3 of the whole pack file.
    PackId
);
define_id!(
    /// Id of a snapshot: BLAKE3 of its record file.
    SnapshotId
);
define_id!(
    /// Id of an index object: BLAKE3 of its bytes.
    IndexId
);

impl TreeId {
    /// The same digest seen as a blob id, for looking the tree up in the catalog.
    pub const fn as_blob(&self) -> BlobId {
        BlobId(self.0)
    }
}

impl BlobId {
    /// The same digest seen as a tree id.
    pub const fn as_tree(&self) -> TreeId {
        TreeId(self.0)
    }

    /// `ids` sorted, for looking each up in the catalog. Ids are hashes:
    /// in a file's order every lookup lands on another page of the
    /// catalog's index, and the 128k chunks of a 500 MB database pulled
    /// the whole index into SQLite's page cache; in id order the lookups
    /// walk the index once, page after page, and a small cache does.
    pub fn in_id_order(ids: &[Self]) -> Vec<&Self> {
        let mut sorted: Vec<&Self> = ids.iter().collect();
        sorted.sort_unstable();
        sorted
    }
}

/// Whether `text` could be the start of an id: hex digits only.
pub fn is_hex_prefix(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses 64 lowercase hex digits in one pass through a table: every tree
/// names each file's chunks this way, and checking then decoding in two
/// passes was a tenth of a no-change snapshot of 100k files.
fn parse_hex_id(text: &str) -> Result<[u8; ID_LEN], ParseIdError> {
    let error = || ParseIdError {
        text: text.to_owned(),
    };
    if text.len() != ID_LEN * 2 {
        return Err(error());
    }
    let mut out = [0u8; ID_LEN];
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let (high, low) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
        bad |= (high | low) & NOT_HEX;
        *byte = (high << 4) | (low & 0x0f);
    }
    if bad != 0 {
        return Err(error());
    }
    Ok(out)
}

/// Marks a byte that is not a lowercase hex digit in [`NIBBLE`].
const NOT_HEX: u8 = 0x80;

/// The value of each lowercase hex digit; [`NOT_HEX`] for every other byte.
const NIBBLE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_id_is_the_blake3_of_the_bytes_in_lowercase_hex() {
        let id = BlobId::of(b"abc");
        assert_eq!(
            id.to_hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(id.short(), "6437b3ac");
    }

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let id = PackId::of(b"pack");
        assert_eq!(id.to_hex().parse::<PackId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<PackId>(&json).unwrap(), id);
    }

    #[test]
    fn parsing_rejects_uppercase_short_and_non_hex_text() {
        let hex = BlobId::of(b"x").to_hex();
        assert!(hex.to_uppercase().parse::<BlobId>().is_err());
        assert!(hex[..63].parse::<BlobId>().is_err());
        assert!(format!("{}g", &hex[..63]).parse::<BlobId>().is_err());
    }

    #[test]
    fn every_byte_value_at_every_place_of_a_pair_parses_only_if_a_lowercase_digit() {
        let hex = BlobId::of(b"y").to_hex();
        for at in [0, 1, 62, 63] {
            for b in 0..=255u8 {
                let mut text = hex.clone().into_bytes();
                text[at] = b;
                let Ok(text) = String::from_utf8(text) else {
                    continue;
                };
                let digit = b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
                let parsed = parse_hex_id(&text);
                assert_eq!(parsed.is_ok(), digit, "{text}");
                if let Ok(bytes) = parsed {
                    assert_eq!(hex::encode(bytes), text);
                }
            }
        }
        assert!(parse_hex_id(&"é".repeat(32)).is_err());
    }
}
