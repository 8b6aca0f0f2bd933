//! What a failed operation on the store's objects says, and how callers
//! tell damage (an object gone, short or too large) from a machine's or a
//! connection's failure.

use std::io;

/// A failed operation on the store, naming where and why.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {source}")]
pub struct BackendError {
    /// The file, or the store and the key.
    pub location: String,
    /// What went wrong (for a remote store: the operation, the key and the
    /// server's answer).
    #[source]
    pub source: io::Error,
}

/// Why a whole read refused an object: larger than such an object may be.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TooLarge(String);

/// The error of a whole read that found the object larger than `what`
/// says it may be.
pub(super) fn too_large(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::FileTooLarge, TooLarge(what))
}

impl BackendError {
    /// Whether the object was not there.
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }

    /// Whether a whole read found the object larger than such an object
    /// may be: never something cairn wrote, so damage. (Told apart from a
    /// write's EFBIG, the machine's limit, by [`TooLarge`].)
    pub fn is_too_large(&self) -> bool {
        let inner = self.source.get_ref();
        inner.is_some_and(|e| e.is::<TooLarge>())
    }

    /// Whether a read failed on the store's data rather than on the
    /// machine or the connection: the object gone, shorter or larger than
    /// recorded, or (a pack fetched whole) not its id.
    pub fn is_damage(&self) -> bool {
        use io::ErrorKind::{InvalidData, UnexpectedEof};
        self.is_not_found()
            || self.is_too_large()
            || matches!(self.source.kind(), UnexpectedEof | InvalidData)
    }

    /// Whether a create found another object under the key.
    pub fn is_already_exists(&self) -> bool {
        self.source.kind() == io::ErrorKind::AlreadyExists
    }
}
