//! Small real file systems for tests of read-only and full disks: a tmpfs
//! mounted on a directory of the test, unmounted when dropped.
//!
//! Mounting needs root (or CAP_SYS_ADMIN). Where it is refused the tests
//! that need it print why and return early; on a machine where it works
//! they always run.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs; unmounted (lazily, so an open file cannot stop it) on drop.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "32M") on `dir` (created if needed),
    /// or says why it cannot and returns `None`.
    pub fn mount(dir: &Path, size: &str) -> Option<Self> {
        if !super::is_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0755"))
            .arg("tmpfs")
            .arg(dir)
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "skipped: mount -t tmpfs was refused: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(Self {
            dir: dir.to_owned(),
        })
    }

    /// Remounts it read-only (every file on it must be closed).
    pub fn make_read_only(&self) {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount,ro failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Fills it to the last block with a file `name`; returns the file.
    pub fn fill(&self, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        let mut file = File::create(&path).unwrap();
        let block = vec![0x5au8; 4096];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        // A short last write may have left part of a block: one byte at a
        // time until nothing more fits.
        while let Ok(1) = file.write(&[0]) {}
        assert_eq!(self.free_bytes(), 0, "{} is not full", self.dir.display());
        path
    }

    /// Bytes an unprivileged writer could still use.
    pub fn free_bytes(&self) -> u64 {
        let st = rustix::fs::statvfs(&self.dir).unwrap();
        st.f_bavail * st.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        unmount(&self.dir);
    }
}

/// Unmounts `dir` lazily (an open file cannot stop it).
fn unmount(dir: &Path) {
    let result: io::Result<_> = Command::new("umount").arg("-l").arg(dir).output();
    if let Err(e) = result {
        eprintln!("umount {}: {e}", dir.display());
    }
}

/// A directory bind-mounted on another; unmounted on drop.
pub struct BindMount {
    at: PathBuf,
}

impl BindMount {
    /// Binds `from` on `at` (both exist), or says why it cannot and
    /// returns `None`.
    pub fn mount(from: &Path, at: &Path) -> Option<Self> {
        if !super::is_root() {
            eprintln!("skipped: a bind mount needs root");
            return None;
        }
        let out = Command::new("mount")
            .arg("--bind")
            .arg(from)
            .arg(at)
            .output()
            .unwrap();
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            eprintln!("skipped: mount --bind was refused: {why}");
            return None;
        }
        Some(Self { at: at.to_owned() })
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        unmount(&self.at);
    }
}
