//! Room on the store's disk.

use std::io;
use std::path::Path;

/// Bytes an unprivileged process may still allocate on the file system
/// holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}
