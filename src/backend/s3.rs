//! A store in S3-compatible object storage, through the `object_store`
//! crate (Apache Arrow): the same few operations as a local directory.
//!
//! Endpoint, region and credentials come from the standard AWS environment
//! variables exactly as `AmazonS3Builder::from_env` reads them
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`, ...), with
//! the instance, container and web-identity credentials it falls back to.
//!
//! cairn is synchronous (threads, rayon); each call here blocks its thread
//! on a small tokio runtime, and a semaphore bounds the requests in flight
//! across all threads (`--connections`). Transient failures (timeouts, 5xx,
//! dropped connections) are retried by `object_store` with backoff, up to
//! `--retries` times. Create-only puts are conditional
//! (`If-None-Match: *`): an object is never replaced by a create. A create
//! whose connection broke after it was sent is retried here, where
//! `object_store` stops (see `S3::create`).

use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientConfigKey, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

use super::{Counters, ObjectInfo};

mod failure;
mod listing;

use failure::{answer, answer_lost, failure};

/// Objects up to this size are uploaded with one PUT (one request, the
/// cheapest on S3); larger ones stream from their file in parts.
const SINGLE_PUT_MAX: u64 = 64 << 20;
/// Part size of multipart uploads (S3's minimum is 5 MiB).
const PART_SIZE: usize = 16 << 20;
/// Keys per page of an S3 listing, to count LIST requests.
const LIST_PAGE: u64 = 1000;
/// The first pause before a request whose answer was lost is sent again
/// (as `object_store`'s own backoff: from 100 ms, doubling each time).
const RESEND_FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between two such attempts.
const RESEND_MAX_PAUSE: Duration = Duration::from_secs(15);

/// `s3://BUCKET/PREFIX`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket.
    pub bucket: String,
    /// Key prefix of the store inside the bucket (no leading or trailing
    /// `/`; empty for the bucket's root).
    pub prefix: String,
}

impl S3Url {
    /// The URL as the user would write it.
    pub fn display(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Network settings of a remote store.
#[derive(Debug, Clone, Copy)]
pub struct RemoteOptions {
    /// Requests in flight at once.
    pub connections: usize,
    /// Retries of a transient failure.
    pub retries: usize,
    /// How long one request may take, its body sent or received included,
    /// before it is given up and retried.
    pub timeout: Duration,
}

/// The default request timeout: long enough for a 16 MiB pack over each of
/// 8 connections sharing an uplink of 2 Mbit/s (`object_store` times the
/// whole request, not a pause in it: at 120 s every upload over an uplink
/// below 9 Mbit/s was cut off and sent again from its start, for ever).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Most requests in flight at once (`--connections`).
pub const MAX_CONNECTIONS: u16 = 256;

/// `--request-timeout` (and the profile key): a duration of a second or
/// more (0 or 1ms failed every request as timed out).
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = crate::when::parse_duration(text)?;
    match timeout >= Duration::from_secs(1) {
        true => Ok(timeout),
        false => Err("a request timeout is at least 1s".to_owned()),
    }
}

/// `--connections` (and the profile key): 1 to [`MAX_CONNECTIONS`].
pub fn parse_connections(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(n) if (1..=MAX_CONNECTIONS).contains(&n) => Ok(n),
        _ => Err(format!(
            "connections are a whole number from 1 to {MAX_CONNECTIONS}"
        )),
    }
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            connections: 8,
            retries: 6,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A store in a bucket.
#[derive(Debug)]
pub struct S3 {
    client: AmazonS3,
    runtime: Runtime,
    limit: Semaphore,
    connections: usize,
    retries: usize,
    url: S3Url,
    counters: Arc<Counters>,
}

/// `text` as an object path, as it is: `ObjectPath::parse` refuses only
/// control characters and empty, `.` or `..` segments, none of which a
/// store location or a key of cairn's holds; should one ever reach here,
/// the encoded path is still a path.
fn literal(text: &str) -> ObjectPath {
    ObjectPath::parse(text).unwrap_or_else(|_| ObjectPath::from(text))
}

impl S3 {
    /// A client for the store at `url`; nothing is requested yet.
    pub fn connect(url: &S3Url, options: RemoteOptions) -> io::Result<Self> {
        // object_store stops retrying this long after the first attempt: a
        // request timed out once is tried again, a stalled server is given
        // up on after two whole attempts, and quick failures (503s) get
        // their --retries within five minutes as before.
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: options.retries,
            retry_timeout: options.timeout + Duration::from_secs(5 * 60),
        };
        // Set as a config key: `with_client_options` would replace the
        // client settings read from the environment (AWS_ALLOW_HTTP).
        let timeout = AmazonS3ConfigKey::Client(ClientConfigKey::Timeout);
        let client = AmazonS3Builder::from_env()
            .with_bucket_name(&url.bucket)
            .with_retry(retry)
            .with_config(timeout, format!("{}ms", options.timeout.as_millis().max(1)))
            .build()
            .map_err(|e| io::Error::other(format!("{}: {}", url.display(), answer(&e))))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-s3")
            .enable_all()
            .build()?;
        Ok(Self {
            client,
            runtime,
            limit: Semaphore::new(options.connections.max(1)),
            connections: options.connections.max(1),
            retries: options.retries,
            url: url.clone(),
            counters: Arc::new(Counters::default()),
        })
    }

