//! The integration test harness: a temporary directory with a store path
//! (or a bucket on a loopback S3 server, `s3`, reached directly or through a
//! fault-injecting `proxy`), the real `cairn` binary run against it, tree
//! builders, a fast seeded data generator and a recursive tree comparison.
//!
//! Every test crate includes this module but uses only part of it.
#![allow(dead_code, clippy::unwrap_used)]

pub mod meta;
pub mod mount;
pub mod proxy;
pub mod s3;
pub mod spec;
pub mod stall;

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process;
use std::time::Duration;

use filetime::FileTime;
use serde_json::Value;
use tempfile::TempDir;

use proxy::FaultProxy;
use s3::S3Store;

/// How long to wait after writing files so that cairn trusts their
/// timestamps (see `src/capture/change.rs`: files changed within ~1 s of
/// their read are read again by the next snapshot).
pub const SETTLE: Duration = Duration::from_millis(1200);

/// Waits until files written so far are no longer "racy" for cairn.
pub fn settle() {
    std::thread::sleep(SETTLE);
}

/// One test's world: a temporary directory holding a store path (not
/// created until `init`), a fake `$HOME` and whatever the test builds.
pub struct TestEnv {
    dir: TempDir,
    /// The temporary directory (canonical, so it is a real absolute path).
    pub root: PathBuf,
    /// The store given to every `cairn` command as `--store`, unless
    /// `location` says it is in S3.
    pub store: PathBuf,
    /// `$HOME` for the commands (exists, empty).
    pub home: PathBuf,
    /// Where the commands find the store: `store`, or an S3 bucket.
    pub location: StoreLocation,
    /// The cache directory given as `--cache-dir` to commands on an S3
    /// store (not created), so that no test touches the real cache.
    pub cache: PathBuf,
    /// A passphrase file every command gets as `CAIRN_PASSWORD_FILE`
    /// (an encrypted store's), or `None`: no password source at all.
    pub password_file: Option<PathBuf>,
}

/// Where the commands of a `TestEnv` find their store.
#[derive(Clone)]
pub enum StoreLocation {
    /// The directory `TestEnv::store`.
    Local,
    /// A bucket on the loopback S3 server, reached at `endpoint`: the
    /// server's own, or a fault proxy's in front of it.
    S3 { store: S3Store, endpoint: String },
}

