//! Generates a realistic SQLite database and changes it night by night, for
//! the nightly-snapshot benchmark (`benches/sqlite.sh`).
//!
//! ```sh
//! cargo run --locked --release --example sqlite_gen -- create app.db --size-mb 500 [--seed S]
//! cargo run --locked --release --example sqlite_gen -- night app.db --night 1 [--churn 1.5] [--seed S]
//! ```
//!
//! `create` writes a new database in WAL mode (4096-byte pages) that looks
//! like an application's log store: `sessions`, `events` (a JSON payload of
//! 200-800 bytes per row, which zstd compresses about 3-4x, like real
//! application logs) and `costs`, with their secondary indexes created
//! before the rows go in, so the index b-trees grow the way they do in
//! production. Each event belongs to a session drawn uniformly from all the
//! sessions so far, so the `events(session_id)` index pages are scattered
//! over the file. Rows go in until the file reaches about `--size-mb` MiB.
//!
//! `night K` applies one night of activity: about `--churn` percent of all
//! rows change (default 1.5): payloads of random events rewritten, cost
//! amounts corrected, random old events deleted, and new sessions, events and
//! costs appended (new ids at the end, but referencing random sessions, so
//! index pages all over the file are touched). It commits in several
//! transactions and ends with `PRAGMA wal_checkpoint(TRUNCATE)`, so the main
//! database file holds everything and the WAL file is empty.
//!
//! Everything is deterministic: `create` in (seed, size), night K in
//! (seed, K) and the database it starts from. Apply nights 1, 2, 3, ... in
//! order to get the same files on every machine with the same SQLite version.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Instant;

use clap::{Parser, Subcommand};
use rusqlite::{Connection, OptionalExtension, params};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Deterministic SQLite database generator for benchmarks.
#[derive(Debug, Parser)]
#[command(name = "sqlite_gen")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new database of about SIZE MiB
    Create {
        /// The database file to create (must not exist)
        db: PathBuf,
        /// Stop inserting rows once the database holds this many MiB
        #[arg(long, value_name = "SIZE")]
        size_mb: u64,
        /// Seed of the generator
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Apply night K's changes to a database made by `create`
    Night {
        /// The database file to change
        db: PathBuf,
        /// Which night (1, 2, ...): each night changes different rows
        #[arg(long, value_name = "K")]
        night: u64,
        /// Percentage of all rows updated, inserted or deleted
        #[arg(long, value_name = "PCT", default_value_t = 1.5)]
        churn: f64,
        /// Seed of the generator
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Create { db, size_mb, seed } => create(&db, size_mb, seed),
        Command::Night {
            db,
            night,
            churn,
            seed,
        } => apply_night(&db, night, churn, seed),
    }
}

const SCHEMA: &str = "
    CREATE TABLE sessions(id INTEGER PRIMARY KEY, user TEXT, started INTEGER, ended INTEGER, meta TEXT);
    CREATE TABLE events(id INTEGER PRIMARY KEY, session_id INTEGER, kind TEXT, ts INTEGER, payload TEXT);
    CREATE TABLE costs(id INTEGER PRIMARY KEY, session_id INTEGER, amount INTEGER, currency TEXT, ts INTEGER);
    CREATE INDEX events_session ON events(session_id);
    CREATE INDEX events_ts ON events(ts);
    CREATE INDEX events_kind_ts ON events(kind, ts);
    CREATE INDEX costs_session ON costs(session_id);
    CREATE INDEX sessions_user ON sessions(user);
";

/// Database page size.
const PAGE_SIZE: u64 = 4096;
/// Events per transaction while creating.
const CREATE_BATCH: u64 = 50_000;
/// Events between two size checks while creating.
const SIZE_CHECK_EVERY: u64 = 500;
/// On average one new session per this many events.
const EVENTS_PER_SESSION: u64 = 40;
/// On average one cost row per this many events.
const EVENTS_PER_COST: u64 = 8;
/// 2025-01-01T00:00:00Z in milliseconds: the time of the first row.
const EPOCH_MS: i64 = 1_735_689_600_000;
/// A day in milliseconds.
const DAY_MS: i64 = 86_400_000;
/// Transactions per night.
const NIGHT_TRANSACTIONS: u64 = 12;
/// Tries at finding an existing row at a random id before giving up on it.
const PICK_TRIES: u32 = 64;

