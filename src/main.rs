//! The `cairn` command: parses arguments, runs the library, renders the
//! result and turns it into an exit code (see `cli::exit`).

mod cli;

use std::process::ExitCode;

/// The stack the command runs on. Walks of a snapshot's trees (and of the
/// sources) recurse once per directory level, up to
/// `cairn::bound::MAX_DEPTH` (1024) levels, and a debug build needs up to
/// ~6 KiB a level. The main thread's stack is whatever `ulimit -s` says
/// (8 MiB on most systems, less in some containers); a thread's is what we
/// ask for. Only the pages a walk touches cost memory.
const STACK: usize = 64 << 20;

fn main() -> ExitCode {
    let command = cli::main;
    match std::thread::Builder::new()
        .name("cairn".into())
        .stack_size(STACK)
        .spawn(command)
    {
        Ok(thread) => thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        // No thread (address space exhausted?): run on this one.
        Err(_) => command(),
    }
}