impl TestEnv {
    /// A fresh environment without a store.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cairn-test-")
            .tempdir()
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        let home = root.join("home");
        fs::create_dir(&home).unwrap();
        Self {
            store: root.join("store"),
            cache: root.join("cache"),
            location: StoreLocation::Local,
            password_file: None,
            root,
            home,
            dir,
        }
    }

    /// A fresh environment with an initialised store.
    pub fn with_store() -> Self {
        let t = Self::new();
        t.cairn(["init"]).assert().success();
        t
    }

    /// A fresh environment whose store is `s3://FRESH-BUCKET/store` on the
    /// loopback S3 server (started on first use), not initialised.
    pub fn new_s3() -> Self {
        Self::new_s3_at("store")
    }

    /// [`TestEnv::new_s3`] at `s3://FRESH-BUCKET/PREFIX`.
    pub fn new_s3_at(prefix: &str) -> Self {
        let mut t = Self::new();
        t.location = StoreLocation::S3 {
            store: S3Store::with_prefix(prefix),
            endpoint: s3::server().endpoint(),
        };
        t
    }

    /// A fresh environment with an initialised store in a fresh bucket.
    /// Unencrypted, as the tests of remote stores were written for (an
    /// `s3://` store is encrypted by default; tests/encryption.rs has those).
    pub fn with_s3() -> Self {
        let t = Self::new_s3();
        t.cairn(["init", "--no-encrypt"]).assert().success();
        t
    }

    /// Another host on the same store: a fresh root, `$HOME` and cache
    /// (a cold cache), the same store location and endpoint.
    pub fn second_host(&self) -> Self {
        let mut t = Self::new();
        t.store = self.store.clone();
        t.location = self.location.clone();
        t
    }

    /// Whether the store is in S3.
    pub fn is_s3(&self) -> bool {
        matches!(self.location, StoreLocation::S3 { .. })
    }

    /// The S3 store, to inspect or damage its objects; panics for a local one.
    pub fn s3(&self) -> &S3Store {
        match &self.location {
            StoreLocation::S3 { store, .. } => store,
            StoreLocation::Local => panic!("this test's store is local, not in S3"),
        }
    }

    /// Sends the commands' S3 requests through `proxy` from now on (the
    /// proxy must lead to the same server).
    pub fn through(&mut self, proxy: &FaultProxy) {
        match &mut self.location {
            StoreLocation::S3 { endpoint, .. } => *endpoint = proxy.endpoint(),
            StoreLocation::Local => panic!("a local store cannot go through a proxy"),
        }
    }

    /// Sends the commands' S3 requests straight to the server again.
    pub fn direct(&mut self) {
        if let StoreLocation::S3 { endpoint, .. } = &mut self.location {
            *endpoint = s3::server().endpoint();
        }
    }

    /// What `--store` names: the store's path, or its `s3://` URL.
    pub fn store_arg(&self) -> OsString {
        match &self.location {
            StoreLocation::Local => self.store.clone().into_os_string(),
            StoreLocation::S3 { store, .. } => store.url().into(),
        }
    }

    /// `--store STORE`, and `--cache-dir CACHE` for an S3 store.
    fn store_args(&self, cmd: &mut process::Command) {
        cmd.arg("--store").arg(self.store_arg());
        if self.is_s3() {
            cmd.arg("--cache-dir").arg(&self.cache);
        }
    }

    /// `root/rel`.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// The binary with the harness environment but no `--store`.
    pub fn command_without_store<I, S>(&self, args: I) -> process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = process::Command::new(assert_cmd::cargo::cargo_bin("cairn"));
        self.set_env(&mut cmd);
        cmd.args(args);
        cmd
    }

    /// The binary with `--store <store>` and the harness environment, as a
    /// plain `std::process::Command` (for `spawn`).
    pub fn command<I, S>(&self, args: I) -> process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = process::Command::new(assert_cmd::cargo::cargo_bin("cairn"));
        self.set_env(&mut cmd);
        self.store_args(&mut cmd);
        cmd.args(args);
        cmd
    }

    /// `cairn --store <store> ARGS` ready to assert on.
    pub fn cairn<I, S>(&self, args: I) -> assert_cmd::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        assert_cmd::Command::from_std(self.command(args))
    }

    /// `cairn ARGS` without `--store` (the default store or `CAIRN_STORE`).
    pub fn cairn_without_store<I, S>(&self, args: I) -> assert_cmd::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        assert_cmd::Command::from_std(self.command_without_store(args))
    }

    /// `cairn --store <store> ARGS` run as user nobody (uid/gid 65534)
    /// through `setpriv`; for tests that need permissions to bite as root.
    pub fn cairn_as_nobody<I, S>(&self, args: I) -> assert_cmd::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = process::Command::new("setpriv");
        self.set_env(&mut cmd);
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        cmd.arg(assert_cmd::cargo::cargo_bin("cairn"));
        self.store_args(&mut cmd);
        cmd.args(args);
        assert_cmd::Command::from_std(cmd)
    }

    /// The commands' environment: nothing from the developer's own (no
    /// store, cache or AWS settings), and the S3 settings of an S3 store.
    fn set_env(&self, cmd: &mut process::Command) {
        cmd.current_dir(&self.root)
            .env("TZ", "UTC")
            .env("HOME", &self.home)
            .env_remove("CAIRN_STORE")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("CAIRN_CRASH_AT")
            .env_remove("CAIRN_PASSWORD_FILE")
            .env_remove("CAIRN_PASSWORD_COMMAND");
        if let Some(file) = &self.password_file {
            cmd.env("CAIRN_PASSWORD_FILE", file);
        }
        for (name, _) in std::env::vars_os() {
            if name.as_bytes().starts_with(b"AWS_") {
                cmd.env_remove(name);
            }
        }
        if let StoreLocation::S3 { store, endpoint } = &self.location {
            cmd.envs(store.env(endpoint));
        }
    }

    /// `snapshot --json EXTRA... PATHS...`, asserting exit 0; the parsed record.
    pub fn snapshot<P: AsRef<OsStr>>(&self, paths: &[P], extra: &[&str]) -> Value {
        let out = self
            .cairn(["--json", "snapshot"])
            .args(extra)
            .args(paths)
            .assert()
            .success();
        parse_json(&out.get_output().stdout)
    }

    /// `snapshot --json SRC` started in the background, its output piped.
    pub fn spawn_snapshot(&self, src: &Path) -> process::Child {
        self.command(["--json", "snapshot"])
            .arg(src)
            .stdout(process::Stdio::piped())
            .stderr(process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `copy --json --to TARGET ARGS...`, which must succeed: its report.
    pub fn copy_to(&self, target: &Path, args: &[&str]) -> Value {
        let out = self
            .cairn(["--json", "copy", "--to"])
            .arg(target)
            .args(args)
            .assert()
            .success();
        parse_json(&out.get_output().stdout)
    }

    /// `snapshots --json EXTRA...`: every listed snapshot.
    pub fn snapshots(&self, extra: &[&str]) -> Vec<Value> {
        let out = self
            .cairn(["--json", "snapshots"])
            .args(extra)
            .assert()
            .success();
        match parse_json(&out.get_output().stdout) {
            Value::Array(items) => items,
            other => panic!("snapshots --json is not an array: {other}"),
        }
    }

    /// Restores `snapshot` into a new directory under the root and returns it.
    pub fn restore(&self, snapshot: &str) -> PathBuf {
        let target = self.fresh_dir("restore");
        self.cairn(["restore", snapshot, "--target"])
            .arg(&target)
            .assert()
            .success();
        target
    }

    /// Restores `latest` into a fresh directory expecting exit `code`: the
    /// directory and what the restore said on stderr.
    pub fn restore_ending(&self, code: i32) -> (PathBuf, String) {
        let target = self.fresh_dir("restore");
        let out = self
            .cairn(["restore", "latest", "--target"])
            .arg(&target)
            .assert()
            .code(code);
        (target, stderr_of(out.get_output()))
    }

    /// A path under the root that does not exist yet, named after `stem`.
    pub fn fresh_dir(&self, stem: &str) -> PathBuf {
        (0..)
            .map(|n| self.root.join(format!("{stem}-{n}")))
            .find(|p| fs::symlink_metadata(p).is_err())
            .unwrap()
    }

    /// Total size of the packs: of the files under `<store>/packs`, or of
    /// the objects under `packs/` in S3.
    pub fn packs_size(&self) -> u64 {
        match &self.location {
            StoreLocation::Local => size_of(&self.store.join("packs")),
            StoreLocation::S3 { store, .. } => store.size("packs"),
        }
    }
}

impl Drop for TestEnv {
    /// Makes every directory writable again so that the temporary
    /// directory can be removed even when a test made some read-only.
    fn drop(&mut self) {
        fn unlock(dir: &Path) {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
            if let Ok(entries) = fs::read_dir(dir) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        unlock(&e.path());
                    }
                }
            }
        }
        unlock(&self.root);
    }
}

