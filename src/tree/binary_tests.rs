//! The binary form (format 8): golden bytes, and what decoding refuses.

use super::tests::{database_info, dir, file, link};
use super::*;

/// `Tree::new(vec![file(b"a")])` in the binary form, field by field as
/// store-format/tree.md lists them.
const GOLDEN_FILE: &str = concat!(
    "ff747201",     // magic
    "0161",         // name "a"
    "01",           // type file
    "08",           // flags: ctime
    "a403",         // mode 420
    "e807",         // uid 1000
    "64",           // gid 100
    "03",           // size 3
    "80c49fd50c05", // mtime 1700000000 (zigzag) . 5
    "07",           // inode 7
    "0202",         // ctime 1 (zigzag 2) . 2
    "01",           // one chunk
    "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
);

#[test]
fn golden_binary_file_entry() {
    let tree = Tree::new(vec![file(b"a")]);
    assert_eq!(hex::encode(tree.encode()), GOLDEN_FILE);
    let bytes = hex::decode(GOLDEN_FILE).unwrap();
    assert_eq!(Tree::decode(&bytes).unwrap(), tree);
}

/// An entry with every optional field: owner names, xattrs, ctime, link
/// group, holes and a database with its `-wal`.
fn everything() -> Entry {
    let mut entry = file(b"app.db");
    entry.meta.size = 10;
    entry.meta.mtime = Timespec { sec: -2, nsec: 0 };
    entry.meta.user = Some(RawName::from_bytes(b"al".to_vec()));
    entry.meta.group = Some(RawName::from_bytes(b"st".to_vec()));
    entry.meta.xattrs = vec![Xattr {
        name: RawName::from_bytes(b"user.m".to_vec()),
        value: RawName::from_bytes(vec![0xff]),
    }];
    if let Content::File {
        link,
        holes,
        database,
        ..
    } = &mut entry.content
    {
        *link = Some(0x0102_0304_0506_0708);
        *holes = vec![Hole { offset: 0, len: 4 }, Hole { offset: 5, len: 3 }];
        *database = Some(database_info());
    }
    entry
}

const GOLDEN_EVERYTHING: &str = concat!(
    "ff747201",
    "066170702e6462",   // name "app.db"
    "01",               // type file
    "7f",               // flags: user group xattrs ctime link holes sqlite
    "a403e807640a",     // mode, uid, gid, size 10
    "0300",             // mtime -2 (zigzag 3) . 0
    "02616c",           // user "al"
    "027374",           // group "st"
    "07",               // inode
    "0202",             // ctime
    "0807060504030201", // link group, little-endian
    "01",
    "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
    "02", /* holes */
    "0004",
    "0503",
    "8020",
    "1201",
    "02", // page size 4096, captured 9 . 1, file size 2
    "01",
    "08",
    "20",
    "0604", // wal: inode 8, size 32, mtime 3 . 4
    "01",
    "06757365722e6d",
    "01ff", // one xattr: "user.m" = ff
);

#[test]
fn golden_binary_entry_with_every_field() {
    let tree = Tree::new(vec![everything()]);
    assert_eq!(hex::encode(tree.encode()), GOLDEN_EVERYTHING);
    assert_eq!(Tree::decode(&tree.encode()).unwrap(), tree);
    let json = tree.encode_json();
    assert_eq!(Tree::decode(&json).unwrap(), tree);
}

#[test]
fn every_kind_round_trips_whole_and_streamed() {
    let tree = Tree::new(vec![
        everything(),
        dir(b"d"),
        link(b"l", b"../\xfe"),
        file(b"z"),
    ]);
    let bytes = tree.encode();
    assert_eq!(Tree::decode(&bytes).unwrap(), tree);
    assert_eq!(Tree::decode_from(&bytes[..], 0).unwrap(), tree);
    assert_eq!(
        Tree::decode(&Tree::default().encode()).unwrap(),
        Tree::default()
    );
}

#[test]
fn a_binary_tree_cut_short_or_with_bytes_after_it_is_refused() {
    let bytes = Tree::new(vec![everything(), dir(b"d"), link(b"l", b"x")]).encode();
    for end in 1..bytes.len() {
        let Ok(tree) = Tree::decode(&bytes[..end]) else {
            continue;
        };
        // Only a cut between entries decodes: to the entries before it.
        assert!(
            tree.entries.len() < 3,
            "a prefix of {end} bytes decoded whole"
        );
        assert_eq!(tree.encode(), bytes[..end], "{end}");
    }
    assert!(Tree::decode(&[&bytes[..], &[0]].concat()).is_err());
    assert!(Tree::decode_from(&[&bytes[..], &[1]].concat()[..], 0).is_err());
    assert!(TreeRefs::decode(&bytes[..bytes.len() - 1]).is_err());
}

/// `GOLDEN_FILE` with each `from` (hex, first match) replaced by its `to`.
fn golden_with(changes: &[(&str, &str)]) -> Vec<u8> {
    let mut text = GOLDEN_FILE.to_owned();
    for (from, to) in changes {
        let changed = text.replacen(from, to, 1);
        assert_ne!(changed, text, "{from} is not in the golden bytes");
        text = changed;
    }
    hex::decode(text).unwrap()
}

