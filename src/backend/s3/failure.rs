//! Telling what became of a request from `object_store`'s error: an
//! answer of the server's, or a failure in transport (and whether the
//! server may have carried the request out), put in one line that names
//! the operation, the key and the answer.

use std::io;

use object_store::client::{HttpError, HttpErrorKind};

/// The kind of transport failure in `e`'s chain, if it is one (not an
/// answer of the server's).
pub(super) fn transport_failure(e: &object_store::Error) -> Option<HttpErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(inner) = source {
        if let Some(http) = inner.downcast_ref::<HttpError>() {
            return Some(http.kind());
        }
        source = inner.source();
    }
    None
}

/// Whether `e` is a request that was sent and then lost its answer (the
/// connection reset or timed out): the server may have carried it out.
/// `object_store` resends only requests it knows to be idempotent then.
pub(super) fn answer_lost(e: &object_store::Error) -> bool {
    matches!(
        transport_failure(e),
        Some(HttpErrorKind::Interrupted | HttpErrorKind::Timeout)
    )
}

/// Whether a listing's page was cut off while its body was read, which
/// `object_store` does not try again (it retries a request until its answer
/// begins; its error then says "list response body", as in 0.13: the test
/// `a_listing_cut_off_in_its_body_is_asked_for_again` holds it to that). A
/// listing changes nothing, so it can always be asked for again. A timeout
/// or a dropped connection before the answer it has retried already,
/// `--retries` times: resending those too multiplied them, and their waits.
pub(super) fn page_lost(e: &object_store::Error) -> bool {
    transport_failure(e).is_some() && e.to_string().contains("list response body")
}

/// A listing the server would never end: it handed back a continuation
/// token it gave before (a bug some S3-compatible servers have had, or a
/// hostile one), so the next page would be one already read.
pub(super) fn looping(prefix: &str, token: &str) -> io::Error {
    let token = crate::rawname::printable(token);
    io::Error::other(format!(
        "LIST {prefix}: the server gave the continuation token {token:?} twice; \
         its listing would never end"
    ))
}

/// What went wrong with one request: the operation, the key and the
/// server's answer, as one line.
///
/// A missing bucket is no missing object: its 404 (NoSuchBucket) is not
/// `NotFound`, so that nothing takes it for an object's absence (opening
/// the store took it for a missing `config.json`).
pub(super) fn failure(op: &str, key: &str, e: &object_store::Error) -> io::Error {
    let kind = match e {
        object_store::Error::NotFound { .. } if !is_missing_bucket(e) => io::ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            io::ErrorKind::AlreadyExists
        }
        _ => io::ErrorKind::Other,
    };
    let hint = match transport_failure(e) {
        Some(HttpErrorKind::Timeout) => " (it took longer than --request-timeout allows)",
        _ => "",
    };
    io::Error::new(kind, format!("{op} {key}: {}{hint}", answer(e)))
}

/// Whether the server answered that the bucket does not exist.
fn is_missing_bucket(e: &object_store::Error) -> bool {
    xml_field(&e.to_string(), "Code").is_some_and(|code| code == "NoSuchBucket")
}

/// The text of the first `<name>` element in `text` (an S3 error body).
fn xml_field(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].to_owned())
}

/// The server's answer in an `object_store` error, without the XML: its
/// status and the S3 error code and message when there are any.
pub(super) fn answer(e: &object_store::Error) -> String {
    let text = e.to_string();
    let field = |name: &str| xml_field(&text, name);
    let status = text.find("status code: ").map(|i| {
        text[i + 13..]
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    });
    match (status, field("Code"), field("Message")) {
        (Some(status), Some(code), Some(message)) => format!("{status} {code}: {message}"),
        (Some(status), _, _) => status,
        _ => text.lines().next().unwrap_or("").to_owned(),
    }
}
