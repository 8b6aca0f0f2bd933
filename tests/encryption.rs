//! Encrypted stores (issue 18), with the real binary on a local store and on
//! the loopback S3 server:
//!
//! - nothing of the data, the names or the databases is readable in the
//!   store (every byte of every file or object is searched), no catalog in
//!   it, not even while a snapshot runs;
//! - everything round-trips (restore, cat, ls, diff, verify) and still
//!   deduplicates;
//! - damage and tampering (flipped bytes in data packs, tree packs, records
//!   and index objects; swapped packs; an old record under a new name; a
//!   truncated pack) is named by `verify` (exit 4), and a restore never
//!   writes wrong bytes;
//! - passphrases and key files (`key add/list/remove/passwd`), wrong or
//!   missing passphrases, a password for an unencrypted store;
//! - `init` (local and s3://), `copy` between stores.
//!
//! Every `init --encrypt`, `key add` and `key passwd` uses cheap argon2id
//! parameters (`FAST_KDF`).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::stall::spawn_stalled;
use common::*;
use serde_json::Value;

// --- objects of a store, local or in S3 ----------------------------------------

/// Every object under `dir` (`""`: the whole store) with its size, keys
/// relative to the store, sorted. For a local store: every file under the
/// directory, whatever it is (locks and `tmp/` included).
fn objects(t: &TestEnv, dir: &str) -> Vec<(String, u64)> {
    if t.is_s3() {
        return t.s3().keys(dir);
    }
    let mut out = Vec::new();
    files_under(&t.store, &t.store.join(dir), &mut out);
    out.sort();
    out
}

fn files_under(base: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            files_under(base, &path, out);
        } else {
            let key = path
                .strip_prefix(base)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            out.push((key, meta.len()));
        }
    }
}

/// The bytes of object `key`.
fn get(t: &TestEnv, key: &str) -> Vec<u8> {
    if t.is_s3() {
        t.s3()
            .get(key)
            .unwrap_or_else(|| panic!("no object {key} in the bucket"))
    } else {
        fs::read(t.store.join(key)).unwrap_or_else(|e| panic!("{key}: {e}"))
    }
}

/// Replaces object `key` with `bytes`.
fn put(t: &TestEnv, key: &str, bytes: &[u8]) {
    if t.is_s3() {
        t.s3().put(key, bytes);
    } else {
        fs::write(t.store.join(key), bytes).unwrap();
    }
}

/// Inverts the byte at `offset` of object `key`.
fn flip(t: &TestEnv, key: &str, offset: usize) {
    let mut bytes = get(t, key);
    assert!(offset < bytes.len(), "{key} has {} bytes", bytes.len());
    bytes[offset] ^= 0xff;
    put(t, key, &bytes);
}

/// The key file ids (`keys/ID`) of the store.
fn key_ids(t: &TestEnv) -> BTreeSet<String> {
    objects(t, "keys/")
        .into_iter()
        .map(|(key, _)| key.strip_prefix("keys/").unwrap().to_owned())
        .collect()
}

/// The store's `config.json`.
fn config(t: &TestEnv) -> Value {
    parse_json(&get(t, "config.json"))
}

/// How many snapshot records the store holds.
fn records(t: &TestEnv) -> usize {
    objects(t, "snapshots/").len()
}

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `object: needle` for every needle found in any object of the store.
fn plaintext_in(t: &TestEnv, needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for (key, _) in objects(t, "") {
        let bytes = get(t, &key);
        for n in needles.iter().filter(|n| contains(&bytes, n.as_bytes())) {
            found.push(format!("{key}: {n}"));
        }
    }
    found
}

/// Objects of the store named like a catalog (`catalog.db`, `-wal`, ...).
fn catalogs_in(t: &TestEnv) -> Vec<String> {
    objects(t, "")
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key.rsplit('/').next().unwrap().starts_with("catalog.db"))
        .collect()
}

/// Removes every cache directory the environment's commands may use (the
/// S3 `--cache-dir`, and `~/.cache` where a local encrypted store keeps its
/// catalog), so that the next command rebuilds its catalog from the store.
fn drop_cache(t: &TestEnv) {
    for dir in [t.cache.clone(), t.home.join(".cache")] {
        if dir.exists() {
            fs::remove_dir_all(&dir).unwrap();
        }
    }
}

// --- running commands ----------------------------------------------------------------

/// `verify --json ARGS`: the exit code (0 or 4) and the report.
fn verify(t: &TestEnv, args: &[&str]) -> (i32, Value) {
    let out = t.command(["--json", "verify"]).args(args).output().unwrap();
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 4,
        "verify {args:?} exited {code}: {}{}",
        stderr_of(&out),
        String::from_utf8_lossy(&out.stdout)
    );
    (code, parse_json(&out.stdout))
}

/// Asserts that `verify ARGS` exits 4 and names `key` in its damage.
fn assert_verify_names(t: &TestEnv, args: &[&str], key: &str) {
    let (code, report) = verify(t, args);
    assert_eq!(code, 4, "verify {args:?} found no damage: {report:#}");
    assert_eq!(report["ok"], false, "{report:#}");
    let named = report["damage"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["key"] == key || d.to_string().contains(key));
    assert!(named, "verify {args:?} does not name {key}: {report:#}");
}

/// Asserts that `verify --read-data` finds nothing.
fn assert_verify_clean(t: &TestEnv) {
    let (code, report) = verify(t, &["--read-data"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true, "{report:#}");
}

/// `restore SNAP --target FRESH [--include PATH]...` from `env`: the output
/// and the target.
fn try_restore(env: &TestEnv, snap: &str, include: &[PathBuf]) -> (Output, PathBuf) {
    let target = env.fresh_dir("restore");
    let mut cmd = env.command(["restore", snap, "--target"]);
    cmd.arg(&target);
    for path in include {
        cmd.arg("--include").arg(path);
    }
    (cmd.output().unwrap(), target)
}

/// Asserts that every file under `got` holds exactly the bytes of the same
/// file under `want`: a restore that meets damage may leave files out, but
/// never writes wrong bytes.
fn assert_no_wrong_bytes(want: &Path, got: &Path) {
    let Ok(meta) = fs::symlink_metadata(got) else {
        return;
    };
    if meta.is_dir() {
        for name in names(got) {
            assert_no_wrong_bytes(&want.join(&name), &got.join(&name));
        }
    } else if meta.is_file() {
        let wanted = fs::read(want)
            .unwrap_or_else(|e| panic!("{got:?} was restored, but {want:?} is not there ({e})"));
        let bytes = fs::read(got).unwrap();
        assert!(
            bytes == wanted,
            "{got:?} was restored with wrong bytes ({} bytes, want {} bytes of {want:?})",
            bytes.len(),
            wanted.len()
        );
    }
}

/// `snapshots --json` with the passphrase in `password` instead of the
/// environment's.
fn snapshots_with(t: &TestEnv, password: &Path) -> assert_cmd::assert::Assert {
    t.cairn(["--json", "snapshots"])
        .env("CAIRN_PASSWORD_FILE", password)
        .assert()
}

/// Asserts that `password` opens the store and lists `count` snapshots.
fn assert_opens_with(t: &TestEnv, password: &Path, count: usize) {
    let out = snapshots_with(t, password).success();
    let list = parse_json(&out.get_output().stdout);
    assert_eq!(list.as_array().unwrap().len(), count, "{list}");
}

/// Asserts that `password` is refused: exit 1, `wrong password for store`.
fn assert_refused(t: &TestEnv, password: &Path) {
    let out = snapshots_with(t, password).code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("wrong password for store"), "{err}");
}

/// A command of `t` with no password source at all, run with no terminal.
fn without_password(t: &TestEnv, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = t.command(args);
    cmd.env_remove("CAIRN_PASSWORD_FILE")
        .env_remove("CAIRN_PASSWORD_COMMAND");
    without_terminal(&cmd)
}

/// A fresh hex string, different in every run.
fn fresh_hex() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

// --- what must not be readable --------------------------------------------------------

/// A tree whose content and names must not be readable in the store.
struct Secrets {
    /// The tree's root.
    src: PathBuf,
    /// Strings that must occur in no object of the store: the marker, the
    /// names of the tree, the tag, SQLite's magic.
    needles: Vec<String>,
    /// The unique string inside the file contents and database rows.
    marker: String,
    /// The tag given to the snapshots.
    tag: String,
}