fn create(db: &Path, size_mb: u64, seed: u64) -> Result<()> {
    if db.exists() {
        return Err(format!("{} already exists", db.display()).into());
    }
    let started = Instant::now();
    let mut conn = Connection::open(db)?;
    conn.execute_batch(&format!("PRAGMA page_size={PAGE_SIZE};"))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if mode != "wal" {
        return Err(format!("could not switch to WAL mode (got {mode})").into());
    }
    // Speed only: none of these settings is stored in the file.
    conn.execute_batch("PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;")?;
    conn.execute_batch(&format!("BEGIN; {SCHEMA} COMMIT;"))?;

    let target = size_mb * 1024 * 1024;
    let mut rng = Rng::new(seed, 0x6372_6561_7465); // "create"
    let mut maker = Generator {
        clock: EPOCH_MS,
        sessions: 0,
        text: String::with_capacity(1024),
    };
    let (mut events, mut costs) = (0u64, 0u64);
    let mut full = false;
    while !full {
        let tx = conn.transaction()?;
        for i in 0..CREATE_BATCH {
            maker.clock += rng.below(60_000) as i64; // 30 s apart on average
            if maker.sessions == 0 || rng.below(EVENTS_PER_SESSION) == 0 {
                maker.insert_session(&tx, &mut rng)?;
            }
            let session = 1 + rng.below(maker.sessions) as i64;
            maker.insert_event(&tx, &mut rng, session)?;
            events += 1;
            if rng.below(EVENTS_PER_COST) == 0 {
                maker.insert_cost(&tx, &mut rng, session)?;
                costs += 1;
            }
            if i % SIZE_CHECK_EVERY == 0 && database_bytes(&tx)? >= target {
                full = true;
                break;
            }
        }
        tx.commit()?;
    }
    checkpoint(&conn)?;
    drop(conn);
    println!(
        "created {}: {} MiB, {} sessions, {events} events, {costs} costs in {:.1} s (SQLite {})",
        db.display(),
        std::fs::metadata(db)?.len() / (1024 * 1024),
        maker.sessions,
        started.elapsed().as_secs_f64(),
        rusqlite::version()
    );
    Ok(())
}

fn apply_night(db: &Path, night: u64, churn: f64, seed: u64) -> Result<()> {
    if !db.is_file() {
        return Err(format!("{} is not a file", db.display()).into());
    }
    if !(0.0..=100.0).contains(&churn) {
        return Err("--churn must be between 0 and 100".into());
    }
    let mut conn = Connection::open(db)?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if mode != "wal" {
        return Err(format!("{} is not in WAL mode (journal_mode={mode})", db.display()).into());
    }
    conn.execute_batch("PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;")?;

    let (ev_min, ev_max, ev_count, last_ts): (i64, i64, i64, i64) = conn.query_row(
        "SELECT coalesce(min(id), 0), coalesce(max(id), 0), count(*), coalesce(max(ts), 0) FROM events",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let (cost_min, cost_max, cost_count): (i64, i64, i64) = conn.query_row(
        "SELECT coalesce(min(id), 0), coalesce(max(id), 0), count(*) FROM costs",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let (sessions, session_count): (i64, i64) = conn.query_row(
        "SELECT coalesce(max(id), 0), count(*) FROM sessions",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if ev_count == 0 || cost_count == 0 || session_count == 0 {
        return Err(format!(
            "{} has no rows to change: make it with `create`",
            db.display()
        )
        .into());
    }
    let rows = ev_count + cost_count + session_count;
    let planned = (rows as f64 * churn / 100.0).round() as u64;

    let mut rng = Rng::new(seed, 0x6e69_6768_7400_0000 ^ night); // "night" ^ K
    let mut maker = Generator {
        // The night's new rows spread over one day after the newest event.
        clock: last_ts,
        sessions: sessions as u64,
        text: String::with_capacity(1024),
    };
    // About 40% of the changes are inserts, each `step` ms apart on average.
    let step = (DAY_MS / ((planned * 2 / 5).max(1) as i64)).max(1);
    // Retention deletes events among the oldest quarter of ids.
    let old_max = ev_min + (ev_max - ev_min) / 4;
    let (mut updated, mut inserted, mut deleted) = (0u64, 0u64, 0u64);
    let per_tx = planned.div_ceil(NIGHT_TRANSACTIONS).max(1);
    let mut done = 0u64;
    while done < planned {
        let tx = conn.transaction()?;
        let end = (done + per_tx).min(planned);
        while done < end {
            done += 1;
            // 35% event updates, 10% cost updates, 15% deletes, 40% inserts.
            match rng.below(100) {
                0..35 => {
                    if maker.rewrite_event(&tx, &mut rng, ev_min, ev_max)? {
                        updated += 1;
                    }
                }
                35..45 => {
                    if correct_cost(&tx, &mut rng, cost_min, cost_max)? {
                        updated += 1;
                    }
                }
                45..60 => {
                    if delete_event(&tx, &mut rng, ev_min, old_max)? {
                        deleted += 1;
                    }
                }
                _ => {
                    maker.clock += 1 + rng.below(2 * step as u64) as i64;
                    if rng.below(EVENTS_PER_SESSION) == 0 {
                        maker.insert_session(&tx, &mut rng)?;
                        inserted += 1;
                    }
                    let session = 1 + rng.below(maker.sessions) as i64;
                    maker.insert_event(&tx, &mut rng, session)?;
                    inserted += 1;
                    if rng.below(EVENTS_PER_COST) == 0 {
                        maker.insert_cost(&tx, &mut rng, session)?;
                        inserted += 1;
                    }
                }
            }
        }
        tx.commit()?;
    }
    checkpoint(&conn)?;
    println!(
        "night {night}: {updated} rows updated, {inserted} inserted, {deleted} deleted \
         ({rows} rows before, churn {churn}%)"
    );
    Ok(())
}

/// Bytes the database holds, committed or not, as seen by this connection.
fn database_bytes(conn: &Connection) -> Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    Ok(pages as u64 * PAGE_SIZE)
}

/// Copies every page of the WAL into the database file and empties the WAL.
fn checkpoint(conn: &Connection) -> Result<()> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        return Err("wal_checkpoint(TRUNCATE) could not finish: database busy".into());
    }
    Ok(())
}

