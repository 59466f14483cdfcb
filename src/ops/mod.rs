//! The commands, as orchestration of the layers below: each takes options
//! and an observer for progress, and returns a typed report.

pub mod adopt;
pub mod announce;
pub mod deploy;
pub mod execute;
pub mod fleet;
pub mod gc;
pub mod migrate;
pub mod remove;
pub mod sandbox;
pub mod status;

use std::path::Path;

/// The git commit checked out in `dir`, when it is in a work tree: the VCS
/// reference a deploy records unless one is given.
pub fn git_head(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}
