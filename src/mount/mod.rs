//! `cairn mount`: every snapshot as a read-only file system (FUSE), so
//! every tool the operator knows can look: `cd` into last Tuesday, `grep`
//! a config, `diff -r` two nights, `sqlite3 -readonly` a database.
//!
//! [`names`] lays out the namespace (snapshots by name, by date, host and
//! tag), [`inodes`] numbers what the kernel holds, [`reader`] reads files
//! lazily at any offset through a bounded cache of verified chunks,
//! [`source`] keeps the store and its snapshot list fresh without holding
//! its lock, and [`fs`] answers the kernel. [`run`] checks the mount
//! point, mounts in the foreground and unmounts on SIGINT or SIGTERM.

pub mod chunks;
pub mod fs;
pub mod inodes;
mod lru;
pub mod names;
pub mod reader;
pub mod source;

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fuser::MountOption;

use crate::browse::BrowseError;
use crate::interrupt::{self, Signal};
use crate::pack::PackError;
use crate::rawname::escaped;
use crate::snapshot::SnapshotError;
use crate::snapshot::select::Filter;
use crate::store::{Location, OpenOptions, StoreError};

/// Where warnings go (stderr in the CLI).
pub type Warn = dyn Fn(&str) + Send + Sync;

/// Why a mount could not be made or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount point does not exist.
    #[error(
        "mount point {} does not exist: create an empty directory there first",
        escaped(path)
    )]
    MountpointMissing {
        /// The mount point.
        path: PathBuf,
    },
    /// The mount point is not a directory.
    #[error("mount point {} is not a directory", escaped(path))]
    NotADirectory {
        /// The mount point.
        path: PathBuf,
    },
    /// Something is in the mount point (mounting would hide it).
    #[error(
        "mount point {} is not empty: mount on an empty directory",
        escaped(path)
    )]
    NotEmpty {
        /// The mount point.
        path: PathBuf,
    },
    /// The mount point could not be read.
    #[error("mount point {}: {source}", escaped(path))]
    Mountpoint {
        /// The mount point.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A mount whose process died is still there (`kill -9`), at `at`
    /// (the mount point, or a directory above it).
    #[error(
        "mount point {}: a mount whose process ended is still there, at {} (Transport endpoint is not connected): unmount it with `fusermount -u {}` first",
        escaped(path),
        escaped(at),
        shell_quoted(at)
    )]
    DeadMount {
        /// The mount point.
        path: PathBuf,
        /// The dead mount.
        at: PathBuf,
    },
    /// The kernel offers no FUSE device.
    #[error(
        "/dev/fuse does not exist: this system has no FUSE; load the module (`modprobe fuse`), or in a container pass the device (`--device /dev/fuse`) and install fuse3 (Debian, Ubuntu: `apt-get install fuse3`)"
    )]
    NoFuseDevice,
    /// An unprivileged mount needs the setuid helper.
    #[error(
        "neither fusermount3 nor fusermount is installed: a user other than root mounts through it; install fuse3 (Debian, Ubuntu: `apt-get install fuse3`; Fedora: `dnf install fuse3`)"
    )]
    NoFusermount,
    /// The kernel or fusermount refused the mount.
    #[error("mounting on {}: {source}", escaped(path))]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// What was said.
        #[source]
        source: io::Error,
    },
    /// Catching SIGINT and SIGTERM failed.
    #[error("catching SIGINT and SIGTERM: {0}")]
    Signals(#[source] io::Error),
    /// The store could not be opened or listed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SnapshotError> for MountError {
    fn from(e: SnapshotError) -> Self {
        MountError::Store(StoreError::Snapshot(e))
    }
}

/// What to mount where.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// An empty directory.
    pub mountpoint: PathBuf,
    /// The store.
    pub location: Location,
    /// How to open it (the lock mode is `Read`, released once open).
    pub open: OpenOptions,
    /// Which snapshots to show.
    pub filter: Filter,
    /// Bytes of decoded chunks to keep for reads.
    pub cache_size: u64,
}

