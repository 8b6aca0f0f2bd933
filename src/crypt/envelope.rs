//! The envelope every sealed thing of an encrypted store is wrapped in:
//! a scheme byte, a random 192-bit nonce, then XChaCha20-Poly1305
//! ciphertext and tag (store-format/encryption.md, "Envelope").
//!
//! Nonces are random rather than counted: many hosts seal with one key at
//! once, and 192 bits make a collision negligible without any state
//! shared between them.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

use super::CryptError;

/// The only scheme this version writes: XChaCha20-Poly1305 under the
/// store's encryption key (or a passphrase's key, for key files). Scheme 2
/// is reserved for objects sealed to a store's public key (write-only keys).
pub const SCHEME: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Scheme byte and nonce, before the ciphertext.
const HEAD_LEN: usize = 1 + NONCE_LEN;
/// Bytes an envelope adds to what it seals.
pub const OVERHEAD: usize = HEAD_LEN + TAG_LEN;

/// A key that seals and opens envelopes.
#[derive(Clone)]
pub struct SealingKey(XChaCha20Poly1305);

impl SealingKey {
    /// The cipher for 32 key bytes.
    pub fn new(key: &[u8; 32]) -> Self {
        Self(XChaCha20Poly1305::new(key.into()))
    }

    /// `plain` sealed, with `ad` authenticated alongside.
    pub fn seal(&self, ad: &[u8], plain: &[u8]) -> Result<Vec<u8>, CryptError> {
        self.seal_with(super::random::<NONCE_LEN>()?, ad, plain)
    }

    /// [`SealingKey::seal`] with a given nonce: only for a fresh random
    /// one, or a test vector.
    fn seal_with(
        &self,
        nonce: [u8; NONCE_LEN],
        ad: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, CryptError> {
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        out.push(SCHEME);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let (head, body) = out.split_at_mut(HEAD_LEN);
        let tag = self
            .0
            .encrypt_in_place_detached(XNonce::from_slice(&head[1..]), ad, body)
            .map_err(|_| CryptError::TooLong(plain.len()))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// The plain bytes of `sealed`, if it is whole, of a known scheme,
    /// sealed with this key and with this `ad`.
    pub fn open(&self, ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptError> {
        if sealed.len() < OVERHEAD {
            return Err(CryptError::Truncated(sealed.len()));
        }
        if sealed[0] != SCHEME {
            return Err(CryptError::Scheme(sealed[0]));
        }
        let (head, rest) = sealed.split_at(HEAD_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plain = body.to_vec();
        self.0
            .decrypt_in_place_detached(
                XNonce::from_slice(&head[1..]),
                ad,
                &mut plain,
                Tag::from_slice(tag),
            )
            .map_err(|_| CryptError::Forged)?;
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::new(&[7; 32])
    }

    #[test]
    fn a_sealed_message_opens_with_its_key_and_associated_data_only() {
        let sealed = key().seal(b"ad", b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        assert_eq!(key().open(b"ad", &sealed).unwrap(), b"hello");
        assert!(matches!(
            key().open(b"other", &sealed),
            Err(CryptError::Forged)
        ));
        let other = SealingKey::new(&[8; 32]);
        assert!(matches!(
            other.open(b"ad", &sealed),
            Err(CryptError::Forged)
        ));
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let sealed = key().seal(b"ad", b"some bytes").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            assert!(key().open(b"ad", &bad).is_err(), "flip at {i}");
            assert!(key().open(b"ad", &sealed[..i]).is_err(), "cut at {i}");
        }
    }

    /// store-format/encryption.md, "Test vectors" (computed with libsodium).
    #[test]
    fn the_envelope_matches_the_specification_vector() {
        let k_enc = blake3::derive_key("cairn 2026-12-06 encryption key", &[0; 32]);
        let nonce: [u8; 24] = std::array::from_fn(|i| i as u8 + 1);
        let sealed = SealingKey::new(&k_enc)
            .seal_with(nonce, b"cairn object\0snapshots/x.json", b"hello")
            .unwrap();
        assert_eq!(
            hex::encode(sealed),
            "01".to_owned()
                + "0102030405060708090a0b0c0d0e0f101112131415161718"
                + "90c4811875"
                + "a4f6a3390a0a2caafb25ffda7f087f9a"
        );
    }

    #[test]
    fn two_seals_of_the_same_bytes_differ() {
        assert_ne!(
            key().seal(b"", b"x").unwrap(),
            key().seal(b"", b"x").unwrap()
        );
    }
}
