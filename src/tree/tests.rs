//! Tree encoding: golden bytes, round trips, and what decoding refuses.

use super::*;

pub(super) fn meta() -> Meta {
    Meta {
        mode: 0o644,
        uid: 1000,
        gid: 100,
        size: 3,
        mtime: Timespec {
            sec: 1_700_000_000,
            nsec: 5,
        },
        user: None,
        group: None,
        xattrs: Vec::new(),
    }
}

pub(super) fn file(name: &[u8]) -> Entry {
    Entry {
        name: RawName::from_bytes(name.to_vec()),
        meta: meta(),
        content: Content::File {
            chunks: vec![BlobId::of(b"abc")],
            change: ChangeKey {
                inode: 7,
                ctime: Some(Timespec { sec: 1, nsec: 2 }),
            },
            database: None,
            link: None,
            holes: Vec::new(),
        },
    }
}

/// A directory entry whose tree is `TreeId::of(b"t")`.
pub(super) fn dir(name: &[u8]) -> Entry {
    Entry {
        name: RawName::from_bytes(name.to_vec()),
        meta: meta(),
        content: Content::Dir {
            tree: TreeId::of(b"t"),
        },
    }
}

/// The database of the golden entries: page size 4096, a `-wal`.
pub(super) fn database_info() -> DatabaseInfo {
    DatabaseInfo {
        page_size: 4096,
        captured: Timespec { sec: 9, nsec: 1 },
        file_size: 2,
        wal: Some(SideFileKey {
            inode: 8,
            size: 32,
            mtime: Timespec { sec: 3, nsec: 4 },
        }),
    }
}

pub(super) fn link(name: &[u8], target: &[u8]) -> Entry {
    Entry {
        name: RawName::from_bytes(name.to_vec()),
        meta: meta(),
        content: Content::Symlink {
            target: RawName::from_bytes(target.to_vec()),
        },
    }
}

#[test]
fn the_same_entries_in_any_order_encode_to_the_same_bytes() {
    let a = Tree::new(vec![file(b"b"), file(b"a"), file(b"\xff")]);
    let b = Tree::new(vec![file(b"\xff"), file(b"a"), file(b"b")]);
    assert_eq!(a.encode(), b.encode());
    assert_eq!(Tree::decode(&a.encode()).unwrap(), a);
}

#[test]
fn golden_file_entry_json() {
    let tree = Tree::new(vec![file(b"a")]);
    let want = concat!(
        r#"{"entries":[{"name":"a","type":"file","mode":420,"uid":1000,"gid":100,"size":3,"#,
        r#""mtime":{"sec":1700000000,"nsec":5},"inode":7,"ctime":{"sec":1,"nsec":2},"#,
        r#""chunks":["6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"]}]}"#
    );
    assert_eq!(String::from_utf8(tree.encode_json()).unwrap(), want);
}

