//! Commands stopped at a point: `CAIRN_STALL_AT` makes the binary sleep
//! there, holding its locks and open files, while a test looks at the
//! store or runs another command against it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

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