/// A tree with distinctive names: a file of random bytes with the marker
/// inside (stored as is, uncompressed, by an unencrypted store), a text
/// repeating it, and a SQLite database whose rows hold it.
fn secret_tree(t: &TestEnv) -> Secrets {
    let hex = fresh_hex();
    let marker = format!("cairn-marker-{hex}");
    let dir = format!("vault-{hex}");
    let payroll = format!("payroll-{hex}.bin");
    let diary = format!("diary-{hex}.md");
    let ledger = format!("ledger-{hex}.db");
    let src = t.path(&dir);
    let mut bytes = random_bytes(1, 200_000);
    bytes[100_000..100_000 + marker.len()].copy_from_slice(marker.as_bytes());
    write_file(&src.join(&payroll), &bytes);
    write_file(
        &src.join("notes").join(&diary),
        format!("Dear diary, {marker}\n").repeat(40).as_bytes(),
    );
    let conn = open_in_mode(&src.join(&ledger), "WAL");
    conn.execute_batch("CREATE TABLE secrets (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .unwrap();
    for i in 0..300 {
        conn.execute(
            "INSERT INTO secrets (v) VALUES (?1)",
            [format!("row {i}: {marker}")],
        )
        .unwrap();
    }
    drop(conn);
    let tag = format!("tag-{hex}");
    let needles = vec![
        marker.clone(),
        dir,
        payroll,
        diary,
        ledger,
        tag.clone(),
        "SQLite format 3".to_owned(),
    ];
    Secrets {
        src,
        needles,
        marker,
        tag,
    }
}

/// Two snapshots of the secret tree (with a change between), then a forget
/// and prune, so that records, trees, index objects and condemned lists
/// all exist; then every byte of the store is searched.
fn nothing_readable_in_the_store(t: &TestEnv) -> Secrets {
    let s = secret_tree(t);
    settle();
    t.snapshot(&[&s.src], &["--tag", &s.tag]);
    let diary = fs::read_dir(s.src.join("notes"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut text = fs::read(&diary).unwrap();
    text.extend_from_slice(format!("P.S. {}\n", s.marker).as_bytes());
    fs::write(&diary, text).unwrap();
    settle();
    let last = t.snapshot(&[&s.src], &["--tag", &s.tag]);
    t.cairn(["forget", "--keep-last", "1", "--prune", "--grace", "0s"])
        .assert()
        .success();

    let found = plaintext_in(t, &s.needles);
    assert!(
        found.is_empty(),
        "readable in the store:\n{}",
        found.join("\n")
    );
    let catalogs = catalogs_in(t);
    assert!(catalogs.is_empty(), "a catalog in the store: {catalogs:?}");
    // ...and yet it all comes back.
    assert_trees_equal(&s.src, &restored(&t.restore(id(&last)), &s.src));
    s
}

#[test]
fn nothing_of_the_data_names_or_databases_is_readable_in_a_local_encrypted_store() {
    let t = TestEnv::with_encrypted_store();
    let s = nothing_readable_in_the_store(&t);

    // The search would have seen it: an unencrypted store of the same tree
    // holds the marker as is.
    let mut plain = TestEnv::new();
    plain.store = t.path("plain-store");
    plain.cairn(["init"]).assert().success();
    plain.snapshot(&[&s.src], &[]);
    let found = plaintext_in(&plain, std::slice::from_ref(&s.marker));
    assert!(
        !found.is_empty(),
        "the control store does not show the marker"
    );
}

#[test]
fn nothing_of_the_data_names_or_databases_is_readable_in_an_encrypted_s3_store() {
    let t = TestEnv::with_encrypted_s3();
    nothing_readable_in_the_store(&t);
    // Nothing outside the store's prefix either.
    let prefix = format!("{}/", t.s3().prefix());
    let outside: Vec<_> = t
        .s3()
        .bucket_keys()
        .into_iter()
        .filter(|(key, _)| !key.starts_with(&prefix))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
}

#[test]
fn a_database_being_copied_by_a_running_snapshot_is_not_in_the_store_directory() {
    let mut t = TestEnv::new();
    t.password_file = Some(t.password_file_with("password", PASSWORD));
    t.cairn(["init", "--encrypt", "--pack-size", "1MiB"])
        .args(FAST_KDF)
        .assert()
        .success();
    let marker = format!("cairn-marker-{}", fresh_hex());
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    // A rollback-journal database is copied before it is stored.
    let conn = open_in_mode(&src.join("app.db"), "DELETE");
    conn.execute_batch(&format!(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL, data BLOB NOT NULL);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 4000)
         INSERT INTO t SELECT i, '{marker}', randomblob(1000) FROM c;"
    ))
    .unwrap();
    drop(conn);
    let mut child = spawn_stalled(
        {
            let mut cmd = t.command(["snapshot"]);
            cmd.arg(&src);
            cmd
        },
        "pack-published",
        120,
    );
    let found = plaintext_in(&t, &[marker.clone(), "SQLite format 3".to_owned()]);
    let catalogs = catalogs_in(&t);
    let in_cache = copied_database_under(&t.home.join(".cache"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        found.is_empty(),
        "readable in the store while a snapshot runs:\n{}",
        found.join("\n")
    );
    assert!(!has_database_copy(&t.store.join("tmp")));
    assert!(catalogs.is_empty(), "{catalogs:?}");
    assert!(
        in_cache,
        "the snapshot was not stopped while it held a copy in the cache"
    );
}

/// Whether a file under `dir` (recursively) other than a catalog starts
/// like a SQLite database: an image being captured.
fn copied_database_under(dir: &Path) -> bool {
    let mut files = Vec::new();
    files_under(dir, dir, &mut files);
    files.iter().any(|(rel, _)| {
        let name = rel.rsplit('/').next().unwrap();
        let head = fs::read(dir.join(rel)).unwrap_or_default();
        !name.starts_with("catalog.db") && head.starts_with(b"SQLite format 3\0")
    })
}

// --- round trip ------------------------------------------------------------------------

fn everything_round_trips(t: &TestEnv) {
    let src = t.path("src");
    small_tree(&src, 5);
    write_random_file(&src.join("big.bin"), 11, 3 << 20);
    make_symlink("a.txt", &src.join("link"));
    settle();
    let first = t.snapshot(&[&src], &[]);
    assert_trees_equal(&src, &restored(&t.restore(id(&first)), &src));

    let cat = t
        .cairn(["cat", id(&first)])
        .arg(src.join("sub/b.bin"))
        .assert()
        .success();
    assert!(cat.get_output().stdout == fs::read(src.join("sub/b.bin")).unwrap());
    let ls = t.cairn(["ls", id(&first)]).arg(&src).assert().success();
    let listed = String::from_utf8_lossy(&ls.get_output().stdout).into_owned();
    for name in ["a.txt", "big.bin", "sub", "link"] {
        assert!(listed.contains(name), "{name} not in:\n{listed}");
    }

    write_file(&src.join("new.txt"), b"second night");
    settle();
    let second = t.snapshot(&[&src], &[]);
    let diff = t
        .cairn(["diff", id(&first), id(&second)])
        .assert()
        .success();
    let diff = String::from_utf8_lossy(&diff.get_output().stdout).into_owned();
    assert!(diff.contains("new.txt"), "{diff}");
    assert_verify_clean(t);

    // The same content under another path: every chunk is found again.
    let copy = t.path("copy");
    copy_tree(&src, &copy);
    settle();
    let third = t.snapshot(&[&copy], &[]);
    assert_eq!(summary(&third, "data_blobs_new"), 0, "{third}");
    assert!(summary(&third, "data_blobs_reused") >= 3, "{third}");
    assert!(
        summary(&third, "bytes_added") < 64 * 1024,
        "3 MiB seen before cost more than its trees: {third}"
    );

    // A host with a cold cache restores it all.
    let other = t.second_encrypted_host();
    assert_trees_equal(&src, &restored(&other.restore(id(&second)), &src));
    assert_trees_equal(&copy, &restored(&other.restore(id(&third)), &copy));
    assert_verify_clean(&other);
}

#[test]
fn a_local_encrypted_store_restores_lists_diffs_verifies_and_deduplicates() {
    everything_round_trips(&TestEnv::with_encrypted_store());
}

#[test]
fn an_encrypted_s3_store_restores_lists_diffs_verifies_and_deduplicates() {
    everything_round_trips(&TestEnv::with_encrypted_s3());
}

#[test]
fn a_sqlite_database_in_an_encrypted_store_restores_and_passes_integrity_check() {
    let t = TestEnv::with_encrypted_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    let conn = open_in_mode(&db, "WAL");
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL, data BLOB NOT NULL);
         CREATE INDEX t_v ON t (v);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000)
         INSERT INTO t SELECT i, 'value-' || i, randomblob(500) FROM c;",
    )
    .unwrap();
    // Still open, with commits in the -wal: captured through SQLite.
    conn.execute("UPDATE t SET v = 'changed' WHERE id = 7", [])
        .unwrap();
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(
        snap["summary"]["databases"].as_array().unwrap().len(),
        1,
        "{snap}"
    );

    let target = t.fresh_dir("restore");
    t.cairn(["restore", id(&snap), "--check", "--target"])
        .arg(&target)
        .assert()
        .success();
    let back = rusqlite::Connection::open(restored(&target, &db)).unwrap();
    let check: String = back
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let query = "SELECT count(*), sum(length(data)), group_concat(v) FROM t";
    let row = |c: &rusqlite::Connection| -> (i64, i64, String) {
        c.query_row(query, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
    };
    assert_eq!(row(&back), row(&conn));
    let data = |c: &rusqlite::Connection| -> Vec<u8> {
        c.query_row("SELECT data FROM t WHERE id = 1234", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(data(&back), data(&conn));
    let (code, report) = verify(&t, &["--read-data", "--sqlite"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["databases_checked"], 1, "{report:#}");
}

// --- damage and tampering ----------------------------------------------------------------

/// An encrypted store with two snapshots of `src`: s1 holds `a.bin`, s2
/// adds `b.bin` (both 80 000 random bytes: one chunk each). Each snapshot
/// wrote one data pack (its one new file; the two are the same size) and
/// one tree pack.
struct Tampered {
    t: TestEnv,
    src: PathBuf,
    /// Snapshot ids, oldest first.
    ids: [String; 2],
    /// Snapshot times as `--json` shows them.
    times: [String; 2],
    /// Copies of `src` as each snapshot took it.
    at: [PathBuf; 2],
    /// The data pack of each snapshot (`packs/XX/ID.pack`).
    data: [String; 2],
    /// The tree pack of each snapshot.
    tree: [String; 2],
}

impl Tampered {
    fn new(t: TestEnv) -> Self {
        let src = t.path("src");
        fs::create_dir(&src).unwrap();
        let (mut ids, mut times, mut at, mut data, mut tree) =
            (vec![], vec![], vec![], vec![], vec![]);
        for (k, name) in ["a.bin", "b.bin"].into_iter().enumerate() {
            write_random_file(&src.join(name), k as u64 + 1, 80_000);
            settle();
            let before = objects(&t, "packs/");
            let snap = t.snapshot(&[&src], &[]);
            let mut new: Vec<(String, u64)> = objects(&t, "packs/")
                .into_iter()
                .filter(|p| !before.contains(p))
                .collect();
            assert_eq!(new.len(), 2, "one data and one tree pack: {new:?}");
            new.sort_by_key(|(_, size)| *size);
            tree.push(new[0].0.clone());
            data.push(new[1].0.clone());
            ids.push(id(&snap).to_owned());
            times.push(snap["time"].as_str().unwrap().to_owned());
            let copy = t.path(format!("at-{k}"));
            copy_tree(&src, &copy);
            at.push(copy);
        }
        let f = Self {
            t,
            src,
            ids: ids.try_into().unwrap(),
            times: times.try_into().unwrap(),
            at: at.try_into().unwrap(),
            data: data.try_into().unwrap(),
            tree: tree.try_into().unwrap(),
        };
        assert_verify_clean(&f.t);
        f
    }

    /// `snapshots/ID.json` of snapshot `k`.
    fn record(&self, k: usize) -> String {
        format!("snapshots/{}.json", self.ids[k])
    }

    /// `src/NAME`.
    fn file(&self, name: &str) -> PathBuf {
        self.src.join(name)
    }

    /// Restores snapshot `k` (or only `include`) from `env` and asserts it
    /// fails (non-zero) without writing a wrong byte.
    fn assert_restore_fails(&self, env: &TestEnv, k: usize, include: &[PathBuf]) {
        let (out, target) = try_restore(env, &self.ids[k], include);
        assert!(
            !out.status.success(),
            "restoring s{} over damage succeeded: {}",
            k + 1,
            stderr_of(&out)
        );
        assert_no_wrong_bytes(&self.at[k], &restored(&target, &self.src));
    }

    /// Restores snapshot `k` whole from `env` and compares it with the source.
    fn assert_restores(&self, env: &TestEnv, k: usize) {
        let (out, target) = try_restore(env, &self.ids[k], &[]);
        assert!(
            out.status.success(),
            "restoring s{} failed: {}",
            k + 1,
            stderr_of(&out)
        );
        assert_trees_equal(&self.at[k], &restored(&target, &self.src));
    }

    /// Asserts that `cat` of `src/NAME` in snapshot `k` fails and writes
    /// nothing but a beginning of the file's true bytes.
    fn assert_cat_fails(&self, k: usize, name: &str) {
        let out = self
            .t
            .command(["cat", &self.ids[k]])
            .arg(self.file(name))
            .output()
            .unwrap();
        assert!(!out.status.success(), "cat of a damaged {name} succeeded");
        let original = fs::read(self.at[k].join(name)).unwrap();
        assert!(
            original.starts_with(&out.stdout),
            "cat wrote {} bytes that are not {name}'s",
            out.stdout.len()
        );
    }
}

fn a_flipped_byte_in_a_data_pack(t: TestEnv) {
    let f = Tampered::new(t);
    let len = get(&f.t, &f.data[0]).len();
    flip(&f.t, &f.data[0], len / 2);

    assert_verify_names(&f.t, &["--read-data"], &f.data[0]);
    // a.bin is in both snapshots; b.bin is not in the damaged pack.
    f.assert_restore_fails(&f.t, 0, &[]);
    f.assert_restore_fails(&f.t, 1, &[f.file("a.bin")]);
    f.assert_cat_fails(0, "a.bin");
    let cold = f.t.second_encrypted_host();
    f.assert_restore_fails(&cold, 1, &[]);
    let (out, target) = try_restore(&cold, &f.ids[1], &[f.file("b.bin")]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        fs::read(restored(&target, &f.file("b.bin"))).unwrap()
            == fs::read(f.at[1].join("b.bin")).unwrap()
    );
}

#[test]
fn a_flipped_byte_in_a_local_data_pack_is_named_by_verify_and_never_restored() {
    a_flipped_byte_in_a_data_pack(TestEnv::with_encrypted_store());
}

#[test]
fn a_flipped_byte_in_an_s3_data_pack_is_named_by_verify_and_never_restored() {
    a_flipped_byte_in_a_data_pack(TestEnv::with_encrypted_s3());
}

#[test]
fn a_flipped_byte_in_a_tree_pack_is_named_by_verify_and_its_snapshot_is_not_restored() {
    let f = Tampered::new(TestEnv::with_encrypted_store());
    // Inside the first tree blob's ciphertext (after scheme and nonce).
    flip(&f.t, &f.tree[0], 30);

    let (code, report) = verify(&f.t, &[]);
    assert_eq!(code, 4, "the structure check reads every tree: {report:#}");
    assert_verify_names(&f.t, &["--read-data"], &f.tree[0]);
    f.assert_restore_fails(&f.t, 0, &[]);
    // s2's trees are all in its own tree pack.
    f.assert_restores(&f.t, 1);
    let cold = f.t.second_encrypted_host();
    f.assert_restore_fails(&cold, 0, &[]);
    f.assert_restores(&cold, 1);
}

/// The fixture with a byte of s2's record flipped.
fn with_a_flipped_record() -> (Tampered, String) {
    let f = Tampered::new(TestEnv::with_encrypted_store());
    let key = f.record(1);
    let len = get(&f.t, &key).len();
    flip(&f.t, &key, len / 2);
    (f, key)
}

#[test]
fn a_flipped_byte_in_a_snapshot_record_is_named_by_verify_and_restored_only_from_a_checked_copy() {
    let (f, key) = with_a_flipped_record();
    assert_verify_names(&f.t, &[], &key);
    assert_verify_names(&f.t, &["--read-data"], &key);
    // The host that wrote the record keeps the copy it checked (its
    // catalog), which is the record: it still restores there.
    f.assert_restores(&f.t, 1);
    // A host that knows the record only from the store.
    let cold = f.t.second_encrypted_host();
    assert_verify_names(&cold, &[], &key);
    f.assert_restore_fails(&cold, 1, &[]);
}

#[test]
fn a_flipped_byte_in_one_snapshot_record_leaves_the_other_snapshots_listed_and_restored() {
    // As in an unencrypted store (tests/verify.rs): the damaged record is
    // left out with a warning, everything else works.
    // (The host that wrote it lists it from the copy it checked.)
    let (f, _) = with_a_flipped_record();
    let cold = f.t.second_encrypted_host();
    for (env, listed_there) in [(&f.t, &f.ids[..2]), (&cold, &f.ids[..1])] {
        let out = env.command(["--json", "snapshots"]).output().unwrap();
        assert!(out.status.success(), "snapshots: {}", stderr_of(&out));
        let listed: Vec<String> = parse_json(&out.stdout)
            .as_array()
            .unwrap()
            .iter()
            .map(|s| id(s).to_owned())
            .collect();
        assert_eq!(listed, listed_there);
        f.assert_restores(env, 0);
    }
}

/// The fixture with a byte of one of its two index objects flipped.
fn with_a_flipped_index_object() -> (Tampered, String) {
    let f = Tampered::new(TestEnv::with_encrypted_store());
    let index = objects(&f.t, "index/");
    assert_eq!(index.len(), 2, "one index object per snapshot: {index:?}");
    let (key, len) = index[0].clone();
    flip(&f.t, &key, len as usize / 2);
    (f, key)
}

#[test]
fn a_flipped_byte_in_an_index_object_is_named_by_verify() {
    let (f, key) = with_a_flipped_index_object();
    assert_verify_names(&f.t, &[], &key);
    assert_verify_names(&f.t, &["--read-data"], &key);
    f.assert_restores(&f.t, 0);
    f.assert_restores(&f.t, 1);
}

#[test]
fn a_catalog_rebuilt_over_a_damaged_index_object_names_it_and_reads_the_pack_headers() {
    // As in an unencrypted store (tests/s3.rs): the rebuild says which
    // index object it could not use (and that `repair catalog` reads the
    // packs themselves); `repair catalog` learns the packs from their own
    // headers and writes a good index object again.
    let (f, key) = with_a_flipped_index_object();
    drop_cache(&f.t);
    let out = f.t.command(["snapshots"]).output().unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "snapshots after a rebuild: {err}");
    assert!(err.contains(&key), "the rebuild does not name {key}: {err}");
    assert!(err.contains("repair catalog"), "no advice: {err}");
    assert_verify_names(&f.t, &["--read-data"], &key);

    let cold = f.t.second_encrypted_host();
    cold.cairn(["repair", "catalog"]).assert().success();
    assert_verify_clean(&cold);
    let other = f.t.second_encrypted_host();
    f.assert_restores(&other, 0);
    f.assert_restores(&other, 1);
}

#[test]
fn two_data_packs_swapped_are_named_by_verify_and_neither_file_is_restored_from_the_other() {
    let f = Tampered::new(TestEnv::with_encrypted_store());
    let (a, b) = (&f.data[0], &f.data[1]);
    assert_eq!(
        get(&f.t, a).len(),
        get(&f.t, b).len(),
        "same size, so only the contents tell them apart"
    );
    let (path_a, path_b) = (f.t.store.join(a), f.t.store.join(b));
    let aside = f.t.path("aside.pack");
    fs::rename(&path_a, &aside).unwrap();
    fs::rename(&path_b, &path_a).unwrap();
    fs::rename(&aside, &path_b).unwrap();

    assert_verify_names(&f.t, &["--read-data"], a);
    assert_verify_names(&f.t, &["--read-data"], b);
    f.assert_restore_fails(&f.t, 0, &[]);
    f.assert_restore_fails(&f.t, 1, &[f.file("a.bin")]);
    f.assert_restore_fails(&f.t, 1, &[f.file("b.bin")]);
    f.assert_cat_fails(1, "b.bin");
    // A catalog rebuilt from the index objects believes the packs' names.
    let cold = f.t.second_encrypted_host();
    f.assert_restore_fails(&cold, 0, &[]);
    f.assert_restore_fails(&cold, 1, &[f.file("b.bin")]);
}

fn an_old_record_under_a_new_name(t: TestEnv) {
    let f = Tampered::new(t);
    let old = get(&f.t, &f.record(0));
    put(&f.t, &f.record(1), &old);

    assert_verify_names(&f.t, &[], &f.record(1));
    let cold = f.t.second_encrypted_host();
    assert_verify_names(&cold, &[], &f.record(1));
    // Whatever a host lists as s2 is s2, not s1 under s2's id.
    let out = cold.command(["--json", "snapshots"]).output().unwrap();
    if out.status.success() {
        for s in parse_json(&out.stdout).as_array().unwrap() {
            if id(s) == f.ids[1] {
                assert_eq!(s["time"], f.times[1].as_str(), "s1 listed as s2: {s}");
            }
        }
    }
    // Restoring s2 never gives s1's tree.
    let (out, target) = try_restore(&cold, &f.ids[1], &[]);
    let back = restored(&target, &f.src);
    if out.status.success() {
        assert_trees_equal(&f.at[1], &back);
    } else {
        assert_no_wrong_bytes(&f.at[1], &back);
        assert!(
            !back.join("a.bin").exists() || back.join("b.bin").exists(),
            "s1's files restored as s2"
        );
    }
    f.assert_restores(&cold, 0);
}

#[test]
fn a_local_record_replaced_by_an_older_ones_bytes_is_named_and_never_restored_as_the_newer() {
    an_old_record_under_a_new_name(TestEnv::with_encrypted_store());
}

#[test]
fn an_s3_record_replaced_by_an_older_ones_bytes_is_named_and_never_restored_as_the_newer() {
    an_old_record_under_a_new_name(TestEnv::with_encrypted_s3());
}

#[test]
fn a_truncated_data_pack_is_named_by_verify_and_its_file_is_not_restored() {
    let f = Tampered::new(TestEnv::with_encrypted_store());
    let path = f.t.store.join(&f.data[1]);
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    assert_verify_names(&f.t, &[], &f.data[1]);
    assert_verify_names(&f.t, &["--read-data"], &f.data[1]);
    f.assert_restore_fails(&f.t, 1, &[]);
    f.assert_cat_fails(1, "b.bin");
    f.assert_restores(&f.t, 0);
}

// --- keys and passphrases ------------------------------------------------------------------

/// An encrypted store with one snapshot of a small tree; the tree.
fn store_with_a_snapshot() -> (TestEnv, PathBuf, String) {
    let t = TestEnv::with_encrypted_store();
    let src = t.path("src");
    small_tree(&src, 3);
    settle();
    let snap = t.snapshot(&[&src], &[]);
    (t, src, id(&snap).to_owned())
}

/// An encrypted local store keeps plaintext database images in its cache
/// directory: one left by a snapshot killed while it read a database stayed
/// there for good, though prune said it removed the leftovers of
/// interrupted runs.
#[test]
fn prune_removes_the_plaintext_images_a_killed_snapshot_left_in_the_cache() {
    let (t, _, _) = store_with_a_snapshot();
    let catalog = common::files_under(&t.root)
        .into_iter()
        .find(|f| f.ends_with("catalog.db") && !f.starts_with(&t.store))
        .unwrap();
    let tmp = catalog.parent().unwrap().join("tmp");
    let image = tmp.join("cairn-Ab12Cd.tmp");
    fs::write(&image, b"SQLite format 3\0 a plaintext page").unwrap();
    t.cairn(["prune"]).assert().success();
    assert!(
        !image.exists(),
        "the plaintext image is still in {}",
        tmp.display()
    );
}

/// Restores `snap` with the passphrase in `password` and compares.
fn assert_restores_with(t: &TestEnv, password: &Path, snap: &str, src: &Path) {
    let target = t.fresh_dir("restore");
    t.cairn(["restore", snap, "--target"])
        .arg(&target)
        .env("CAIRN_PASSWORD_FILE", password)
        .assert()
        .success();
    assert_trees_equal(src, &restored(&target, src));
}

/// `key add` of the passphrase in `new` (opening with the environment's).
fn add_key(t: &TestEnv, new: &Path) -> String {
    let before = key_ids(t);
    t.cairn(["key", "add", "--new-password-file"])
        .arg(new)
        .args(FAST_KDF)
        .assert()
        .success();
    let after = key_ids(t);
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    after.difference(&before).next().unwrap().clone()
}

#[test]
fn init_encrypt_writes_a_version_9_config_and_one_key_file_with_the_kdf_asked_for() {
    for t in [
        TestEnv::with_encrypted_store(),
        TestEnv::with_encrypted_s3(),
    ] {
        let config = config(&t);
        assert_eq!(config["version"], 9, "{config}");
        // store-format/config.md (the design's `scheme` became `cipher`).
        let encryption = &config["encryption"];
        assert_eq!(encryption["cipher"], "xchacha20poly1305", "{config}");
        assert_eq!(encryption["ids"], "blake3-keyed", "{config}");
        let check = encryption["key_check"].as_str().unwrap();
        assert!(check.len() == 64 && check.bytes().all(|b| b.is_ascii_hexdigit()));
        let keys = key_ids(&t);
        assert_eq!(keys.len(), 1, "{keys:?}");
        let name = keys.first().unwrap();
        assert!(
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
        let bytes = get(&t, &format!("keys/{name}"));
        assert!(!contains(&bytes, PASSWORD.as_bytes()));
        let key = parse_json(&bytes);
        assert_eq!(key["version"], 1, "{key}");
        assert_eq!(key["kind"], "full", "{key}");
        let kdf = &key["kdf"];
        assert_eq!(kdf["algorithm"], "argon2id", "{key}");
        assert_eq!(kdf["memory_kib"], 8 * 1024, "{key}");
        assert_eq!(kdf["iterations"], 1, "{key}");
        assert_eq!(kdf["parallelism"], 1, "{key}");
        assert_eq!(kdf["salt"].as_str().unwrap().len(), 64, "{key}");
        // The envelope of the 32-byte master key: 41 bytes more.
        assert_eq!(
            key["wrapped"].as_str().unwrap().len(),
            2 * (32 + 41),
            "{key}"
        );
    }
}

#[test]
fn a_second_key_opens_the_store_beside_the_first_and_key_list_shows_both() {
    let (t, src, snap) = store_with_a_snapshot();
    let first = t.password_file.clone().unwrap();
    let original = key_ids(&t).first().unwrap().clone();
    let second = t.password_file_with("second", "another passphrase entirely");
    let added = add_key(&t, &second);

    for password in [&first, &second] {
        assert_opens_with(&t, password, 1);
        assert_restores_with(&t, password, &snap, &src);
    }
    for password in [&first, &second] {
        let out = t
            .cairn(["key", "list"])
            .env("CAIRN_PASSWORD_FILE", password)
            .assert()
            .success();
        let list = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        for key in [&original, &added] {
            assert!(list.contains(&key[..8]), "{} not in:\n{list}", &key[..8]);
        }
        assert_eq!(
            list.matches('*').count(),
            1,
            "one key is the one used:\n{list}"
        );
    }
    // A snapshot taken through the second key is read through the first.
    write_file(&src.join("later.txt"), b"through the second key");
    settle();
    let later = t
        .cairn(["--json", "snapshot"])
        .arg(&src)
        .env("CAIRN_PASSWORD_FILE", &second)
        .assert()
        .success();
    let later = parse_json(&later.get_output().stdout);
    assert_restores_with(&t, &first, id(&later), &src);
}

#[test]
fn a_removed_key_no_longer_opens_the_store_and_the_last_key_cannot_be_removed() {
    let (t, src, snap) = store_with_a_snapshot();
    let first = t.password_file.clone().unwrap();
    let original = key_ids(&t).first().unwrap().clone();
    let second = t.password_file_with("second", "another passphrase entirely");
    let added = add_key(&t, &second);

    t.cairn(["key", "remove", &original[..8]])
        .env("CAIRN_PASSWORD_FILE", &second)
        .assert()
        .success();
    assert_eq!(key_ids(&t), BTreeSet::from([added.clone()]));
    assert_refused(&t, &first);
    assert_opens_with(&t, &second, 1);
    assert_restores_with(&t, &second, &snap, &src);

    let out = t
        .cairn(["key", "remove", &added])
        .env("CAIRN_PASSWORD_FILE", &second)
        .assert()
        .failure();
    let err = stderr_of(out.get_output());
    assert!(!err.trim().is_empty(), "refused without a word");
    assert_eq!(key_ids(&t), BTreeSet::from([added]));
    assert_opens_with(&t, &second, 1);
    assert_restores_with(&t, &second, &snap, &src);
}

#[test]
fn key_remove_never_takes_the_key_in_use_though_stray_files_sit_beside_it() {
    // `key remove` counted every file under keys/ as a key: beside a
    // stray README and a truncated key file, the store's only key was
    // "removed key ..." (exit 0) and nobody could open the store again.
    let (t, src, snap) = store_with_a_snapshot();
    let pw = t.password_file.clone().unwrap();
    let only = key_ids(&t).first().unwrap().clone();
    put(&t, "keys/README", b"the keys of this store");
    put(&t, &format!("keys/{}", "f".repeat(64)), b"{\"truncated");
    let out = t.cairn(["key", "remove", &only[..8]]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("your password opened"), "{err}");
    assert!(key_ids(&t).contains(&only), "{:?}", key_ids(&t));
    assert_restores_with(&t, &pw, &snap, &src);

    // Another key's holder may remove it; the holder of the first keeps theirs.
    let second = t.password_file_with("second", "another passphrase entirely");
    let added = add_key(&t, &second);
    t.cairn(["key", "remove", &only[..8]])
        .env("CAIRN_PASSWORD_FILE", &second)
        .assert()
        .success();
    assert!(key_ids(&t).contains(&added) && !key_ids(&t).contains(&only));
    assert_restores_with(&t, &second, &snap, &src);
}

#[test]
fn key_list_escapes_the_host_and_user_a_key_file_claims() {
    // A key file's host and user are not sealed: a planted one with a
    // newline in them printed a line of its own that looked like a key
    // marked `*`, the one in use.
    let (t, _, _) = store_with_a_snapshot();
    let real = key_ids(&t).into_iter().next().unwrap();
    let mut planted = parse_json(&get(&t, &format!("keys/{real}")));
    planted["host"] = "evil\n* 00000000  full  2026-01-01 00:00:00  forged".into();
    planted["user"] = "u\r\x1b[2Kx".into();
    put(
        &t,
        &format!("keys/{}", "0".repeat(64)),
        &serde_json::to_vec(&planted).unwrap(),
    );
    let out = t.cairn(["key", "list"]).assert().success();
    let listed = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert_eq!(
        listed.lines().count(),
        3,
        "a heading and two keys:\n{listed}"
    );
    assert_eq!(
        listed.lines().filter(|l| l.starts_with('*')).count(),
        1,
        "{listed}"
    );
    assert!(!listed.contains(['\r', '\x1b']), "{listed:?}");
    assert!(listed.contains("evil\\n* 00000000"), "{listed}");
}

#[test]
fn the_cheapest_key_file_is_tried_first_whatever_its_date() {
    // Keys were tried oldest first, by a date anyone who may write keys/
    // sets: a planted key file asking for 4 GiB and 100 passes, dated
    // first, cost every open minutes. Here the planted one asks for 4 GiB
    // of a process allowed 2 GiB: tried at all, its derivation fails to
    // allocate and the process aborts.
    let (t, _, _) = store_with_a_snapshot();
    let real = key_ids(&t).into_iter().next().unwrap();
    let mut planted = parse_json(&get(&t, &format!("keys/{real}")));
    planted["kdf"]["memory_kib"] = (4u32 << 20).into();
    planted["kdf"]["iterations"] = 100.into();
    planted["created"] = "1970-01-01T00:00:00Z".into();
    let planted_id = "0".repeat(64);
    put(
        &t,
        &format!("keys/{planted_id}"),
        &serde_json::to_vec(&planted).unwrap(),
    );
    let out = with_memory_limit(t.command(["--json", "key", "list"]), 2 << 20);
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        stderr_of(&out)
    );
    let listed = parse_json(&out.stdout);
    let current: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["current"] == true)
        .collect();
    assert_eq!(current.len(), 1, "{listed}");
    assert_eq!(current[0]["id"], real.as_str(), "{listed}");
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    // A wrong password tries it too: a clear error naming it, no abort.
    let wrong = t.password_file_with("wrong", "not the password");
    let mut cmd = t.command(["snapshots"]);
    cmd.env("CAIRN_PASSWORD_FILE", &wrong);
    let out = with_memory_limit(cmd, 2 << 20);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&planted_id) && err.contains("cannot allocate the 4096 MiB"),
        "{err}"
    );
    assert!(
        err.starts_with("cairn: error: wrong password for store"),
        "{err}"
    );
    // Adding a key tries the new password on every key: the planted one
    // cannot be tried under the same limit, which a warning says.
    let new = t.password_file_with("new", "a new passphrase");
    let mut cmd = t.command(["key", "add", "--new-password-file"]);
    cmd.arg(&new).args(FAST_KDF);
    let out = with_memory_limit(cmd, 2 << 20);
    let err = stderr_of(&out);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.contains("could not be tried"), "{err}");
}