#[test]
fn golden_database_entry_json() {
    let mut entry = file(b"app.db");
    if let Content::File { database, .. } = &mut entry.content {
        *database = Some(database_info());
    }
    let tree = Tree::new(vec![entry]);
    let want = concat!(
        r#"{"entries":[{"name":"app.db","type":"file","mode":420,"uid":1000,"gid":100,"size":3,"#,
        r#""mtime":{"sec":1700000000,"nsec":5},"inode":7,"ctime":{"sec":1,"nsec":2},"#,
        r#""chunks":["6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"],"#,
        r#""sqlite":{"page_size":4096,"captured":{"sec":9,"nsec":1},"file_size":2,"#,
        r#""wal":{"inode":8,"size":32,"mtime":{"sec":3,"nsec":4}}}}]}"#
    );
    assert_eq!(String::from_utf8(tree.encode_json()).unwrap(), want);
    assert_eq!(Tree::decode(want.as_bytes()).unwrap(), tree);
    let bad = want.replace("4096", "4000");
    assert!(Tree::decode(bad.as_bytes()).is_err());
    // Every TIME's nanoseconds are below 10^9, the database's too.
    for time in [r#""sec":9,"nsec":1"#, r#""sec":3,"nsec":4"#] {
        let bad = want.replace(time, &time.replace(r#""nsec":"#, r#""nsec":100000000"#));
        assert!(Tree::decode(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn the_json_of_old_stores_and_the_binary_form_decode_to_the_same_tree() {
    let link = Entry {
        name: RawName::from_bytes(b"l\n\xfe".to_vec()),
        meta: meta(),
        content: Content::Symlink {
            target: RawName::from_bytes(b"../x".to_vec()),
        },
    };
    for entries in [vec![], vec![file(b"a")], vec![file(b"a"), link, file(b"z")]] {
        let tree = Tree::new(entries);
        assert_eq!(tree.encode_json(), serde_json::to_vec(&tree).unwrap());
        assert_eq!(Tree::decode(&tree.encode_json()).unwrap(), tree);
        assert_eq!(Tree::decode(&tree.encode()).unwrap(), tree);
        assert_eq!(Tree::decode_from(&tree.encode_json()[..], 0).unwrap(), tree);
    }
}

#[test]
fn a_streamed_tree_decodes_and_is_checked_as_one_in_memory() {
    let tree = Tree::new(vec![file(b"b"), file(b"a")]);
    let bytes = tree.encode();
    assert_eq!(Tree::decode_from(&bytes[..], 0).unwrap(), tree);
    let unsorted = Tree {
        entries: vec![file(b"b"), file(b"a")],
    };
    assert!(Tree::decode_from(&unsorted.encode()[..], 0).is_err());
    assert!(Tree::decode_from(&unsorted.encode_json()[..], 0).is_err());
    assert!(Tree::decode_from(&bytes[..bytes.len() - 1], 0).is_err());
    assert!(Tree::decode_from(&[&bytes[..], b"x"].concat()[..], 0).is_err());
}

#[test]
fn all_kinds_round_trip() {
    let dir = dir(b"d");
    let link = link(b"l", b"../\xfe");
    let tree = Tree::new(vec![link, dir, file(b"f")]);
    assert_eq!(Tree::decode(&tree.encode()).unwrap(), tree);
    assert!(tree.find(b"f").unwrap().chunks().is_some());
    assert!(tree.find(b"x").is_none());
}

#[test]
fn unsorted_duplicate_and_path_like_names_are_refused() {
    let dup = Tree {
        entries: vec![file(b"a"), file(b"a")],
    };
    assert!(matches!(
        Tree::decode(&dup.encode()),
        Err(TreeError::Unsorted(_))
    ));
    let unsorted = Tree {
        entries: vec![file(b"b"), file(b"a")],
    };
    assert!(Tree::decode(&unsorted.encode()).is_err());
    for bad in [&b".."[..], b"a/b", b""] {
        let t = Tree {
            entries: vec![file(bad)],
        };
        assert!(matches!(
            Tree::decode(&t.encode()),
            Err(TreeError::BadName(_))
        ));
    }
}

#[test]
fn a_file_without_chunks_or_a_dir_without_tree_is_refused() {
    let json = br#"{"entries":[{"name":"a","type":"dir","mode":0,"uid":0,"gid":0,"size":0,"mtime":{"sec":0,"nsec":0}}]}"#;
    assert!(Tree::decode(json).is_err());
    let json = br#"{"entries":[{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"size":0,"mtime":{"sec":0,"nsec":0},"inode":1}]}"#;
    assert!(Tree::decode(json).is_err());
}

#[test]
fn golden_entry_json_with_owner_names_link_holes_and_xattrs() {
    let mut entry = file(b"disk.img");
    entry.meta.size = 10;
    entry.meta.user = Some(RawName::from_bytes(b"alice".to_vec()));
    entry.meta.group = Some(RawName::from_bytes(b"staff".to_vec()));
    entry.meta.xattrs = vec![
        Xattr {
            name: RawName::from_bytes(b"system.posix_acl_access".to_vec()),
            value: RawName::from_bytes(vec![2, 0, 0, 0, 0xff]),
        },
        Xattr {
            name: RawName::from_bytes(b"user.mime".to_vec()),
            value: RawName::from_bytes(b"text/plain".to_vec()),
        },
    ];
    if let Content::File { link, holes, .. } = &mut entry.content {
        *link = Some(42);
        *holes = vec![Hole { offset: 0, len: 4 }, Hole { offset: 5, len: 3 }];
    }
    let tree = Tree::new(vec![entry]);
    let want = concat!(
        r#"{"entries":[{"name":"disk.img","type":"file","mode":420,"uid":1000,"gid":100,"#,
        r#""user":"alice","group":"staff","size":10,"mtime":{"sec":1700000000,"nsec":5},"#,
        r#""inode":7,"ctime":{"sec":1,"nsec":2},"link":42,"#,
        r#""chunks":["6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"],"#,
        r#""holes":[[0,4],[5,3]],"#,
        r#""xattrs":[{"name":"system.posix_acl_access","value":{"hex":"02000000ff"}},"#,
        r#"{"name":"user.mime","value":"text/plain"}]}]}"#
    );
    assert_eq!(String::from_utf8(tree.encode_json()).unwrap(), want);
    let back = Tree::decode(want.as_bytes()).unwrap();
    assert_eq!(back, tree);
    assert_eq!(back.entries[0].data_size(), 3);
    assert_eq!(back.entries[0].defect(), None);
}

#[test]
fn file_only_fields_on_other_kinds_and_unsorted_xattrs_are_refused() {
    let dir = r#"{"entries":[{"name":"d","type":"dir","mode":0,"uid":0,"gid":0,"size":0,"mtime":{"sec":0,"nsec":0},"tree":"6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"XX}]}"#;
    assert!(Tree::decode(dir.replace("XX", "").as_bytes()).is_ok());
    for extra in [r#","link":1"#, r#","holes":[[0,1]]"#] {
        assert!(
            Tree::decode(dir.replace("XX", extra).as_bytes()).is_err(),
            "{extra}"
        );
    }
    let xattrs = r#","xattrs":[{"name":"user.b","value":""},{"name":"user.a","value":""}]"#;
    assert!(Tree::decode(dir.replace("XX", xattrs).as_bytes()).is_err());
}

#[test]
fn holes_out_of_order_make_the_entry_defective_not_the_tree_unreadable() {
    let mut entry = file(b"f");
    if let Content::File { holes, .. } = &mut entry.content {
        *holes = vec![Hole { offset: 2, len: 1 }, Hole { offset: 0, len: 1 }];
    }
    let tree = Tree::decode(&Tree::new(vec![entry]).encode()).unwrap();
    assert!(tree.entries[0].defect().is_some());
}

#[test]
fn the_references_read_alone_are_those_of_the_full_decoding() {
    let mut big = file(b"\xffbig");
    big.meta.size = 1 << 40;
    big.meta.xattrs = vec![Xattr {
        name: RawName::from_bytes(b"user.k\"ey".to_vec()),
        value: RawName::from_bytes(vec![0, 1, 2]),
    }];
    if let Content::File { chunks, .. } = &mut big.content {
        *chunks = (0..50u8).map(|i| BlobId::of(&[i])).collect();
    }
    let dir = dir(b"d\\ir");
    let link = link(b"l", b"chunks");
    let tree = Tree::new(vec![file(b"a"), big, dir, link, file(b"z")]);
    for bytes in [tree.encode(), tree.encode_json()] {
        let want = TreeRefs::of(&Tree::decode(&bytes).unwrap());
        assert_eq!(want.chunks.len(), 52);
        assert_eq!(want.subtrees.len(), 1);
        assert_eq!(TreeRefs::decode(&bytes).unwrap(), want);
        assert_eq!(TreeRefs::decode_from(&bytes[..], 0).unwrap(), want);
    }
    assert_eq!(
        TreeRefs::decode(br#"{"entries":[]}"#).unwrap(),
        TreeRefs::default()
    );
}

#[test]
fn references_are_not_read_from_what_is_not_a_tree() {
    let bytes = Tree::new(vec![file(b"a")]).encode_json();
    let dir_without_tree = br#"{"entries":[{"name":"d","type":"dir","size":0}]}"#;
    let without_type = br#"{"entries":[{"name":"a","size":1,"chunks":[]}]}"#;
    let bad_id = br#"{"entries":[{"type":"file","chunks":["00"]}]}"#;
    let unknown_type = br#"{"entries":[{"type":"fifo"}]}"#;
    for bad in [
        &bytes[..bytes.len() - 1],
        &[&bytes[..], b"x"].concat()[..],
        br#"{"files":[]}"#,
        br#"[]"#,
        dir_without_tree,
        without_type,
        bad_id,
        unknown_type,
    ] {
        assert!(
            TreeRefs::decode(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
        assert!(TreeRefs::decode_from(bad, 0).is_err());
    }
}

#[test]
fn chunks_a_valid_tree_could_not_hold_are_still_references() {
    // Lenient where it can only keep more: a directory listing chunks is
    // refused by the full decoding, and its chunks are references here.
    let id = BlobId::of(b"abc");
    let json = format!(
        r#"{{"entries":[{{"name":"d","type":"dir","tree":"{}","chunks":["{id}"]}}]}}"#,
        TreeId::of(b"t")
    );
    assert!(Tree::decode(json.as_bytes()).is_err());
    assert_eq!(TreeRefs::decode(json.as_bytes()).unwrap().chunks, vec![id]);
    // A repeated type does not hide the subtree the entry names.
    let sub = TreeId::of(b"t");
    let json = format!(r#"{{"entries":[{{"type":"dir","tree":"{sub}","type":"file"}}]}}"#);
    assert!(Tree::decode(json.as_bytes()).is_err());
    assert_eq!(
        TreeRefs::decode(json.as_bytes()).unwrap().subtrees,
        vec![sub]
    );
}
