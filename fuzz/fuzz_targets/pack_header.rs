//! Pack tails: `decode_trailer` then `decode_header`, the reader's
//! `read_header` on the same bytes written to a file, and `decode_blob` /
//! `check_stored` on every blob a valid header describes.
//!
//! Input: an 8-byte little-endian `extra`, then the last bytes of a pack.
//! The pack file the input stands for is `extra` zero bytes followed by those
//! bytes, so `extra` lets the fuzzer claim a file longer than the bytes it
//! gives (lengths in the trailer are checked against that claimed length).
//! Inputs shorter than 8 bytes are a whole file (`extra` = 0).
//!
//! The top bit of `extra` (no real file is 2^63 bytes long) asks the target
//! to reseal the input first: to write the BLAKE3 of the header the trailer
//! announces into the trailer, as a writer would. Without it the fuzzer could
//! never change a header entry and get past the checksum; with it, forged
//! lengths, offsets, kinds and compressions reach the entry checks and the
//! blob decoder. The seeds are whole packs (`extra` = 0, and resealed), and
//! pack tails with a matching `extra`.

#![no_main]

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cairn::backend::Backend;
use cairn::compress::Compression;
use cairn::id::{BlobId, PackId};
use cairn::pack::format::{self, ENTRY_LEN, FormatError, MAX_RAW_LEN, TRAILER_LEN};
use cairn::pack::{self, BlobLocation, PackEntry, reader};
use cairn::tree::Tree;
use libfuzzer_sys::fuzz_target;

/// What `reader::read_header` reads in its first read (`TAIL_READ` there).
const TAIL_READ: u64 = 16 * 1024;
/// Claimed files up to this much longer than the input are also written to a
/// (sparse) file and read through `reader::read_header`.
const MAX_FILE_EXTRA: u64 = 1 << 20;
/// Headers up to this size that lie (partly) before the given bytes are
/// built from the zero prefix; larger ones are only checked to be refused
/// for their size. Above `MAX_FILE_EXTRA` plus any input size.
const MAX_MATERIALISED_HEADER: u64 = 4 << 20;

/// The flag in `extra` that asks for the header checksum to be rewritten.
const RESEAL: u64 = 1 << 63;

fuzz_target!(|data: &[u8]| {
    let (extra, bytes) = match data.split_first_chunk::<8>() {
        Some((extra, rest)) => (u64::from_le_bytes(*extra), rest),
        None => (0, data),
    };
    let resealed;
    let bytes = if extra & RESEAL != 0 {
        resealed = reseal(bytes);
        &resealed[..]
    } else {
        bytes
    };
    let extra = (extra & !RESEAL).min(u64::MAX - bytes.len() as u64);
    let file_len = extra + bytes.len() as u64;

    let pure = decode_pure(bytes, extra, file_len);
    if extra <= MAX_FILE_EXTRA {
        let via_file = read_via_file(bytes, extra);
        match (&pure, &via_file) {
            (Ok(a), Ok((b, size))) => {
                assert_eq!(a, b, "codec and reader disagree on the entries");
                assert_eq!(*size, file_len);
            }
            (Err(_), Err(_)) => {}
            _ => panic!("codec and reader disagree: {pure:?} vs {via_file:?}"),
        }
    }
    if let (Ok(entries), 0) = (&pure, extra) {
        decode_blobs(bytes, entries);
    }
});

/// The bytes of `start..start + len` of the virtual file (`extra` zeros,
/// then `bytes`).
fn virtual_range(bytes: &[u8], extra: u64, start: u64, len: u64) -> Vec<u8> {
    let mut out = vec![0u8; len as usize];
    let end = start + len;
    let from = start.max(extra);
    let to = end.min(extra + bytes.len() as u64);
    if from < to {
        out[(from - start) as usize..(to - start) as usize]
            .copy_from_slice(&bytes[(from - extra) as usize..(to - extra) as usize]);
    }
    out
}

