//! Which dictionary a capture compresses small blobs with, and the training
//! of the store's first one from the capture's own blobs.
//!
//! A store that has `dictionaries/1` compresses every small data blob with
//! it. One that has none (a new store) gathers the first
//! [`dictionary::SAMPLE_BYTES`] of small data blobs while compressing them
//! without, trains, stores the dictionary create-only and uses it for the
//! rest of the run: the first snapshot of a database or of many small files
//! is the one that gains most. Two hosts training at once both try to
//! create `dictionaries/1`; the one that finds it made uses that one.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::backend::Backend;
use crate::compress::Dictionary;
use crate::compress::dictionary::{self, Samples};
use crate::pack::BlobKind;
use crate::store::{Store, StoreError};

/// The number of the dictionary writers train and use.
pub const WRITERS_DICTIONARY: u16 = 1;

/// Shared by the compressors of one capture.
pub struct Trainer {
    backend: Backend,
    state: Mutex<State>,
    /// Signalled when training ends.
    trained: Condvar,
    /// What the user should hear: a dictionary that is damaged or lost,
    /// or one that could not be stored.
    notes: Mutex<Vec<String>>,
    /// The writers' dictionary, if it is missing or damaged while blobs
    /// name it: those blobs cannot be read back, so the capture stores
    /// their data again rather than reuse them.
    lost: Option<u16>,
}

/// Where a capture starts with the store's dictionary.
struct Start {
    state: State,
    /// What the user should hear about it, if anything.
    note: Option<String>,
    /// See [`Trainer::lost_dictionary`].
    lost: Option<u16>,
}

impl Start {
    /// Compressing with `dictionary` (or none), nothing to say.
    fn settled(dictionary: Option<Arc<Dictionary>>) -> Self {
        Self {
            state: State::Settled(dictionary),
            note: None,
            lost: None,
        }
    }
}

enum State {
    /// Small blobs are compressed with this dictionary, or without any.
    Settled(Option<Arc<Dictionary>>),
    /// Gathering samples; blobs go out without a dictionary meanwhile.
    Sampling(Samples),
    /// One compressor is training; the others wait for it (30-70 ms),
    /// else on a fast machine most of a database would go out without.
    Training,
}

impl Trainer {
    /// The store's dictionary, or sampling for one where the store may
    /// have one and has none yet.
    pub fn for_store(store: &Store) -> Result<Self, StoreError> {
        let backend = store.backend().clone();
        let start = match store.config().allows_dictionaries() {
            true => Self::start(store, &backend)?,
            false => Start::settled(None),
        };
        Ok(Self {
            backend,
            state: Mutex::new(start.state),
            trained: Condvar::new(),
            notes: Mutex::new(start.note.into_iter().collect()),
            lost: start.lost,
        })
    }

    /// The number of the dictionary whose blobs cannot be read back (see
    /// [`Trainer::start`]), if any.
    pub fn lost_dictionary(&self) -> Option<u16> {
        self.lost
    }

    /// What the user should hear about the dictionary, once the capture
    /// is done.
    pub fn notes(&self) -> Vec<String> {
        self.notes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Where a store that may have dictionaries starts. One whose
    /// dictionary is damaged, unreadable, or missing while blobs name it,
    /// is written without (and the user told): a new dictionary under
    /// that number would make those blobs unreadable for good, even once
    /// the original is put back (from a copy). `verify` reports it. A
    /// dictionary missing or damaged (not merely unreachable) is `lost`:
    /// the data of the blobs made with it is stored again.
    fn start(store: &Store, backend: &Backend) -> Result<Start, StoreError> {
        let key = crate::backend::dictionaries::key(WRITERS_DICTIONARY);
        let lost = |what: &str| Start {
            state: State::Settled(None),
            note: Some(format!(
                "the compression dictionary {key} {what}: this snapshot stores its new data, and the data \
                 of earlier snapshots it still finds in the sources, without it; `cairn verify` names what \
                 else depends on it, and putting it back from a copy of the store mends those"
            )),
            lost: Some(WRITERS_DICTIONARY),
        };
        Ok(match backend.find_dictionary(WRITERS_DICTIONARY) {
            Ok(Some(found)) => Start::settled(Some(found)),
            Ok(None)
                if !store
                    .catalog()
                    .dictionaries_used()?
                    .contains(&WRITERS_DICTIONARY) =>
            {
                Start {
                    state: State::Sampling(Samples::default()),
                    note: None,
                    lost: None,
                }
            }
            Ok(None) => lost("is missing, though blobs of this store were compressed with it"),
            Err(e) if e.source.kind() == std::io::ErrorKind::InvalidData => {
                lost(&format!("does not check out ({})", e.source))
            }
            // Whatever else keeps it from being read: the snapshot is whole
            // without it, and smaller with it, never more than that.
            Err(e) => Start {
                note: Some(format!(
                    "the compression dictionary cannot be read ({e}): this snapshot is stored without one"
                )),
                ..Start::settled(None)
            },
        })
    }

    /// The dictionary to compress `data` (a blob of `kind`) with: none for
    /// trees and large blobs, nor before one exists. The call that
    /// completes the samples trains and stores the dictionary.
    pub fn dictionary_for(&self, kind: BlobKind, data: &[u8]) -> Option<Arc<Dictionary>> {
        if kind != BlobKind::Data || data.len() > dictionary::MAX_BLOB {
            return None;
        }
        let mut state = self.lock();
        let complete = match &mut *state {
            State::Settled(found) => return found.clone(),
            State::Training => return self.wait_for_training(state),
            State::Sampling(samples) => samples.add(data),
        };
        if !complete {
            return None;
        }
        let State::Sampling(samples) = std::mem::replace(&mut *state, State::Training) else {
            return None;
        };
        drop(state);
        self.settle_with(&samples);
        None
    }

    /// Trains on `samples` and settles every compressor on the result.
    fn settle_with(&self, samples: &Samples) {
        let settle = Settle(self);
        let trained = self.train(samples);
        *self.lock() = State::Settled(trained);
        drop(settle);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The dictionary another compressor is training, once it is done.
    fn wait_for_training(&self, state: MutexGuard<'_, State>) -> Option<Arc<Dictionary>> {
        let state = self
            .trained
            .wait_while(state, |s| matches!(s, State::Training))
            .unwrap_or_else(PoisonError::into_inner);
        match &*state {
            State::Settled(found) => found.clone(),
            _ => None,
        }
    }

    /// Trains on `samples` and stores the result, or the dictionary
    /// another host stored first. `None` when zstd finds nothing worth
    /// keeping or the store cannot take it: the snapshot is whole without
    /// a dictionary, and the next one tries again.
    fn train(&self, samples: &Samples) -> Option<Arc<Dictionary>> {
        let made = Dictionary::new(WRITERS_DICTIONARY, samples.train().ok()?).ok()?;
        match self.backend.publish_dictionary(made) {
            Ok(published) => Some(published),
            Err(e) => {
                let mut notes = self.notes.lock().unwrap_or_else(PoisonError::into_inner);
                notes.push(format!(
                    "could not store a compression dictionary ({e}): this snapshot is stored without one; the next tries again"
                ));
                None
            }
        }
    }
}

/// Ends a training however it ends (a panic included): without a
/// dictionary unless one was settled, waking the compressors that wait.
struct Settle<'t>(&'t Trainer);

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        if matches!(*state, State::Training) {
            *state = State::Settled(None);
        }
        drop(state);
        self.0.trained.notify_all();
    }
}
