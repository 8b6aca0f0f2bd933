//! S3 for tests: one loopback `moto_server` per test binary, started on
//! first use, a fresh bucket per test, the environment a `cairn` command
//! needs to reach it, and direct access to the bucket through `object_store`
//! so that tests can inspect and damage what cairn wrote.
//!
//! S3 tests never skip: when the server cannot be started they panic with
//! what to install. The server dies with the test binary (see `spawn`).

use std::collections::VecDeque;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path as FsPath, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};
use std::{env, thread};

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};

/// How long the server may take to answer after it was started (Python
/// imports boto and friends: a few seconds on a loaded machine).
const START_DEADLINE: Duration = Duration::from_secs(30);

/// The credentials and region every test client uses; moto accepts any.
pub const ACCESS_KEY: &str = "test";
pub const SECRET_KEY: &str = "test";
pub const REGION: &str = "us-east-1";

const INSTALL_HINT: &str = "the S3 tests need `moto_server` on PATH: install it with \
     `python3 -m pip install 'moto[server]'` (or run .ci/run, which installs its S3 \
     part under target/s3-server)";

// ---------------------------------------------------------------------------
// The server

/// The loopback S3 server shared by the tests of one binary.
pub struct S3Server {
    addr: SocketAddr,
    pid: u32,
    log: Arc<Mutex<VecDeque<String>>>,
}

/// The server of this test binary, started on first use; panics (with what
/// to install) when it cannot be started, in every test that asks for it.
pub fn server() -> &'static S3Server {
    static SERVER: OnceLock<Result<S3Server, String>> = OnceLock::new();
    match SERVER.get_or_init(S3Server::start) {
        Ok(server) => server,
        Err(why) => panic!("cannot start the loopback S3 server: {why}"),
    }
}

impl S3Server {
    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The last lines the server logged (one per request), to explain a
    /// failure.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Starts the server on a free port; a few attempts, as another process
    /// may take the port between our probe and the server's bind.
    fn start() -> Result<S3Server, String> {
        let program = find_on_path("moto_server").ok_or_else(|| INSTALL_HINT.to_owned())?;
        let mut why = String::new();
        for _ in 0..3 {
            match Self::start_on(&program, free_port()) {
                Ok(server) => return Ok(server),
                Err(e) => why = e,
            }
        }
        Err(why)
    }

    fn start_on(program: &FsPath, port: u16) -> Result<S3Server, String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let exited = Arc::new(Mutex::new(None));
        let pid = spawn(program, port, Arc::clone(&log), Arc::clone(&exited))?;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if answers_http(addr) {
                return Ok(S3Server { addr, pid, log });
            }
            let tail = || log.lock().unwrap().iter().cloned().collect::<Vec<_>>();
            if let Some(status) = *exited.lock().unwrap() {
                return Err(format!(
                    "{} exited ({status}) before answering on port {port}; {INSTALL_HINT}; \
                     its output:\n{}",
                    program.display(),
                    tail().join("\n")
                ));
            }
            if Instant::now() > deadline {
                kill(pid);
                return Err(format!(
                    "{} did not answer on port {port} within {START_DEADLINE:?}; its output:\n{}",
                    program.display(),
                    tail().join("\n")
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Starts the server from a thread that lives as long as the server, under
/// `setpriv --pdeathsig KILL`: the kernel kills the server when the thread
/// that started it ends, and that thread ends only with the test binary (or
/// after the server exited). So no server outlives its tests, even after
/// `kill -9`, and no unsafe `pre_exec` is needed. Returns the server's pid.
fn spawn(
    program: &FsPath,
    port: u16,
    log: Arc<Mutex<VecDeque<String>>>,
    exited: Arc<Mutex<Option<ExitStatus>>>,
) -> Result<u32, String> {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"])
        .arg(program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name(format!("moto_server:{port}"))
        .spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(child) => child,
                Err(e) => return tx.send(Err(format!("cannot run setpriv: {e}"))).unwrap(),
            };
            tx.send(Ok(child.id())).unwrap();
            if let Some(stderr) = child.stderr.take() {
                keep_tail(stderr, &log);
            }
            let status = child.wait().unwrap();
            *exited.lock().unwrap() = Some(status);
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    rx.recv().unwrap()
}

/// Reads `from` to its end, keeping the last 50 lines in `log`.
fn keep_tail(from: impl Read, log: &Mutex<VecDeque<String>>) {
    let mut reader = BufReader::new(from);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
        let mut log = log.lock().unwrap();
        if log.len() == 50 {
            log.pop_front();
        }
        log.push_back(String::from_utf8_lossy(&line).trim_end().to_owned());
        line.clear();
    }
}

fn kill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}

/// Whether something on `addr` answers `GET /` with an HTTP status line.
fn answers_http(addr: SocketAddr) -> bool {
    raw_request(addr, "GET", "/").is_ok()
}

/// One request without a body and without a signature (moto does not check
/// them); the status code.
fn raw_request(addr: SocketAddr, method: &str, target: &str) -> Result<u16, String> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut status = String::new();
    BufReader::new(conn)
        .read_line(&mut status)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let code = status.strip_prefix("HTTP/1.1 ").unwrap_or_default();
    code.get(..3)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{method} {target}: not an HTTP answer: {status:?}"))
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// The first executable file called `name` in `$PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(name)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

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
        match raw_request(server.addr(), "PUT", &format!("/{name}")) {
            Ok(200) => {}
            answer => panic!(
                "creating bucket {name}: {answer:?}; server log:\n{}",
                server.log_tail()
            ),
        }
        let client = client(&name, &server.endpoint(), 3);
        Self {
            bucket: Arc::new(Bucket { name, client }),
            prefix: prefix.trim_matches('/').to_owned(),
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
