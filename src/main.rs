//! `ledger`: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

// Batch parsing allocates per word and per argument; mimalloc's thread-local
// free lists roughly halve that cost compared with glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match ledger::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout (exit 0), usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match ledger::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            if code != ledger::error::code::OK {
                eprintln!("error: {e}");
            }
            ExitCode::from(code)
        }
    }
}