// The in-use check skipped keys costlier in memory than the one opened and
// the new one, so a password a costlier key had went onto a second key.
#[test]
fn a_password_a_costlier_key_has_is_in_use_too() {
    let (t, _, _) = store_with_a_snapshot();
    let costly = t.password_file_with("costly", "a costlier passphrase");
    let costlier = ["--kdf-memory", "16", "--kdf-iterations", "1"];
    t.cairn(["key", "add", "--new-password-file"])
        .arg(&costly)
        .args(costlier)
        .assert()
        .success();
    let out = t
        .cairn(["key", "add", "--new-password-file"])
        .arg(&costly)
        .args(FAST_KDF)
        .assert()
        .code(1);
    assert!(stderr_of(out.get_output()).contains("already opens key"));
    assert_eq!(key_ids(&t).len(), 2);
}

#[test]
fn key_passwd_replaces_the_passphrase() {
    let (t, src, snap) = store_with_a_snapshot();
    let old = t.password_file.clone().unwrap();
    let before = key_ids(&t);
    let new = t.password_file_with("new", "a brand new passphrase");
    t.cairn(["key", "passwd", "--new-password-file"])
        .arg(&new)
        .args(FAST_KDF)
        .assert()
        .success();
    let after = key_ids(&t);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before, "a new key file replaces the old one");
    assert_refused(&t, &old);
    assert_opens_with(&t, &new, 1);
    assert_restores_with(&t, &new, &snap, &src);
}

