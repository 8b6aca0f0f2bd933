//! The `cairn` command: parses arguments, runs the library, renders the
//! result and turns it into an exit code (see `cli::exit`).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(exit) => exit.code(),
        Err(e) => {
            let (exit, message) = cli::exit::ending(&e);
            if let Some(message) = message {
                eprintln!("cairn: {message}");
            }
            exit.code()
        }
    }
}
