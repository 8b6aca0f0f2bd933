//! SQLite databases: live databases are captured as one committed state
//! (WAL and rollback-journal mode, commits still in the `-wal` included),
//! their side files are neither stored nor left stale beside a restore,
//! small changes cost only the page runs they touch, and every file SQLite
//! refuses, keeps locked or loses mid-capture is reported, never copied torn.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use serde_json::{Value, json};

use common::*;

// --- helpers -----------------------------------------------------------------

/// A WAL-mode connection that never checkpoints: its commits stay in the
/// `-wal` file (and the main file is untouched) for as long as it is open.
fn open_wal_without_checkpoints(db: &Path) -> Connection {
    let conn = open_in_mode(db, "WAL");
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn
}

/// Opens a restored database read-only without creating side files beside
/// it, so that what the restore left there can still be inspected.
fn open_restored(db: &Path) -> Connection {
    let text = db.to_str().unwrap();
    assert!(!text.contains(['?', '#', '%', ' ']), "{text}");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    Connection::open_with_flags(format!("file:{text}?immutable=1"), flags).unwrap()
}

/// The single integer `sql` returns.
fn int(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// `cairn --json snapshot EXTRA... PATH` with its exit code unchecked.
fn snapshot_output(t: &TestEnv, path: &Path, extra: &[&str]) -> Output {
    t.cairn(["--json", "snapshot"])
        .args(extra)
        .arg(path)
        .output()
        .unwrap()
}

/// `cairn --json restore ID --target TARGET EXTRA...` with its exit code
/// unchecked; the output and the parsed JSON.
fn restore_json(t: &TestEnv, snap: &str, target: &Path, extra: &[&str]) -> (Output, Value) {
    let out = t
        .cairn(["--json", "restore", snap, "--target"])
        .arg(target)
        .args(extra)
        .output()
        .unwrap();
    let json = parse_json(&out.stdout);
    (out, json)
}

/// The one database entry of a snapshot's summary.
fn only_database(snap: &Value) -> &Value {
    let dbs = snap["summary"]["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), 1, "{snap}");
    &dbs[0]
}

/// Adds `n` rows `(id, "PREFIX-ID")` from id `from` to the table `notes`
/// (created if missing), in one transaction.
fn add_notes(conn: &Connection, from: i64, n: i64, prefix: &str) {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, note TEXT NOT NULL)",
        [],
    )
    .unwrap();
    conn.execute_batch("BEGIN").unwrap();
    for id in from..from + n {
        conn.execute(
            "INSERT INTO notes(id, note) VALUES (?1, ?2)",
            (id, format!("{prefix}-{id:06}")),
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// All notes in id order.
fn notes(conn: &Connection) -> Vec<(i64, String)> {
    let mut stmt = conn
        .prepare("SELECT id, note FROM notes ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// What `add_notes(_, from, n, prefix)` wrote.
fn expected_notes(from: i64, n: i64, prefix: &str) -> Vec<(i64, String)> {
    (from..from + n)
        .map(|id| (id, format!("{prefix}-{id:06}")))
        .collect()
}

/// A small database in rollback-journal mode with `n` notes, closed.
fn small_database(db: &Path, n: i64) {
    let conn = open_in_mode(db, "DELETE");
    add_notes(&conn, 1, n, "note");
}

// --- live writers --------------------------------------------------------------

const ACCOUNTS: i64 = 100;
const OPENING_BALANCE: i64 = 1_000;
const TOTAL: i64 = ACCOUNTS * OPENING_BALANCE;

/// A bank: `accounts` whose balances always sum to `TOTAL`, a `counter`
/// bumped by every transfer, and 6 MiB of incompressible filler so that a
/// capture takes a moment.
fn create_bank(db: &Path, journal_mode: &str) {
    let mut conn = open_in_mode(db, journal_mode);
    conn.execute_batch(
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE TABLE counter(n INTEGER NOT NULL);
         INSERT INTO counter VALUES (0);
         CREATE TABLE filler(id INTEGER PRIMARY KEY, data BLOB NOT NULL);",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    for id in 1..=ACCOUNTS {
        tx.execute(
            "INSERT INTO accounts VALUES (?1, ?2)",
            (id, OPENING_BALANCE),
        )
        .unwrap();
    }
    for id in 0..1536 {
        tx.execute(
            "INSERT INTO filler(data) VALUES (?1)",
            [random_bytes(id, 4000)],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// Counter values of the writer: `committed` is stored after a commit
/// returned (a lower bound of the database's counter from then on),
/// `begun` before a commit starts (an upper bound of any state committed
/// until then).
#[derive(Default)]
struct Counters {
    committed: AtomicI64,
    begun: AtomicI64,
    stop: AtomicBool,
}

/// A thread that keeps transferring money and bumping the counter, in
/// its own connection, until dropped or stopped.
struct Writer {
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(db: &Path) -> Self {
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        let db = db.to_owned();
        let thread = thread::spawn(move || transfer_until_stopped(&db, &shared));
        Self {
            counters,
            thread: Some(thread),
        }
    }

    fn committed(&self) -> i64 {
        self.counters.committed.load(Ordering::SeqCst)
    }

    fn begun(&self) -> i64 {
        self.counters.begun.load(Ordering::SeqCst)
    }

    /// Stops the writer, surfacing its panic if it had one.
    fn stop(mut self) {
        self.counters.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.counters.stop.store(true, Ordering::SeqCst);
    }
}

fn transfer_until_stopped(db: &Path, counters: &Counters) {
    let mut conn = Connection::open(db).unwrap();
    // cairn's read lock blocks a rollback-journal commit while it copies.
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut rng = Rng::new(7);
    let mut n = 0;
    while !counters.stop.load(Ordering::SeqCst) {
        let r = rng.next_u64();
        let from = (r % ACCOUNTS as u64) as i64 + 1;
        let to = ((r >> 16) % ACCOUNTS as u64) as i64 + 1;
        let amount = ((r >> 32) % 500) as i64;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        tx.execute(
            "UPDATE accounts SET balance = balance - ?1 WHERE id = ?2",
            (amount, from),
        )
        .unwrap();
        tx.execute(
            "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
            (amount, to),
        )
        .unwrap();
        tx.execute("UPDATE counter SET n = n + 1", []).unwrap();
        n += 1;
        counters.begun.store(n, Ordering::SeqCst);
        tx.commit().unwrap();
        counters.committed.store(n, Ordering::SeqCst);
        thread::sleep(Duration::from_micros(500));
    }
}

/// Snapshots the bank three times while a writer commits transfers; each
/// restore must hold one state that was really committed.
fn live_writer_snapshots_restore_to_committed_states(journal_mode: &str) {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    create_bank(&db, journal_mode);
    let writer = Writer::start(&db);
    while writer.committed() < 20 {
        thread::sleep(Duration::from_millis(1));
    }
    if journal_mode == "WAL" {
        assert!(src.join("app.db-wal").exists(), "{:?}", names(&src));
    }

    for round in 1..=3 {
        let floor = writer.committed();
        let snap = t.snapshot(&[&src], &[]);
        let ceiling = writer.begun();
        assert!(
            writer.committed() > floor,
            "round {round}: the writer committed nothing while the snapshot ran"
        );
        assert_eq!(only_database(&snap)["unchanged"], false, "{snap}");

        let back = restored(&t.restore(id(&snap)), &src);
        assert_eq!(names(&back), ["app.db"], "side files were stored");
        let db_back = back.join("app.db");
        cairn::database::integrity_check(&db_back).unwrap();
        let conn = open_restored(&db_back);
        assert_eq!(int(&conn, "SELECT count(*) FROM accounts"), ACCOUNTS);
        assert_eq!(
            int(&conn, "SELECT sum(balance) FROM accounts"),
            TOTAL,
            "round {round}: a torn state"
        );
        let n = int(&conn, "SELECT n FROM counter");
        assert!(
            (floor..=ceiling).contains(&n),
            "round {round}: counter {n} was never committed while the snapshot ran \
             ({floor}..={ceiling})"
        );
    }
    writer.stop();
}

#[test]
fn a_live_wal_database_restores_to_a_committed_state() {
    live_writer_snapshots_restore_to_committed_states("WAL");
}

#[test]
fn a_live_rollback_journal_database_restores_to_a_committed_state() {
    live_writer_snapshots_restore_to_committed_states("DELETE");
}

#[test]
fn commits_that_are_only_in_the_wal_are_captured_and_the_wal_is_not_stored() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    let conn = open_wal_without_checkpoints(&db);
    for batch in 0..5 {
        add_notes(&conn, batch * 200 + 1, 200, "in-wal");
    }
    let wal = src.join("app.db-wal");
    assert!(fs::metadata(&wal).unwrap().len() > 0);
    let main = fs::read(&db).unwrap();
    assert!(
        !main.windows(6).any(|w| w == b"in-wal"),
        "the rows must live only in the -wal for this test to mean anything"
    );

    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(summary(&snap, "files"), 1, "only app.db: {snap}");
    let back = restored(&t.restore(id(&snap)), &src);
    assert_eq!(names(&back), ["app.db"]);
    cairn::database::integrity_check(&back.join("app.db")).unwrap();
    let rows = notes(&open_restored(&back.join("app.db")));
    assert_eq!(rows, expected_notes(1, 1000, "in-wal"));
    drop(conn);
}

// --- deduplication -------------------------------------------------------------

const DEDUP_ROWS: i64 = 400_000;
const BODY_LEN: usize = 250;

/// A 250-byte body of words from a small vocabulary: random-ish but
/// compressible, like real text columns.
fn body(rng: &mut Rng) -> String {
    const WORDS: [&str; 16] = [
        "alpha ",
        "bravo ",
        "charlie ",
        "delta ",
        "echo ",
        "foxtrot ",
        "golf ",
        "hotel ",
        "india ",
        "juliett ",
        "kilo ",
        "lima ",
        "mike ",
        "november ",
        "oscar ",
        "papa ",
    ];
    let mut s = String::with_capacity(BODY_LEN + 16);
    while s.len() < BODY_LEN {
        let mut r = rng.next_u64();
        for _ in 0..16 {
            s.push_str(WORDS[(r & 15) as usize]);
            r >>= 4;
        }
    }
    s.truncate(BODY_LEN);
    s
}

/// BLAKE3 of every row of `items` in id order.
fn items_digest(conn: &Connection) -> blake3::Hash {
    let mut stmt = conn
        .prepare("SELECT id, sku, body FROM items ORDER BY id")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut hasher = blake3::Hasher::new();
    while let Some(row) = rows.next().unwrap() {
        hasher.update(&row.get::<_, i64>(0).unwrap().to_le_bytes());
        hasher.update(&row.get::<_, i64>(1).unwrap().to_le_bytes());
        hasher.update(row.get_ref(2).unwrap().as_bytes().unwrap());
        hasher.update(b"\n");
    }
    hasher.finalize()
}

#[test]
fn updating_one_percent_of_rows_stores_only_the_page_runs_they_touch() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("shop.db");
    let mut conn = open_in_mode(&db, "DELETE");
    conn.execute_batch(
        "CREATE TABLE items(id INTEGER PRIMARY KEY, sku INTEGER NOT NULL, body TEXT NOT NULL);
         CREATE INDEX items_sku ON items(sku);",
    )
    .unwrap();
    let mut rng = Rng::new(11);
    let tx = conn.transaction().unwrap();
    for id in 1..=DEDUP_ROWS {
        let sku = (rng.next_u64() % 1_000_000) as i64;
        tx.execute(
            "INSERT INTO items(id, sku, body) VALUES (?1, ?2, ?3)",
            (id, sku, body(&mut rng)),
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let size = fs::metadata(&db).unwrap().len();
    assert!(size > 100 << 20, "{size}");

    let first = t.snapshot(&[&src], &[]);
    let db_first = only_database(&first);
    let page_size = db_first["page_size"].as_u64().unwrap();

    // 1% of the rows, scattered over the whole table, get a new body of the
    // same length: rewritten in place, no page splits, the index untouched.
    let mut chosen = BTreeSet::new();
    while chosen.len() < (DEDUP_ROWS / 100) as usize {
        chosen.insert((rng.next_u64() % DEDUP_ROWS as u64) as i64 + 1);
    }
    let tx = conn.transaction().unwrap();
    for &id in &chosen {
        tx.execute(
            "UPDATE items SET body = ?1 WHERE id = ?2",
            (body(&mut rng), id),
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let want = items_digest(&conn);
    drop(conn);
    let second = t.snapshot(&[&src], &[]);

    // The bound. A chunk is a run of whole pages of the store's default
    // length (4 KiB: one page here); a run is new if any of its rows changed.
    // With rows_per_run rows in a run and 1% of rows changed independently,
    // a run is touched with probability p = 1 - 0.99^rows_per_run. Rows here
    // take ~266 bytes in a 4 KiB leaf (~14 per run), so p ~ 0.13: dedup saves
    // the other 87%. rows_per_run is measured from the file (index pages
    // included, which makes it slightly low), the factor 1.5 covers the
    // variance of compression between runs, 40 bytes per chunk the new tree
    // (a 64-hex-digit id per chunk, compressed), and 256 KiB page 1, the
    // table's interior pages and the snapshot record.
    let default_run = cairn::store::config::DEFAULT_SQLITE_PAGE_RUN as u64;
    let run_len = (default_run / page_size).max(1) * page_size;
    let rows_per_run = DEDUP_ROWS as f64 * run_len as f64 / size as f64;
    let touched = 1.0 - 0.99f64.powf(rows_per_run);
    let (added_first, added_second) = (
        summary(&first, "bytes_added"),
        summary(&second, "bytes_added"),
    );
    let chunks = db_first["chunks"].as_u64().unwrap();
    let bound = touched * added_first as f64 * 1.5 + (chunks * 40) as f64 + (256 << 10) as f64;
    eprintln!(
        "dedup: {rows_per_run:.1} rows per run, {:.1}% of runs expected touched; \
         added {added_first} then {added_second} bytes ({:.1}%), bound {bound:.0}",
        touched * 100.0,
        added_second as f64 * 100.0 / added_first as f64
    );
    assert!((added_second as f64) <= bound, "{second}");
    let db_second = only_database(&second);
    assert!(
        db_second["chunks_new"].as_u64().unwrap() < db_second["chunks"].as_u64().unwrap(),
        "{second}"
    );

    let back = restored(&t.restore(id(&second)), &src).join("shop.db");
    cairn::database::integrity_check(&back).unwrap();
    let conn = open_restored(&back);
    assert_eq!(items_digest(&conn), want, "the restore lacks the updates");
}

// --- bad input -------------------------------------------------------------------

/// Asserts that `path` was stored as plain bytes with SQLite's refusal
/// explained: exit 3, a warning naming it, restored byte-identical.
fn assert_stored_raw_after_refusal(t: &TestEnv, src: &Path, path: &Path) -> PathBuf {
    let bytes = fs::read(path).unwrap();
    // --quiet, as from cron: the warning must still be printed.
    let out = snapshot_output(t, src, &["--quiet"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains(path.to_str().unwrap()))
        .unwrap_or_else(|| panic!("no message about {path:?}:\n{err}"));
    assert!(
        line.contains("warning") && line.contains("SQLite refused it"),
        "{line}"
    );
    let snap = parse_json(&out.stdout);
    assert_eq!(summary(&snap, "database_fallbacks"), 1, "{snap}");
    assert_eq!(summary(&snap, "errors"), 0, "{snap}");
    assert_eq!(t.snapshots(&[]).len(), 1, "the snapshot was not committed");

    let target = t.fresh_dir("restore");
    let (out, outcome) = restore_json(t, id(&snap), &target, &["--check"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // A file stored as bytes is not a database of the snapshot: not checked.
    assert_eq!(outcome["databases"], 0, "{outcome}");
    assert_eq!(outcome["checked"], json!([]), "{outcome}");
    let back = restored(&target, src);
    assert_eq!(
        fs::read(restored(&target, path)).unwrap(),
        bytes,
        "not byte-identical"
    );
    back
}

#[test]
fn a_truncated_database_is_stored_as_plain_bytes_with_a_warning_and_exit_3() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("cut.db");
    let conn = open_in_mode(&db, "DELETE");
    conn.execute_batch("CREATE TABLE t(x BLOB)").unwrap();
    for seed in 0..200 {
        conn.execute("INSERT INTO t VALUES (?1)", [random_bytes(seed, 1000)])
            .unwrap();
    }
    drop(conn);
    let len = fs::metadata(&db).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    write_file(&src.join("notes.txt"), b"kept");

    // The header still claims the full page count; SQLite sees a file
    // shorter than that and refuses it as malformed before copying a page,
    // so cairn keeps its bytes (all a user could have) and says so.
    let back = assert_stored_raw_after_refusal(&t, &src, &db);
    assert_eq!(fs::read(back.join("notes.txt")).unwrap(), b"kept");
}

#[test]
fn a_file_with_the_sqlite_header_and_garbage_is_stored_as_plain_bytes_with_exit_3() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 3);
    let fake = src.join("fake.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend(random_bytes(9, 20_000));
    write_file(&fake, &bytes);

    assert_stored_raw_after_refusal(&t, &src, &fake);
    let back = restored(&t.restore("latest"), &src);
    assert_trees_equal(&src, &back);
}

#[test]
fn a_database_locked_past_the_timeout_is_left_out_not_copied_raw() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    small_tree(&src, 4);
    let db = src.join("locked.db");
    small_database(&db, 10);
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE; INSERT INTO notes(note) VALUES ('pending');")
        .unwrap();
    assert!(src.join("locked.db-journal").exists());
    let (sec, nsec) = mtime_of(&src);

    let started = Instant::now();
    let out = snapshot_output(&t, &src, &["--sqlite-timeout", "1s"]);
    let took = started.elapsed();
    conn.execute_batch("ROLLBACK").unwrap();
    drop(conn);

    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains(db.to_str().unwrap()))
        .unwrap_or_else(|| panic!("no message about {db:?}:\n{err}"));
    assert!(line.contains("busy or locked"), "{line}");
    assert!(took >= Duration::from_secs(1), "gave up after {took:?}");
    assert!(took < Duration::from_secs(20), "waited {took:?}");
    let snap = parse_json(&out.stdout);
    assert_eq!(summary(&snap, "errors"), 1, "{snap}");
    assert_eq!(snap["summary"]["left_out"], json!([db]), "{snap}");
    // Regression: #19 (database_fallbacks is in every record, 0 too)
    assert_eq!(summary(&snap, "database_fallbacks"), 0, "{snap}");
    assert_eq!(t.snapshots(&[]).len(), 1, "the snapshot was not committed");

    let back = restored(&t.restore(id(&snap)), &src);
    assert!(!back.join("locked.db").exists(), "copied although locked");
    assert!(
        !back.join("locked.db-journal").exists(),
        "hot journal stored"
    );
    // The rollback removed the journal: put the directory's mtime back.
    remove_keeping_dir_mtime(&db);
    set_mtime(&src, sec, nsec);
    assert_trees_equal(&src, &back);
}

/// Deletes `a_victim.db` while cairn copies it: waits for the image file in
/// the store's `tmp/` (created once SQLite has opened the database) and
/// deletes the database then.
fn snapshot_while_deleting_database(t: &TestEnv, src: &Path) -> Output {
    let victim = src.join("a_victim.db");
    let child = t
        .command(["--json", "snapshot"])
        .arg(src)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !has_temp_file(&t.store.join("tmp")) && Instant::now() < deadline {
        thread::sleep(Duration::from_micros(200));
    }
    fs::remove_file(&victim).unwrap();
    child.wait_with_output().unwrap()
}

// A database deleted while it is captured is stored as the read
// transaction saw it, like any file deleted while it is read: cairn reads
// the file the walk opened, never its path again (issue #14 item 1), so a
// deletion cannot tear or redirect the image. (Before, the capture checked
// the path afterwards and left the database out as "vanished".)
#[test]
fn a_database_deleted_during_its_capture_is_stored_as_it_was_read() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let victim = src.join("a_victim.db");
    let conn = open_in_mode(&victim, "DELETE");
    conn.execute_batch(
        "CREATE TABLE t(x BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 12000)
         INSERT INTO t SELECT randomblob(4000) FROM c;",
    )
    .unwrap();
    drop(conn);
    write_file(&src.join("b_other.txt"), b"survives");
    let out = snapshot_while_deleting_database(&t, &src);

    assert!(out.status.success(), "{}", stderr_of(&out));
    let snap = parse_json(&out.stdout);
    assert_eq!(summary(&snap, "files"), 2, "{snap}");
    let back = restored(&t.restore(id(&snap)), &src);
    assert_eq!(names(&back), ["a_victim.db", "b_other.txt"]);
    assert_eq!(
        int(
            &open_restored(&back.join("a_victim.db")),
            "SELECT count(*) FROM t"
        ),
        12000
    );
    assert_eq!(fs::read(back.join("b_other.txt")).unwrap(), b"survives");
}

// --- restore -------------------------------------------------------------------

#[test]
fn restore_removes_stale_side_files_beside_a_database_it_writes() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    let conn = open_in_mode(&db, "WAL");
    add_notes(&conn, 1, 50, "current");
    drop(conn);
    let snap = t.snapshot(&[&src], &[]);

    // In the target: an older copy of the database whose -wal holds commits
    // and a -shm of garbage. SQLite checks a -wal against its own header
    // only, so it would replay those 80 stale rows over whatever app.db sits
    // beside it, and integrity_check would still say ok.
    let target = t.fresh_dir("target");
    let dest = restored(&target, &src);
    fs::create_dir_all(&dest).unwrap();
    let old = dest.join("app.db");
    let conn = open_wal_without_checkpoints(&old);
    add_notes(&conn, 1, 80, "stale");
    let stale_wal = fs::read(dest.join("app.db-wal")).unwrap();
    assert!(!stale_wal.is_empty());
    drop(conn);
    fs::write(dest.join("app.db-wal"), &stale_wal).unwrap();
    fs::write(dest.join("app.db-shm"), random_bytes(5, 32768)).unwrap();

    let (out, outcome) = restore_json(&t, id(&snap), &target, &["--overwrite", "--check"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(names(&dest), ["app.db"]);
    let removed: BTreeSet<_> = outcome["stale_side_files_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    let want: BTreeSet<_> = [dest.join("app.db-shm"), dest.join("app.db-wal")].into();
    assert_eq!(removed, want, "{outcome}");
    assert_eq!(outcome["databases"], 1, "{outcome}");
    assert_eq!(
        outcome["checked"],
        json!([{"path": dest.join("app.db"), "ok": true, "error": null}])
    );
    let conn = Connection::open(dest.join("app.db")).unwrap();
    assert_eq!(notes(&conn), expected_notes(1, 50, "current"));
}

/// Makes the index `name` of `db` disagree with its table without SQLite
/// noticing on open: in the index's root page (a leaf, for a small index)
/// every `from` becomes `to` (same length, so every record still parses).
fn corrupt_index(db: &Path, name: &str, from: &[u8], to: &[u8]) {
    let conn = Connection::open(db).unwrap();
    let root = int(
        &conn,
        &format!("SELECT rootpage FROM sqlite_master WHERE name = '{name}'"),
    );
    let page_size = int(&conn, "PRAGMA page_size");
    drop(conn);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(db)
        .unwrap();
    let offset = ((root - 1) * page_size) as u64;
    let mut page = vec![0u8; page_size as usize];
    file.read_exact_at(&mut page, offset).unwrap();
    let mut hits = 0;
    for i in 0..page.len() - from.len() {
        if page[i..].starts_with(from) {
            page[i..i + to.len()].copy_from_slice(to);
            hits += 1;
        }
    }
    assert!(hits > 0, "no key found in the index page");
    file.write_all_at(&page, offset).unwrap();
}

#[test]
fn restore_check_reports_a_damaged_database_with_exit_4() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    small_database(&db, 100);
    let conn = Connection::open(&db).unwrap();
    conn.execute("CREATE INDEX notes_note ON notes(note)", [])
        .unwrap();
    drop(conn);
    corrupt_index(&db, "notes_note", b"note-0", b"NOTE-0");
    assert!(cairn::database::integrity_check(&db).is_err());

    // SQLite still opens and copies it: the damage is inside a b-tree.
    let snap = t.snapshot(&[&src], &[]);
    assert_eq!(only_database(&snap)["unchanged"], false);
    let target = t.fresh_dir("restore");
    let out = t
        .cairn(["restore", id(&snap), "--check", "--target"])
        .arg(&target)
        .assert()
        .code(4);
    let err = stderr_of(out.get_output());
    let back = restored(&target, &src).join("app.db");
    let line = err
        .lines()
        .find(|l| l.contains("DAMAGED"))
        .unwrap_or_else(|| panic!("no DAMAGED:\n{err}"));
    assert!(line.contains(back.to_str().unwrap()), "{line}");
    assert!(line.contains("missing from index notes_note"), "{line}");

    let again = t.fresh_dir("restore");
    let (out, outcome) = restore_json(&t, id(&snap), &again, &["--check"]);
    assert_eq!(out.status.code(), Some(4));
    let checked = &outcome["checked"][0];
    assert_eq!(checked["ok"], false, "{outcome}");
    assert!(
        checked["error"]
            .as_str()
            .unwrap()
            .contains("integrity_check failed"),
        "{outcome}"
    );
}

// --- raw mode and change detection ------------------------------------------------

#[test]
fn sqlite_raw_stores_a_database_and_its_wal_as_plain_bytes() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    let conn = open_wal_without_checkpoints(&db);
    add_notes(&conn, 1, 300, "raw");
    let wal = src.join("app.db-wal");
    assert!(fs::metadata(&wal).unwrap().len() > 0);
    let (db_bytes, wal_bytes) = (fs::read(&db).unwrap(), fs::read(&wal).unwrap());

    let snap = t.snapshot(&[&src], &["--sqlite", "raw"]);
    assert!(snap["summary"].get("databases").is_none(), "{snap}");
    assert_eq!(summary(&snap, "files"), 3, "app.db, -wal and -shm: {snap}");
    drop(conn);
    let back = restored(&t.restore(id(&snap)), &src);
    assert_eq!(names(&back), ["app.db", "app.db-shm", "app.db-wal"]);
    assert_eq!(fs::read(back.join("app.db")).unwrap(), db_bytes);
    assert_eq!(fs::read(back.join("app.db-wal")).unwrap(), wal_bytes);
    let conn = Connection::open(back.join("app.db")).unwrap();
    assert_eq!(notes(&conn), expected_notes(1, 300, "raw"));
}

#[test]
fn an_unchanged_rollback_journal_database_is_not_captured_again() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    small_database(&db, 100);
    settle();

    let first = t.snapshot(&[&src], &[]);
    assert_eq!(only_database(&first)["unchanged"], false);
    assert_eq!(names(&src), ["app.db"], "the capture left files beside it");
    let second = t.snapshot(&[&src], &[]);
    assert_eq!(only_database(&second)["unchanged"], true, "{second}");
    assert_eq!(summary(&second, "bytes_read"), 0, "{second}");
    assert_eq!(summary(&second, "data_blobs_new"), 0, "{second}");
    let back = restored(&t.restore(id(&second)), &src).join("app.db");
    assert_eq!(notes(&open_restored(&back)), expected_notes(1, 100, "note"));
}

// SQLite's read-only connection creates an empty app.db-wal and app.db-shm
// beside a WAL-mode database that has none (all its connections closed) and
// cannot delete them on close, as any reader would. An empty -wal holds no
// commits, so it must not make the next snapshot capture the database again.
#[test]
fn an_unchanged_wal_database_is_not_captured_again() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    let conn = open_in_mode(&db, "WAL");
    add_notes(&conn, 1, 100, "settled");
    drop(conn);
    assert_eq!(names(&src), ["app.db"], "closing removes the -wal and -shm");
    settle();

    let first = t.snapshot(&[&src], &[]);
    assert_eq!(only_database(&first)["unchanged"], false);
    let wal = src.join("app.db-wal");
    assert!(
        !wal.exists() || fs::metadata(&wal).unwrap().len() == 0,
        "the capture wrote to the -wal"
    );
    let second = t.snapshot(&[&src], &[]);
    assert_eq!(only_database(&second)["unchanged"], true, "{second}");
    assert_eq!(summary(&second, "bytes_read"), 0, "{second}");
}

// As root, SQLite fchowns a -wal to the database's owner every time it opens
// it (os_unix.c, robustFchown), which bumps the -wal's ctime though nothing
// changes: the -wal's ctime must not count as a change.
#[test]
fn a_wal_database_snapshotted_by_root_is_not_captured_again() {
    if !is_root() {
        eprintln!("not root: nothing to show");
        return;
    }
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    let conn = open_wal_without_checkpoints(&db);
    add_notes(&conn, 1, 100, "first");
    settle();
    let first = t.snapshot(&[&src], &[]);
    assert_eq!(only_database(&first)["unchanged"], false);
    settle();
    let second = t.snapshot(&[&src], &[]);
    assert_eq!(only_database(&second)["unchanged"], true, "{second}");
    drop(conn);
}

#[test]
fn a_commit_that_touches_only_the_wal_is_captured_by_the_next_snapshot() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    let conn = open_wal_without_checkpoints(&db);
    add_notes(&conn, 1, 100, "first");
    settle();
    let first = t.snapshot(&[&src], &[]);
    assert_eq!(only_database(&first)["unchanged"], false);
    let second = t.snapshot(&[&src], &[]);
    assert_eq!(only_database(&second)["unchanged"], true, "{second}");

    let main_before = (fs::read(&db).unwrap(), mtime_of(&db));
    add_notes(&conn, 101, 100, "second");
    assert_eq!(
        (fs::read(&db).unwrap(), mtime_of(&db)),
        main_before,
        "the main file changed: the test needs a change in the -wal only"
    );
    settle();
    let third = t.snapshot(&[&src], &[]);
    assert_eq!(only_database(&third)["unchanged"], false, "{third}");
    let back = restored(&t.restore(id(&third)), &src).join("app.db");
    let mut want = expected_notes(1, 100, "first");
    want.extend(expected_notes(101, 100, "second"));
    assert_eq!(notes(&open_restored(&back)), want);
    drop(conn);
}

// --- regressions from the review of the database capture -----------------------

// Regression: a WAL database stored raw (by an older cairn, or --sqlite raw)
// was reused raw by the next snapshot as long as its main file was
// unchanged, though its commits sat in the -wal.
#[test]
fn a_database_stored_raw_before_is_captured_as_a_database_once_auto_is_on() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    let db = src.join("app.db");
    let conn = open_wal_without_checkpoints(&db);
    add_notes(&conn, 1, 10, "first");
    settle();
    let raw = t.snapshot(&[&src], &["--sqlite", "raw"]);
    assert!(raw["summary"].get("databases").is_none(), "{raw}");
    add_notes(&conn, 11, 10, "second");
    let auto = t.snapshot(&[&src], &[]);
    assert_eq!(only_database(&auto)["unchanged"], false, "{auto}");
    let back = restored(&t.restore(id(&auto)), &src);
    assert_eq!(names(&back), ["app.db"]);
    let mut want = expected_notes(1, 10, "first");
    want.extend(expected_notes(11, 10, "second"));
    assert_eq!(notes(&open_restored(&back.join("app.db"))), want);
    drop(conn);
}

// Regression: the -wal of a database named through a symlink was looked for
// beside the symlink, so WAL-only commits went unseen.
#[test]
fn a_database_named_through_a_symlink_sees_its_wal_commits() {
    let t = TestEnv::with_store();
    let data = t.path("data");
    fs::create_dir(&data).unwrap();
    let real = data.join("app-2026.db");
    let conn = open_wal_without_checkpoints(&real);
    add_notes(&conn, 1, 10, "first");
    let link = t.path("current.db");
    make_symlink(&real, &link);
    settle();
    let first = t.snapshot(&[&link], &[]);
    assert_eq!(only_database(&first)["unchanged"], false);
    add_notes(&conn, 11, 10, "second");
    settle();
    let second = t.snapshot(&[&link], &[]);
    assert_eq!(only_database(&second)["unchanged"], false, "{second}");
    let back = t.restore(id(&second)).join(link.strip_prefix("/").unwrap());
    assert_eq!(notes(&open_restored(&back)).len(), 20);
    drop(conn);
}

// Regression: restore removed side files in the target even without
// --overwrite, though it promises to touch nothing it was not asked to.
#[test]
fn restore_without_overwrite_refuses_to_remove_a_stale_wal() {
    let t = TestEnv::with_store();
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    small_database(&src.join("app.db"), 10);
    let snap = t.snapshot(&[&src], &[]);
    let target = t.fresh_dir("target");
    let dest = restored(&target, &src);
    fs::create_dir_all(&dest).unwrap();
    write_file(&dest.join("app.db-wal"), b"left by an older database");

    let out = t
        .cairn(["restore", id(&snap), "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("app.db-wal") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(names(&dest), ["app.db-wal"], "something was written");
}

// Regression: a hot journal (a writer that died mid-transaction) was
// reported as a failed write by cairn.
#[test]
fn a_database_with_a_hot_journal_is_left_out_with_advice() {
    let t = TestEnv::with_store();
    let live = t.path("live");
    fs::create_dir(&live).unwrap();
    let db = live.join("app.db");
    small_database(&db, 10);
    // A transaction large enough to spill pages into the file, left open;
    // copying the pair then gives a database and journal no one holds a
    // lock on: a hot journal, as after a crash.
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA cache_size = 1; BEGIN;").unwrap();
    for i in 0..2000 {
        conn.execute(
            "INSERT INTO notes(note) VALUES (?1)",
            [format!("pending {i:0200}")],
        )
        .unwrap();
    }
    let src = t.path("src");
    fs::create_dir(&src).unwrap();
    fs::copy(&db, src.join("app.db")).unwrap();
    fs::copy(live.join("app.db-journal"), src.join("app.db-journal")).unwrap();
    conn.execute_batch("ROLLBACK").unwrap();

    let out = snapshot_output(&t, &src, &["--sqlite-timeout", "1s"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("hot journal") && err.contains("app.db"),
        "{err}"
    );
    // Nothing was rolled back or otherwise written by cairn.
    assert!(src.join("app.db-journal").exists());
}

// --- large databases ---------------------------------------------------------------

/// Pages of [`many_page_runs`]: more than the restore locates at once, so
/// the file is located while written, in two segments.
const MANY_PAGES: usize = 20_000;

/// A database of 512-byte pages, [`MANY_PAGES`] of them with distinct
/// content, in a store that cuts databases into one-page runs: a file of
/// 20k chunks in 10 MB. Returns the store's environment and the database.
fn many_page_runs(t: &TestEnv) -> PathBuf {
    let mut init = t.cairn(["init", "--sqlite-page-run", "512"]);
    if t.is_s3() {
        init.arg("--no-encrypt");
    }
    init.assert().success();
    let db = t.path("src/big.db");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    let mut conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 512; PRAGMA journal_mode = DELETE; CREATE TABLE t(v BLOB);",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..MANY_PAGES as u64 {
        tx.execute("INSERT INTO t(v) VALUES (?1)", [random_bytes(i, 380)])
            .unwrap();
    }
    tx.commit().unwrap();
    drop(conn);
    let pages = fs::metadata(&db).unwrap().len() / 512;
    assert!(pages > MANY_PAGES as u64, "{pages} pages");
    db
}

#[test]
fn a_database_of_many_page_runs_restores_byte_for_byte_locally_and_from_s3() {
    for t in [TestEnv::new(), TestEnv::new_s3()] {
        let db = many_page_runs(&t);
        let snap = t.snapshot(&[db.parent().unwrap()], &[]);
        let target = t.restore(id(&snap));
        // The image's header names the SQLite that read it (its version
        // and change counter): every byte after it is the database's.
        let (back, original) = (
            fs::read(restored(&target, &db)).unwrap(),
            fs::read(&db).unwrap(),
        );
        assert_eq!(back.len(), original.len());
        assert!(
            back[100..] == original[100..],
            "the restored database differs"
        );
    }
}

#[test]
fn a_chunk_missing_late_in_a_large_database_fails_that_file_only_and_leaves_no_part_of_it() {
    let t = TestEnv::new();
    let db = many_page_runs(&t);
    let src = db.parent().unwrap();
    fs::write(src.join("notes.txt"), "kept\n").unwrap();
    let snap = t.snapshot(&[src], &[]);
    // Page 18000 lies in the second segment located.
    let bytes = fs::read(&db).unwrap();
    let page = blake3::hash(&bytes[18_000 * 512..18_001 * 512]);
    let conn = Connection::open(t.store.join("catalog.db")).unwrap();
    let dropped = conn
        .execute("DELETE FROM blobs WHERE id = ?1", [&page.as_bytes()[..]])
        .unwrap();
    assert_eq!(dropped, 1);
    drop(conn);

    let target = t.path("target");
    let out = t
        .cairn(["restore", id(&snap), "--target"])
        .arg(&target)
        .assert()
        .code(4);
    let err = stderr_of(out.get_output());
    assert!(err.contains(&page.to_hex().to_string()), "{err}");
    assert!(err.contains("big.db"), "{err}");
    let dir = restored(&target, src);
    assert_eq!(fs::read_to_string(dir.join("notes.txt")).unwrap(), "kept\n");
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"], "no part of the database is left");
}
