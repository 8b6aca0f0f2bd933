//! What a tree references, read without decoding its entries: for walks
//! that need only the blobs and subtrees a tree names and what its entries
//! count (prune's marking, copy's), not names or metadata. A binary tree
//! (format 8) is read by `binary::decode_refs`, as leniently as described
//! below (the values it skips are not checked); the rest of this module
//! reads the JSON of versions 1 to 7.
//!
//! Decoding every entry in full was 54% of a prune of 200k small files:
//! names, times and ids become owned values only to be dropped. Here the
//! fields a walk does not need are skipped unparsed, and the chunk ids of
//! all files go into one vector.
//!
//! This reading is more lenient than [`Tree::decode`](super::Tree::decode):
//! it does not check names, their order or which fields each type allows,
//! so prune and copy go on past a tree that decodes here but that restore
//! and verify refuse (unsorted or path-like names, a repeated key), where
//! they refused before. For marking that is safe: every field the full
//! decoding reads as a reference is read here the same way, and a field a
//! valid tree cannot hold only makes more blobs live (a blob is kept, and
//! copied, whenever any reading of the tree names it). Whether a tree is
//! valid is verify's question. The other way round, an entry written as a
//! JSON array (which serde's derive accepts and cairn never writes) is
//! refused here: prune and copy then stop, as for a tree that does not
//! read.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::TreeError;
use crate::id::{BlobId, TreeId};

/// The references of one tree.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TreeRefs {
    /// The chunks of every file, in entry order.
    pub chunks: Vec<BlobId>,
    /// The trees its entries name, in entry order: its subdirectories'
    /// (and a `tree` on an entry of another type, which no valid tree has).
    pub subtrees: Vec<TreeId>,
}

impl TreeRefs {
    /// The references of a tree decoded whole: what reading them alone
    /// must give for the same bytes (the fuzzers and tests check it).
    pub fn of(tree: &super::Tree) -> Self {
        let mut refs = Self::default();
        for entry in &tree.entries {
            refs.chunks
                .extend_from_slice(entry.chunks().unwrap_or_default());
            refs.subtrees.extend(entry.subtree());
        }
        refs
    }

    /// The references in tree bytes read from the store, in either form.
    pub fn decode(bytes: &[u8]) -> Result<Self, TreeError> {
        let mut rest = bytes;
        if super::is_binary(&mut rest)? {
            return super::binary::decode_refs(rest, rest.len()).map_err(TreeError::Binary);
        }
        let mut refs = Self::default();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        TreeSeed(&mut refs).deserialize(&mut de)?;
        de.end()?;
        Ok(refs)
    }

    /// [`TreeRefs::decode`] from a stream of `len` bytes.
    pub fn decode_from(reader: impl std::io::Read, len: usize) -> Result<Self, TreeError> {
        let mut reader = std::io::BufReader::with_capacity(1 << 16, reader);
        if super::is_binary(&mut reader)? {
            return super::binary::decode_refs(reader, len).map_err(TreeError::Binary);
        }
        let mut refs = Self::default();
        let mut de = serde_json::Deserializer::from_reader(reader);
        TreeSeed(&mut refs).deserialize(&mut de)?;
        de.end()?;
        Ok(refs)
    }
}

impl EntryFields {
    /// Refuses what no reading of a tree accepts: an entry without a type,
    /// a directory without a tree (its references are in the refs already).
    fn check(&self) -> Result<(), &'static str> {
        match self.kind {
            None => Err("an entry without a type"),
            Some(Kind::Dir) if !self.has_tree => Err("a directory without a tree"),
            Some(_) => Ok(()),
        }
    }
}

/// An entry's type, as the full decoding names it.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Kind {
    File,
    Dir,
    Symlink,
}

/// The keys read; every other one is skipped.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Key {
    Entries,
    Type,
    Chunks,
    Tree,
    #[serde(other)]
    Other,
}

/// What one entry said besides its references (those go straight to the
/// refs, whatever its type says, and every time a key repeats: a tree that
/// names a blob in any way keeps it).
#[derive(Default)]
struct EntryFields {
    kind: Option<Kind>,
    has_tree: bool,
}

/// The tree object: `{"entries":[...]}`.
struct TreeSeed<'a>(&'a mut TreeRefs);

impl<'de> DeserializeSeed<'de> for TreeSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TreeSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tree object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Entries => {
                    map.next_value_seed(EntriesSeed(&mut *self.0))?;
                    seen = true;
                }
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        seen.then_some(())
            .ok_or_else(|| de::Error::missing_field("entries"))
    }
}

/// The entries array, each entry checked as it is read.
struct EntriesSeed<'a>(&'a mut TreeRefs);

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of entries")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(entry) = seq.next_element_seed(EntrySeed(&mut *self.0))? {
            entry.check().map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

/// One entry: its chunks and subtree added to the refs, the rest returned.
struct EntrySeed<'a>(&'a mut TreeRefs);

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = EntryFields;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<EntryFields, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = EntryFields;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tree entry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EntryFields, A::Error> {
        let mut fields = EntryFields::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type => fields.kind = Some(map.next_value()?),
                Key::Tree => {
                    let tree: Option<TreeId> = map.next_value()?;
                    fields.has_tree |= tree.is_some();
                    self.0.subtrees.extend(tree);
                }
                Key::Chunks => map.next_value_seed(ChunksSeed(&mut self.0.chunks))?,
                Key::Entries | Key::Other => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(fields)
    }
}

/// A file's chunk ids (or `null`), appended where they are wanted.
struct ChunksSeed<'a>(&'a mut Vec<BlobId>);

impl<'de> DeserializeSeed<'de> for ChunksSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ChunksSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of chunk ids")
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(id) = seq.next_element()? {
            self.0.push(id);
        }
        Ok(())
    }
}
