//! S3 for tests: one loopback `moto_server` per test binary (`server`), a
//! fresh bucket per test, the environment a `cairn` command needs to reach
//! it, and direct access to the bucket through `object_store` so that tests
//! can inspect and damage what cairn wrote.

pub mod server;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};

/// The credentials and region every test client uses; moto accepts any.
pub const ACCESS_KEY: &str = "test";
pub const SECRET_KEY: &str = "test";
pub const REGION: &str = "us-east-1";

pub use server::server;

// ---------------------------------------------------------------------------
// Blocking on object_store

/// Runs `future` to completion on the harness's runtime, so that S3 tests
/// stay synchronous.
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// An `object_store` client for `bucket` at `endpoint` (the server, or a
/// fault proxy in front of it) that retries a failed request `retries`
/// times, quickly. `retries: 0` shows every fault to the caller.
pub fn client(bucket: &str, endpoint: &str, retries: usize) -> Arc<dyn ObjectStore> {
    client_with_timeout(bucket, endpoint, retries, Duration::from_secs(60))
}

/// `client`, giving up on a request after `timeout`.
pub fn client_with_timeout(
    bucket: &str,
    endpoint: &str,
    retries: usize,
    timeout: Duration,
) -> Arc<dyn ObjectStore> {
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
            base: 2.0,
        },
        max_retries: retries,
        retry_timeout: Duration::from_secs(60),
    };
    // Client options replace the builder's whole set, allow_http included.
    let options = ClientOptions::new()
        .with_timeout(timeout)
        .with_allow_http(true);
    let _in_runtime = runtime().enter();
    let store = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_region(REGION)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .with_retry(retry)
        .with_client_options(options)
        .build()
        .unwrap_or_else(|e| panic!("S3 client for {bucket} at {endpoint}: {e}"));
    Arc::new(store)
}

// ---------------------------------------------------------------------------
// A bucket per test

/// A store location in a fresh bucket of the loopback server: what to give
/// `cairn` (`url`, `env`) and direct access to the objects under the store's
/// prefix, for tests that check or damage what cairn wrote. Clones share the
/// bucket, which is emptied when the last clone is dropped.
#[derive(Clone)]
pub struct S3Store {
    bucket: Arc<Bucket>,
    prefix: String,
}

struct Bucket {
    name: String,
    client: Arc<dyn ObjectStore>,
}

impl S3Store {
    /// A store at `s3://FRESH-BUCKET/store`.
    pub fn new() -> Self {
        Self::with_prefix("store")
    }

    /// A store at `s3://FRESH-BUCKET/PREFIX` (`""`: the bucket's root).
    pub fn with_prefix(prefix: &str) -> Self {
        let server = server();
        let name = fresh_bucket_name();
        if let Err(why) = server.create_bucket(&name) {
            panic!("{why}; server log:\n{}", server.log_tail());
        }
        let client = client(&name, &server.endpoint(), 3);
        Self {
            bucket: Arc::new(Bucket { name, client }),
            prefix: prefix.trim_matches('/').to_owned(),
        }
    }

    /// A store at `s3://NAME/store` in a bucket that does not exist (for
    /// the errors it must give).
    pub fn without_bucket(name: &str) -> Self {
        let client = client(name, &server().endpoint(), 0);
        Self {
            bucket: Arc::new(Bucket {
                name: name.to_owned(),
                client,
            }),
            prefix: "store".to_owned(),
        }
    }

    /// The same bucket with another prefix (a second store beside this one).
    pub fn sibling(&self, prefix: &str) -> Self {
        Self {
            bucket: Arc::clone(&self.bucket),
            prefix: prefix.trim_matches('/').to_owned(),
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket.name
    }

    /// The store's prefix in the bucket, without slashes around it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `s3://BUCKET/PREFIX`, for `--store`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket.name, self.prefix)
    }

    /// The environment a `cairn` command needs to reach the store through
    /// `endpoint` (the server's, or a proxy's).
    pub fn env(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", endpoint.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// The harness's client for the bucket (direct to the server, with
    /// retries), for what the helpers below do not cover.
    pub fn client(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.bucket.client)
    }

