//! Selecting a package's API version and following deploys, as a
//! long-lived application would.
//!
//! ```sh
//! cargo run -p pgpm-client --example client -- 'host=localhost dbname=app' billing '^1.4'
//! DATABASE_URL=postgres://app@localhost/app cargo run -p pgpm-client --example client -- - billing '^1.4' 60
//! ```
//!
//! It uses only `pgpm-client` and `postgres` (without TLS, to stay small:
//! an application passes its own TLS connector). Arguments: the connection
//! (`-` for `DATABASE_URL`), the package, the requirement, and how many seconds to wait
//! for deploy events (default 30). It prints the version it selected and
//! the `search_path` it got, then every deploy of the package until the
//! time is up; when a deploy brings a newer matching version, it selects
//! it again and clears the connection's cached type OIDs. Try it while
//! running `pgpm deploy` in another terminal, or simulate a deploy:
//!
//! ```sql
//! SELECT pg_notify('deployment_events$$billing',
//!        '{"package":"billing","version":"1.4.3","schema":"billing_1_4_3","mode":"safe"}');
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use pgpm_client::{self as client, ClientError, DeployListener, ListenerEvent};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [conn, package, requirement, rest @ ..] = args.as_slice() else {
        eprintln!("usage: client <connection|-> <package> <requirement> [seconds]");
        return ExitCode::from(2);
    };
    let seconds = match rest.first().map(|s| s.parse::<u64>()) {
        None => 30,
        Some(Ok(s)) => s,
        Some(Err(_)) => {
            eprintln!("seconds must be a whole number");
            return ExitCode::from(2);
        }
    };
    let conn = (conn != "-").then_some(conn.as_str());
    match run(conn, package, requirement, Duration::from_secs(seconds)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", chain(&err));
            ExitCode::from(if err.is_user_error() { 1 } else { 2 })
        }
    }
}

fn run(
    conn: Option<&str>,
    package: &str,
    requirement: &str,
    wait: Duration,
) -> Result<(), ClientError> {
    let conn = match conn {
        Some(conn) => conn.to_string(),
        None => std::env::var("DATABASE_URL").unwrap_or_default(),
    };
    let connect = move || postgres::Client::connect(&conn, postgres::NoTls);
    let mut db = connect().map_err(|e| ClientError::Connect(e.into()))?;

    // The application's connection: pick the version, set search_path.
    let mut api = client::select_version(&mut db, package, requirement)?;
    let server = client::server_version_num(&mut db)?;
    println!(
        "selected {} {} (schema {}); search_path = {}",
        api.package,
        api.version,
        api.schema.as_deref().unwrap_or("none: database scope"),
        api.search_path
    );
    println!("server_version_num = {server}");

    // A dedicated connection that waits for deploys of the package.
    let mut listener = DeployListener::new(connect, &[package])?;
    println!(
        "waiting up to {}s for deploys of {package}...",
        wait.as_secs()
    );
    let deadline = Instant::now() + wait;
    while let Some(remaining) = deadline.checked_duration_since(Instant::now()) {
        let event = match listener.next(remaining) {
            Ok(Some(event)) => event,
            Ok(None) => break,
            // A stray payload or a failed reconnection: report and go on.
            Err(err) => {
                eprintln!("error: {}", chain(&err));
                continue;
            }
        };
        match &event {
            ListenerEvent::Deployed(e) => println!(
                "deployed: {} {} into {} ({} mode)",
                e.package,
                e.version,
                e.schema.as_deref().unwrap_or("no schema"),
                e.mode.as_deref().unwrap_or("unknown")
            ),
            ListenerEvent::Reconnected {
                previous_server_version_num,
                server_version_num,
            } => println!(
                "listener reconnected; server_version_num {previous_server_version_num} -> {server_version_num}"
            ),
        }
        // The version may have been overwritten in place, or the server
        // replaced: the connection's cached OIDs are suspect either way.
        db.clear_type_cache();
        let now = client::find_version(&mut db, package, requirement)?;
        if now.version != api.version || event.server_changed() {
            api = client::select_version(&mut db, package, requirement)?;
            println!(
                "switched to {} {}; search_path = {}",
                api.package, api.version, api.search_path
            );
        } else {
            println!("still {} {}", api.package, api.version);
        }
    }
    println!("done");
    Ok(())
}

/// An error and its causes on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
