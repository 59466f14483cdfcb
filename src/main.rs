//! The `pgpm` binary: parse arguments, run, print the error chain, exit.

use std::process::ExitCode;

fn main() -> ExitCode {
    match pgpm::cli::run(std::env::args_os()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", pgpm::error::report(&err));
            ExitCode::from(err.exit_code())
        }
    }
}