#[test]
fn a_password_opens_one_key_so_key_passwd_retires_it_for_good() {
    // Two keys under one password left that password working after `key
    // passwd` through the other one: `key add` refuses a password that
    // opens a key already, and `key passwd` to another key's password only
    // retires the old key.
    let (t, src, snap) = store_with_a_snapshot();
    let old = t.password_file.clone().unwrap();
    let out = t
        .cairn(["key", "add", "--new-password-file"])
        .arg(&old)
        .args(FAST_KDF)
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("already opens key"), "{err}");
    assert_eq!(key_ids(&t).len(), 1, "nothing added");

    let second = t.password_file_with("second", "the second passphrase");
    let kept = add_key(&t, &second);

    let out = t
        .cairn(["key", "passwd", "--new-password-file"])
        .arg(&second)
        .args(FAST_KDF)
        .assert()
        .success();
    let said = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(said.contains("opens with it already"), "{said}");
    assert_eq!(
        key_ids(&t),
        BTreeSet::from([kept]),
        "only the other key is left"
    );
    assert_refused(&t, &old);
    assert_restores_with(&t, &second, &snap, &src);
    let out = t
        .cairn(["key", "passwd", "--new-password-file"])
        .arg(&second)
        .env("CAIRN_PASSWORD_FILE", &second)
        .args(FAST_KDF)
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("is the one key"), "{err}");
}