/// What `reader::read_header` does, with the file held in memory.
fn decode_pure(bytes: &[u8], extra: u64, file_len: u64) -> Result<Vec<PackEntry>, FormatError> {
    let tail_len = TAIL_READ.min(file_len);
    let tail = virtual_range(bytes, extra, file_len - tail_len, tail_len);
    let trailer = format::decode_trailer(&tail, file_len)?;

    let header_len = u64::from(trailer.header_len);
    assert!(
        header_len + TRAILER_LEN as u64 <= file_len,
        "header longer than the file accepted"
    );
    assert_eq!(
        header_len % ENTRY_LEN as u64,
        0,
        "partial header entry accepted"
    );
    let data_len = file_len - TRAILER_LEN as u64 - header_len;

    let header = if header_len + TRAILER_LEN as u64 <= tail.len() as u64 {
        let end = tail.len() - TRAILER_LEN;
        tail[end - header_len as usize..end].to_vec()
    } else if header_len <= MAX_MATERIALISED_HEADER {
        virtual_range(bytes, extra, data_len, header_len)
    } else {
        // Too large to build: the bytes at hand must be refused for their size.
        let short = &tail[..tail.len() - TRAILER_LEN];
        let err = format::decode_header(short, &trailer, data_len).unwrap_err();
        assert!(matches!(err, FormatError::HeaderSize { .. }), "{err:?}");
        return Err(err);
    };
    let entries = format::decode_header(&header, &trailer, data_len)?;

    // What a valid header guarantees.
    assert_eq!(entries.len() as u64, header_len / ENTRY_LEN as u64);
    let mut next = 0u64;
    for e in &entries {
        assert_eq!(e.offset, next, "blobs do not tile the data");
        assert!(e.raw_len <= MAX_RAW_LEN);
        if e.compression == Compression::None {
            assert_eq!(e.raw_len, e.stored_len);
        }
        next += u64::from(e.stored_len);
    }
    assert_eq!(next, data_len, "blobs do not end where the header starts");
    // And the tail is exactly what the writer would produce for these entries.
    let tail_start = data_len;
    let tail_bytes = virtual_range(bytes, extra, tail_start, file_len - tail_start);
    assert_eq!(
        format::encode_tail(&entries),
        tail_bytes,
        "re-encoded tail differs"
    );
    Ok(entries)
}

/// A scratch store directory for this process, holding one pack.
fn scratch() -> &'static (Backend, PackId) {
    static SCRATCH: OnceLock<(Backend, PackId)> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let root: PathBuf =
            std::env::temp_dir().join(format!("cairn-fuzz-pack-{}", std::process::id()));
        let backend = Backend::local(&root, 0o600);
        let id = PackId::from_bytes([0x5a; 32]);
        let path = root.join(pack::key(&id));
        fs::create_dir_all(path.parent().expect("a pack key has a directory"))
            .expect("create scratch store");
        (backend, id)
    })
}

/// `reader::read_header` on the virtual file, written sparsely to disk.
fn read_via_file(bytes: &[u8], extra: u64) -> Result<(Vec<PackEntry>, u64), pack::PackError> {
    let (backend, id) = scratch();
    let root = backend.local_root().expect("a local scratch store");
    let path = root.join(pack::key(id));
    let mut file = File::create(&path).expect("create scratch pack");
    file.seek(SeekFrom::Start(extra)).expect("seek");
    file.write_all(bytes).expect("write scratch pack");
    file.set_len(extra + bytes.len() as u64).expect("set_len");
    drop(file);
    reader::read_header(backend, id)
}

/// Every blob of a pack whose whole bytes are at hand: decoded (capped at its
/// raw length) and checked against its id, never a panic.
/// Blobs compressed with a store dictionary (compression 2) are skipped:
/// no store, so no dictionary, is at hand.
fn decode_blobs(file: &[u8], entries: &[PackEntry]) {
    let pack = PackId::of(file);
    let backend = Backend::local(Path::new("/nonexistent/cairn-fuzz-store"), 0o600);
    let plain = |e: &&PackEntry| !matches!(e.compression, Compression::Dictionary(_));
    for e in entries.iter().filter(plain) {
        let at = BlobLocation::in_pack(pack, e);
        let stored = &file[e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize];
        let checked = reader::check_stored(&backend, &e.id, &at, stored);
        match reader::decode_blob(&backend, &e.id, &at, stored.to_vec()) {
            Ok(raw) => {
                assert!(
                    checked.is_ok(),
                    "check_stored refused a blob decode_blob took"
                );
                assert_eq!(raw.len(), e.raw_len as usize);
                assert_eq!(BlobId::of(&raw), e.id);
                if e.kind == pack::BlobKind::Tree {
                    let _ = Tree::decode(&raw);
                }
            }
            Err(_) => assert!(
                checked.is_err(),
                "check_stored took a blob decode_blob refused"
            ),
        }
    }
}

/// `bytes` with the trailer's header hash set to the hash of the header it
/// announces, when that header lies within `bytes`.
fn reseal(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let len = out.len();
    if len >= TRAILER_LEN {
        let t = len - TRAILER_LEN;
        let header_len = u32::from_le_bytes([out[t], out[t + 1], out[t + 2], out[t + 3]]) as usize;
        if header_len <= t {
            let hash = BlobId::of(&out[t - header_len..t]);
            out[t + 8..t + 40].copy_from_slice(hash.as_bytes());
        }
    }
    out
}
