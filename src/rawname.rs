//! Byte strings that come from the file system (names, symlink targets, paths).
//!
//! On Unix these are arbitrary bytes except NUL, and must round-trip exactly.
//! In JSON a `RawName` is a plain string when the bytes are valid UTF-8, and
//! the object `{"hex": "..."}` otherwise, so that ordinary names stay readable
//! and no name is ever altered.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// File system bytes: a name, a link target or a path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RawName(Vec<u8>);

impl RawName {
    /// Wraps raw bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes of an OS string (a directory entry's name, say).
    pub fn from_os(name: &OsStr) -> Self {
        Self(name.as_bytes().to_vec())
    }

    /// The bytes of a path.
    pub fn from_path(path: &Path) -> Self {
        Self::from_os(path.as_os_str())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as an OS string, exactly.
    pub fn as_os_str(&self) -> &OsStr {
        OsStr::from_bytes(&self.0)
    }

    /// The bytes as a path, exactly.
    pub fn as_path(&self) -> &Path {
        Path::new(self.as_os_str())
    }

    /// Whether this is a name a directory may hold: not empty, not `.` or
    /// `..`, and free of `/` and NUL. Restore relies on this to stay inside
    /// its target.
    pub fn is_valid_entry_name(&self) -> bool {
        !self.0.is_empty()
            && self.0 != b"."
            && self.0 != b".."
            && !self.0.iter().any(|&b| b == b'/' || b == 0)
    }
}

impl fmt::Display for RawName {
    /// Lossy, for messages only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for RawName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl Serialize for RawName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("hex", &hex::encode(&self.0))?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for RawName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawNameVisitor)
    }
}

struct RawNameVisitor;

impl<'de> Visitor<'de> for RawNameVisitor {
    type Value = RawName;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an object {\"hex\": \"...\"}")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<RawName, E> {
        Ok(RawName(text.as_bytes().to_vec()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawName, A::Error> {
        let Some((key, value)) = map.next_entry::<String, String>()? else {
            return Err(de::Error::custom("empty name object"));
        };
        if key != "hex" {
            return Err(de::Error::unknown_field(&key, &["hex"]));
        }
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom("name object has more than one field"));
        }
        let bytes = hex::decode(&value).map_err(de::Error::custom)?;
        if std::str::from_utf8(&bytes).is_ok() {
            // The writer only uses hex for invalid UTF-8; anything else would
            // give one name two encodings and break deterministic tree ids.
            return Err(de::Error::custom("hex name is valid UTF-8"));
        }
        Ok(RawName(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_names_are_plain_json_strings() {
        let name = RawName::from_bytes(b"a b\nc".to_vec());
        assert_eq!(serde_json::to_string(&name).unwrap(), r#""a b\nc""#);
    }

    #[test]
    fn invalid_utf8_names_round_trip_through_hex() {
        let name = RawName::from_bytes(vec![b'a', 0xff, 0xfe]);
        let json = serde_json::to_string(&name).unwrap();
        assert_eq!(json, r#"{"hex":"61fffe"}"#);
        assert_eq!(serde_json::from_str::<RawName>(&json).unwrap(), name);
    }

    #[test]
    fn a_hex_object_holding_valid_utf8_is_refused() {
        assert!(serde_json::from_str::<RawName>(r#"{"hex":"6162"}"#).is_err());
    }

    #[test]
    fn entry_names_exclude_separators_dots_and_nul() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert!(!RawName::from_bytes(bad.to_vec()).is_valid_entry_name());
        }
        assert!(RawName::from_bytes(b"...".to_vec()).is_valid_entry_name());
    }
}
