//! Inner loops of a snapshot, measured with criterion:
//! `cargo bench --bench inner`. Ratios between these numbers, taken in one
//! run, say where the time of a capture goes; see benches/README.md.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use cairn::backend::Backend;
use cairn::catalog::Catalog;
use cairn::chunker::{self, ChunkerParams};
use cairn::compress::{self, Compressor};
use cairn::crypt::{MasterKey, Vault};
use cairn::id::BlobId;
use cairn::pack::writer::PublishedPack;
use cairn::pack::{BlobKind, PackEntry, PackWriter};
use cairn::rawname::RawName;
use cairn::tree::{ChangeKey, Content, Entry, Meta, Timespec, Tree, TreeRefs};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Half random, half text-like: roughly what a mixed tree compresses like.
fn mixed_data(len: usize) -> Vec<u8> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let words = b"the quick brown fox jumps over the lazy dog cairn snapshot pack ";
    (0..len)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if (i / 65536) % 2 == 0 {
                (seed >> 32) as u8
            } else {
                words[(seed % words.len() as u64) as usize]
            }
        })
        .collect()
}

fn chunking_and_hashing(c: &mut Criterion) {
    let data = mixed_data(32 << 20);
    let mut g = c.benchmark_group("chunk+hash");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("fastcdc 256K/1M/4M", |b| {
        b.iter(|| {
            chunker::chunks(&data[..], u64::MAX, &ChunkerParams::default())
                .map(|c| c.unwrap().len())
                .sum::<usize>()
        })
    });
    g.bench_function("blake3", |b| b.iter(|| blake3::hash(black_box(&data))));
    g.finish();
}

fn compression(c: &mut Criterion) {
    let chunk = mixed_data(1 << 20);
    let text = &chunk[65536..131072].repeat(16);
    let mut g = c.benchmark_group("zstd 1 MiB");
    g.throughput(Throughput::Bytes(1 << 20));
    for level in [1, 3] {
        for (name, data) in [("mixed", &chunk), ("text", text)] {
            g.bench_with_input(
                BenchmarkId::new(format!("compress {name}"), level),
                data,
                |b, d| b.iter(|| zstd::bulk::compress(d, level).unwrap()),
            );
            // What a capture does: compress, then decode and compare.
            let mut comp = Compressor::new(level).unwrap();
            g.bench_with_input(
                BenchmarkId::new(format!("compress+check {name}"), level),
                data,
                |b, d| b.iter(|| comp.encode(d.clone(), None).unwrap()),
            );
        }
    }
    let enc = Compressor::new(3)
        .unwrap()
        .encode(text.clone(), None)
        .unwrap();
    g.bench_function("decode+blake3 text (restore, verify)", |b| {
        b.iter(|| {
            let raw = compress::decode(enc.compression, &enc.bytes, text.len(), None).unwrap();
            BlobId::of(&raw)
        })
    });
    g.finish();
}

/// 4 KiB frames (a database's page runs, small files) with and without a
/// store dictionary trained from 1 MiB of their like (#21): compress and
/// check as a capture does, decode as a restore does.
fn small_frames(c: &mut Criterion) {
    let data = mixed_data(8 << 20);
    let frames: Vec<Vec<u8>> = data.chunks(4096).map(<[u8]>::to_vec).collect();
    let mut samples = compress::dictionary::Samples::default();
    for f in frames.iter().take(256) {
        samples.add(f);
    }
    let trained = samples.train().unwrap();
    let dictionary = compress::Dictionary::new(1, trained).unwrap();
    let mut g = c.benchmark_group("zstd 4 KiB frames");
    g.throughput(Throughput::Bytes(64 * 4096));
    for (name, dict) in [("plain", None), ("dictionary", Some(&dictionary))] {
        let mut comp = Compressor::new(3).unwrap();
        let batch = &frames[1024..1088];
        g.bench_function(format!("compress+check {name}"), |b| {
            b.iter(|| {
                for f in batch {
                    black_box(comp.encode(f.clone(), dict).unwrap());
                }
            })
        });
        let encoded: Vec<_> = batch
            .iter()
            .map(|f| comp.encode(f.clone(), dict).unwrap())
            .collect();
        g.bench_function(format!("decode {name}"), |b| {
            b.iter(|| {
                for e in &encoded {
                    black_box(compress::decode(e.compression, &e.bytes, 4096, dict).unwrap());
                }
            })
        });
    }
    g.finish();
}

