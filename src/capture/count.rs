//! Counting a snapshot's sources while it runs, so that a progress display
//! can say how much of the whole is done and when it will end (restic
//! counts the same way). Only when a display asks (`Progress::want_totals`).
//!
//! The count walks by path, with the same exclusions, and sums the sizes of
//! regular files; it is an estimate for the display, nothing is decided by
//! it. It stops as soon as the snapshot itself has finished.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::excludes::Excludes;
use super::sources::Sources;
use crate::progress::Progress;

/// Counts the files and bytes below `sources`, publishing the running
/// count in `progress` and the final one when done, unless `stop` is set
/// first.
pub(super) fn count(
    sources: &Sources,
    excludes: &Excludes,
    progress: &Progress,
    stop: &AtomicBool,
) {
    let (mut files, mut bytes) = (0u64, 0u64);
    // Each path with the device of the directory it is in (none for a
    // source): with `-x` the count, like the walk, stays on that device
    // (it went on into /proc and every mount, where a hung NFS server held
    // up the end of the snapshot).
    let mut pending: Vec<(PathBuf, Option<u64>)> =
        sources.paths().iter().map(|p| (p.clone(), None)).collect();
    while let Some((path, parent_dev)) = pending.pop() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if parent_dev.is_some_and(|dev| excludes.crosses_mount(dev, meta.dev())) {
                continue;
            }
            let below = children(&path, excludes).into_iter();
            pending.extend(below.map(|child| (child, Some(meta.dev()))));
        } else if meta.is_file() {
            files += 1;
            bytes += meta.len();
            if files % 256 == 0 {
                publish(progress, files, bytes);
            }
        }
    }
    progress.set_totals(files, bytes);
}

fn publish(progress: &Progress, files: u64, bytes: u64) {
    progress.files_total.store(files, Ordering::Relaxed);
    progress.bytes_total.store(bytes, Ordering::Relaxed);
}

/// The entries of directory `dir` that are not excluded (listed without
/// updating its access time, as the snapshot's own walk lists it).
fn children(dir: &Path, excludes: &Excludes) -> Vec<PathBuf> {
    let Ok(names) = super::handle::names_at(dir) else {
        return Vec::new();
    };
    names
        .into_iter()
        .map(|name| (dir.join(&name), name))
        .filter(|(path, name)| !excludes.matches(path, name))
        .map(|(path, _)| path)
        .collect()
}

/// Runs `work` with the count beside it (if a display wants totals), and
/// stops the count when `work` is done.
pub(super) fn beside<T>(
    sources: Option<&Sources>,
    excludes: &Excludes,
    progress: &Progress,
    work: impl FnOnce() -> T,
) -> T {
    let Some(sources) = sources.filter(|_| progress.totals_wanted()) else {
        return work();
    };
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| count(sources, excludes, progress, &stop));
        let out = work();
        stop.store(true, Ordering::Relaxed);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_sums_files_and_bytes_leaving_out_excluded_ones() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("a"), b"12345").unwrap();
        fs::write(dir.path().join("sub/b"), b"123").unwrap();
        fs::write(dir.path().join("c.tmp"), b"1234567890").unwrap();
        let sources = Sources::resolve(&[dir.path().to_owned()]).unwrap();
        let options = super::super::excludes::ExcludeOptions {
            patterns: vec!["*.tmp".to_owned()],
            ..Default::default()
        };
        let excludes = Excludes::new(&options, None).unwrap();
        let progress = Progress::default();
        count(&sources, &excludes, &progress, &AtomicBool::new(false));
        assert_eq!(progress.totals(), (2, 8, true));
    }

    fn counted(src: &Path, one_file_system: bool) -> u64 {
        let options = super::super::excludes::ExcludeOptions {
            one_file_system,
            ..Default::default()
        };
        let excludes = Excludes::new(&options, None).unwrap();
        let sources = Sources::resolve(&[src.to_owned()]).unwrap();
        let progress = Progress::default();
        count(&sources, &excludes, &progress, &AtomicBool::new(false));
        progress.files_total.load(Ordering::Relaxed)
    }

    // With -x the count went on into every mount below the sources (and
    // /proc): a hung NFS server held up the end of a -x snapshot.
    #[test]
    fn with_one_file_system_the_count_stays_on_the_sources_device() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("mnt")).unwrap();
        fs::write(src.join("here"), b"x").unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(src.join("mnt"))
            .output()
            .is_ok_and(|o| o.status.success());
        if !mounted {
            eprintln!("skipped: mounting a tmpfs needs root");
            return;
        }
        fs::write(src.join("mnt/there"), b"y").unwrap();
        let (within, across) = (counted(&src, true), counted(&src, false));
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(src.join("mnt"))
            .status();
        assert_eq!((within, across), (1, 2));
    }
}
