//! Objects as their readers see them: sealed with the store's keys on the
//! way in and opened on the way out (plain stores pass bytes through).
//! The key is bound into each seal, so an object copied or replayed under
//! another key does not open (store-format/encryption.md).

use std::io;

use super::{Backend, BackendError, Result};
use crate::crypt::CryptError;

impl Backend {
    /// Creates `key` holding `plain`, sealed. Creating an object that is
    /// there with the same plain content is success: sealing twice gives
    /// other bytes (random nonces), so the one there is opened and compared.
    pub fn create_sealed(&self, key: &str, plain: Vec<u8>) -> Result<()> {
        if !self.vault.is_encrypted() {
            return self.create(key, &plain);
        }
        let sealed = self
            .vault
            .seal_object(key, plain.clone())
            .map_err(self.sealing(key))?;
        match self.create(key, &sealed) {
            Err(e) if e.is_already_exists() => self.same_as(key, &plain, e),
            other => other,
        }
    }

    /// Replaces `key` whole with `plain`, sealed.
    pub fn replace_sealed(&self, key: &str, plain: Vec<u8>) -> Result<()> {
        let sealed = self
            .vault
            .seal_object(key, plain)
            .map_err(self.sealing(key))?;
        self.replace(key, &sealed)
    }

    /// The plain content of `key` (at most `max` bytes stored). An object
    /// that does not open is an `InvalidData` error naming the key.
    pub fn get_opened(&self, key: &str, max: u64) -> Result<Vec<u8>> {
        self.get_sealed(key, max)?.map_err(self.sealing(key))
    }

    /// The plain content of `key`: the outer error is the store's (it
    /// could not be read), the inner one that what was read does not open
    /// (damage, to be reported as such like any other undecodable object).
    pub fn get_sealed(
        &self,
        key: &str,
        max: u64,
    ) -> Result<std::result::Result<Vec<u8>, CryptError>> {
        let stored = self.get(key, max)?;
        Ok(self.vault.open_object(key, stored))
    }

    fn same_as(&self, key: &str, plain: &[u8], exists: BackendError) -> Result<()> {
        match self.get_opened(key, plain.len() as u64 + 1024) {
            Ok(there) if there == plain => Ok(()),
            _ => Err(exists),
        }
    }

    fn sealing(&self, key: &str) -> impl FnOnce(CryptError) -> BackendError + '_ {
        let at = self.at(key);
        let key = key.to_owned();
        move |e| {
            at(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{key}: {e}"),
            ))
        }
    }
}