/// Asserts that `key list` succeeds and warns about key file `id`, saying
/// `why`.
fn assert_key_list_warns(t: &TestEnv, id: &str, why: &str) {
    let list = t.cairn(["key", "list"]).assert().success();
    let err = stderr_of(list.get_output());
    assert!(err.contains(id) && err.contains(why), "{err}");
}

#[test]
fn a_damaged_key_file_neither_stops_the_others_nor_goes_unsaid() {
    // A key file that does not decode opens nothing; the store still opens
    // with another key, `key list` warns about it, and a passphrase that
    // opens no good key is told about the damaged one rather than "wrong
    // password" (it may have been that key's).
    let (t, src, snap) = store_with_a_snapshot();
    put(
        &t,
        &format!("keys/{}", "ab".repeat(32)),
        b"{ not a key file",
    );
    assert_key_list_warns(&t, &"ab".repeat(32), "opens nothing");
    assert_restores_with(&t, t.password_file.as_ref().unwrap(), &snap, &src);
    let wrong = t.password_file_with("wrong", "not the passphrase");
    let out = t
        .cairn(["--password-file"])
        .arg(&wrong)
        .arg("snapshots")
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains(&format!("keys/{}", "ab".repeat(32))), "{err}");
}

#[test]
fn a_file_under_keys_too_large_for_a_key_file_is_damaged_not_a_stop() {
    // Every open reads every key file; one larger than any key file (a
    // stray file dropped there) made every command fail with a raw read
    // error, the store unopenable though its own key was fine.
    let (t, src, snap) = store_with_a_snapshot();
    let stray = format!("keys/{}", "cd".repeat(32));
    put(&t, &stray, &vec![b'x'; 100 * 1024]);
    assert_key_list_warns(&t, &"cd".repeat(32), "too large");
    assert_restores_with(&t, t.password_file.as_ref().unwrap(), &snap, &src);
    // A copy to a new target carries the real key files, not the stray one.
    let target = t.path("offsite");
    assert_eq!(t.copy_to(&target, &[])["snapshots_copied"], 1);
    let there = store_at(&t, &target);
    assert_eq!(key_ids(&there).len(), 1, "{:?}", key_ids(&there));
    assert_restores_with(&there, t.password_file.as_ref().unwrap(), &snap, &src);
    // And `key remove` takes it away (it read it whole, to put it back).
    t.cairn(["key", "remove", "cdcd"]).assert().success();
    assert_eq!(key_ids(&t).len(), 1, "{:?}", key_ids(&t));
}

#[test]
fn init_encrypt_over_an_existing_store_says_it_exists_before_asking_for_a_password() {
    let t = TestEnv::with_encrypted_store();
    let out = t
        .cairn_without_store(["--store"])
        .arg(&t.store)
        .args(["init", "--encrypt"])
        .env_remove("CAIRN_PASSWORD_FILE")
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("already exists"), "{err}");
    assert!(!err.contains("password"), "{err}");
}

