//! The harness itself: the tree comparison every other test trusts must
//! catch each kind of difference, and the data generator must be seeded.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::panic;
use std::path::Path;

use common::*;

fn sample_tree(dir: &Path) {
    small_tree(dir, 1);
    make_symlink("a.txt", &dir.join("link"));
    set_mtime(&dir.join("a.txt"), 1_000_000_000, 500);
    set_mtime(&dir.join("sub"), 1_000_000_000, 600);
}

/// A named change to a copied tree.
type Mutation = (&'static str, fn(&Path));

#[test]
fn tree_comparison_catches_every_kind_of_difference() {
    let t = TestEnv::new();
    let a = t.path("a");
    sample_tree(&a);
    let b = t.path("b");
    copy_tree(&a, &b);
    assert_trees_equal(&a, &b);

    let mutations: [Mutation; 9] = [
        ("content", |d| {
            let (s, n) = mtime_of(&d.join("a.txt"));
            fs::write(d.join("a.txt"), b"a 2\n").unwrap();
            set_mtime(&d.join("a.txt"), s, n);
        }),
        ("file mtime", |d| {
            set_mtime(&d.join("a.txt"), 1_000_000_000, 501)
        }),
        ("dir mtime", |d| {
            set_mtime(&d.join("sub"), 1_000_000_000, 601)
        }),
        ("mode", |d| chmod(&d.join("sub/b.bin"), 0o600)),
        ("symlink target", |d| {
            let (s, n) = mtime_of(d);
            fs::remove_file(d.join("link")).unwrap();
            make_symlink("b.txt", &d.join("link"));
            set_mtime(d, s, n);
        }),
        ("extra entry", |d| write_file(&d.join("empty/new"), b"")),
        ("missing entry", |d| {
            fs::remove_dir(d.join("empty")).unwrap()
        }),
        ("kind", |d| {
            fs::remove_dir(d.join("empty")).unwrap();
            write_file(&d.join("empty"), b"");
        }),
        ("nested content", |d| {
            let (s, n) = mtime_of(&d.join("sub/b.bin"));
            let mut bytes = fs::read(d.join("sub/b.bin")).unwrap();
            bytes[69_999] ^= 1;
            fs::write(d.join("sub/b.bin"), bytes).unwrap();
            set_mtime(&d.join("sub/b.bin"), s, n);
        }),
    ];
    for (what, mutate) in mutations {
        let c = t.fresh_dir("copy");
        copy_tree(&a, &c);
        mutate(&c);
        let caught = panic::catch_unwind(|| assert_trees_equal(&a, &c)).is_err();
        assert!(caught, "a difference in {what} went unnoticed");
    }
}

#[test]
fn the_data_generator_is_deterministic_per_seed() {
    assert_eq!(random_bytes(1, 1001), random_bytes(1, 1001));
    assert_ne!(random_bytes(1, 64), random_bytes(2, 64));
    assert_eq!(random_bytes(0, 3).len(), 3);
    let t = TestEnv::new();
    write_random_file(&t.path("f"), 9, (2 << 20) + 5);
    assert_eq!(
        fs::read(t.path("f")).unwrap()[..1000],
        random_bytes(9, 1000)
    );
}