/// Parses JSON output, showing it on failure.
pub fn parse_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "output is not JSON ({e}):\n{}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// The `id` of a snapshot as `--json` shows it.
pub fn id(snapshot: &Value) -> &str {
    snapshot["id"].as_str().unwrap()
}

/// An unsigned summary field of a snapshot as `--json` shows it.
pub fn summary(snapshot: &Value, field: &str) -> u64 {
    snapshot["summary"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("summary has no {field}: {snapshot}"))
}

/// Where `source` (absolute) lands when restored into `target`.
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").unwrap())
}

/// stderr as text.
pub fn stderr_of(out: &process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Whether this process runs as root (permission bits do not stop it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

// ---------------------------------------------------------------------------
// Data

/// A seeded xorshift64* generator: deterministic, and fast even unoptimised
/// because it produces eight bytes per step.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included). The seed is mixed
    /// with splitmix64 first: every seed gives its own stream (before, seeds
    /// 2n and 2n+1 gave the same bytes) and the xorshift state is never 0.
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut words = buf.chunks_exact_mut(8);
        for w in &mut words {
            w.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = words.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// `len` random bytes from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    Rng::new(seed).fill(&mut buf);
    buf
}

/// Writes a file of `len` random bytes from `seed`, streaming.
pub fn write_random_file(path: &Path, seed: u64, len: u64) {
    let mut rng = Rng::new(seed);
    let mut out = io::BufWriter::new(File::create(path).unwrap());
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        out.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    out.into_inner().unwrap().sync_all().ok();
}

// ---------------------------------------------------------------------------
// Building trees

/// Creates `path` with `bytes`, creating parent directories.
pub fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, bytes).unwrap();
}

