//! The prune lease: at most one prune acts on a shared store at a time,
//! and no lease ever needs a human to clear it.
//!
//! A lease is an object `leases/prune-GEN` (GEN a zero-padded generation
//! number), made with a conditional create, so of two prunes creating the
//! same generation exactly one succeeds. The newest generation is the
//! lease; it says who holds it and for how long. Its age is measured by
//! the store's own clock (the object's Last-Modified against that of an
//! object written just now), never by comparing hosts' clocks. A lease
//! released, or older than its time to live, is taken over by creating the
//! next generation: there is nothing to delete first, so two prunes taking
//! over at once cannot both win.
//!
//! The holder renews its lease (rewrites its object) from a keeper thread
//! every quarter of its time to live, so a mark or repack of any length
//! keeps it, and checks it at checkpoints before every step that deletes or
//! supersedes anything; a renewal that finds a newer generation, or that
//! comes a time to live after the previous one (a process stopped or
//! suspended meanwhile, whose lease another prune may have taken), gives
//! the lease up and stops the prune.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendError};

/// Where the leases live.
const PREFIX: &str = "leases/";
/// How long a lease holds without renewal: a prune killed with its lease
/// held blocks the others this long at most.
pub const TTL: Duration = Duration::from_secs(120);
/// Environment variable that shortens the time to live (tests).
pub const TTL_ENV: &str = "CAIRN_PRUNE_LEASE_TTL";
/// Largest lease object a reader accepts.
const MAX_LEN: u64 = 4096;

/// What a lease object says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    /// The host that holds it.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// Seconds it holds from its last write.
    pub ttl_secs: u64,
    /// Set when the holder let it go: the next prune need not wait.
    #[serde(default)]
    pub released: bool,
    /// Makes each holder's object unlike any other's.
    #[serde(default)]
    pub nonce: String,
}

/// Why no lease was taken, or why it was lost.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another prune holds it.
    #[error(
        "another prune (host {host}, process {pid}) holds the store's prune lease; it expires by itself in {}s if that prune is gone",
        expires_in.as_secs().max(1)
    )]
    Held {
        /// Its host.
        host: String,
        /// Its process.
        pid: u32,
        /// How long until it expires, by the store's clock.
        expires_in: Duration,
    },
    /// This prune was stopped longer than the lease holds, or another
    /// prune took the lease over: it stops before deleting anything more.
    #[error(
        "this prune lost the store's prune lease ({0}); it stopped, and the next prune finishes its work"
    )]
    Lost(String),
    /// The store failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A lease this process holds, kept renewed; released when dropped.
#[derive(Debug)]
pub struct Lease {
    keeper: Arc<Keeper>,
    thread: Option<JoinHandle<()>>,
    /// The store's clock when the lease was taken.
    taken: SystemTime,
}

/// What the keeper thread and the prune share.
#[derive(Debug)]
struct Keeper {
    held: Mutex<Held>,
    /// Notified when the prune is done with the lease.
    done: Condvar,
}

/// The lease object as this process last wrote it.
#[derive(Debug)]
struct Held {
    backend: Backend,
    key: String,
    holder: Holder,
    /// The store's clock when the lease was last written.
    written: SystemTime,
    /// This host's clocks at that moment: how long ago that was, whether
    /// the process ran (monotonic) or the machine slept (wall clock).
    renewed: (Instant, SystemTime),
    /// Why the lease was lost, once it is.
    lost: Option<String>,
    /// Set when the prune is done: the keeper stops.
    finished: bool,
}

/// A lease object found in the store.
struct Found {
    generation: u64,
    key: String,
    modified: Option<SystemTime>,
}

