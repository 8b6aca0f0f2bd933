//! What the fault proxy answers in place of the server: S3's refusals
//! (`503 Slow Down`, `409 Conflict`), and a request carried out whose
//! answer is lost to a reset.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use super::Shared;
use super::http::{Body, Head, copy_chunked, copy_exact};

/// An error answer of S3's: status line, error code, message.
#[derive(Clone, Copy)]
pub(super) struct Refusal {
    status: &'static str,
    code: &'static str,
    message: &'static str,
}

pub(super) const SLOW_DOWN: Refusal = Refusal {
    status: "503 Slow Down",
    code: "SlowDown",
    message: "Please reduce your request rate.",
};

pub(super) const CONFLICT: Refusal = Refusal {
    status: "409 Conflict",
    code: "ConditionalRequestConflict",
    message: "A conflicting conditional operation is currently in progress against this resource.",
};

/// Reads the request's body (a client may not read an answer before it has
/// sent everything) and answers with `refusal` as S3 does, closing.
pub(super) fn refuse(
    head: &Head,
    requests: &mut BufReader<TcpStream>,
    client: &TcpStream,
    refusal: Refusal,
) -> io::Result<()> {
    let Refusal {
        status,
        code,
        message,
    } = refusal;
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message></Error>"
    );
    answer(head, requests, client, status, &body)
}

/// Answers a listing with a page that says more follows, under a token it
/// gives every time: a server whose pagination runs in a loop.
pub(super) fn list_in_a_loop(
    head: &Head,
    requests: &mut BufReader<TcpStream>,
    client: &TcpStream,
) -> io::Result<()> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
        <ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
        <Name>bucket</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>\
        <IsTruncated>true</IsTruncated><NextContinuationToken>again</NextContinuationToken>\
        </ListBucketResult>";
    answer(head, requests, client, "200 OK", body)
}

/// Reads the request's body and answers `status` with the XML `body`,
/// closing.
fn answer(
    head: &Head,
    requests: &mut BufReader<TcpStream>,
    client: &TcpStream,
    status: &str,
    body: &str,
) -> io::Result<()> {
    match head.body {
        Body::Length(n) => copy_exact(requests, &mut io::sink(), n)?,
        Body::Chunked => copy_chunked(requests, &mut io::sink())?,
    }
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut client = client;
    client.write_all(answer.as_bytes())?;
    client.flush()?;
    client.shutdown(Shutdown::Write)
}

/// Sends the request whole to the server on a connection of its own and
/// passes on the first `after_bytes` bytes of its answer only.
pub(super) fn cut_answer(
    head: &Head,
    requests: &mut BufReader<TcpStream>,
    client: &TcpStream,
    shared: &Shared,
    after_bytes: usize,
) -> io::Result<()> {
    let mut up = send_upstream(head, requests, shared)?;
    let mut answer = vec![0u8; after_bytes];
    up.read_exact(&mut answer)?;
    let mut client = client;
    client.write_all(&answer)?;
    client.flush()
}

/// Sends the request whole to the server on a connection of its own and
/// waits until the server has answered (the request took effect), without
/// passing the answer on.
pub(super) fn lose_answer(
    head: &Head,
    requests: &mut BufReader<TcpStream>,
    shared: &Shared,
) -> io::Result<()> {
    let mut up = send_upstream(head, requests, shared)?;
    let mut first = [0u8; 1];
    up.read_exact(&mut first)
}

/// Makes the client's connection end with a reset (no orderly end) when
/// its last descriptor is closed, as a server or middlebox does when it
/// drops a connection with data unread.
pub(super) fn reset_on_close(client: &TcpStream) {
    let _ = socket2::SockRef::from(client).set_linger(Some(Duration::ZERO));
}

/// Sends the request whole to the server on a connection of its own.
fn send_upstream(
    head: &Head,
    requests: &mut BufReader<TcpStream>,
    shared: &Shared,
) -> io::Result<TcpStream> {
    let mut up = TcpStream::connect(shared.upstream)?;
    up.write_all(&head.bytes)?;
    match head.body {
        Body::Length(n) => copy_exact(requests, &mut up, n)?,
        Body::Chunked => copy_chunked(requests, &mut up)?,
    }
    Ok(up)
}