/// Sets the permission bits of `path` (follows symlinks).
pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Sets the mtime of `path` to `sec`.`nsec` (not following a symlink).
pub fn set_mtime(path: &Path, sec: i64, nsec: u32) {
    let t = FileTime::from_unix_time(sec, nsec);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

/// The mtime of `path` (not following a symlink) as (sec, nsec).
pub fn mtime_of(path: &Path) -> (i64, u32) {
    let m = fs::symlink_metadata(path).unwrap();
    (m.mtime(), m.mtime_nsec() as u32)
}

/// Removes the file `path` and puts its directory's mtime back, so that a
/// tree can be compared with a restore that lacks the file.
pub fn remove_keeping_dir_mtime(path: &Path) {
    let dir = path.parent().unwrap();
    let (sec, nsec) = mtime_of(dir);
    fs::remove_file(path).unwrap();
    set_mtime(dir, sec, nsec);
}

/// A symlink at `path` pointing to the raw bytes `target`.
pub fn make_symlink(target: impl AsRef<OsStr>, path: &Path) {
    symlink(target.as_ref(), path).unwrap();
}

/// A path component from raw bytes (possibly invalid UTF-8).
pub fn raw(bytes: &[u8]) -> OsString {
    OsStr::from_bytes(bytes).to_owned()
}

/// A small tree of a few files and directories with content from `seed`,
/// under `dir` (created).
pub fn small_tree(dir: &Path, seed: u64) {
    write_file(&dir.join("a.txt"), format!("a {seed}\n").as_bytes());
    write_file(&dir.join("sub/b.bin"), &random_bytes(seed, 70_000));
    write_file(&dir.join("sub/deeper/c"), b"");
    fs::create_dir_all(dir.join("empty")).unwrap();
}

// ---------------------------------------------------------------------------
// Comparing trees

/// Asserts that `b` is an exact copy of `a`: same entries and kinds, same
/// file bytes, permission bits, owners, mtimes to the nanosecond (files,
/// directories, symlinks) and symlink targets byte for byte. Never follows
/// symlinks, except at `a` and `b` themselves.
pub fn assert_trees_equal(a: &Path, b: &Path) {
    let mut diffs = Vec::new();
    let meta_a = fs::metadata(a).unwrap();
    let meta_b = fs::metadata(b).unwrap();
    compare(a, b, &meta_a, &meta_b, &mut diffs);
    if !diffs.is_empty() {
        let shown: Vec<_> = diffs.iter().take(30).collect();
        panic!(
            "{} differs from {} in {} way(s):\n  {}",
            b.display(),
            a.display(),
            diffs.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
}

fn compare(a: &Path, b: &Path, ma: &fs::Metadata, mb: &fs::Metadata, diffs: &mut Vec<String>) {
    let at = || format!("{:?}", b);
    let (ka, kb) = (kind(ma), kind(mb));
    if ka != kb {
        diffs.push(format!("{}: is a {kb}, want a {ka}", at()));
        return;
    }
    if ka != "symlink" && ma.mode() & 0o7777 != mb.mode() & 0o7777 {
        diffs.push(format!(
            "{}: mode {:o}, want {:o}",
            at(),
            mb.mode() & 0o7777,
            ma.mode() & 0o7777
        ));
    }
    if (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
        diffs.push(format!(
            "{}: owner {}:{}, want {}:{}",
            at(),
            mb.uid(),
            mb.gid(),
            ma.uid(),
            ma.gid()
        ));
    }
    let (ta, tb) = ((ma.mtime(), ma.mtime_nsec()), (mb.mtime(), mb.mtime_nsec()));
    if ta != tb {
        diffs.push(format!("{}: mtime {tb:?}, want {ta:?}", at()));
    }
    match ka {
        "file" => {
            if ma.len() != mb.len() {
                diffs.push(format!("{}: size {}, want {}", at(), mb.len(), ma.len()));
            } else if !same_bytes(a, b) {
                diffs.push(format!("{}: content differs", at()));
            }
        }
        "symlink" => {
            let (la, lb) = (fs::read_link(a).unwrap(), fs::read_link(b).unwrap());
            if la.as_os_str().as_bytes() != lb.as_os_str().as_bytes() {
                diffs.push(format!("{}: points to {lb:?}, want {la:?}", at()));
            }
        }
        "dir" => compare_dirs(a, b, diffs),
        _ => {}
    }
}

fn compare_dirs(a: &Path, b: &Path, diffs: &mut Vec<String>) {
    let (na, nb) = (names(a), names(b));
    for name in nb.iter().filter(|n| !na.contains(n)) {
        diffs.push(format!("{:?}: unexpected entry", b.join(name)));
    }
    for name in &na {
        let (ca, cb) = (a.join(name), b.join(name));
        let ma = fs::symlink_metadata(&ca).unwrap();
        match fs::symlink_metadata(&cb) {
            Ok(mb) => compare(&ca, &cb, &ma, &mb, diffs),
            Err(e) => diffs.push(format!("{cb:?}: missing ({e})")),
        }
    }
}

/// What a tree holds, counted as a snapshot summary counts it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Regular files.
    pub files: u64,
    /// Directories, `dir` itself included.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Sum of file sizes.
    pub bytes: u64,
}

/// Counts the entries of the tree at `dir` (not following symlinks).
pub fn count_tree(dir: &Path) -> Counts {
    fn walk(dir: &Path, c: &mut Counts) {
        c.dirs += 1;
        for name in names(dir) {
            let path = dir.join(name);
            let meta = fs::symlink_metadata(&path).unwrap();
            match kind(&meta) {
                "dir" => walk(&path, c),
                "file" => {
                    c.files += 1;
                    c.bytes += meta.len();
                }
                "symlink" => c.symlinks += 1,
                _ => {}
            }
        }
    }
    let mut c = Counts::default();
    walk(dir, &mut c);
    c
}

/// The entry names of `dir`, sorted by bytes.
pub fn names(dir: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    names
}

fn kind(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "dir"
    } else if t.is_file() {
        "file"
    } else {
        "special file"
    }
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba);
        let m = read_full(&mut fb, &mut bb);
        if n != m || ba[..n] != bb[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// `dir` and every path under it (relative, sorted) with its kind, size,
/// mode, mtime and, for files, a content hash: to prove a directory was
/// left untouched.
pub fn listing(dir: &Path) -> Vec<(PathBuf, String)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for name in names(dir) {
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path).unwrap();
            let content = if meta.is_file() {
                blake3::hash(&fs::read(&path).unwrap()).to_hex().to_string()
            } else {
                String::new()
            };
            let desc = format!(
                "{} {} {:o} {}.{} {content}",
                kind(&meta),
                meta.len(),
                meta.mode() & 0o7777,
                meta.mtime(),
                meta.mtime_nsec()
            );
            out.push((path.strip_prefix(base).unwrap().to_owned(), desc));
            if meta.is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let meta = fs::symlink_metadata(dir).unwrap();
    let mut out = vec![(
        PathBuf::from("."),
        format!(
            "{} {:o} {}.{}",
            kind(&meta),
            meta.mode() & 0o7777,
            meta.mtime(),
            meta.mtime_nsec()
        ),
    )];
    walk(dir, dir, &mut out);
    out
}

/// Total size of the files under `dir`.
pub fn size_of(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                size_of(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// `cp -a`: a copy with the same modes, owners and nanosecond mtimes.
pub fn copy_tree(from: &Path, to: &Path) {
    let status = process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a {from:?} {to:?}");
}

/// `abort()` must not leave core files behind (core_pattern may be `core`).
pub fn no_core_dumps() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let old = getrlimit(Resource::Core);
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: old.maximum,
        },
    )
    .unwrap();
}

