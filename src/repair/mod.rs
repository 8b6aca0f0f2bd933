//! Repair: make a damaged store whole again without deleting anything.
//!
//! `repair catalog` is [`Store::rebuild_catalog`]. `repair snapshots`
//! ([`snapshots`]) works in four steps, each safe to interrupt:
//! 1. a full verify (`--read-data`) finds every lost blob and damaged pack;
//! 2. a lost blob that has an intact copy in another pack (a spare stored
//!    by a concurrent snapshot, or a copy left by an interrupted run) is
//!    re-pointed to it: it is no longer lost;
//! 3. each damaged pack still present has its intact blobs copied into new
//!    packs; it is linked into `quarantine/`, the catalog drops it in one
//!    transaction, and only then is its name in `packs/` removed. Its data
//!    is never deleted: the quarantined file stays for the operator;
//! 4. each snapshot that still needs a lost blob gets a new record whose
//!    trees leave out the damaged files (and directories whose listing is
//!    lost), listing them in its summary. The original record is kept
//!    until the operator forgets it.

pub mod records;
pub mod snapshots;