/// What the mount shows, once it is mounted.
#[derive(Debug, Clone)]
pub struct Mounted {
    /// How many snapshots.
    pub snapshots: usize,
}

/// How a mount ended (always unmounted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A signal asked to stop, and the mount was taken down.
    Signal(Signal),
    /// Someone unmounted it (`fusermount -u`, `umount`).
    Unmounted,
}

/// How often the foreground waits to look for a signal or an unmount.
const POLL: Duration = Duration::from_millis(100);

/// Mounts the store's snapshots on `options.mountpoint` and serves them
/// until a SIGINT or SIGTERM (then unmounts) or until unmounted. `mounted`
/// is called once the mount is in place.
pub fn run(
    options: MountOptions,
    warn: Arc<Warn>,
    mounted: impl FnOnce(&Mounted),
) -> Result<Ended, MountError> {
    check_mountpoint(&options.mountpoint)?;
    check_fuse()?;
    interrupt::catch_signals().map_err(MountError::Signals)?;
    let _stop_cleanly = interrupt::Cleanup::start();
    let warn = once_each(warn);
    let mut open = options.open.clone();
    open.lock = crate::store::LockMode::Read;
    let source = source::Source::open(&options.location, open, options.filter, warn.clone())?;
    let shown = Mounted {
        snapshots: source.names.snapshots().len(),
    };
    let fs = fs::CairnFs::new(source, options.cache_size, warn.clone());
    let session = fuser::spawn_mount(fs, &options.mountpoint, &config()).map_err(|source| {
        MountError::Mount {
            path: options.mountpoint.clone(),
            source,
        }
    })?;
    mounted(&shown);
    serve(session, &options.mountpoint, &*warn)
}

/// Waits for a signal (then unmounts) or an unmount from outside.
fn serve(
    session: fuser::BackgroundSession,
    mountpoint: &Path,
    warn: &Warn,
) -> Result<Ended, MountError> {
    loop {
        std::thread::sleep(POLL);
        if let Some(signal) = interrupt::requested() {
            unmount(session, mountpoint, warn)?;
            return Ok(Ended::Signal(signal));
        }
        if session.guard.is_finished() {
            let ended = session.join();
            return ended
                .map(|()| Ended::Unmounted)
                .map_err(|source| MountError::Mount {
                    path: mountpoint.to_owned(),
                    source,
                });
        }
    }
}

/// Takes the mount down. A busy mount point (a shell `cd`'d into it) is
/// detached instead: it disappears now, and what still uses it gets
/// errors, since nothing serves it once this process is gone.
fn unmount(
    session: fuser::BackgroundSession,
    mountpoint: &Path,
    warn: &Warn,
) -> Result<(), MountError> {
    let Err(e) = session.umount_and_join() else {
        return Ok(());
    };
    if e.raw_os_error() != Some(rustix::io::Errno::BUSY.raw_os_error()) {
        return Err(MountError::Mount {
            path: mountpoint.to_owned(),
            source: e,
        });
    }
    warn(&format!(
        "{} is busy (a process has a file or its working directory in it): detached it; those processes now get errors there",
        escaped(mountpoint)
    ));
    rustix::mount::unmount(mountpoint, rustix::mount::UnmountFlags::DETACH).map_err(|e| {
        MountError::Mount {
            path: mountpoint.to_owned(),
            source: e.into(),
        }
    })
}

fn config() -> fuser::Config {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::FSName("cairn".into()),
        MountOption::Subtype("cairn".into()),
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoAtime,
    ];
    config
}