fn correct_cost(conn: &Connection, rng: &mut Rng, min: i64, max: i64) -> Result<bool> {
    let mut stmt = conn.prepare_cached("UPDATE costs SET amount = amount + ?2 WHERE id = ?1")?;
    for _ in 0..PICK_TRIES {
        let id = rng.between(min, max);
        let delta = rng.below(20_001) as i64 - 10_000;
        if stmt.execute(params![id, delta])? == 1 {
            return Ok(true);
        }
    }
    Ok(false)
}

fn delete_event(conn: &Connection, rng: &mut Rng, min: i64, max: i64) -> Result<bool> {
    let mut stmt = conn.prepare_cached("DELETE FROM events WHERE id = ?1")?;
    for _ in 0..PICK_TRIES {
        if stmt.execute(params![rng.between(min, max)])? == 1 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Makes rows. `clock` is the time of the next row, in milliseconds.
struct Generator {
    clock: i64,
    sessions: u64,
    text: String,
}

impl Generator {
    fn insert_session(&mut self, conn: &Connection, rng: &mut Rng) -> Result<()> {
        let user = user_name(rng.skewed(20_000) as u64);
        let ended = self.clock + rng.below(3 * 3_600_000) as i64;
        self.text.clear();
        write!(
            self.text,
            r#"{{"app":"{}","os":"{}","locale":"{}","ip":"10.{}.{}.{}","plan":"{}"}}"#,
            pick(rng, APP_VERSIONS),
            pick(rng, OSES),
            pick(rng, LOCALES),
            rng.below(256),
            rng.below(256),
            rng.below(256),
            pick(rng, PLANS),
        )?;
        conn.prepare_cached(
            "INSERT INTO sessions(user, started, ended, meta) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![user, self.clock, ended, self.text])?;
        self.sessions += 1;
        Ok(())
    }

    fn insert_event(&mut self, conn: &Connection, rng: &mut Rng, session: i64) -> Result<()> {
        let kind = rng.skewed(KINDS.len());
        payload(rng, kind, &mut self.text)?;
        conn.prepare_cached(
            "INSERT INTO events(session_id, kind, ts, payload) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![session, KINDS[kind], self.clock, self.text])?;
        Ok(())
    }

    fn insert_cost(&mut self, conn: &Connection, rng: &mut Rng, session: i64) -> Result<()> {
        // Micro-units of the currency: most calls cost a fraction of a cent.
        let amount = (rng.below(5_000) * (1 + rng.below(20))) as i64;
        let currency = match rng.below(20) {
            0..15 => "USD",
            15..18 => "EUR",
            _ => "GBP",
        };
        conn.prepare_cached(
            "INSERT INTO costs(session_id, amount, currency, ts) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![session, amount, currency, self.clock])?;
        Ok(())
    }

    /// Rewrites the payload of a random existing event between ids `min` and
    /// `max`; false if none was found.
    fn rewrite_event(
        &mut self,
        conn: &Connection,
        rng: &mut Rng,
        min: i64,
        max: i64,
    ) -> Result<bool> {
        let mut find = conn.prepare_cached("SELECT kind FROM events WHERE id = ?1")?;
        for _ in 0..PICK_TRIES {
            let id = rng.between(min, max);
            let Some(kind) = find
                .query_row(params![id], |r| r.get::<_, String>(0))
                .optional()?
            else {
                continue;
            };
            let kind = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
            payload(rng, kind, &mut self.text)?;
            conn.prepare_cached("UPDATE events SET payload = ?2 WHERE id = ?1")?
                .execute(params![id, self.text])?;
            return Ok(true);
        }
        Ok(false)
    }
}

/// Event kinds, most frequent first.
const KINDS: &[&str] = &[
    "model_response",
    "tool_call",
    "tool_result",
    "message",
    "http_request",
    "cache",
    "page_view",
    "job",
    "auth",
    "error",
];

/// Writes a JSON event payload of 200-800 bytes into `out`: a log record
/// with fields common to all kinds, fields of its kind, and a message.
fn payload(rng: &mut Rng, kind: usize, out: &mut String) -> Result<()> {
    let target = 200 + rng.below(589) as usize; // plus at most one word: <= 800
    out.clear();
    write!(
        out,
        r#"{{"v":3,"kind":"{}","req":"{:016x}","host":"{}-{:02}","region":"{}","level":"{}","dur_ms":{}"#,
        KINDS[kind],
        rng.next(),
        pick(rng, SERVICES),
        rng.below(16),
        pick(rng, REGIONS),
        if kind == 9 { "error" } else { "info" },
        rng.skewed(5000),
    )?;
    match KINDS[kind] {
        "model_response" => write!(
            out,
            r#","model":"{}","tokens":{{"in":{},"out":{},"cached":{}}},"finish":"{}","temperature":0.{}"#,
            pick(rng, MODELS),
            rng.skewed(20_000),
            rng.skewed(4_000),
            rng.skewed(16) * 1024,
            pick(rng, &["stop", "stop", "stop", "tool_calls", "length"]),
            rng.below(10),
        )?,
        "tool_call" => write!(
            out,
            r#","tool":"{}","args":{{"query":"{} {} {}","limit":{},"page":{}}}"#,
            pick(rng, TOOLS),
            word(rng),
            word(rng),
            word(rng),
            10 * (1 + rng.below(5)),
            rng.skewed(10),
        )?,
        "tool_result" => write!(
            out,
            r#","tool":"{}","ok":{},"rows":{},"bytes":{},"truncated":false"#,
            pick(rng, TOOLS),
            rng.below(20) != 0,
            rng.skewed(200),
            rng.skewed(100_000),
        )?,
        "message" => write!(
            out,
            r#","role":"{}","chars":{},"lang":"{}","attachments":{}"#,
            pick(rng, &["user", "assistant", "assistant", "system"]),
            rng.skewed(4000),
            pick(rng, &["en", "en", "en", "de", "fr", "es"]),
            rng.skewed(3),
        )?,
        "http_request" => write!(
            out,
            r#","method":"{}","path":"/api/v2/{}/{}","status":{},"bytes":{},"ua":"{}""#,
            pick(rng, &["GET", "GET", "GET", "POST", "PUT", "DELETE"]),
            pick(rng, RESOURCES),
            rng.below(100_000),
            pick(rng, &[200, 200, 200, 200, 201, 204, 304, 400, 404, 500]),
            rng.skewed(50_000),
            pick(rng, AGENTS),
        )?,
        "cache" => write!(
            out,
            r#","key":"{}:{}","hit":{},"ttl":{}"#,
            pick(rng, RESOURCES),
            rng.below(100_000),
            rng.below(4) != 0,
            pick(rng, &[60, 300, 3600, 86400]),
        )?,
        "page_view" => write!(
            out,
            r#","url":"/app/{}/{}","referrer":"/app/{}","viewport":"{}""#,
            pick(rng, RESOURCES),
            rng.below(10_000),
            pick(rng, RESOURCES),
            pick(rng, &["1920x1080", "1440x900", "390x844", "2560x1440"]),
        )?,
        "job" => write!(
            out,
            r#","queue":"{}","job_id":"{:08x}","attempt":{},"state":"{}""#,
            pick(rng, &["default", "mail", "export", "index"]),
            rng.next() as u32,
            1 + rng.skewed(3),
            pick(rng, &["done", "done", "done", "retry", "failed"]),
        )?,
        "auth" => write!(
            out,
            r#","method":"{}","provider":"{}","mfa":{}"#,
            pick(rng, &["oauth", "password", "token"]),
            pick(rng, &["github", "google", "okta", "local"]),
            rng.below(3) == 0,
        )?,
        _ => {
            let file = pick(rng, RESOURCES);
            write!(
                out,
                r#","code":"{}","retryable":{},"stack":["at handle (src/api/{file}.ts:{}:{})","at run (src/core/worker.ts:{}:9)"]"#,
                pick(rng, ERROR_CODES),
                rng.below(2) == 0,
                rng.below(400),
                rng.below(40),
                rng.below(300),
            )?
        }
    }
    out.push_str(r#","msg":""#);
    loop {
        out.push_str(word(rng));
        if out.len() + 2 >= target {
            break;
        }
        out.push(' ');
    }
    out.push_str("\"}");
    Ok(())
}

fn user_name(n: u64) -> String {
    // The same number always gives the same name.
    let mut rng = Rng::new(n, 0x7573_6572); // "user"
    format!(
        "{}.{}{}@{}",
        pick(&mut rng, FIRST_NAMES),
        pick(&mut rng, LAST_NAMES),
        n % 100,
        pick(&mut rng, DOMAINS)
    )
}

fn word(rng: &mut Rng) -> &'static str {
    WORDS[rng.skewed(WORDS.len())]
}

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.skewed(items.len())]
}

/// splitmix64: small, fast, good enough for test data, and the same on every
/// platform.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Self(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in min..=max.
    fn between(&mut self, min: i64, max: i64) -> i64 {
        min + self.below((max - min) as u64 + 1) as i64
    }

    /// In 0..n, small values far more likely than large ones (density
    /// falling like 1/sqrt), as word and value frequencies do in real logs.
    fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * n as f64) as usize).min(n - 1)
    }
}