/// Runs `cmd`, which must fail with exit 1 within 3 s (a locked store is
/// reported at once, not waited for); returns its stderr.
pub fn fails_at_once(mut cmd: assert_cmd::Command) -> String {
    let started = std::time::Instant::now();
    let out = cmd.assert().code(1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    stderr_of(out.get_output())
}

/// Whether `dir` holds a cairn temporary file (`*.tmp`).
pub fn has_temp_file(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|mut it| {
            it.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".tmp")))
        })
        .unwrap_or(false)
}

/// Whether `dir` holds a temporary file that starts like a SQLite database
/// (an image being copied), as opposed to packs being staged.
pub fn has_database_copy(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let mut head = [0u8; 16];
        let read = File::open(e.path()).and_then(|mut f| f.read_exact(&mut head));
        read.is_ok() && &head == b"SQLite format 3\0"
    })
}

// ---------------------------------------------------------------------------
// SQLite

/// Opens (or creates) a database with a journal mode, checked.
pub fn open_in_mode(db: &Path, journal_mode: &str) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", journal_mode, |row| row.get(0))
        .unwrap();
    assert_eq!(mode, journal_mode.to_lowercase());
    conn
}

// ---------------------------------------------------------------------------
// Encrypted stores

/// The passphrase of the stores `with_encrypted_store` and
/// `with_encrypted_s3` create.
pub const PASSWORD: &str = "correct horse battery staple";