/// What encryption adds per blob, next to what it costs to compress and
/// hash one (#18): keyed BLAKE3 and XChaCha20-Poly1305 over 1 MiB.
fn encryption(c: &mut Criterion) {
    let chunk = mixed_data(1 << 20);
    let vault = Vault::of(&MasterKey::from_bytes([7; 32]));
    let id = *BlobId::of(&chunk).as_bytes();
    let sealed = vault.seal_blob(0, &id, chunk.clone()).unwrap();
    let mut g = c.benchmark_group("encryption 1 MiB");
    g.throughput(Throughput::Bytes(1 << 20));
    g.bench_function("blake3", |b| b.iter(|| blake3::hash(black_box(&chunk))));
    g.bench_function("keyed blake3", |b| b.iter(|| vault.hash(black_box(&chunk))));
    g.bench_function("seal", |b| {
        b.iter(|| vault.seal_blob(0, &id, chunk.clone()).unwrap())
    });
    g.bench_function("open", |b| {
        b.iter(|| vault.open_blob(0, &id, black_box(&sealed)).unwrap())
    });
    g.finish();
}

fn pack_writing(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let backend = Backend::local(dir.path(), 0o600);
    let staging = cairn::store::Staging::new(dir.path().join("tmp"), 0o600);
    let blob = Compressor::new(3)
        .unwrap()
        .encode(mixed_data(1 << 20), None)
        .unwrap();
    let mut g = c.benchmark_group("pack");
    g.throughput(Throughput::Bytes(16 * blob.bytes.len() as u64));
    g.sample_size(10);
    g.bench_function("write+seal+publish 16 blobs", |b| {
        b.iter(|| {
            let mut w = PackWriter::create(&staging, BlobKind::Data, &Vault::plain()).unwrap();
            for i in 0..16u32 {
                w.add(BlobId::of(&i.to_le_bytes()), 1 << 20, &blob).unwrap();
            }
            w.seal().unwrap().publish(&backend).unwrap()
        })
    });
    g.finish();
}

fn catalog_lookups(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let per_pack = 1000u32;
    for p in 0..50u32 {
        let entries = (0..per_pack)
            .map(|i| PackEntry {
                kind: BlobKind::Data,
                id: BlobId::of(&(p * per_pack + i).to_le_bytes()),
                offset: u64::from(i) * 100,
                stored_len: 100,
                raw_len: 200,
                compression: cairn::compress::Compression::Zstd,
            })
            .collect();
        catalog
            .record_pack(&PublishedPack {
                id: cairn::id::PackId::of(&p.to_le_bytes()),
                kind: BlobKind::Data,
                entries,
                size: 0,
            })
            .unwrap();
    }
    let known = BlobId::of(&1234u32.to_le_bytes());
    let unknown = BlobId::of(b"not there");
    let mut g = c.benchmark_group("catalog 50k blobs");
    g.bench_function("contains known", |b| {
        b.iter(|| catalog.contains(&known).unwrap())
    });
    g.bench_function("contains unknown", |b| {
        b.iter(|| catalog.contains(&unknown).unwrap())
    });
    g.bench_function("locate known", |b| {
        b.iter(|| catalog.locate(&known).unwrap())
    });
    g.finish();
}

fn trees(c: &mut Criterion) {
    let entries: Vec<Entry> = (0..1000u32)
        .map(|i| Entry {
            name: RawName::from_bytes(format!("file-{i:05}.txt").into_bytes()),
            meta: Meta {
                mode: 0o644,
                uid: 1000,
                gid: 1000,
                size: u64::from(i) * 17,
                mtime: Timespec {
                    sec: 1_700_000_000 + i64::from(i),
                    nsec: i * 7,
                },
                ..Meta::default()
            },
            content: Content::File {
                chunks: vec![BlobId::of(&i.to_le_bytes())],
                change: ChangeKey {
                    inode: u64::from(i),
                    ctime: Some(Timespec { sec: 1, nsec: 1 }),
                },
                database: None,
                link: None,
                holes: Vec::new(),
            },
        })
        .collect();
    let tree = Tree::new(entries);
    let bytes = tree.encode();
    let json = tree.encode_json();
    let mut g = c.benchmark_group("tree 1000 entries");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("encode", |b| b.iter(|| tree.encode()));
    g.bench_function("decode", |b| {
        b.iter(|| Tree::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("refs", |b| {
        b.iter(|| TreeRefs::decode(black_box(&bytes)).unwrap())
    });
    // The form of format 1 to 7, still read from older stores' trees.
    g.bench_function("encode json", |b| b.iter(|| tree.encode_json()));
    g.bench_function("decode json", |b| {
        b.iter(|| Tree::decode(black_box(&json)).unwrap())
    });
    g.bench_function("refs json", |b| {
        b.iter(|| TreeRefs::decode(black_box(&json)).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    chunking_and_hashing,
    compression,
    small_frames,
    encryption,
    pack_writing,
    catalog_lookups,
    trees
);
criterion_main!(benches);
