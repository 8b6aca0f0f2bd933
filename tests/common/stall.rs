//! Commands stopped at a point: `CAIRN_STALL_AT` makes the binary sleep
//! there, holding its locks and open files, while a test looks at the
//! store or runs another command against it.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::thread::{self, JoinHandle};

use super::TestEnv;

/// Spawns `cmd` with `CAIRN_STALL_AT=point:secs` and returns once it has
/// reached the point (its stderr says so); its stderr is drained after.
pub fn spawn_stalled(mut cmd: Command, point: &str, secs: u32) -> Child {
    let mut child = cmd
        .env("CAIRN_STALL_AT", format!("{point}:{secs}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let reached = lines.any(|l| l.unwrap().contains(&format!("stall point {point}")));
    assert!(reached, "{cmd:?} ended without reaching {point}");
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// A `cairn` process that stops at a stall point (`CAIRN_STALL_AT` with
/// `CAIRN_STALL_RELEASE`) until the test lets it go on.
pub struct Stalled {
    child: Child,
    lines: Receiver<String>,
    stderr: JoinHandle<()>,
    seen: Vec<String>,
    release: PathBuf,
}

impl Stalled {
    /// Starts `cmd`, which stalls at every hit of `point`.
    pub fn spawn(t: &TestEnv, mut cmd: std::process::Command, point: &str) -> Self {
        let release = t.fresh_dir("release");
        cmd.env("CAIRN_STALL_AT", format!("{point}:120"))
            .env("CAIRN_STALL_RELEASE", &release)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let pipe = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        let stderr = thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            stderr,
            seen: Vec::new(),
            release,
        }
    }

    /// Blocks until the process reports it reached its stall point.
    pub fn wait_for_stall(&mut self) {
        assert!(
            self.next_stall(),
            "the process ended without reaching its stall point:\n{}",
            self.seen.join("\n")
        );
    }

    /// Blocks until the process reaches its stall point (true) or closes
    /// its stderr, ending (false).
    pub fn next_stall(&mut self) -> bool {
        while let Ok(line) = self.lines.recv() {
            let reached = line.contains("stall point") && line.contains("reached");
            self.seen.push(line);
            if reached {
                return true;
            }
        }
        false
    }

    /// Lets the process go on from the stall it waits in.
    pub fn go_on(&self) {
        fs::write(&self.release, b"").unwrap();
    }

    /// Lets one more stall go on, once the release before is taken: two
    /// threads stalled at once (a snapshot's uploaders) took one release
    /// for both, and the second waited out its whole stall.
    fn release_once_more(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.release.exists() && std::time::Instant::now() < deadline {
            thread::sleep(std::time::Duration::from_millis(20));
        }
        fs::write(&self.release, b"").unwrap();
    }

    /// Lets the process run to its end (releasing any further stall);
    /// returns its status, stdout and stderr.
    pub fn finish(mut self) -> (ExitStatus, Vec<u8>, String) {
        self.go_on();
        for line in self.lines.iter() {
            if line.contains("stall point") && line.contains("reached") {
                self.release_once_more();
            }
            self.seen.push(line);
        }
        let mut stdout = Vec::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut stdout)
            .unwrap();
        let status = self.child.wait().unwrap();
        self.stderr.join().unwrap();
        (status, stdout, self.seen.join("\n"))
    }
}