/// Runs an encrypted init that is killed right after it wrote its key
/// file, before its `config.json`; returns that key file's id.
fn init_killed_after_its_key_file(t: &mut TestEnv) -> BTreeSet<String> {
    t.password_file = Some(t.password_file_with("password", PASSWORD));
    t.init_encrypt()
        .env("CAIRN_CRASH_AT", "init-keys-written")
        .assert()
        .failure();
    let dead = key_ids(t);
    assert_eq!(dead.len(), 1, "the killed init wrote one key file");
    assert!(
        objects(t, "config.json").is_empty(),
        "no config was written"
    );
    dead
}

/// An encrypted init killed after it wrote its key file left a local
/// directory every later init refused as "not empty", and beside a remote
/// store's own key a dead one that every open tried (an argon2id
/// derivation each). Now the next init takes over and removes it.
fn init_takes_over_from_an_encrypted_init_killed_after_its_key_file(mut t: TestEnv) {
    let dead = init_killed_after_its_key_file(&mut t);
    let out = t.init_encrypt().assert().success();
    let err = stderr_of(out.get_output());
    let removed = "removed 1 key file left by an init that did not finish (keys/";
    assert!(err.contains(removed), "{err}");
    let keys = key_ids(&t);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys.is_disjoint(&dead),
        "the dead init's key is still there"
    );
    let src = t.path("src");
    small_tree(&src, 3);
    let snap = t.snapshot(&[&src], &[]);
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
}

/// An init (or a copy making its target) killed while it wrote its
/// `config.json` leaves the staged file in `tmp/`; every later init or copy
/// there was refused: "not empty ... (it holds tmp/cairn-....tmp)", a nightly
/// off-site copy failing every night after one kill. A staging file of
/// cairn's is what an unfinished init leaves, like its key files.
#[test]
fn init_and_copy_take_over_a_location_an_init_killed_while_staging_its_config_left() {
    let staged = |dir: &std::path::Path| {
        fs::create_dir_all(dir.join("packs/00")).unwrap();
        fs::create_dir_all(dir.join("tmp")).unwrap();
        fs::write(dir.join("tmp/cairn-Xy12Zq.tmp"), b"{\"format\": 8, \"id").unwrap();
    };
    let t = TestEnv::new();
    staged(&t.store);
    t.cairn(["init", "--no-encrypt"]).assert().success();
    let (from, _, _) = store_with_a_snapshot();
    let to = from.path("offsite");
    staged(&to);
    from.cairn(["copy", "--to"]).arg(&to).assert().success();
    // Anything else there is still someone's.
    let other = from.path("other");
    staged(&other);
    fs::write(other.join("tmp/cairn-my-notes.tmp"), b"mine").unwrap();
    let out = from.cairn(["copy", "--to"]).arg(&other).assert().code(1);
    assert!(stderr_of(out.get_output()).contains("cairn-my-notes.tmp"));
}

#[test]
fn a_local_init_takes_over_from_an_encrypted_init_killed_after_its_key_file() {
    init_takes_over_from_an_encrypted_init_killed_after_its_key_file(TestEnv::new());
}

#[test]
fn an_s3_init_takes_over_from_an_encrypted_init_killed_after_its_key_file() {
    init_takes_over_from_an_encrypted_init_killed_after_its_key_file(TestEnv::new_s3());
}

#[test]
fn an_s3_init_where_a_store_lost_its_config_is_refused_and_keeps_its_key_files() {
    // Its key files may be the only way to its data: only a prefix that
    // holds nothing but key files is taken over. A new store made over
    // the old one's objects (as init did before) could not read them.
    let t = TestEnv::with_encrypted_s3();
    let src = t.path("src");
    small_tree(&src, 4);
    t.snapshot(&[&src], &[]);
    let before = objects(&t, "");
    t.s3().delete("config.json");
    let out = t.init_encrypt().assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(
        err.contains("is not empty and is not a cairn store"),
        "{err}"
    );
    let config = before.iter().filter(|(k, _)| k != "config.json");
    assert_eq!(objects(&t, ""), config.cloned().collect::<Vec<_>>());
}

#[test]
fn a_plain_init_is_refused_where_an_encrypted_one_left_its_key_files() {
    // The operator meant an encrypted store there (a first `snapshot`
    // without a password would otherwise make the default store plain).
    let mut t = TestEnv::new();
    let dead = init_killed_after_its_key_file(&mut t);
    let out = t
        .cairn(["init", "--no-encrypt"])
        .env_remove("CAIRN_PASSWORD_FILE")
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(
        err.contains("an encrypted init that did not finish"),
        "{err}"
    );
    assert!(err.contains("which an encrypted init takes over"), "{err}");
    assert_eq!(key_ids(&t), dead);
}

#[test]
fn a_copy_killed_after_the_key_files_of_its_new_target_keeps_them_when_run_again() {
    // A new target gets the source's key files, byte for byte: the copy
    // run again found them as an init's leftovers and removed its own
    // store's only key. A stray file under the source's keys/ went along,
    // and the copy run again was refused: "not empty ... (it holds
    // keys/README, not a readable key file)".
    let (from, _, _) = store_with_a_snapshot();
    put(&from, "keys/README", b"the keys of this store");
    let to = from.path("copy");
    let copy = || {
        let mut cmd = from.cairn(["copy", "--to"]);
        cmd.arg(&to);
        cmd
    };
    copy()
        .env("CAIRN_CRASH_AT", "init-keys-written")
        .assert()
        .failure();
    copy().assert().success();
    let out = from
        .cairn_without_store(["--store"])
        .arg(&to)
        .args(["verify", "--read-data"])
        .assert()
        .success();
    let err = stderr_of(out.get_output());
    assert!(!err.contains("removed"), "{err}");
    let source_keys = key_ids(&from).into_iter().filter(|k| k != "README");
    assert_eq!(key_ids(&store_at(&from, &to)), source_keys.collect());
}

#[test]
fn of_two_copies_creating_one_target_the_one_that_loses_leaves_the_key_files() {
    // Both write the source's key files, byte for byte; the one whose
    // config create lost deleted them again: the winner's only key.
    let (from, _, _) = store_with_a_snapshot();
    let to = from.path("copy");
    let mut first = from.command(["copy", "--to"]);
    first.arg(&to);
    let first = spawn_stalled(first, "init-keys-written", 3);
    from.cairn(["copy", "--to"]).arg(&to).assert().success();
    // The later one finds the store made and copies into it.
    let lost = first.wait_with_output().unwrap();
    assert!(lost.status.success(), "{lost:?}");
    from.cairn_without_store(["--store"])
        .arg(&to)
        .args(["verify", "--read-data"])
        .assert()
        .success();
}

#[test]
fn an_s3_prefix_holding_only_a_consoles_folder_object_takes_a_store() {
    let mut t = TestEnv::new_s3();
    let (bucket, folder) = (t.s3().bucket().to_owned(), format!("{}/", t.s3().prefix()));
    s3::server().put_empty(&bucket, &folder).unwrap();
    t.init_encrypted();
    let src = t.path("src");
    small_tree(&src, 5);
    let snap = t.snapshot(&[&src], &[]);
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
}

#[test]
fn a_file_put_in_the_directory_while_init_asks_for_the_passphrase_keeps_it_out() {
    // The directory was looked at only before the passphrase, which a
    // person may take minutes to type; the store was made among the files.
    let t = TestEnv::new();
    let mine = t.store.join("notes/mine.txt");
    let command = format!(
        "mkdir -p '{0}' && echo mine > '{1}' && echo '{PASSWORD}'",
        mine.parent().unwrap().display(),
        mine.display()
    );
    let out = t
        .init_encrypt()
        .env("CAIRN_PASSWORD_COMMAND", command)
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("(it holds notes/mine.txt)"), "{err}");
    assert!(!t.store.join("config.json").exists());
}

#[test]
fn a_key_file_one_level_down_under_keys_keeps_an_s3_init_out() {
    // `keys/sub/ID` is no key file of a store here (another store at
    // PREFIX/keys, say): the listing of keys/ is recursive, and it was
    // taken for a leftover and deleted.
    let from = TestEnv::with_encrypted_s3();
    let (key, bytes) = objects(&from, "keys/").pop().unwrap();
    let mut t = TestEnv::new_s3();
    let nested = key.replacen("keys/", "keys/sub/", 1);
    t.s3().put(&nested, &get(&from, &key));
    assert_eq!(bytes, t.s3().keys("keys/")[0].1);
    t.password_file = Some(t.password_file_with("password", PASSWORD));
    let out = t.init_encrypt().assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("not empty"), "{err}");
    assert!(t.s3().get(&nested).is_some(), "the key file was deleted");
}

#[test]
fn a_file_under_keys_not_named_as_a_key_file_keeps_an_s3_init_out() {
    // `keys/notes~` was read at its percent-encoded name, not found, taken
    // for a key file gone since the listing, and init went ahead in a
    // prefix that was not empty, saying it had removed it.
    let mut t = TestEnv::new_s3();
    let key = format!("{}/keys/notes~", t.s3().prefix());
    s3::server().put_empty(t.s3().bucket(), &key).unwrap();
    t.password_file = Some(t.password_file_with("password", PASSWORD));
    let out = t.init_encrypt().assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(
        err.contains("(it holds keys/notes~, not a readable key file)"),
        "{err}"
    );
}

#[test]
fn a_file_in_keys_too_large_for_a_key_file_is_said_to_make_the_directory_not_empty() {
    let mut t = TestEnv::new();
    fs::create_dir_all(t.store.join("keys")).unwrap();
    write_file(&t.store.join("keys/big"), &vec![7; 100 << 10]);
    t.password_file = Some(t.password_file_with("password", PASSWORD));
    let out = t.init_encrypt().assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(
        err.contains(
            "not empty and is not a cairn store (it holds keys/big, not a readable key file)"
        ),
        "{err}"
    );
}