    /// Where the store is, for messages.
    pub fn url(&self) -> &S3Url {
        &self.url
    }

    /// Requests allowed in flight at once.
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// The request counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Where `key` is in the bucket: under the prefix as it is written,
    /// `~`, `#`, spaces and non-ASCII letters included (`ObjectPath::from`
    /// would percent-encode them, and the store would not be where its
    /// URL says; the location refuses the control characters no S3 path
    /// may hold, and cairn's own keys are plain).
    fn path(&self, key: &str) -> ObjectPath {
        match self.url.prefix.is_empty() {
            true => literal(key),
            false => literal(&format!("{}/{key}", self.url.prefix)),
        }
    }

    /// The store key of an object path (its prefix removed).
    fn key_of(&self, path: &ObjectPath) -> String {
        let full = path.as_ref();
        if self.url.prefix.is_empty() {
            return full.to_owned();
        }
        full.strip_prefix(&self.url.prefix)
            .and_then(|k| k.strip_prefix('/'))
            .unwrap_or(full)
            .to_owned()
    }

    /// Runs one request, holding a connection slot.
    fn run<T>(&self, request: impl Future<Output = T>) -> T {
        self.runtime.block_on(async {
            let _slot = self.limit.acquire().await;
            request.await
        })
    }

    /// Creates `key` holding `bytes`, never replacing an object: `Ok(false)`
    /// if it was already there (the caller compares contents).
    ///
    /// `object_store` does not retry a conditional PUT whose connection was
    /// reset or timed out once sent: the server may have carried it out.
    /// Here that is safe to retry, because the caller compares what it
    /// finds: a create of ours that took effect reads back as our own bytes.
    /// When every answer was lost, the object is looked at: a snapshot
    /// record that made it is committed, and must not be reported as not.
    pub fn create(&self, key: &str, bytes: &[u8]) -> io::Result<bool> {
        let payload = PutPayload::from(bytes.to_vec());
        match self.resending(answer_lost, || self.try_create(key, payload.clone())) {
            Ok(()) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) if answer_lost(&e) && self.holds(key, bytes) => Ok(true),
            Err(e) => Err(failure("PUT", key, &e)),
        }
    }

    /// Whether `key` holds exactly `bytes` (false if it cannot be read).
    fn holds(&self, key: &str, bytes: &[u8]) -> bool {
        self.get(key, bytes.len() as u64)
            .is_ok_and(|found| found == bytes)
    }

    /// Runs `attempt` until it succeeds, fails for good, or has been sent
    /// `--retries` more times after failures `again` says are worth it:
    /// those `object_store` does not resend itself. Pauses as its backoff
    /// does, from 100 ms doubling to 15 s.
    fn resending<T>(
        &self,
        again: fn(&object_store::Error) -> bool,
        mut attempt: impl FnMut() -> object_store::Result<T>,
    ) -> object_store::Result<T> {
        let (mut retried, mut pause) = (0, RESEND_FIRST_PAUSE);
        loop {
            match attempt() {
                Err(e) if retried < self.retries && again(&e) => {
                    std::thread::sleep(pause);
                    (retried, pause) = (retried + 1, (pause * 2).min(RESEND_MAX_PAUSE));
                }
                result => return result,
            }
        }
    }

    /// One conditional PUT of `key`.
    fn try_create(&self, key: &str, payload: PutPayload) -> object_store::Result<()> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.counters.put(payload.content_length() as u64);
        self.run(self.client.put_opts(&self.path(key), payload, options))
            .map(drop)
    }

    /// Writes `key` whole, replacing what is there (readers see the old
    /// object or the new one: S3 writes are atomic).
    pub fn replace(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.counters.put(bytes.len() as u64);
        let payload = PutPayload::from(bytes.to_vec());
        self.run(self.client.put(&self.path(key), payload))
            .map(drop)
            .map_err(|e| failure("PUT", key, &e))
    }

    /// Uploads the `len` bytes of `file` as `key` (a content-addressed
    /// object: writing the same bytes again is harmless).
    pub fn upload(&self, key: &str, file: &std::fs::File, len: u64) -> io::Result<()> {
        if len <= SINGLE_PUT_MAX {
            let mut bytes = vec![0u8; len as usize];
            file.read_exact_at(&mut bytes, 0)?;
            return self.replace(key, &bytes);
        }
        self.upload_in_parts(key, file, len)
    }

    /// A large object streamed from its file in parts, two in flight.
    fn upload_in_parts(&self, key: &str, file: &std::fs::File, len: u64) -> io::Result<()> {
        let fail = |e: object_store::Error| failure("multipart PUT", key, &e);
        let parts = len.div_ceil(PART_SIZE as u64);
        self.counters.add_requests(&self.counters.puts, parts + 2);
        self.counters.bytes_up.fetch_add(len, super::ORDER);
        self.run(async {
            let upload = self
                .client
                .put_multipart(&self.path(key))
                .await
                .map_err(fail)?;
            let mut parts = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut buf = vec![0u8; 1 << 20];
            let mut offset = 0u64;
            while offset < len {
                let n = file.read_at(&mut buf, offset)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "staged file shrank",
                    ));
                }
                parts.wait_for_capacity(2).await.map_err(fail)?;
                parts.write(&buf[..n]);
                offset += n as u64;
            }
            parts.finish().await.map(drop).map_err(fail)
        })
    }

    /// Copies object `from` to `to` on the server.
    pub fn copy(&self, from: &str, to: &str) -> io::Result<()> {
        self.counters.add_requests(&self.counters.puts, 1);
        self.run(self.client.copy(&self.path(from), &self.path(to)))
            .map_err(|e| failure("COPY", from, &e))
    }

    /// The whole of `key`, which must not exceed `max` bytes.
    pub fn get(&self, key: &str, max: u64) -> io::Result<Vec<u8>> {
        let fail = |e: object_store::Error| failure("GET", key, &e);
        self.counters.add_requests(&self.counters.gets, 1);
        let bytes = self.run(async {
            let result = self.client.get(&self.path(key)).await.map_err(fail)?;
            if result.meta.size > max {
                return Err(super::too_large(format!(
                    "GET {key}: {} bytes, larger than the {max} bytes such an object may have",
                    result.meta.size
                )));
            }
            result.bytes().await.map_err(fail)
        })?;
        self.counters
            .bytes_down
            .fetch_add(bytes.len() as u64, super::ORDER);
        Ok(bytes.into())
    }

    /// `len` bytes of `key` from `offset`; a short object is an error.
    pub fn get_range(&self, key: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.counters.add_requests(&self.counters.gets, 1);
        let range = offset..offset + len as u64;
        let bytes = self
            .run(self.client.get_range(&self.path(key), range))
            .map_err(|e| failure("GET (range)", key, &e))?;
        self.counters
            .bytes_down
            .fetch_add(bytes.len() as u64, super::ORDER);
        if bytes.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "GET {key}: {} bytes where {len} were asked for at {offset}",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes.into())
    }

    /// The last `len` bytes of `key` (all of it if shorter) and its size,
    /// in one request.
    pub fn get_tail(&self, key: &str, len: u64) -> io::Result<(Vec<u8>, u64)> {
        let fail = |e: object_store::Error| failure("GET (tail)", key, &e);
        self.counters.add_requests(&self.counters.gets, 1);
        let options = GetOptions::new().with_range(Some(GetRange::Suffix(len)));
        let (bytes, size) = self.run(async {
            let result = self
                .client
                .get_opts(&self.path(key), options)
                .await
                .map_err(fail)?;
            let size = result.meta.size;
            Ok::<_, io::Error>((result.bytes().await.map_err(fail)?, size))
        })?;
        self.counters
            .bytes_down
            .fetch_add(bytes.len() as u64, super::ORDER);
        Ok((bytes.into(), size))
    }

    /// Reads all of `key` in order, streamed (a pack being verified).
    pub fn reader(self: &Arc<Self>, key: &str) -> io::Result<ObjectReader> {
        self.counters.add_requests(&self.counters.gets, 1);
        let result = self
            .run(self.client.get(&self.path(key)))
            .map_err(|e| failure("GET", key, &e))?;
        Ok(ObjectReader {
            s3: Arc::clone(self),
            key: key.to_owned(),
            stream: result.into_stream(),
            pending: Vec::new(),
            at: 0,
        })
    }

    /// What is stored under `key`, if anything.
    pub fn head(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
        self.counters.add_requests(&self.counters.heads, 1);
        match self.run(self.client.head(&self.path(key))) {
            Ok(m) => Ok(Some(ObjectInfo {
                key: key.to_owned(),
                size: m.size,
                modified: Some(SystemTime::from(m.last_modified)),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failure("HEAD", key, &e)),
        }
    }

    /// Removes `key` (nothing there is not an error).
    ///
    /// `object_store` sends a delete as a bulk `POST ?delete`, which it
    /// does not resend once sent; a delete is the same done twice, so it is
    /// resent here.
    pub fn delete(&self, key: &str) -> io::Result<()> {
        let path = self.path(key);
        let attempt = || {
            self.counters.add_requests(&self.counters.deletes, 1);
            self.run(self.client.delete(&path))
        };
        match self.resending(answer_lost, attempt) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(failure("DELETE", key, &e)),
        }
    }
}

/// An object read from start to end as it arrives.
pub struct ObjectReader {
    s3: Arc<S3>,
    key: String,
    stream: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
    pending: Vec<u8>,
    at: usize,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.pending.len() {
            let next = self.s3.runtime.block_on(self.stream.next());
            match next {
                None => return Ok(0),
                Some(Err(e)) => return Err(failure("GET", &self.key, &e)),
                Some(Ok(bytes)) => {
                    self.s3
                        .counters
                        .bytes_down
                        .fetch_add(bytes.len() as u64, super::ORDER);
                    self.pending = bytes.into();
                    self.at = 0;
                }
            }
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