    /// The bucket key of `key` (relative to the store's prefix).
    pub fn full_key(&self, key: &str) -> String {
        let key = key.trim_matches('/');
        match (self.prefix.is_empty(), key.is_empty()) {
            (true, _) => key.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{key}", self.prefix),
        }
    }

    /// The objects under `dir` (relative to the store's prefix; `""` for the
    /// whole store) with their sizes, keys relative to the prefix, sorted.
    pub fn keys(&self, dir: &str) -> Vec<(String, u64)> {
        let under = self.full_key(dir);
        let strip = match self.prefix.is_empty() {
            true => String::new(),
            false => format!("{}/", self.prefix),
        };
        let mut keys: Vec<_> = self
            .list_full(&under)
            .into_iter()
            .map(|(k, size)| (k.strip_prefix(&strip).unwrap_or(&k).to_owned(), size))
            .collect();
        keys.sort();
        keys
    }

    /// Every object in the bucket (full keys, sorted), whatever the prefix:
    /// to check that nothing was written outside the store.
    pub fn bucket_keys(&self) -> Vec<(String, u64)> {
        let mut keys = self.list_full("");
        keys.sort();
        keys
    }

    fn list_full(&self, under: &str) -> Vec<(String, u64)> {
        let prefix = (!under.is_empty()).then(|| Path::from(under));
        let listing = block_on(
            self.bucket
                .client
                .list(prefix.as_ref())
                .try_collect::<Vec<_>>(),
        )
        .unwrap_or_else(|e| panic!("listing {}/{under}: {e}", self.bucket.name));
        listing
            .into_iter()
            .map(|m| (m.location.to_string(), m.size))
            .collect()
    }

    /// How many objects there are under `dir` (relative to the prefix).
    pub fn count(&self, dir: &str) -> usize {
        self.keys(dir).len()
    }

    /// Total size of the objects under `dir` (relative to the prefix).
    pub fn size(&self, dir: &str) -> u64 {
        self.keys(dir).iter().map(|(_, size)| size).sum()
    }

    /// The bytes of object `key`, or `None` if there is no such object.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let path = Path::from(self.full_key(key));
        let got = block_on(async {
            let result = self.bucket.client.get(&path).await?;
            result.bytes().await
        });
        match got {
            Ok(bytes) => Some(bytes.to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("get {}/{path}: {e}", self.bucket.name),
        }
    }

    /// Writes (or replaces) object `key`.
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let path = Path::from(self.full_key(key));
        let payload = PutPayload::from(bytes.to_vec());
        block_on(self.bucket.client.put(&path, payload))
            .unwrap_or_else(|e| panic!("put {}/{path}: {e}", self.bucket.name));
    }

    /// Deletes object `key` (no error if it is not there, as S3 does).
    pub fn delete(&self, key: &str) {
        let path = Path::from(self.full_key(key));
        block_on(self.bucket.client.delete(&path))
            .unwrap_or_else(|e| panic!("delete {}/{path}: {e}", self.bucket.name));
    }

    /// Inverts every bit of the byte at `offset` of object `key` (which must
    /// exist and be longer than `offset`), by rewriting the object.
    pub fn flip_byte(&self, key: &str, offset: usize) {
        let mut bytes = self
            .get(key)
            .unwrap_or_else(|| panic!("flip_byte: no object {key}"));
        assert!(
            offset < bytes.len(),
            "flip_byte: {key} has {} bytes, no offset {offset}",
            bytes.len()
        );
        bytes[offset] ^= 0xff;
        self.put(key, &bytes);
    }
}

impl Drop for Bucket {
    /// Empties the bucket, so that a test binary's server does not hold every
    /// test's data until the end; not after a failure, to keep it simple.
    fn drop(&mut self) {
        if thread::panicking() {
            return;
        }
        let client = &self.client;
        let _ = block_on(async {
            let locations = client.list(None).map_ok(|m| m.location).boxed();
            client
                .delete_stream(locations)
                .try_collect::<Vec<_>>()
                .await
        });
    }
}

/// `cairn-test-PID-N`: unique within this machine's test binaries running
/// now, which is all one server sees (each binary has its own server).
fn fresh_bucket_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("cairn-test-{}-{n}", std::process::id())
}