impl Lease {
    /// Takes the lease for `host`, taking over a released or expired one.
    pub fn acquire(backend: &Backend, host: &str) -> Result<Self, LeaseError> {
        let holder = Holder {
            host: host.to_owned(),
            pid: std::process::id(),
            ttl_secs: ttl().as_secs(),
            released: false,
            nonce: nonce(),
        };
        let next = match &newest(backend)? {
            None => 1,
            Some(found) => {
                ensure_free(backend, found)?;
                found.generation + 1
            }
        };
        let key = format!("{PREFIX}prune-{next:020}");
        let bytes = serde_json::to_vec(&holder).unwrap_or_default();
        let asked = Instant::now();
        match backend.create_sealed(&key, bytes) {
            Ok(()) => {}
            // Another prune took this generation first.
            Err(e) if e.is_already_exists() => {
                let theirs = newest(backend)?.ok_or(LeaseError::Lost("vanished".into()))?;
                ensure_free(backend, &theirs)?;
                return Err(LeaseError::Lost(
                    "taken by another prune at the same moment".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        refuse_slow_take(asked.elapsed())?;
        // A generation a newer holder had deleted can have been created
        // anew (see `Backend::create`): only the newest is the lease.
        if newest(backend)?.is_none_or(|found| found.key != key) {
            return Err(LeaseError::Lost("a newer generation exists".into()));
        }
        let written = modified(backend, &key)?;
        drop_older(backend, next);
        let held = Held {
            backend: backend.clone(),
            key,
            holder,
            written,
            renewed: (Instant::now(), SystemTime::now()),
            lost: None,
            finished: false,
        };
        Ok(Self::kept(held))
    }

    /// Starts the keeper thread for `held`.
    fn kept(held: Held) -> Self {
        let taken = held.written;
        let keeper = Arc::new(Keeper {
            held: Mutex::new(held),
            done: Condvar::new(),
        });
        let thread = {
            let keeper = keeper.clone();
            std::thread::spawn(move || keeper.keep())
        };
        Self {
            keeper,
            thread: Some(thread),
            taken,
        }
    }

    /// The store's clock when the lease was taken, before this prune looked
    /// at the store: grace periods are measured up to then, so that what the
    /// prune saw is at least that old.
    pub fn store_now(&self) -> SystemTime {
        self.taken
    }

    /// Called before each step that deletes or supersedes: fails if the
    /// lease is lost, renews it if the keeper has not lately.
    pub fn checkpoint(&mut self) -> Result<(), LeaseError> {
        let mut held = self.keeper.lock();
        if let Some(why) = &held.lost {
            return Err(LeaseError::Lost(why.clone()));
        }
        let ttl = Duration::from_secs(held.holder.ttl_secs);
        if held.since_renewal() >= ttl / 4 {
            held.renew()?;
        }
        Ok(())
    }
}

impl Keeper {
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Renews the lease every quarter of its time to live until the prune
    /// is done or the lease is lost. A renewal that fails for a transient
    /// reason is tried again next time; one too late loses the lease.
    fn keep(&self) {
        let mut held = self.lock();
        let every = Duration::from_secs(held.holder.ttl_secs) / 4;
        loop {
            held = match self.done.wait_timeout(held, every) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
            if held.finished || held.lost.is_some() {
                return;
            }
            if held.since_renewal() >= every {
                let _ = held.renew();
            }
        }
    }
}

impl Held {
    /// Rewrites the lease, so that it holds another time to live, after
    /// checking no other prune took it meanwhile.
    pub fn renew(&mut self) -> Result<(), LeaseError> {
        let ttl = Duration::from_secs(self.holder.ttl_secs);
        // Whole seconds on the store's clock: a second of margin.
        if self.since_renewal() + Duration::from_secs(1) >= ttl {
            return Err(self.lose("it was not renewed in time"));
        }
        let bytes = serde_json::to_vec(&self.holder).unwrap_or_default();
        self.backend.replace_sealed(&self.key, bytes)?;
        let written = modified(&self.backend, &self.key)?;
        let newest = newest(&self.backend)?;
        if newest.as_ref().map(|f| &f.key) != Some(&self.key) {
            return Err(self.lose("another prune took it over"));
        }
        if written.duration_since(self.written).unwrap_or_default() + Duration::from_secs(1) >= ttl
        {
            return Err(self.lose("the store saw no renewal in time"));
        }
        self.written = written;
        self.renewed = (Instant::now(), SystemTime::now());
        Ok(())
    }

    fn since_renewal(&self) -> Duration {
        let (instant, wall) = self.renewed;
        let slept = SystemTime::now().duration_since(wall).unwrap_or_default();
        instant.elapsed().max(slept)
    }

    fn lose(&mut self, why: &str) -> LeaseError {
        self.lost = Some(why.to_owned());
        LeaseError::Lost(why.to_owned())
    }

    /// Marks the lease released, so the next prune need not wait for it to
    /// expire; a lost lease is not touched (it may be another's now).
    fn release(&mut self) {
        if self.lost.is_some() {
            return;
        }
        let released = Holder {
            released: true,
            ..self.holder.clone()
        };
        let bytes = serde_json::to_vec(&released).unwrap_or_default();
        let _ = self.backend.replace_sealed(&self.key, bytes);
    }
}

impl Drop for Lease {
    /// Stops the keeper, then releases the lease.
    fn drop(&mut self) {
        self.keeper.lock().finished = true;
        self.keeper.done.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.keeper.lock().release();
    }
}

/// Refuses a lease whose create took more than a quarter of its time to
/// live to answer (a slow server, or retries after lost answers): it took
/// effect at some moment in between, and by the time it is known to have,
/// another prune may have seen it expire and taken the next generation.
/// Within a quarter, the keeper's renewals keep it as for any lease.
fn refuse_slow_take(took: Duration) -> Result<(), LeaseError> {
    if took <= ttl() / 4 {
        return Ok(());
    }
    Err(LeaseError::Lost(format!(
        "taking it took {:.1}s, too long to be sure no other prune took it meanwhile",
        took.as_secs_f64()
    )))
}

/// The time to live of new leases.
fn ttl() -> Duration {
    std::env::var(TTL_ENV)
        .ok()
        .and_then(|v| crate::when::parse_duration(&v).ok())
        .unwrap_or(TTL)
}

fn nonce() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

/// The newest lease object, if any.
fn newest(backend: &Backend) -> Result<Option<Found>, BackendError> {
    let found = backend
        .list(PREFIX)?
        .into_iter()
        .filter_map(|o| {
            let generation = o
                .key
                .strip_prefix(PREFIX)?
                .strip_prefix("prune-")?
                .parse()
                .ok()?;
            Some(Found {
                generation,
                key: o.key,
                modified: o.modified,
            })
        })
        .max_by_key(|f| f.generation);
    Ok(found)
}

/// Succeeds if the lease `found` is released or expired; else says who
/// holds it and until when.
fn ensure_free(backend: &Backend, found: &Found) -> Result<(), LeaseError> {
    let holder: Option<Holder> = match backend.get_opened(&found.key, MAX_LEN) {
        Ok(bytes) => serde_json::from_slice(&bytes).ok(),
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if holder.as_ref().is_some_and(|h| h.released) {
        return Ok(());
    }
    let ttl = Duration::from_secs(holder.as_ref().map_or(TTL.as_secs(), |h| h.ttl_secs));
    let now = store_now(backend)?;
    let age = now
        .duration_since(found.modified.unwrap_or(SystemTime::UNIX_EPOCH))
        .unwrap_or_default();
    if age >= ttl {
        return Ok(());
    }
    let (host, pid) = holder.map_or(("?".into(), 0), |h| (h.host, h.pid));
    Err(LeaseError::Held {
        host,
        pid,
        expires_in: ttl - age,
    })
}

/// Deletes lease objects older than generation `current` (best effort:
/// a leftover is harmless, only the newest counts).
fn drop_older(backend: &Backend, current: u64) {
    let Ok(listed) = backend.list(PREFIX) else {
        return;
    };
    for o in listed {
        let older = (o.key.strip_prefix(PREFIX))
            .and_then(|n| n.strip_prefix("prune-"))
            .and_then(|g| g.parse::<u64>().ok())
            .is_some_and(|g| g < current);
        if older {
            let _ = backend.delete(&o.key);
        }
    }
}

/// When `key` was last written, by the store's clock.
fn modified(backend: &Backend, key: &str) -> Result<SystemTime, BackendError> {
    let info = backend.head(key)?;
    Ok(info
        .and_then(|i| i.modified)
        .unwrap_or_else(SystemTime::now))
}

/// The store's clock now: the Last-Modified of an object written for the
/// purpose, then deleted.
pub fn store_now(backend: &Backend) -> Result<SystemTime, BackendError> {
    let key = format!("{PREFIX}clock-{}", nonce());
    backend.create(&key, b"")?;
    let now = backend.head(&key)?.and_then(|i| i.modified);
    backend.delete(&key)?;
    Ok(now.unwrap_or_else(SystemTime::now))
}