/// Cheap argon2id parameters (8 MiB, one pass) for `init --encrypt`,
/// `key add` and `key passwd`, so that tests stay fast.
pub const FAST_KDF: [&str; 4] = ["--kdf-memory", "8", "--kdf-iterations", "1"];

impl TestEnv {
    /// A fresh environment with a local store made by `init --encrypt`;
    /// every later command carries its passphrase (`password_file`).
    pub fn with_encrypted_store() -> Self {
        let mut t = Self::new();
        t.init_encrypted();
        t
    }

    /// A fresh environment with an encrypted store in a fresh bucket;
    /// every later command carries its passphrase (`password_file`).
    pub fn with_encrypted_s3() -> Self {
        let mut t = Self::new_s3();
        t.init_encrypted();
        t
    }

    /// Writes `PASSWORD` to `root/password`, makes it this environment's
    /// `password_file` and runs `init --encrypt` with `FAST_KDF`.
    pub fn init_encrypted(&mut self) {
        self.password_file = Some(self.password_file_with("password", PASSWORD));
        self.init_encrypt().assert().success();
    }

    /// `init --encrypt` with `FAST_KDF`, not yet run.
    pub fn init_encrypt(&self) -> assert_cmd::Command {
        let mut cmd = self.cairn(["init", "--encrypt"]);
        cmd.args(FAST_KDF);
        cmd
    }

    /// Writes `password` and a newline to `root/name`; returns the path.
    pub fn password_file_with(&self, name: &str, password: &str) -> PathBuf {
        let path = self.root.join(name);
        fs::write(&path, format!("{password}\n")).unwrap();
        path
    }

    /// `second_host` that carries the same passphrase.
    pub fn second_encrypted_host(&self) -> Self {
        let mut t = self.second_host();
        t.password_file = self.password_file.clone();
        t
    }
}

/// `cmd` run by `setsid` in a session of its own, with stdin from
/// /dev/null: no controlling terminal, so cairn cannot prompt for a
/// passphrase even when the tests run from one.
pub fn without_terminal(cmd: &process::Command) -> assert_cmd::Command {
    let mut detached = process::Command::new("setsid");
    detached
        .arg("--wait")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        detached.current_dir(dir);
    }
    for (name, value) in cmd.get_envs() {
        match value {
            Some(value) => detached.env(name, value),
            None => detached.env_remove(name),
        };
    }
    detached.stdin(process::Stdio::null());
    assert_cmd::Command::from_std(detached)
}

