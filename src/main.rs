//! The `pgpm` binary: parse arguments, run, print the error chain, exit.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes
    // away (`pgpm plan | head`) instead of panicking on a broken pipe.
    // SAFETY: called before any other thread exists; SIG_DFL is a valid handler.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    cli::interrupt::watch();
    let result = cli::run(std::env::args_os());
    match cli::interrupt::finished(result.is_ok()) {
        cli::interrupt::Outcome::Undisturbed => {}
        cli::interrupt::Outcome::CompletedAnyway { note } => eprintln!("{note}"),
        cli::interrupt::Outcome::Interrupted { message, code } => {
            if let Err(err) = &result {
                cli::report_error(err);
            }
            eprintln!("{message}");
            return ExitCode::from(code);
        }
    }
    match result {
        Ok(cli::Exit::Success) => ExitCode::SUCCESS,
        Ok(cli::Exit::Code(code)) => ExitCode::from(code),
        Ok(cli::Exit::Clap(err)) => {
            // clap's own text: --help and --version on stdout (exit 0);
            // usage errors, and the help shown when no command is given,
            // on stderr as clap wrote them (exit 1).
            let _ = err.print();
            if err.use_stderr() {
                ExitCode::from(pgpm::error::EXIT_USER)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(err) => {
            cli::report_error(&err);
            ExitCode::from(err.exit_code())
        }
    }
}
