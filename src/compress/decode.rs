//! Decoding stored blobs: zstd frames (with the store's dictionary when
//! they name one) or stored bytes, into exactly their recorded length,
//! without letting hostile bytes make the reader allocate much beyond it.

use std::cell::RefCell;
use std::io::{self, Read};

use zstd::zstd_safe::{DCtx, DParameter, ResetDirective};

use super::{Compression, Dictionary, zstd_io};

/// Why stored bytes did not decode to `raw_len` bytes.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The zstd frame is damaged.
    #[error("zstd frame does not decode: {0}")]
    Zstd(io::Error),
    /// The frame needs a store dictionary the caller did not have.
    #[error("it needs dictionaries/{0}, which was not given")]
    NoDictionary(u16),
    /// The output length is not the recorded one.
    #[error("decoded to {got} bytes where {want} were recorded")]
    Length {
        /// Recorded raw length.
        want: usize,
        /// Bytes produced (capped at `want + 1`).
        got: usize,
    },
}

/// Largest initial output buffer: beyond this the buffer grows only as real
/// output arrives, so a forged raw length cannot make us allocate gigabytes.
const MAX_PREALLOC: usize = 16 << 20;

/// Like [`decode`], taking the stored bytes by value so that an uncompressed
/// blob is returned without a copy.
pub fn decode_owned(
    compression: Compression,
    stored: Vec<u8>,
    raw_len: usize,
    dictionary: Option<&Dictionary>,
) -> Result<Vec<u8>, DecodeError> {
    match compression {
        Compression::None if stored.len() == raw_len => Ok(stored),
        _ => decode(compression, &stored, raw_len, dictionary),
    }
}

thread_local! {
    /// One zstd decompression context per thread, reused: creating one per
    /// blob was a quarter of the time of reading small blobs back.
    static DCTX: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's zstd decompression context, made on first
/// use and reset.
fn with_context<T>(
    f: impl FnOnce(&mut DCtx<'static>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        let ctx = match &mut *slot {
            Some(ctx) => ctx,
            None => slot.insert(DCtx::try_create().ok_or_else(|| {
                DecodeError::Zstd(io::Error::other("cannot allocate a zstd context"))
            })?),
        };
        // A decode that failed half way leaves state behind: start clean.
        ctx.reset(ResetDirective::SessionOnly)
            .map_err(|code| DecodeError::Zstd(zstd_io(code)))?;
        f(ctx)
    })
}

/// Decodes one zstd blob, streaming, into at most `raw_len + 1` bytes:
/// the output grows by at most [`MAX_PREALLOC`] at a time, never by
/// doubling, and the frame may not declare a window larger than the blob
/// needs (cairn's frames are single-segment: their window is their size),
/// so hostile bytes cannot make the reader allocate much beyond `raw_len`.
fn zstd_decode(
    stored: &[u8],
    raw_len: usize,
    dictionary: Option<&Dictionary>,
) -> Result<Vec<u8>, DecodeError> {
    with_context(|ctx| {
        if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(stored)
            && raw_len <= MAX_PREALLOC
        {
            return decode_in_one_go(ctx, stored, declared, raw_len, dictionary);
        }
        if dictionary.is_some() {
            let mut reader = decoder_of(stored, raw_len, dictionary)?;
            return read_at_most(&mut reader, raw_len + 1);
        }
        ctx.set_parameter(DParameter::WindowLogMax(window_log_for(raw_len)))
            .map_err(|code| DecodeError::Zstd(zstd_io(code)))?;
        let mut reader = zstd::stream::read::Decoder::with_context(stored, ctx);
        read_at_most(&mut reader, raw_len + 1)
    })
}

/// Decodes a frame that declares its size (every frame cairn writes) in one
/// call into a buffer of exactly `raw_len`, which zstd never writes beyond:
/// no streaming window, no zeroing of the output first. Streaming through
/// a zero-filled buffer was a fifth of the CPU time of a restore.
fn decode_in_one_go(
    ctx: &mut DCtx<'static>,
    stored: &[u8],
    declared: u64,
    raw_len: usize,
    dictionary: Option<&Dictionary>,
) -> Result<Vec<u8>, DecodeError> {
    if declared != raw_len as u64 {
        return Err(DecodeError::Length {
            want: raw_len,
            got: declared.min(raw_len as u64 + 1) as usize,
        });
    }
    let mut out = Vec::new();
    out.try_reserve_exact(raw_len)
        .map_err(|e| DecodeError::Zstd(io::Error::other(e.to_string())))?;
    match dictionary {
        Some(d) => ctx.decompress_using_ddict(&mut out, stored, d.decoder().as_ddict()),
        None => ctx.decompress(&mut out, stored),
    }
    .map_err(|code| DecodeError::Zstd(zstd_io(code)))?;
    Ok(out)
}

/// The largest window log a frame of `raw_len` bytes may declare: enough
/// for its size with one step of slack, at least zstd's minimum (10).
pub(super) fn window_log_for(raw_len: usize) -> u32 {
    let bits = usize::BITS - raw_len.saturating_sub(1).leading_zeros();
    (bits + 1).clamp(10, 31)
}