/// Runs `cmd` (its arguments, environment and directory) under `sh -c
/// 'SETUP; exec "$@"'`: a limit, a closed descriptor.
pub fn in_shell(setup: &str, cmd: &process::Command) -> process::Output {
    let script = format!("{setup}; exec \"$@\"");
    let mut sh = process::Command::new("sh");
    sh.args(["-c", &script, "sh"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (name, value) in cmd.get_envs() {
        match value {
            Some(value) => sh.env(name, value),
            None => sh.env_remove(name),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        sh.current_dir(dir);
    }
    sh.output().unwrap()
}

/// Runs `cmd` limited to `kib` KiB of address space (and no core files),
/// as `ulimit -v` does.
pub fn with_memory_limit(cmd: process::Command, kib: u64) -> process::Output {
    in_shell(&format!("ulimit -c 0; ulimit -v {kib}"), &cmd)
}

/// Every file under `dir`, recursively, sorted (the golden fixtures'
/// objects).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Rewrites the record of `snapshot` in `t`'s local (plain) store as
/// something other than cairn could: `edit` changes its JSON, and the
/// record is saved under its new id (the old one removed). Returns it.
pub fn forge_record(t: &TestEnv, snapshot: &Value, edit: impl FnOnce(&mut Value)) -> String {
    let path = t.store.join(format!("snapshots/{}.json", id(snapshot)));
    let mut record: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    edit(&mut record);
    let bytes = serde_json::to_vec(&record).unwrap();
    let forged = blake3::hash(&bytes).to_hex().to_string();
    fs::write(t.store.join(format!("snapshots/{forged}.json")), &bytes).unwrap();
    fs::remove_file(&path).unwrap();
    forged
}

/// The pack files of the local store at `store`, smallest first (the
/// largest is a data pack in the tests' stores).
pub fn packs_by_size(store: &Path) -> Vec<PathBuf> {
    let mut packs = files_under(&store.join("packs"));
    packs.sort_by_key(|p| fs::metadata(p).unwrap().len());
    packs
}

/// The catalog of `t`'s local store: in the store, or (encrypted) in the
/// cache directory under the test's `$HOME`.
pub fn catalog_of(t: &TestEnv) -> PathBuf {
    let in_store = t.store.join("catalog.db");
    if in_store.exists() {
        return in_store;
    }
    let cache = t.path("home/.cache/cairn");
    let mut found = files_under(&cache);
    found.retain(|p| p.file_name().is_some_and(|n| n == "catalog.db"));
    assert_eq!(found.len(), 1, "one catalog under {}", cache.display());
    found.remove(0)
}

/// Forges pack `pack` (hex id) of `t`'s local store as someone who can
/// write to the store could: flips the bytes at `offsets`, saves the file
/// under its new hash (so it checks out against its name) and points the
/// catalog at that name. The header is untouched. Returns the new id.
pub fn forge_pack(t: &TestEnv, pack: &str, offsets: &[usize]) -> String {
    let path = |id: &str| t.store.join(format!("packs/{}/{id}.pack", &id[..2]));
    let mut bytes = fs::read(path(pack)).unwrap();
    for &at in offsets {
        bytes[at] ^= 0x40;
    }
    let forged = blake3::hash(&bytes).to_hex().to_string();
    fs::create_dir_all(path(&forged).parent().unwrap()).unwrap();
    fs::write(path(&forged), &bytes).unwrap();
    fs::remove_file(path(pack)).unwrap();
    let conn = rusqlite::Connection::open(catalog_of(t)).unwrap();
    let (old, new) = (hex::decode(pack).unwrap(), hex::decode(&forged).unwrap());
    for table in ["packs SET id", "index_packs SET pack"] {
        let column = table.rsplit(' ').next().unwrap();
        let changed = conn
            .execute(
                &format!("UPDATE {table} = ?1 WHERE {column} = ?2"),
                [&new, &old],
            )
            .unwrap();
        assert!(changed >= 1, "no row of {table} named pack {pack}");
    }
    forged
}

/// One snapshot of a small tree from `seed` in `t`'s store, listed once so
/// that the catalog holds the copy of its record it checked; the tree, the
/// snapshot's id and its record file.
pub fn listed_snapshot(t: &TestEnv, seed: u64) -> (PathBuf, String, PathBuf) {
    let src = t.path("src");
    small_tree(&src, seed);
    let snap = id(&t.snapshot(&[&src], &[])).to_owned();
    t.cairn(["snapshots"]).assert().success();
    let record = t.store.join(format!("snapshots/{snap}.json"));
    (src, snap, record)
}