#[test]
fn a_file_in_keys_that_is_no_key_file_still_keeps_init_out_of_the_directory() {
    let mut t = TestEnv::new();
    init_killed_after_its_key_file(&mut t);
    write_file(&t.store.join("keys/notes.txt"), b"mine");
    let out = t.init_encrypt().assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("not empty"), "{err}");
    assert!(t.store.join("keys/notes.txt").exists());
}

#[test]
fn a_wrong_passphrase_exits_1_and_writes_nothing_in_the_store() {
    let (t, src, _) = store_with_a_snapshot();
    let wrong = t.password_file_with("wrong", "not the passphrase");
    let other = t.password_file_with("other", "yet another one");
    let before = listing(&t.store);
    let target = t.path("never-written");
    let commands: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["snapshots".into()],
        vec!["snapshot".into(), src.clone().into()],
        vec![
            "restore".into(),
            "latest".into(),
            "--target".into(),
            target.clone().into(),
        ],
        vec!["ls".into(), "latest".into(), src.clone().into()],
        vec!["verify".into(), "--read-data".into()],
        vec![
            "forget".into(),
            "--keep-last".into(),
            "1".into(),
            "--prune".into(),
        ],
        vec!["prune".into()],
        vec!["repair".into(), "catalog".into()],
        vec!["tag".into(), "latest".into(), "--add".into(), "x".into()],
        vec!["key".into(), "list".into()],
        vec![
            "key".into(),
            "add".into(),
            "--new-password-file".into(),
            other.clone().into(),
            FAST_KDF[0].into(),
            FAST_KDF[1].into(),
            FAST_KDF[2].into(),
            FAST_KDF[3].into(),
        ],
        vec![
            "key".into(),
            "passwd".into(),
            "--new-password-file".into(),
            other.into(),
            FAST_KDF[0].into(),
            FAST_KDF[1].into(),
            FAST_KDF[2].into(),
            FAST_KDF[3].into(),
        ],
    ];
    for args in commands {
        let out = t
            .cairn(&args)
            .env("CAIRN_PASSWORD_FILE", &wrong)
            .assert()
            .code(1);
        let err = stderr_of(out.get_output());
        assert!(err.contains("wrong password for store"), "{args:?}: {err}");
    }
    assert!(!target.exists(), "restore created its target");
    assert_eq!(listing(&t.store), before, "the store changed");
}

#[test]
fn a_store_without_key_files_says_keys_is_missing() {
    let (t, _, _) = store_with_a_snapshot();
    for (key, _) in objects(&t, "keys/") {
        fs::remove_file(t.store.join(key)).unwrap();
    }
    let out = t.cairn(["snapshots"]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("keys/"), "{err}");
}

#[test]
fn without_a_password_source_or_a_terminal_the_error_names_password_file() {
    let (t, _, _) = store_with_a_snapshot();
    let out = without_password(&t, &["snapshots"]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("--password-file"), "{err}");

    // init --encrypt needs one as well, and creates nothing without it.
    let fresh = TestEnv::new();
    let mut init = fresh.command(["init", "--encrypt"]);
    init.args(FAST_KDF);
    let out = without_terminal(&init).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("--password-file"), "{err}");
    assert!(!fresh.store.join("config.json").exists());
}

#[test]
fn every_password_source_opens_the_store() {
    let (t, _, _) = store_with_a_snapshot();
    let file = t.password_file.clone().unwrap();
    let crlf = t.path("crlf");
    fs::write(&crlf, format!("{PASSWORD}\r\n")).unwrap();
    let two_lines = t.path("two-lines");
    fs::write(&two_lines, format!("{PASSWORD}\nsomething else\n")).unwrap();
    let no_newline = t.path("no-newline");
    fs::write(&no_newline, PASSWORD).unwrap();
    let command = format!("cat '{}'", file.display());

    let mut runs: Vec<assert_cmd::Command> = Vec::new();
    let mut flag = t.cairn(["--password-file"]);
    flag.arg(&file)
        .arg("snapshots")
        .env_remove("CAIRN_PASSWORD_FILE");
    runs.push(flag);
    let mut cmd_flag = t.cairn(["--password-command", &command, "snapshots"]);
    cmd_flag.env_remove("CAIRN_PASSWORD_FILE");
    runs.push(cmd_flag);
    let mut cmd_env = t.cairn(["snapshots"]);
    cmd_env
        .env_remove("CAIRN_PASSWORD_FILE")
        .env("CAIRN_PASSWORD_COMMAND", &command);
    runs.push(cmd_env);
    for path in [&crlf, &two_lines, &no_newline] {
        let mut env = t.cairn(["snapshots"]);
        env.env("CAIRN_PASSWORD_FILE", path);
        runs.push(env);
    }
    for mut run in runs {
        let out = run.assert();
        let output = out.get_output();
        assert!(output.status.success(), "{:?}: {}", run, stderr_of(output));
    }
    // A password command that fails is an error, not an empty passphrase.
    let out = t
        .cairn(["--password-command", "exit 3", "snapshots"])
        .env_remove("CAIRN_PASSWORD_FILE")
        .assert()
        .code(1);
    assert!(!stderr_of(out.get_output()).trim().is_empty());
    // An empty file or a command that prints nothing says so; it said
    // "wrong password", and the operator looked for a typo.
    let empty = t.password_file_with("empty", "");
    let out = t
        .cairn(["snapshots"])
        .env("CAIRN_PASSWORD_FILE", &empty)
        .assert()
        .code(1);
    assert!(stderr_of(out.get_output()).contains("is empty"));
    let out = t
        .cairn(["--password-command", "true", "snapshots"])
        .env_remove("CAIRN_PASSWORD_FILE")
        .assert()
        .code(1);
    assert!(stderr_of(out.get_output()).contains("printed an empty first line"));
    // `key add` with no new password to hand names the options for one.
    let out = without_terminal(&t.command(["key", "add"]))
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("--new-password-file"), "{err}");
}

// --- unencrypted stores and init ---------------------------------------------------------

#[test]
fn a_password_for_an_unencrypted_store_is_refused() {
    let t = TestEnv::with_store();
    assert_eq!(
        config(&t)["version"],
        8,
        "local stores are unencrypted by default"
    );
    assert!(config(&t).get("encryption").is_none());
    let src = t.path("src");
    small_tree(&src, 2);
    settle();
    t.snapshot(&[&src], &[]);
    let password = t.password_file_with("password", PASSWORD);

    t.cairn(["--password-file"])
        .arg(&password)
        .arg("snapshots")
        .assert()
        .code(1);
    t.cairn(["snapshot"])
        .arg(&src)
        .env("CAIRN_PASSWORD_FILE", &password)
        .assert()
        .code(1);
    assert_eq!(records(&t), 1, "a snapshot was written");
}

#[test]
fn an_encrypted_store_whose_config_was_made_to_say_unencrypted_gets_no_plaintext() {
    let (t, src, _) = store_with_a_snapshot();
    let mut config = config(&t);
    config.as_object_mut().unwrap().remove("encryption");
    config["version"] = 4.into();
    put(
        &t,
        "config.json",
        &serde_json::to_vec_pretty(&config).unwrap(),
    );
    let packs = objects(&t, "packs/");

    write_file(
        &src.join("secret.txt"),
        b"must never be stored in the clear",
    );
    settle();
    let out = t.cairn(["snapshot"]).arg(&src).assert().failure();
    assert_eq!(out.get_output().status.code(), Some(1));
    assert_eq!(records(&t), 1, "a snapshot was written");
    assert_eq!(objects(&t, "packs/"), packs, "a pack was written");
}

#[test]
fn init_of_an_s3_store_asks_for_a_password_or_no_encrypt() {
    let t = TestEnv::new_s3();
    let out = without_password(&t, &["init"]).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("--no-encrypt"), "{err}");
    assert!(t.s3().get("config.json").is_none(), "a store was created");

    t.cairn(["init", "--no-encrypt"]).assert().success();
    let config = config(&t);
    assert_eq!(config["version"], 8, "{config}");
    assert!(config.get("encryption").is_none(), "{config}");
    assert!(key_ids(&t).is_empty());
    let src = t.path("src");
    small_tree(&src, 4);
    settle();
    let snap = t.snapshot(&[&src], &[]);
    assert_trees_equal(&src, &restored(&t.restore(id(&snap)), &src));
}

#[test]
fn init_of_an_s3_store_with_a_password_file_encrypts_it_by_default() {
    let mut t = TestEnv::new_s3();
    t.password_file = Some(t.password_file_with("password", PASSWORD));
    t.cairn(["init"]).args(FAST_KDF).assert().success();
    assert_eq!(config(&t)["version"], 9);
    assert_eq!(key_ids(&t).len(), 1);
}

// --- copy ----------------------------------------------------------------------------------

/// The ids of every snapshot of `t`, sorted.
fn ids_of(t: &TestEnv) -> Vec<String> {
    let mut ids: Vec<String> = t.snapshots(&[]).iter().map(|s| id(s).to_owned()).collect();
    ids.sort();
    ids
}

/// `copy --to TARGET ARGS` from `t` as JSON, asserting exit 0.
/// The environment of the local store at `dir`, with `t`'s passphrase.
fn store_at(t: &TestEnv, dir: &Path) -> TestEnv {
    let mut other = t.second_encrypted_host();
    other.store = dir.to_owned();
    other
}

