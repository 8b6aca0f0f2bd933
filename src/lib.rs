//! cairn: a content-addressed snapshot store for files, directories and
//! SQLite databases.
//!
//! Data flows one way: sources -> [`capture`] -> [`chunker`] -> hash and
//! [`compress`] -> [`pack`] writer -> [`catalog`] -> [`snapshot`] record.
//! Restore is the mirror: snapshot -> [`tree`]s -> catalog -> pack reader ->
//! files ([`restore`]). The on-disk format is specified in `store-format/`.

pub mod backend;
pub mod bound;
pub mod browse;
pub mod capture;
pub mod catalog;
pub mod chunker;
pub mod compress;
pub mod copy;
pub mod crash;
pub mod crypt;
pub mod database;
pub mod id;
pub mod index;
pub mod interrupt;
pub mod mount;
pub mod outcome;
pub mod owners;
pub mod pack;
pub mod pattern;
pub mod profile;
pub mod progress;
pub mod prune;
pub mod rawname;
pub mod reach;
pub mod repack;
pub mod repair;
pub mod restore;
pub mod retention;
pub mod size;
pub mod snapshot;
pub mod stats;
pub mod store;
pub mod tally;
pub mod tree;
pub mod verify;
pub mod when;
pub mod xattrs;
