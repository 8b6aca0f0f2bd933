//! Room on the store's disk: how much is free, and the reserve that lets
//! `forget` and `prune` run on a full disk.
//!
//! A full disk is when operators run `forget --prune`, and exactly when it
//! could not run: SQLite needs room for the catalog's shared memory and its
//! transaction, prune for its journal. So writers keep `locks/reserve`, a
//! file of [`RESERVE_LEN`] allocated bytes. A command that holds the store
//! exclusively (forget, prune, repair, policy) deletes it when it finds
//! less than that free; any writer creates it again once as much would
//! still stay free beside it.

use std::fs::{self, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::StoreError;

/// The reserve file, relative to the store.
pub const RESERVE: &str = "locks/reserve";

/// Its size: room for the catalog's `-shm` (32 KiB), a prune journal and
/// a catalog transaction of about a thousand pages.
pub const RESERVE_LEN: u64 = 4 << 20;

/// Bytes an unprivileged process may still allocate on the file system
/// holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Whether the file system holding `root` has less than a reserve's worth
/// free (unknown counts as enough: the writes themselves will tell).
pub fn is_short(root: &Path) -> bool {
    free_bytes(root).is_ok_and(|free| free < RESERVE_LEN)
}

/// Keeps the reserve for a writer: a command that holds the store
/// exclusively on a nearly full disk releases it to make room for its own
/// work (and says so in `notices`); any other writer recreates it when
/// there is room. Returns whether the disk is short of space.
pub fn keep_reserve(
    root: &Path,
    file_mode: u32,
    exclusive: bool,
    notices: &mut Vec<String>,
) -> Result<bool, StoreError> {
    if !is_short(root) {
        replenish(root, file_mode)?;
        return Ok(false);
    }
    let free = free_bytes(root).unwrap_or(0);
    if exclusive && release(root)? {
        notices.push(format!(
            "the file system holding store {} is full ({free} bytes free): released the {} MiB reserve {RESERVE} for this command (a prune deletes only packs with nothing live until there is room to repack)",
            root.display(),
            RESERVE_LEN >> 20,
        ));
    }
    Ok(true)
}

/// Deletes the reserve; returns whether there was one.
pub fn release(root: &Path) -> Result<bool, StoreError> {
    let path = root.join(RESERVE);
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StoreError::Io { path, source }),
    }
}

/// Creates the reserve if it is missing (or short) and the disk has room
/// for it and as much again; returns whether it is in place afterwards. A
/// disk that fills meanwhile only means no reserve this time.
pub fn replenish(root: &Path, file_mode: u32) -> Result<bool, StoreError> {
    let path = root.join(RESERVE);
    if fs::metadata(&path).is_ok_and(|m| m.len() == RESERVE_LEN) {
        return Ok(true);
    }
    if free_bytes(root).map_or(true, |free| free < 2 * RESERVE_LEN) {
        return Ok(false);
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Io { path, source }
    };
    let tmp = root.join("tmp");
    let mut file = tempfile::Builder::new()
        .prefix("cairn-reserve-")
        .tempfile_in(&tmp)
        .map_err(io(&tmp))?;
    let written = fill(file.as_file_mut(), file_mode).and_then(|()| file.as_file().sync_all());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::StorageFull => return Ok(false),
        Err(source) => return Err(StoreError::Io { path, source }),
    }
    file.persist(&path).map_err(|e| StoreError::Io {
        path: path.clone(),
        source: e.error,
    })?;
    Ok(true)
}

/// Writes the reserve's bytes: incompressible ones, so that a compressing
/// file system (btrfs, ZFS) really allocates them.
fn fill(file: &mut fs::File, file_mode: u32) -> io::Result<()> {
    file.set_permissions(Permissions::from_mode(file_mode))?;
    let mut xof = blake3::Hasher::new()
        .update(b"cairn store reserve")
        .finalize_xof();
    let mut block = vec![0u8; 64 << 10];
    for _ in 0..RESERVE_LEN / block.len() as u64 {
        xof.fill(&mut block);
        file.write_all(&block)?;
    }
    Ok(())
}