const SERVICES: &[&str] = &["api", "worker", "gateway", "web", "scheduler"];
const REGIONS: &[&str] = &["eu-west-1", "us-east-1", "eu-central-1", "ap-south-1"];
const MODELS: &[&str] = &[
    "large-2025-06",
    "small-2025-06",
    "large-2025-01",
    "embed-v3",
    "reasoning-1",
];
const TOOLS: &[&str] = &[
    "search",
    "read_file",
    "sql",
    "http_get",
    "calendar",
    "email",
    "calc",
    "translate",
];
const RESOURCES: &[&str] = &[
    "items", "users", "orders", "invoices", "projects", "files", "teams", "reports", "tasks",
    "comments", "settings", "billing",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "app-ios/3.14.2 (iPhone15,2; iOS 17.5)",
    "app-android/3.14.1 (Pixel 8; Android 14)",
    "python-requests/2.32.3",
    "curl/8.8.0",
];
const ERROR_CODES: &[&str] = &[
    "E_TIMEOUT",
    "E_RATE_LIMIT",
    "E_UPSTREAM",
    "E_VALIDATION",
    "E_NOT_FOUND",
    "E_CONFLICT",
];
const APP_VERSIONS: &[&str] = &["3.14.2", "3.14.1", "3.13.0", "3.12.5", "2.9.9"];
const OSES: &[&str] = &["linux", "macos", "windows", "ios", "android"];
const LOCALES: &[&str] = &["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP"];
const PLANS: &[&str] = &["free", "pro", "team", "enterprise"];
const FIRST_NAMES: &[&str] = &[
    "anna", "ben", "carla", "david", "emma", "felix", "greta", "hugo", "ines", "jonas", "karin",
    "leo", "mia", "noah", "olga", "paul", "rosa", "sam", "tara", "uwe", "vera", "will", "yuki",
    "zoe",
];
const LAST_NAMES: &[&str] = &[
    "smith", "mueller", "garcia", "rossi", "martin", "kowalski", "nguyen", "tanaka", "silva",
    "novak", "jensen", "dubois", "brown", "fischer", "lopez", "weber",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "corp.example.net",
    "uni.example.edu",
];
/// Words of log messages, most frequent first.
static WORDS: LazyLock<Vec<&str>> = LazyLock::new(|| WORD_LIST.split_whitespace().collect());
const WORD_LIST: &str = "the request to user and of completed response in for session model with tool \
     returned result a is on cache query from retry after timeout file search context \
     tokens update item list page new stream chunk finished started handler job queue \
     worker upstream latency ms ok error warning invalid input output schema validation \
     passed failed sent received message assistant prompt summary document index rows \
     table column filter sort limit offset next previous project team member invite \
     accepted billing invoice payment card charged refund plan upgrade downgrade quota \
     exceeded remaining daily weekly report export csv pdf generated uploaded download \
     link expired token refresh login logout password reset email verified notification \
     push delivered opened clicked calendar event meeting scheduled cancelled moved \
     reminder translate language detected english german french spanish japanese image \
     resized thumbnail stored bucket region replica primary failover healthy degraded \
     recovered deploy version rollback feature flag enabled disabled experiment variant \
     control metric counter gauge histogram p50 p95 p99";
