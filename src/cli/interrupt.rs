//! Ctrl-C and SIGTERM: cancel what runs on the server, then exit.
//!
//! Killing pgpm alone leaves its statement running in its backend, holding
//! its locks and blocking readers, until the server notices the client is
//! gone. So SIGINT and SIGTERM are taken by a thread of their own: it sends
//! PostgreSQL's cancel request for every connection pgpm opened, waits
//! briefly for the command to wind down (its transaction then rolls back),
//! and exits with 130 or 143, the shell's codes for those signals, saying
//! what was rolled back. A second signal exits at once.

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
            pgpm::db::connect::cancel_running();
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

/// When a signal interrupted the command: its message and exit code. Call
/// when the command has returned.
pub fn finished() -> Option<(String, u8)> {
    DONE.store(true, Ordering::SeqCst);
    let signal = Signal::try_from(SIGNAL.load(Ordering::SeqCst)).ok()?;
    Some((message(signal), exit_code(signal)))
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
