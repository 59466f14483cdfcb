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
