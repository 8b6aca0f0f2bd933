//! Just enough HTTP/1.1 to find where each request ends: its head, and a
//! body framed by `Content-Length` or chunked. Responses are never parsed.

use std::io::{self, BufRead, Read, Write};

/// The longest request head the proxy accepts (S3 heads are a few KiB).
const MAX_HEAD: usize = 64 * 1024;

/// A request head as received, and what the proxy needs from it.
pub struct Head {
    /// The head as received, to forward unchanged.
    pub bytes: Vec<u8>,
    /// `GET`, `PUT`, ...
    pub method: String,
    /// `/bucket/key?query`.
    pub target: String,
    /// How the body is framed.
    pub body: Body,
}

/// How the request's body is framed.
#[derive(Clone, Copy)]
pub enum Body {
    /// `Content-Length` bytes (0 without the header).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl Body {
    /// Whether the body is known to be longer than `n` bytes (a chunked
    /// body's length is not known in advance: never cut).
    pub fn longer_than(self, n: u64) -> bool {
        matches!(self, Body::Length(len) if len > n)
    }
}

/// The next request head, or `None` when the client closed the connection
/// between requests.
pub fn read_head(from: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut bytes = Vec::new();
    loop {
        let start = bytes.len();
        if from.read_until(b'\n', &mut bytes)? == 0 {
            return match bytes.is_empty() {
                true => Ok(None),
                false => Err(invalid("connection closed inside a request head")),
            };
        }
        if bytes.len() > MAX_HEAD {
            return Err(invalid("request head too long"));
        }
        if matches!(&bytes[start..], b"\r\n" | b"\n") {
            return parse_head(bytes).map(Some);
        }
    }
}

fn parse_head(bytes: Vec<u8>) -> io::Result<Head> {
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut lines = text.lines();
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let mut body = Body::Length(0);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            let len = value.parse().map_err(|_| invalid("bad Content-Length"))?;
            body = Body::Length(len);
        } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
            body = Body::Chunked;
            break;
        }
    }
    Ok(Head {
        bytes,
        method,
        target,
        body,
    })
}

/// Copies exactly `n` bytes, failing if the source ends first.
pub fn copy_exact(from: &mut impl BufRead, to: &mut impl Write, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut from.take(n), to)?;
    match copied == n {
        true => to.flush(),
        false => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed inside a request body",
        )),
    }
}

/// Copies a chunked body, chunk by chunk, through its last chunk and trailer.
pub fn copy_chunked(from: &mut impl BufRead, to: &mut impl Write) -> io::Result<()> {
    loop {
        let mut line = Vec::new();
        from.read_until(b'\n', &mut line)?;
        to.write_all(&line)?;
        let text = String::from_utf8_lossy(&line);
        let size = text.trim().split(';').next().unwrap_or_default();
        let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            return copy_trailer(from, to);
        }
        copy_exact(from, to, size + 2)?;
    }
}

fn copy_trailer(from: &mut impl BufRead, to: &mut impl Write) -> io::Result<()> {
    loop {
        let mut line = Vec::new();
        if from.read_until(b'\n', &mut line)? == 0 {
            return Err(invalid("connection closed inside a chunked trailer"));
        }
        to.write_all(&line)?;
        if matches!(line.as_slice(), b"\r\n" | b"\n") {
            return to.flush();
        }
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}
