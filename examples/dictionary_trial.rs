//! How much a store dictionary changes small frames, and what training
//! costs, on real data (#21): a database file cut into 4 KiB page runs, or
//! a directory's files, each compressed alone as a capture does (with the
//! round-trip check), without a dictionary and with one trained from the
//! first N KiB of them for several N.
//!
//! cargo run --release --example dictionary_trial -- pages app.db
//! cargo run --release --example dictionary_trial -- files DIR
//! cargo run --release --example dictionary_trial -- sizes DIR
//!
//! `sizes` trains on the first 1 MiB of DIR's files of at most 64 KiB and
//! compares by file size, to choose which blobs use the dictionary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

use cairn::compress::dictionary::Samples;
use cairn::compress::{self, Compressor, Dictionary};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(kind), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: dictionary_trial pages FILE | files DIR");
        std::process::exit(2);
    };
    let blobs = match kind.as_str() {
        "pages" => std::fs::read(path)
            .unwrap()
            .chunks(4096)
            .map(<[u8]>::to_vec)
            .collect(),
        _ => files_under(Path::new(path)),
    };
    if kind == "sizes" {
        return by_size(blobs);
    }
    let total: usize = blobs.iter().map(Vec::len).sum();
    println!("{} blobs, {total} bytes", blobs.len());
    trial("no dictionary", &blobs, None, 0.0);
    for budget_kib in [256usize, 1024, 4096] {
        let mut samples = Samples::default();
        let mut gathered = 0;
        for b in &blobs {
            if gathered >= budget_kib << 10 {
                break;
            }
            samples.add(b);
            gathered += b.len();
        }
        let started = Instant::now();
        let trained = samples.train().unwrap();
        let secs = started.elapsed().as_secs_f64();
        let dictionary = Dictionary::new(1, trained).unwrap();
        trial(
            &format!("{budget_kib} KiB samples"),
            &blobs,
            Some(&dictionary),
            secs,
        );
    }
}

/// Files of up to 64 KiB in size classes, without and with a dictionary
/// trained from the first 1 MiB of them.
fn by_size(blobs: Vec<Vec<u8>>) {
    let blobs: Vec<Vec<u8>> = blobs
        .into_iter()
        .filter(|b| !b.is_empty() && b.len() <= 64 << 10)
        .collect();
    let mut samples = Samples::default();
    for b in &blobs {
        if samples.add(b) {
            break;
        }
    }
    let dictionary = Dictionary::new(1, samples.train().unwrap()).unwrap();
    for (lo, hi) in [
        (1, 4 << 10),
        (4 << 10, 8 << 10),
        (8 << 10, 16 << 10),
        (16 << 10, 32 << 10),
        (32 << 10, 64 << 10),
    ] {
        let class: Vec<Vec<u8>> = blobs
            .iter()
            .filter(|b| b.len() > lo && b.len() <= hi)
            .cloned()
            .collect();
        println!("files of {lo}..={hi} bytes: {}", class.len());
        trial("  no dictionary", &class, None, 0.0);
        trial("  dictionary", &class, Some(&dictionary), 0.0);
    }
}

fn trial(name: &str, blobs: &[Vec<u8>], dictionary: Option<&Dictionary>, train_secs: f64) {
    let mut compressor = Compressor::new(3).unwrap();
    let started = Instant::now();
    let encoded: Vec<_> = blobs
        .iter()
        .map(|b| compressor.encode(b.clone(), dictionary).unwrap())
        .collect();
    let compress_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for (e, b) in encoded.iter().zip(blobs) {
        compress::decode(e.compression, &e.bytes, b.len(), dictionary).unwrap();
    }
    let decode_secs = started.elapsed().as_secs_f64();
    let stored: usize = encoded.iter().map(|e| e.bytes.len()).sum();
    let dict_len = dictionary.map_or(0, |d| d.bytes().len());
    println!(
        "{name:>18}: dictionary {dict_len:>6} B, train {train_secs:.3} s, stored {stored:>10} B, compress+check {compress_secs:.3} s, decode {decode_secs:.3} s"
    );
}

fn files_under(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                paths.push(p);
            }
        }
    }
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}
