//! Opening a connection to a [`ConnInfo`] target, with TLS as libpq would.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::CancelToken;

use postgres::config::SslMode as PgSslMode;

use super::conninfo::{ConnError, ConnInfo, SslMode};

impl ConnInfo {
    /// The TLS connector for this target's `sslmode` and `sslrootcert`.
    ///
    /// As in libpq, `require` without a root certificate encrypts without
    /// verifying; with `sslrootcert` given it verifies the chain like
    /// `verify-ca`. `verify-full` also checks the host name.
    fn tls_connector(&self) -> Result<postgres_native_tls::MakeTlsConnector, ConnError> {
        let mode = self.sslmode();
        let mut builder = native_tls::TlsConnector::builder();
        let root = match self.get("sslrootcert") {
            Some("system") => None,
            Some(path) => Some(PathBuf::from(path)),
            None => std::env::var_os("HOME")
                .map(|home| Path::new(&home).join(".postgresql/root.crt"))
                .filter(|p| p.exists() && matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull)),
        };
        if let Some(path) = &root {
            let pem = std::fs::read(path).map_err(|source| ConnError::RootCert {
                path: path.clone(),
                source,
            })?;
            let cert = native_tls::Certificate::from_pem(&pem).map_err(ConnError::Tls)?;
            builder.add_root_certificate(cert);
        }
        let verify_chain = match mode {
            SslMode::VerifyCa | SslMode::VerifyFull => true,
            SslMode::Require => self.get("sslrootcert").is_some(),
            _ => false,
        };
        if !verify_chain {
            builder.danger_accept_invalid_certs(true);
        }
        // Loading the system's CA bundle costs tens of milliseconds per
        // connection: skip it when nothing is verified or our own root is given.
        if !verify_chain || root.is_some() {
            builder.disable_built_in_roots(true);
        }
        if mode != SslMode::VerifyFull {
            builder.danger_accept_invalid_hostnames(true);
        }
        let connector = builder.build().map_err(ConnError::Tls)?;
        Ok(postgres_native_tls::MakeTlsConnector::new(connector))
    }

    /// Whether every host is a Unix-socket directory. As in libpq, TLS is
    /// never used over a Unix socket, whatever `sslmode` says.
    fn socket_only(&self) -> bool {
        self.host().split(',').all(|h| h.starts_with('/'))
    }

    /// With `sslmode` `prefer` or `allow`, asks a single TCP server whether
    /// it accepts TLS at all (PostgreSQL's SSLRequest, one round trip), so
    /// that a connection to a server without TLS does not pay for building
    /// a TLS connector (OpenSSL loads the system's CA bundle: ~50 ms).
    fn plain_is_enough(&self) -> bool {
        if !matches!(self.sslmode(), SslMode::Prefer | SslMode::Allow) {
            return false;
        }
        let (host, port) = (self.host(), self.port());
        if host.contains(',') || self.get("hostaddr").is_some() {
            return false;
        }
        let timeout = Duration::from_secs(
            self.get("connect_timeout")
                .and_then(|s| s.parse().ok())
                .filter(|s| *s > 0)
                .unwrap_or(10),
        );
        let probe = || -> std::io::Result<bool> {
            use std::io::{Read, Write};
            use std::net::ToSocketAddrs;
            let addr = (host.as_str(), port)
                .to_socket_addrs()?
                .next()
                .ok_or(std::io::ErrorKind::NotFound)?;
            let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
            stream.set_read_timeout(Some(timeout))?;
            // Length 8, then the SSLRequest code 1234.5679.
            stream.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])?;
            let mut answer = [0u8; 1];
            stream.read_exact(&mut answer)?;
            Ok(answer[0] == b'N')
        };
        probe().unwrap_or(false)
    }

    /// Opens a connection.
    pub fn connect(&self) -> Result<postgres::Client, ConnError> {
        let mut config = self.to_config();
        if crate::event::observed() {
            let target = self.describe();
            config.notice_callback(move |notice| tell_notice(&target, &notice));
        }
        let plain =
            self.sslmode() == SslMode::Disable || self.socket_only() || self.plain_is_enough();
        let result = if plain {
            config.ssl_mode(PgSslMode::Disable);
            config.connect(postgres::NoTls)
        } else {
            config.connect(self.tls_connector()?)
        };
        let client = result.map_err(|source| ConnError::Connect {
            target: self.describe(),
            source,
        })?;
        OPEN.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((client.cancel_token(), self.clone()));
        Ok(client)
    }
}

/// How the notice begins that a migrate group's script raises as each of
/// its patches starts.
pub(crate) const PATCH_STARTS: &str = "pgpm: patch starts: ";

/// Tells the process's observer of a notice the server sent: a patch
/// starting (see [`PATCH_STARTS`]), or the notice itself.
fn tell_notice(target: &str, notice: &postgres::error::DbError) {
    use crate::event::{Background, tell};
    match notice.message().strip_prefix(PATCH_STARTS) {
        Some(file_name) => tell(Background::PatchStarted { target, file_name }),
        None => tell(Background::Notice {
            target,
            severity: notice.severity(),
            warning: notice.parsed_severity() == Some(postgres::error::Severity::Warning),
            message: notice.message(),
            detail: notice.detail(),
            hint: notice.hint(),
        }),
    }
}

/// Every connection this process opened, to cancel their statements when
/// it is interrupted: a statement's backend otherwise runs on, holding its
/// locks, after the process that sent it is gone.
static OPEN: Mutex<Vec<(CancelToken, ConnInfo)>> = Mutex::new(Vec::new());

/// Set once the process was asked to stop (Ctrl-C, SIGTERM): changes then
/// stop at their next step and roll back instead of committing.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks every change in progress to stop: sets the flag that
/// [`interrupted`] reads, then cancels the statements running on the
/// server ([`cancel_running`]).
pub fn interrupt() -> usize {
    INTERRUPTED.store(true, Ordering::SeqCst);
    cancel_running()
}

/// Whether [`interrupt`] was called: a change checks it before each step
/// and before it commits.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Asks the server to cancel whatever statement each connection this
/// process opened is running (PostgreSQL's cancel request, on a connection
/// of its own). Connections that run nothing, or are gone, are unaffected.
/// Returns how many requests were sent.
pub fn cancel_running() -> usize {
    let open: Vec<(CancelToken, ConnInfo)> = OPEN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut sent = 0;
    for (token, info) in open {
        let ok = match token.cancel_query(postgres::NoTls) {
            Ok(()) => true,
            // A server that accepts only TLS wants the request over TLS too.
            Err(_) => info
                .tls_connector()
                .is_ok_and(|tls| token.cancel_query(tls).is_ok()),
        };
        sent += usize::from(ok);
    }
    sent
}
