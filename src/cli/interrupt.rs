//! Ctrl-C and SIGTERM: cancel what runs on the server, then exit.
//!
//! Killing pgpm alone leaves its statement running in its backend, holding
//! its locks and blocking readers, until the server notices the client is
//! gone. So SIGINT and SIGTERM are taken by a thread of their own: it tells
//! the engine to stop (a change then stops at its next step and rolls back
//! instead of committing) and sends PostgreSQL's cancel request for every
//! connection pgpm opened, waits briefly for the command to wind down, and
//! exits with 130 or 143, the shell's codes for those signals, saying what
//! was rolled back. A second signal exits at once.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

/// The signal that interrupted the run, 0 while none has.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Set by the main thread when the command has returned.
static DONE: AtomicBool = AtomicBool::new(false);

/// How long the command gets to roll back after its statements were
/// cancelled, before the process exits anyway (the server rolls back an
/// ended session's transaction itself).
const GRACE: Duration = Duration::from_secs(3);

/// Starts watching for SIGINT and SIGTERM. Call before any other thread
/// starts, so that every thread inherits the blocked mask and only the
/// watcher receives them.
pub fn watch() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
        return; // signals keep their default: the process just ends
    }
    let _ = std::thread::Builder::new()
        .name("pgpm-signals".into())
        .spawn(move || {
            let Ok(signal) = set.wait() else { return };
            SIGNAL.store(signal as i32, Ordering::SeqCst);
            // Cancel requests open connections of their own, which can take
            // long when the server is unreachable: never in this thread.
            std::thread::spawn(pgpm::db::connect::interrupt);
            let deadline = Instant::now() + GRACE;
            // The command now fails with "canceling statement"; main
            // reports the interruption when it returns. A second signal,
            // or a command that does not return in time, ends it here.
            let second = std::thread::spawn(move || set.wait().ok());
            while Instant::now() < deadline && !DONE.load(Ordering::SeqCst) {
                if second.is_finished() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if !DONE.load(Ordering::SeqCst) {
                eprintln!("{}", message(signal));
                std::process::exit(exit_code(signal).into());
            }
        });
}

/// What became of a command that a signal may have interrupted.
pub enum Outcome {
    /// No signal came.
    Undisturbed,
    /// The command failed after the signal: it was interrupted.
    Interrupted { message: String, code: u8 },
    /// The signal came after the command had done its work: it completed.
    CompletedAnyway { note: String },
}

/// Call when the command has returned, with whether it succeeded.
pub fn finished(succeeded: bool) -> Outcome {
    DONE.store(true, Ordering::SeqCst);
    let Ok(signal) = Signal::try_from(SIGNAL.load(Ordering::SeqCst)) else {
        return Outcome::Undisturbed;
    };
    if succeeded {
        Outcome::CompletedAnyway {
            note: format!(
                "note: {} arrived when the command had already done its work; it completed",
                signal.as_str()
            ),
        }
    } else {
        Outcome::Interrupted {
            message: message(signal),
            code: exit_code(signal),
        }
    }
}

fn exit_code(signal: Signal) -> u8 {
    128 + signal as u8
}

fn message(signal: Signal) -> String {
    format!(
        "error: interrupted by {}: the statement running on the server was cancelled and its transaction rolled back; nothing of that transaction was committed (what had committed before, such as earlier groups of patches, stays: see `pgpm status`)",
        signal.as_str()
    )
}
