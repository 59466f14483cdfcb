//! Progress of a running command, told as it happens.
//!
//! Deploy, migrate and remove take one observer, `&mut dyn FnMut(Event)`,
//! and call it as work is done, so a command-line front end can print a
//! line per patch as it commits, show progress, or stay quiet; what was
//! done before a failure is known. The same facts also come back in the
//! command's typed report. Events carry plain data, so this module
//! imports nothing else of pgpm.

use std::time::Duration;

/// One step of progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event<'a> {
    /// A section of a script starts running (the script's note for it,
    /// such as `package billing 1.4.0 -> schema billing_1_4_0`).
    Section { note: &'a str },
    /// A statement is sent to the server (a batch's statements are told
    /// one by one before the batch is sent), with where it comes from.
    Statement {
        sql: &'a str,
        file: Option<&'a std::path::Path>,
        line: usize,
    },
    /// A patch starts to run (for the later patches of a group sent as
    /// one batch, [`Background::PatchStarted`] tells it instead, as the
    /// server gets to it).
    PatchStarted { file_name: &'a str },
    /// A patch was applied and committed, with its recorded duration.
    PatchApplied { file_name: &'a str, took: Duration },
    /// Dry run: a patch ran in a transaction that will be rolled back.
    PatchChecked { file_name: &'a str, took: Duration },
    /// Dry run: a concurrent patch, which does not run.
    PatchSkipped { file_name: &'a str },
    /// Something worth telling the user before the work goes on (an applied
    /// patch whose file is gone); it is in the command's report too.
    Warning { message: &'a str },
    /// A statement waited longer than its lock timeout, so the change was
    /// rolled back and runs again (retry `attempt` of `of`) after a pause.
    /// `waiting` is what waited; `blocked_by` the sessions that held the
    /// lock, described, or empty when not known.
    LockRetry {
        attempt: u32,
        of: u32,
        waiting: &'a str,
        blocked_by: &'a str,
    },
}

/// An observer that ignores every event.
pub fn ignore(_: Event<'_>) {}

/// What is told from outside the command's own thread while it runs:
/// from a connection as the server sends it, and from the watch on a
/// change waiting for a lock. A front end sets one observer for the
/// process ([`observe`]); without one these are dropped. `target` is the
/// connection's description (`user@host:port/dbname`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Background<'a> {
    /// A message the server sent that is not an error: a `RAISE NOTICE`,
    /// the notice of a `DROP ... IF EXISTS` that found nothing, a warning.
    Notice {
        target: &'a str,
        /// `WARNING`, `NOTICE`, `INFO`, `LOG` or `DEBUG`, as the server
        /// wrote it (in its language).
        severity: &'a str,
        /// Whether it is a warning, whatever the server's language.
        warning: bool,
        message: &'a str,
        detail: Option<&'a str>,
        hint: Option<&'a str>,
    },
    /// A patch of a group sent as one batch starts to run on the server.
    PatchStarted { target: &'a str, file_name: &'a str },
    /// A change has waited `waited` for a lock that these sessions hold
    /// (described); told once a second while it waits.
    LockWait {
        target: &'a str,
        waited: Duration,
        blocked_by: &'a str,
    },
}

type Observer = Box<dyn Fn(Background<'_>) + Send + Sync>;

static OBSERVER: std::sync::OnceLock<Observer> = std::sync::OnceLock::new();

/// Sets the process's observer of [`Background`] events (once; a second
/// call is ignored).
pub fn observe(observer: impl Fn(Background<'_>) + Send + Sync + 'static) {
    let _ = OBSERVER.set(Box::new(observer));
}

/// Whether an observer is set (so that work done only to be told is
/// skipped without one).
pub fn observed() -> bool {
    OBSERVER.get().is_some()
}

/// Tells the observer, if there is one.
pub fn tell(event: Background<'_>) {
    if let Some(observer) = OBSERVER.get() {
        observer(event);
    }
}