/// Reads up to `limit` bytes, growing the buffer linearly.
fn read_at_most(reader: &mut impl Read, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out: Vec<u8> = Vec::new();
    loop {
        if out.len() == limit {
            return Ok(out);
        }
        let filled = out.len();
        let step = (limit - filled).min(MAX_PREALLOC);
        out.resize(filled + step, 0);
        let n = reader.read(&mut out[filled..]).map_err(DecodeError::Zstd)?;
        out.truncate(filled + n);
        if n == 0 {
            return Ok(out);
        }
    }
}

/// A reader of the decoded bytes of a blob stored as `stored`, for blobs
/// too large to decode whole beside what is made of them. A zstd frame may
/// not declare a window larger than `raw_len` needs (as in [`decode`]);
/// the caller counts the bytes and checks their hash.
pub fn decoder<'a>(
    compression: Compression,
    stored: &'a [u8],
    raw_len: usize,
    dictionary: Option<&'a Dictionary>,
) -> Result<Box<dyn Read + 'a>, DecodeError> {
    match compression {
        Compression::None => Ok(Box::new(stored)),
        Compression::Zstd => Ok(Box::new(decoder_of(stored, raw_len, None)?)),
        Compression::Dictionary(n) => {
            let dictionary = dictionary.ok_or(DecodeError::NoDictionary(n))?;
            Ok(Box::new(decoder_of(stored, raw_len, Some(dictionary))?))
        }
    }
}

/// A streaming reader of one zstd frame, its window capped for `raw_len`.
fn decoder_of<'a>(
    stored: &'a [u8],
    raw_len: usize,
    dictionary: Option<&'a Dictionary>,
) -> Result<zstd::stream::read::Decoder<'a, &'a [u8]>, DecodeError> {
    let mut decoder = frame_reader(stored, dictionary).map_err(DecodeError::Zstd)?;
    decoder
        .window_log_max(window_log_for(raw_len))
        .map_err(DecodeError::Zstd)?;
    Ok(decoder)
}

/// A streaming reader of one zstd frame, primed with `dictionary` if given.
pub(super) fn frame_reader<'a>(
    stored: &'a [u8],
    dictionary: Option<&'a Dictionary>,
) -> io::Result<zstd::stream::read::Decoder<'a, &'a [u8]>> {
    match dictionary {
        Some(d) => zstd::stream::read::Decoder::with_prepared_dictionary(stored, d.decoder()),
        None => zstd::stream::read::Decoder::with_buffer(stored),
    }
}

/// Decodes stored bytes into exactly `raw_len` bytes; `dictionary` must be
/// the one a [`Compression::Dictionary`] names.
pub fn decode(
    compression: Compression,
    stored: &[u8],
    raw_len: usize,
    dictionary: Option<&Dictionary>,
) -> Result<Vec<u8>, DecodeError> {
    let out = match compression {
        Compression::None => stored.to_vec(),
        Compression::Zstd => zstd_decode(stored, raw_len, None)?,
        Compression::Dictionary(n) => {
            let dictionary = dictionary.ok_or(DecodeError::NoDictionary(n))?;
            zstd_decode(stored, raw_len, Some(dictionary))?
        }
    };
    if out.len() == raw_len {
        Ok(out)
    } else {
        Err(DecodeError::Length {
            want: raw_len,
            got: out.len(),
        })
    }
}

/// Decodes stored bytes into `out`, which must be exactly the recorded raw
/// length: a restore decodes the blobs of a run side by side into one
/// buffer, written with one call, instead of allocating and copying each
/// (10% of the CPU time of restoring a database of 4 KiB page runs).
pub fn decode_into(
    compression: Compression,
    stored: &[u8],
    out: &mut [u8],
    dictionary: Option<&Dictionary>,
) -> Result<(), DecodeError> {
    let dictionary = match compression {
        Compression::None => return copy_exactly(stored, out),
        Compression::Zstd => None,
        Compression::Dictionary(n) => Some(dictionary.ok_or(DecodeError::NoDictionary(n))?),
    };
    match zstd::zstd_safe::get_frame_content_size(stored) {
        Ok(Some(declared)) if declared == out.len() as u64 => {
            with_context(|ctx| decompress_into(ctx, stored, out, dictionary))
        }
        // A frame that does not declare its size, or another one: decoded
        // as a single blob is, whose checks say what is wrong with it.
        _ => copy_exactly(&decode(compression, stored, out.len(), dictionary)?, out),
    }
}

/// Decompresses a frame that declares `out.len()` bytes into `out`.
fn decompress_into(
    ctx: &mut DCtx<'static>,
    stored: &[u8],
    out: &mut [u8],
    dictionary: Option<&Dictionary>,
) -> Result<(), DecodeError> {
    let written = match dictionary {
        Some(d) => ctx.decompress_using_ddict(out, stored, d.decoder().as_ddict()),
        None => ctx.decompress(out, stored),
    }
    .map_err(|code| DecodeError::Zstd(zstd_io(code)))?;
    if written == out.len() {
        Ok(())
    } else {
        Err(DecodeError::Length {
            want: out.len(),
            got: written,
        })
    }
}

/// Copies `from` into `out` if it is exactly as long.
fn copy_exactly(from: &[u8], out: &mut [u8]) -> Result<(), DecodeError> {
    if from.len() != out.len() {
        return Err(DecodeError::Length {
            want: out.len(),
            got: from.len(),
        });
    }
    out.copy_from_slice(from);
    Ok(())
}
