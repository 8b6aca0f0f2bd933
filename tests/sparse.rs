//! Sparse files through the real binary (#16): a snapshot reads only
//! their data (a 10 GiB file with 1 MiB of data), a restore and GNU tar
//! leave their holes unallocated, `restore --sparse` turns blocks of zeros
//! into holes, and `cat` gives the holes as zeros.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{self, Stdio};

use common::meta::*;
use common::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A 10 GiB file holding 512 KiB of random data at 1 GiB and at 9 GiB,
/// holes elsewhere; `false` (with the reason printed) where the file system
/// keeps no holes.
fn ten_gib_sparse(path: &Path) -> bool {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = File::create(path).unwrap();
    file.set_len(10 * GIB).unwrap();
    file.write_all_at(&random_bytes(1, MIB as usize / 2), GIB)
        .unwrap();
    file.write_all_at(&random_bytes(2, MIB as usize / 2), 9 * GIB)
        .unwrap();
    file.sync_all().unwrap();
    if allocated(path) > 2 * MIB {
        eprintln!("skipped: this file system allocated the holes of {path:?}");
        return false;
    }
    true
}

/// Asserts `b` has the size, the data regions and the data of `a`, and
/// no more space allocated (a block of slack per region).
fn assert_same_sparse_file(a: &Path, b: &Path) {
    assert_eq!(
        fs::metadata(a).unwrap().len(),
        fs::metadata(b).unwrap().len()
    );
    let map = data_map(a);
    assert_eq!(data_map(b), map, "{b:?}");
    let (fa, fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    for &(at, len) in &map {
        let (mut da, mut db) = (vec![0u8; len as usize], vec![0u8; len as usize]);
        fa.read_exact_at(&mut da, at).unwrap();
        fb.read_exact_at(&mut db, at).unwrap();
        assert!(da == db, "{b:?}: the data at {at} differs");
    }
    let slack = 4096 * (map.len() as u64 + 1);
    assert!(
        allocated(b) <= allocated(a) + slack,
        "{b:?}: {} bytes allocated, source {}",
        allocated(b),
        allocated(a)
    );
}

#[test]
fn a_10_gib_sparse_file_is_read_for_its_data_only_and_restores_sparse() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let image = src.join("vm.img");
    if !ten_gib_sparse(&image) {
        return;
    }
    settle();
    let snap = t.snapshot(&[&src], &[]);
    let data: u64 = data_map(&image).iter().map(|r| r.1).sum();
    assert_eq!(summary(&snap, "bytes_read"), data, "{snap}");
    assert!(data <= MIB + 8192);
    assert_eq!(summary(&snap, "total_bytes"), 10 * GIB);
    assert!(summary(&snap, "bytes_added_raw") < 2 * MIB, "{snap}");
    let target = t.restore(id(&snap));
    assert_same_sparse_file(&image, &restored(&target, &image));
    // The next snapshot takes it over unread, holes and all.
    let again = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&again, "bytes_read"), 0, "{again}");
    let target = t.restore(id(&again));
    assert_same_sparse_file(&image, &restored(&target, &image));
}

#[test]
fn a_sparse_file_in_a_tar_stream_is_its_data_and_gnu_tar_extracts_it_sparse() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let image = src.join("vm.img");
    if !ten_gib_sparse(&image) {
        return;
    }
    let snap = t.snapshot(&[&src], &[]);
    let out = t
        .cairn(["restore", id(&snap), "--tar", "-", "--include"])
        .arg(&image)
        .assert()
        .success();
    let stream = &out.get_output().stdout;
    assert!(
        (stream.len() as u64) < 2 * MIB,
        "a {}-byte stream",
        stream.len()
    );
    let extracted = t.fresh_dir("untarred");
    fs::create_dir_all(&extracted).unwrap();
    let mut tar = process::Command::new("tar")
        .args(["-x", "-f", "-", "-C"])
        .arg(&extracted)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tar.stdin.take().unwrap().write_all(stream).unwrap();
    let done = tar.wait_with_output().unwrap();
    assert!(done.status.success(), "tar -x: {}", stderr_of(&done));
    assert_same_sparse_file(&image, &restored(&extracted, &image));
}

#[test]
fn restore_sparse_leaves_the_zero_blocks_of_a_dense_file_unwritten() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let dense = src.join("dense.img");
    let mut bytes = random_bytes(3, 8 * MIB as usize);
    bytes[MIB as usize..7 * MIB as usize].fill(0);
    write_file(&dense, &bytes);
    File::open(&dense).unwrap().sync_all().unwrap();
    assert!(allocated(&dense) >= 8 * MIB, "the source is not dense");
    let snap = t.snapshot(&[&src], &[]);
    let plain = t.restore(id(&snap));
    assert!(allocated(&restored(&plain, &dense)) >= 8 * MIB);
    let sparse = t.fresh_dir("sparse");
    t.cairn(["restore", id(&snap), "--sparse", "--target"])
        .arg(&sparse)
        .assert()
        .success();
    let copy = restored(&sparse, &dense);
    assert_eq!(fs::read(&copy).unwrap(), bytes);
    assert!(
        allocated(&copy) <= 2 * MIB + 8192,
        "{} bytes allocated",
        allocated(&copy)
    );
}

#[test]
fn cat_gives_the_holes_of_a_sparse_file_as_zeros() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    let file = src.join("holes");
    fs::create_dir_all(&src).unwrap();
    let f = File::create(&file).unwrap();
    f.set_len(3 * MIB).unwrap();
    f.write_all_at(b"in the middle", MIB + 5).unwrap();
    let snap = t.snapshot(&[&src], &[]);
    let out = t.cairn(["cat", id(&snap)]).arg(&file).assert().success();
    assert!(out.get_output().stdout == fs::read(&file).unwrap());
}