/// Refuses a mount point that is missing, not a directory, or not empty.
fn check_mountpoint(path: &Path) -> Result<(), MountError> {
    let at = |source| MountError::Mountpoint {
        path: path.to_owned(),
        source,
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(MountError::MountpointMissing {
                path: path.to_owned(),
            });
        }
        Err(e) if is_dead_mount(&e) => {
            return Err(MountError::DeadMount {
                path: path.to_owned(),
                at: dead_mount_of(path),
            });
        }
        Err(e) => return Err(at(e)),
        Ok(m) if !m.is_dir() => {
            return Err(MountError::NotADirectory {
                path: path.to_owned(),
            });
        }
        Ok(_) => {}
    }
    match std::fs::read_dir(path).map_err(at)?.next() {
        None => Ok(()),
        Some(_) => Err(MountError::NotEmpty {
            path: path.to_owned(),
        }),
    }
}

/// Refuses early, with what to install, where FUSE cannot work: no
/// `/dev/fuse`, or (for a user other than root, who cannot mount
/// directly) no fusermount.
fn check_fuse() -> Result<(), MountError> {
    if !Path::new("/dev/fuse").exists() {
        return Err(MountError::NoFuseDevice);
    }
    if rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .any(|dir| dir.join(name).is_file())
    };
    if on_path("fusermount3") || on_path("fusermount") {
        Ok(())
    } else {
        Err(MountError::NoFusermount)
    }
}

/// Whether `e` says a FUSE mount there has lost its process.
fn is_dead_mount(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::NOTCONN.raw_os_error())
}

/// The dead mount that `path` is in: the topmost directory on the way to
/// it that the kernel cannot reach (those above it answer).
fn dead_mount_of(path: &Path) -> PathBuf {
    let dead = |p: &Path| std::fs::metadata(p).is_err_and(|e| is_dead_mount(&e));
    let topmost = path
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .take_while(|p| dead(p))
        .last();
    topmost.unwrap_or(path).to_owned()
}

/// `path` as a shell word: as it is when it is plain, else in single quotes.
fn shell_quoted(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c);
    match text.chars().all(plain) && !text.is_empty() {
        true => text.into_owned(),
        false => format!("'{}'", text.replace('\'', "'\\''")),
    }
}

/// `warn`, saying each distinct message only once (the kernel retries a
/// failed read, and a refresh meets the same damaged record each time).
fn once_each(warn: Arc<Warn>) -> Arc<Warn> {
    let said = Mutex::new(HashSet::new());
    Arc::new(move |message: &str| {
        let new = said
            .lock()
            .map(|mut s| s.insert(message.to_owned()))
            .unwrap_or(true);
        if new {
            warn(message);
        }
    })
}

/// Said after a read that failed because data is gone from the store.
pub const GONE: &str = " (deleted from the store after the mount listed this snapshot: by a forget and prune? List the directory again to see the current snapshots)";

/// Whether `e` is what a prune that ran since the snapshot list was read
/// leaves: a blob the catalog no longer has, or a pack no longer there.
pub fn is_gone(e: &BrowseError) -> bool {
    match e {
        BrowseError::Missing { .. } => true,
        BrowseError::Pack { source, .. } => is_pack_gone(source),
        BrowseError::Store(e) => is_store_gone(e),
        _ => false,
    }
}

/// [`is_gone`] for a tree that does not read.
pub fn is_store_gone(e: &StoreError) -> bool {
    match e {
        StoreError::BlobMissing(_) => true,
        StoreError::Pack(p) => is_pack_gone(p),
        StoreError::Backend(b) => b.is_not_found(),
        _ => false,
    }
}

fn is_pack_gone(e: &PackError) -> bool {
    matches!(e, PackError::Io(b) if b.is_not_found())
}

#[cfg(test)]
mod tests {
    use super::shell_quoted;
    use std::path::Path;

    #[test]
    fn a_path_is_quoted_for_the_shell_only_when_it_must_be() {
        assert_eq!(shell_quoted(Path::new("/mnt/cairn")), "/mnt/cairn");
        assert_eq!(shell_quoted(Path::new("sp ace")), "'sp ace'");
        assert_eq!(shell_quoted(Path::new("it's")), "'it'\\''s'");
    }
}