#[test]
fn non_canonical_and_impossible_binary_entries_are_refused() {
    let id_end = ("cd5bd9d85", "cd5bd9d8500");
    let cases: [&[(&str, &str)]; 10] = [
        &[("ff747201", "ff747202")],                   // an unknown form
        &[("0108a4", "018800a4")],                     // flags as a varint that is not minimal
        &[("0108a4", "01888000a4")],                   // ... a longer one
        &[("0108a4", "018801a4")],                     // an unknown flag bit (0x88)
        &[("0108a4", "0208a4")],                       // ctime on a directory
        &[("0108a4", "0408a4")],                       // an unknown type
        &[("0108a4", "0128a4"), id_end],               // holes flagged, a count of 0
        &[("640380c4", "64ffffffffffffffffff7f80c4")], // a size past 64 bits
        &[("a403", "8080808010")],                     // a mode past 32 bits
        &[("07020201", "07028094ebdc0301")],           // ctime nanoseconds of 10^9
    ];
    for changes in cases {
        let bytes = golden_with(changes);
        assert!(Tree::decode(&bytes).is_err(), "{changes:?}: decoded");
        assert!(Tree::decode_from(&bytes[..], 0).is_err(), "{changes:?}");
    }
    let names = [&b"."[..], b"..", b"a/b", b""];
    for name in names {
        let mut entry = file(b"a");
        entry.name = RawName::from_bytes(name.to_vec());
        assert!(
            Tree::decode(
                &Tree {
                    entries: vec![entry]
                }
                .encode()
            )
            .is_err()
        );
    }
    let unsorted = Tree {
        entries: vec![file(b"b"), file(b"a")],
    };
    assert!(Tree::decode(&unsorted.encode()).is_err());
}

#[test]
fn a_database_entry_with_a_bad_page_size_or_wal_marker_is_refused() {
    let bytes = Tree::new(vec![everything()]).encode();
    let text = hex::encode(&bytes);
    for (from, to) in [("8020120102", "a01f120102"), ("02010820", "02020820")] {
        let bad = text.replacen(from, to, 1);
        assert_ne!(bad, text, "{from}");
        assert!(Tree::decode(&hex::decode(bad).unwrap()).is_err(), "{to}");
    }
}

#[test]
fn any_byte_changed_decodes_to_an_error_or_to_a_tree_that_encodes_back() {
    let bytes = Tree::new(vec![everything(), dir(b"d"), link(b"l", b"x")]).encode();
    for at in 4..bytes.len() {
        for value in [0x00, 0x01, 0x7f, 0x80, 0xff, bytes[at] ^ 0x40] {
            let mut bad = bytes.clone();
            bad[at] = value;
            if let Ok(tree) = Tree::decode(&bad) {
                assert_eq!(
                    Tree::decode(&tree.encode()).unwrap(),
                    tree,
                    "{at}={value:#x}"
                );
            }
            let _ = TreeRefs::decode(&bad);
        }
    }
}

/// A reader that hands out one byte per read, as a slow stream may: the
/// magic, names and ids then cross every buffer refill.
struct OneByteAtATime<'a>(&'a [u8]);

impl std::io::Read for OneByteAtATime<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some((&first, rest)) = self.0.split_first() else {
            return Ok(0);
        };
        let Some(slot) = buf.first_mut() else {
            return Ok(0);
        };
        *slot = first;
        self.0 = rest;
        Ok(1)
    }
}

#[test]
fn a_tree_read_one_byte_at_a_time_decodes_as_from_its_bytes() {
    let long = link(b"long", &[b'x'; 300]);
    let tree = Tree::new(vec![everything(), dir(b"d"), long, file(b"z")]);
    for bytes in [tree.encode(), tree.encode_json()] {
        let slow = || OneByteAtATime(&bytes);
        assert_eq!(Tree::decode_from(slow(), bytes.len()).unwrap(), tree);
        assert_eq!(
            TreeRefs::decode_from(slow(), bytes.len()).unwrap(),
            TreeRefs::decode(&bytes).unwrap()
        );
        let cut = &bytes[..bytes.len() - 3];
        assert!(Tree::decode_from(OneByteAtATime(cut), 0).is_err());
    }
}

#[test]
fn a_later_binary_form_is_refused_as_such_whole_or_streamed() {
    let mut bytes = Tree::new(vec![file(b"a")]).encode();
    bytes[3] = 2;
    for err in [
        Tree::decode(&bytes).unwrap_err(),
        Tree::decode_from(&bytes[..], 0).unwrap_err(),
        TreeRefs::decode(&bytes).unwrap_err(),
    ] {
        assert!(err.to_string().contains("unknown tree form"), "{err}");
    }
}

#[test]
fn references_read_alone_skip_what_they_do_not_need_unchecked() {
    // As for JSON trees (refs.rs): prune and copy go on past values only
    // restore and verify refuse, here unsorted xattrs and nanoseconds of
    // 10^9 on a database's capture time.
    let mut entry = everything();
    entry.meta.xattrs = vec![
        Xattr {
            name: RawName::from_bytes(b"user.b".to_vec()),
            value: RawName::from_bytes(Vec::new()),
        },
        Xattr {
            name: RawName::from_bytes(b"user.a".to_vec()),
            value: RawName::from_bytes(Vec::new()),
        },
    ];
    if let Content::File {
        database: Some(db), ..
    } = &mut entry.content
    {
        db.captured.nsec = 1_000_000_000;
    }
    let bytes = Tree {
        entries: vec![entry, dir(b"d")],
    }
    .encode();
    assert!(Tree::decode(&bytes).is_err());
    let refs = TreeRefs::decode(&bytes).unwrap();
    assert_eq!((refs.chunks.len(), refs.subtrees.len()), (1, 1));
}
