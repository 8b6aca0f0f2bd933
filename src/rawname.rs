//! Byte strings that come from the file system (names, symlink targets, paths).
//!
//! On Unix these are arbitrary bytes except NUL, and must round-trip exactly.
//! In JSON a `RawName` is a plain string when the bytes are valid UTF-8, and
//! the object `{"hex": "..."}` otherwise, so that ordinary names stay readable
//! and no name is ever altered.
//!
//! In text for people (listings, warnings, error messages) a name is shown
//! through [`escaped`], never raw: a file name is chosen by whoever owns the
//! directory, and a raw escape sequence in it would reach the terminal of
//! the admin listing a snapshot, and a raw newline would forge a line.

use std::borrow::Cow;
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
    /// Escaped for a terminal (see [`escaped`]), for messages only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Escaped(&self.0).fmt(f)
    }
}

/// File system bytes (a path, a name, a link target) as text that is safe
/// to show on a terminal and stays unambiguous, as `ls
/// --quoting-style=escape` and ripgrep show them: a backslash as `\\`,
/// newline, tab and carriage return as `\n`, `\t` and `\r`, other ASCII
/// control characters and each byte that is not UTF-8 as `\xHH`, and the
/// C1 controls U+0080 to U+009F as `\u{HH}`. Everything else, spaces and
/// non-ASCII letters included, is shown as it is.
pub fn escaped<P: AsRef<OsStr> + ?Sized>(path: &P) -> Escaped<'_> {
    Escaped(path.as_ref().as_bytes())
}

/// See [`escaped`].
#[derive(Clone, Copy)]
pub struct Escaped<'a>(&'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            write_escaped(f, chunk.valid())?;
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

/// Writes `text` with its backslashes and control characters escaped,
/// copying the runs between them whole.
fn write_escaped(f: &mut impl fmt::Write, text: &str) -> fmt::Result {
    write_escaping(f, text, |c| c == '\\' || c.is_control())
}

/// A whole message for a terminal (an error, a warning): its control
/// characters escaped as [`escaped`] does, except the newlines that end its
/// own lines, and its backslashes kept (paths in it are already escaped).
/// The last guard for text cairn did not write itself, such as SQLite's.
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n';
    if !text.contains(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    // Writing into a String cannot fail.
    let _ = write_escaping(&mut out, text, unsafe_char);
    Cow::Owned(out)
}

fn write_escaping(
    f: &mut impl fmt::Write,
    text: &str,
    needs_escape: impl Fn(char) -> bool,
) -> fmt::Result {
    let mut plain = 0;
    for (at, c) in text.char_indices() {
        if !needs_escape(c) {
            continue;
        }
        f.write_str(&text[plain..at])?;
        plain = at + c.len_utf8();
        match c {
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if c.is_ascii() => write!(f, "\\x{:02x}", u32::from(c))?,
            c => write!(f, "\\u{{{:x}}}", u32::from(c))?,
        }
    }
    f.write_str(&text[plain..])
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

    // Regression: #14 item 2
    #[test]
    fn names_are_escaped_for_terminals_and_stay_unambiguous() {
        let shown = |bytes: &[u8]| RawName::from_bytes(bytes.to_vec()).to_string();
        assert_eq!(shown(b"plain name.txt"), "plain name.txt");
        assert_eq!(
            shown("caf\u{e9} \u{1f600}".as_bytes()),
            "caf\u{e9} \u{1f600}"
        );
        assert_eq!(shown(b"a\nb\tc\rd"), r"a\nb\tc\rd");
        assert_eq!(shown(b"\x1b[31mred\x7f\x00"), r"\x1b[31mred\x7f\x00");
        assert_eq!(shown(b"bad\xff\xfe"), r"bad\xff\xfe");
        assert_eq!(shown("csi\u{9b}".as_bytes()), r"csi\u{9b}");
        // A literal backslash cannot be mistaken for an escape.
        assert_eq!(shown(br"a\nb"), r"a\\nb");
        assert_eq!(
            escaped(std::path::Path::new("/x/\x1b")).to_string(),
            r"/x/\x1b"
        );
    }

    // Regression: #14 item 2
    #[test]
    fn messages_keep_their_lines_and_lose_their_control_characters() {
        assert_eq!(printable("two\nlines"), "two\nlines");
        assert_eq!(printable(r"C:\x already escaped"), r"C:\x already escaped");
        assert_eq!(printable("index \x1b[2J\r\u{9b}"), r"index \x1b[2J\r\u{9b}");
    }

    #[test]
    fn entry_names_exclude_separators_dots_and_nul() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert!(!RawName::from_bytes(bad.to_vec()).is_valid_entry_name());
        }
        assert!(RawName::from_bytes(b"...".to_vec()).is_valid_entry_name());
    }
}