#[test]
fn copy_of_an_encrypted_store_to_a_new_directory_keeps_ids_bytes_and_passphrase() {
    let (t, src, first) = store_with_a_snapshot();
    let db = src.join("app.db");
    let conn = open_in_mode(&db, "WAL");
    conn.execute_batch("CREATE TABLE t (v); INSERT INTO t VALUES ('copied');")
        .unwrap();
    drop(conn);
    settle();
    let second = id(&t.snapshot(&[&src], &[])).to_owned();
    let originals: Vec<(String, PathBuf)> = [first, second]
        .into_iter()
        .map(|s| {
            let back = t.restore(&s);
            (s, back)
        })
        .collect();

    let target = t.path("offsite");
    assert_eq!(t.copy_to(&target, &[])["snapshots_copied"], 2);
    let there = store_at(&t, &target);
    assert_eq!(ids_of(&there), ids_of(&t));
    assert_eq!(
        key_ids(&there),
        key_ids(&t),
        "created with the source's key files"
    );
    assert_eq!(config(&there)["version"], 9);
    assert!(catalogs_in(&there).is_empty(), "{:?}", catalogs_in(&there));
    for (snap, original) in &originals {
        assert_trees_equal(
            &restored(original, &src),
            &restored(&there.restore(snap), &src),
        );
    }
    assert_verify_clean(&there);

    // Later snapshots follow; nothing twice.
    write_file(&src.join("later.txt"), b"a later night");
    settle();
    t.snapshot(&[&src], &[]);
    let again = t.copy_to(&target, &[]);
    assert_eq!(again["snapshots_copied"], 1, "{again}");
    assert_eq!(ids_of(&there), ids_of(&t));
}

#[test]
fn copy_into_a_target_whose_passphrase_differs_takes_to_password_file() {
    let (t, src, _) = store_with_a_snapshot();
    let target = t.path("offsite");
    t.copy_to(&target, &[]);
    let there = store_at(&t, &target);
    let other = t.password_file_with("offsite-password", "the offsite passphrase");
    there
        .cairn(["key", "passwd", "--new-password-file"])
        .arg(&other)
        .args(FAST_KDF)
        .assert()
        .success();
    write_file(&src.join("later.txt"), b"a later night");
    settle();
    t.snapshot(&[&src], &[]);

    let mut refused = t.command(["copy", "--to"]);
    refused.arg(&target);
    let out = without_terminal(&refused).assert().failure();
    assert!(!stderr_of(out.get_output()).trim().is_empty());
    assert_eq!(records(&there), 1, "copied without the target's passphrase");

    let report = t.copy_to(&target, &["--to-password-file", other.to_str().unwrap()]);
    assert_eq!(report["snapshots_copied"], 1, "{report}");
    assert_eq!(records(&there), 2);
}

#[test]
fn a_copy_that_creates_its_target_makes_the_target_password_open_it() {
    // The new target got the source's key files only: the password given
    // for it opened nothing, and the next night's same command failed with
    // "wrong password".
    let (t, _src, _) = store_with_a_snapshot();
    let target = t.path("offsite");
    let other = t.password_file_with("offsite-password", "the offsite passphrase");
    let to_password = ["--to-password-file", other.to_str().unwrap()];
    // Killed once right after it made the target: the run again still
    // opens it with that password (its key is written with the others).
    t.cairn(["copy", "--to"])
        .arg(&target)
        .args(to_password)
        .env("CAIRN_CRASH_AT", "copy-target-created")
        .assert()
        .failure();
    t.copy_to(&target, &to_password);
    let there = store_at(&t, &target);
    assert_eq!(
        key_ids(&there).len(),
        2,
        "the source's key and one for the target's password"
    );
    assert_opens_with(&there, &other, 1);
    assert_opens_with(&there, t.password_file.as_ref().unwrap(), 1);
    let again = t.copy_to(&target, &to_password);
    assert_eq!(again["snapshots_present"], 1, "{again}");
    // A target password that is the source's adds nothing.
    let same = t.path("same");
    let pw = t.password_file.clone().unwrap();
    t.copy_to(&same, &["--to-password-file", pw.to_str().unwrap()]);
    assert_eq!(key_ids(&store_at(&t, &same)), key_ids(&t));
}

#[test]
fn a_copy_into_a_store_seeded_by_hand_is_refused_unless_it_has_its_own_cache() {
    // `cp -a` keeps the store id, and a cache directory is named by it:
    // the copy read the target's catalog as the source's and called the
    // healthy source damaged ("blob ... is in no pack").
    let (t, src, _) = store_with_a_snapshot();
    let seeded = t.path("seeded");
    copy_tree(&t.store, &seeded);
    write_file(&src.join("later.txt"), b"a later night");
    settle();
    t.snapshot(&[&src], &[]);
    let out = t.cairn(["copy", "--to"]).arg(&seeded).assert().code(1);
    let err = stderr_of(out.get_output());
    assert!(
        err.contains("--to-cache-dir") && err.contains("that store's id"),
        "{err}"
    );
    // Refused before the target's open synced the shared catalog to its
    // own index objects: the source's catalog still knows all of its own.
    let catalog = rusqlite::Connection::open(catalog_of(&t)).unwrap();
    let mut known: Vec<String> = catalog
        .prepare("SELECT hex(id) FROM indexes")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|id| id.unwrap().to_lowercase())
        .collect();
    known.sort();
    let stored: Vec<String> = objects(&t, "index/")
        .into_iter()
        .map(|(key, _)| key.trim_start_matches("index/").to_owned())
        .collect();
    assert_eq!(known, stored);
    // The same cache directory by another spelling (relative to the
    // working directory, the test's root) is the same catalog.
    let out = t
        .cairn(["copy", "--to-cache-dir", "home/.cache/cairn", "--to"])
        .arg(&seeded)
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("that store's id"), "{err}");
    let own = t.path("seeded-cache");
    let report = t.copy_to(&seeded, &["--to-cache-dir", own.to_str().unwrap()]);
    assert_eq!(report["snapshots_copied"], 1, "{report}");
}

#[test]
fn copy_between_an_encrypted_and_an_unencrypted_store_is_refused_either_way() {
    let (t, src, _) = store_with_a_snapshot();
    let mut plain = TestEnv::new();
    plain.store = t.path("plain");
    plain.cairn(["init"]).assert().success();
    plain.snapshot(&[&src], &[]);

    let out = t
        .cairn(["copy", "--to"])
        .arg(&plain.store)
        .assert()
        .failure();
    let err = stderr_of(out.get_output());
    assert!(err.contains("one master key"), "{err}");
    assert_eq!(records(&plain), 1, "copied into the unencrypted store");

    let password = t.password_file.clone().unwrap();
    let out = plain
        .cairn(["copy", "--to"])
        .arg(&t.store)
        .arg("--to-password-file")
        .arg(&password)
        .assert()
        .failure();
    let err = stderr_of(out.get_output());
    assert!(err.contains("one master key"), "{err}");
    assert_eq!(records(&t), 1, "copied into the encrypted store");

    // A new target with a password, from a plain store: refused before it
    // is made (it was made, plain, and then the password refused).
    let new = t.path("new");
    let out = plain
        .cairn(["copy", "--to"])
        .arg(&new)
        .arg("--to-password-file")
        .arg(&password)
        .assert()
        .code(1);
    let err = stderr_of(out.get_output());
    assert!(err.contains("is not encrypted"), "{err}");
    assert!(!new.exists(), "{err}");
}

#[test]
fn copy_between_encrypted_stores_of_different_keys_is_refused() {
    let (t, _, _) = store_with_a_snapshot();
    // The same passphrase, but its own master key.
    let other = store_at(&t, &t.path("other"));
    other.init_encrypt().assert().success();
    let out = t
        .cairn(["copy", "--to"])
        .arg(&other.store)
        .assert()
        .failure();
    assert_eq!(out.get_output().status.code(), Some(1));
    let err = stderr_of(out.get_output());
    assert!(err.contains("key"), "{err}");
    assert_eq!(records(&other), 0, "copied under another key");
}

#[test]
fn copy_of_an_encrypted_store_into_a_new_s3_store_holds_no_plaintext_and_restores() {
    let t = TestEnv::with_encrypted_store();
    let s = secret_tree(&t);
    settle();
    let snap = t.snapshot(&[&s.src], &["--tag", &s.tag]);

    let mut s3 = TestEnv::new_s3();
    s3.password_file = t.password_file.clone();
    s3.cairn_without_store(["--json", "--store"])
        .arg(&t.store)
        .arg("copy")
        .arg("--to")
        .arg(s3.store_arg())
        .assert()
        .success();
    assert_eq!(config(&s3)["version"], 9);
    assert_eq!(key_ids(&s3), key_ids(&t));
    let found = plaintext_in(&s3, &s.needles);
    assert!(
        found.is_empty(),
        "readable in the bucket:\n{}",
        found.join("\n")
    );
    assert_trees_equal(&s.src, &restored(&s3.restore(id(&snap)), &s.src));
    assert_verify_clean(&s3);
}

// A password file or command of endless output (`/dev/zero`, `yes`) was
// read whole before its 64 KiB limit was checked: memory until the
// machine gave out. Only what the limit allows is read.
#[test]
fn an_endless_password_source_is_refused_after_64_kib() {
    let (t, _, _) = store_with_a_snapshot();
    let mut cmd = t.command(["snapshots"]);
    cmd.env("CAIRN_PASSWORD_FILE", "/dev/zero");
    let out = with_memory_limit(cmd, 512 << 10);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("64 KiB"), "{}", stderr_of(&out));
    let mut cmd = t.command(["snapshots"]);
    cmd.env_remove("CAIRN_PASSWORD_FILE")
        .env("CAIRN_PASSWORD_COMMAND", "yes");
    let out = with_memory_limit(cmd, 512 << 10);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("64 KiB"), "{}", stderr_of(&out));
}
