//! `Tree::decode` on arbitrary bytes. A tree that decodes must re-encode to
//! bytes that decode to the same tree and encode to the same bytes again
//! (the encoding is canonical: a tree's id is the hash of these bytes; a
//! binary tree, format 8, that decodes must be those very bytes), its
//! references read alone (`TreeRefs`) must be those of its entries, and
//! every entry must be found by name.

#![no_main]

use cairn::tree::{Tree, TreeRefs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = Tree::decode(data) else {
        return;
    };
    let encoded = tree.encode();
    let again = match Tree::decode(&encoded) {
        Ok(t) => t,
        Err(e) => panic!(
            "a decoded tree re-encodes to bytes that do not decode: {e}\n{}",
            String::from_utf8_lossy(&encoded)
        ),
    };
    assert_eq!(again, tree, "decode(encode(tree)) != tree");
    assert_eq!(again.encode(), encoded, "encoding is not stable");
    if data.first() == Some(&0xff) {
        assert_eq!(
            encoded, data,
            "a binary tree decoded from other bytes than its own"
        );
    }
    let refs = TreeRefs::decode(data).expect("a tree that decodes has references");
    assert_eq!(refs, TreeRefs::of(&tree), "references differ");
    for entry in &tree.entries {
        assert!(entry.name.is_valid_entry_name());
        let found = tree.find(entry.name.as_bytes());
        assert_eq!(found, Some(entry), "entry not found by its name");
    }
});
