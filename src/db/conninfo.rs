//! Connecting to PostgreSQL the way libpq does, and quoting identifiers.
//!
//! A connection target is parsed from a libpq keyword/value string
//! (`host=db port=5432 dbname=app`) or a `postgres://` / `postgresql://` URI,
//! completed from `DATABASE_URL` or the standard `PG*` environment variables,
//! and given a password from `~/.pgpass` (or `PGPASSFILE`) when it has none.
//! See <https://www.postgresql.org/docs/current/libpq-connect.html>.
//!
//! Passwords never leave this module in readable form: [`ConnInfo`]'s
//! `Display` is redacted and no error carries the original string.
//! Opening the connection (TLS) is in [`super::connect`].
//!
//! Over 800 lines, 150 of them tests: libpq's parsing rules (keyword/value
//! quoting, URIs, the environment, `.pgpass`) are many small ones, and each
//! is kept next to its test rather than split across files.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use postgres::config::SslMode as PgSslMode;

/// Errors while building or opening a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("invalid connection string: {0}")]
    Parse(String),
    #[error("invalid value for connection option \"{key}\": {message}")]
    Option { key: String, message: String },
    #[error("cannot read SSL root certificate {}", path.display())]
    RootCert {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up TLS")]
    Tls(#[source] native_tls::Error),
    #[error("could not connect to {target}")]
    Connect {
        target: String,
        #[source]
        source: postgres::Error,
    },
}

impl ConnError {
    /// Parse errors and bad options are the user's to fix; failing to reach
    /// or log in to a server is reported as unexpected (exit 2).
    pub fn is_user_error(&self) -> bool {
        matches!(self, ConnError::Parse(_) | ConnError::Option { .. })
    }

    /// Whether the server did not accept the connection yet: nothing
    /// listens (the socket or port is not open), or it is starting up
    /// (SQLSTATE 57P03). A refused login is not that.
    pub fn is_refused(&self) -> bool {
        let ConnError::Connect { source, .. } = self else {
            return false;
        };
        match source.as_db_error() {
            Some(db) => db.code() == &postgres::error::SqlState::CANNOT_CONNECT_NOW,
            None => true,
        }
    }
}

/// How strictly to require and verify TLS, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, ConnError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(ConnError::Option {
                    key: "sslmode".into(),
                    message: "the value is not one of disable, allow, prefer, require, verify-ca, verify-full".into(),
                });
            }
        })
    }
}

/// The options pgpm understands, with their `PG*` environment variables.
const OPTIONS: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("dbname", "PGDATABASE"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("passfile", "PGPASSFILE"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("application_name", "PGAPPNAME"),
    ("options", "PGOPTIONS"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
];

/// The message for an option pgpm does not know. The option is not echoed
/// (in a mistyped string it may be part of a password); a near miss of a
/// known option is named instead.
fn unknown_option(key: &str) -> String {
    let known = OPTIONS
        .iter()
        .map(|(k, _)| *k)
        .chain(IGNORED.iter().copied());
    let near = known
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, k)| *d <= 2 && *d < k.len() / 2 + 1)
        .min();
    match near {
        Some((_, k)) => format!("unknown option (did you mean \"{k}\"?)"),
        None => format!(
            "unknown option; the options are: {}",
            OPTIONS
                .iter()
                .map(|(k, _)| *k)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Levenshtein distance, for near misses of short option names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Options accepted in a connection string but without effect here.
const IGNORED: &[&str] = &[
    "client_encoding",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "sslcompression",
    "gssencmode",
    "krbsrvname",
    "channel_binding",
];

/// A parsed connection target: libpq's options as key/value pairs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    params: BTreeMap<String, String>,
    /// What resolving the target has to tell the user (an ignored
    /// password file), for the caller to show.
    warnings: Vec<String>,
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnInfo({self})")
    }
}

/// Redacted: the password is shown as `********`.
impl fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (key, value) in &self.params {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let value = if key == "password" { "********" } else { value };
            write!(f, "{key}={}", quote_conninfo_value(value))?;
        }
        Ok(())
    }
}

fn quote_conninfo_value(value: &str) -> String {
    if !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        return value.to_string();
    }
    let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
    format!("'{escaped}'")
}

impl ConnInfo {
    /// Parses a keyword/value string or a `postgres://` / `postgresql://` URI.
    pub fn parse(input: &str) -> Result<ConnInfo, ConnError> {
        let trimmed = input.trim();
        let params = if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            parse_uri(trimmed)?
        } else {
            parse_keyword_value(trimmed)?
        };
        let info = ConnInfo {
            params,
            warnings: Vec::new(),
        };
        info.validate()?;
        Ok(info)
    }

    /// Resolves the target the way libpq does: the explicit string if given,
    /// else `DATABASE_URL`; then every option still unset from its `PG*`
    /// variable; then a password from the password file.
    pub fn resolve(explicit: Option<&str>) -> Result<ConnInfo, ConnError> {
        Self::resolve_with(explicit, |name| std::env::var(name).ok())
    }

    /// [`ConnInfo::resolve`] with the environment given as a function (for tests).
    pub fn resolve_with(
        explicit: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ConnInfo, ConnError> {
        let from_env_url = env("DATABASE_URL").filter(|s| !s.trim().is_empty());
        let mut info = match explicit.map(str::to_owned).or(from_env_url) {
            Some(s) => ConnInfo::parse(&s)?,
            None => ConnInfo::default(),
        };
        for (key, var) in OPTIONS {
            if !info.params.contains_key(*key)
                && let Some(value) = env(var).filter(|v| !v.is_empty())
            {
                info.params.insert((*key).to_string(), value);
            }
        }
        info.validate()?;
        if !info.params.contains_key("password") {
            let passfile = match info.get("passfile") {
                Some(p) => Some(PathBuf::from(p)),
                None => env("HOME").map(|home| Path::new(&home).join(".pgpass")),
            };
            if let Some(passfile) = passfile {
                match pgpass_lookup(&passfile, &info) {
                    Ok(Some(pw)) => {
                        info.params.insert("password".into(), pw);
                    }
                    Ok(None) => {}
                    Err(warning) => info.warnings.push(warning),
                }
            }
        }
        Ok(info)
    }

    /// What resolving the target found worth telling the user.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// An option's value as given (not defaulted).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// Returns a copy with `key` set to `value`.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> ConnInfo {
        self.params.insert(key.to_string(), value.into());
        self
    }

    /// The host to connect to, defaulting like libpq to the Unix socket
    /// directory when none is given.
    pub fn host(&self) -> String {
        self.get("host")
            .map(str::to_owned)
            .unwrap_or_else(|| DEFAULT_SOCKET_DIR.to_string())
    }

    pub fn port(&self) -> u16 {
        self.get("port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(5432)
    }

    /// The user name, defaulting to the operating-system user.
    pub fn user(&self) -> String {
        self.get("user").map(str::to_owned).unwrap_or_else(os_user)
    }

    /// The database name, defaulting to the user name.
    pub fn dbname(&self) -> String {
        self.get("dbname")
            .map(str::to_owned)
            .unwrap_or_else(|| self.user())
    }

    pub fn sslmode(&self) -> SslMode {
        self.get("sslmode")
            .map(|m| SslMode::parse(m).expect("validated"))
            .unwrap_or(SslMode::Prefer)
    }

    fn validate(&self) -> Result<(), ConnError> {
        for (key, value) in &self.params {
            let known = OPTIONS.iter().any(|(k, _)| k == key) || IGNORED.contains(&key.as_str());
            if !known {
                return Err(ConnError::Parse(unknown_option(key)));
            }
            match key.as_str() {
                "port" => {
                    for port in value.split(',') {
                        port.parse::<u16>().map_err(|_| ConnError::Option {
                            key: key.clone(),
                            message: "the value is not a port number (if a password holds \"/\", \"?\", \"#\" or \"@\", percent-encode them)".into(),
                        })?;
                    }
                }
                "sslmode" => {
                    SslMode::parse(value)?;
                }
                "connect_timeout" => {
                    value.parse::<u64>().map_err(|_| ConnError::Option {
                        key: key.clone(),
                        message: "the value is not a number of seconds".into(),
                    })?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The `postgres` crate configuration for this target.
    pub fn to_config(&self) -> postgres::Config {
        let mut config = postgres::Config::new();
        let hosts: Vec<String> = self.host().split(',').map(str::to_owned).collect();
        for host in &hosts {
            if host.starts_with('/') {
                config.host_path(host);
            } else {
                config.host(host);
            }
        }
        if let Some(addrs) = self.get("hostaddr") {
            for addr in addrs.split(',') {
                if let Ok(ip) = addr.parse() {
                    config.hostaddr(ip);
                }
            }
        }
        for port in self.get("port").unwrap_or("5432").split(',') {
            config.port(port.parse().expect("validated"));
        }
        config.user(&self.user());
        config.dbname(&self.dbname());
        if let Some(password) = self.get("password") {
            config.password(password);
        }
        if let Some(name) = self.get("application_name") {
            config.application_name(name);
        } else {
            config.application_name("pgpm");
        }
        if let Some(options) = self.get("options") {
            config.options(options);
        }
        if let Some(secs) = self.get("connect_timeout").and_then(|s| s.parse().ok())
            && secs > 0
        {
            config.connect_timeout(Duration::from_secs(secs));
        }
        if self.get("target_session_attrs") == Some("read-write") {
            config.target_session_attrs(postgres::config::TargetSessionAttrs::ReadWrite);
        }
        config.ssl_mode(match self.sslmode() {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Allow | SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });
        config
    }

    /// A short description of the target for messages: `user@host:port/dbname`.
    pub fn describe(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user(),
            self.host(),
            self.port(),
            self.dbname()
        )
    }

    /// A `postgres://` URI for this target, with the password left out.
    pub fn to_uri(&self) -> String {
        let host = self.host();
        let mut uri = format!("postgresql://{}@", percent_encode(&self.user()));
        if host.starts_with('/') {
            uri.push_str(&format!(
                "/{}?host={}&port={}",
                percent_encode(&self.dbname()),
                percent_encode(&host),
                self.port()
            ));
        } else {
            uri.push_str(&format!(
                "{host}:{}/{}",
                self.port(),
                percent_encode(&self.dbname())
            ));
        }
        uri
    }
}

/// Where libpq looks for the server's socket when no host is given (Debian's default).
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

fn os_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| "postgres".into())
        })
}

fn parse_keyword_value(input: &str) -> Result<BTreeMap<String, String>, ConnError> {
    let mut params = BTreeMap::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(ConnError::Parse(format!(
                "missing \"=\" after word {} (expected keyword=value pairs or a postgres:// URI; quote values with spaces in single quotes)",
                params.len() + 1
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => break,
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(ConnError::Parse(format!(
                            "unterminated quoted value for keyword {}",
                            params.len() + 1
                        )));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        value.push(next);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        params.insert(key, value);
    }
    Ok(params)
}

fn parse_uri(input: &str) -> Result<BTreeMap<String, String>, ConnError> {
    let rest = input
        .split_once("://")
        .map(|(_, rest)| rest)
        .expect("caller checked the scheme");
    let mut params = BTreeMap::new();
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let hostlist = match authority.rfind('@') {
        Some(i) => {
            let userinfo = &authority[..i];
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.insert("user".into(), percent_decode(user)?);
            }
            if let Some(p) = password {
                params.insert("password".into(), percent_decode(p)?);
            }
            &authority[i + 1..]
        }
        None => authority,
    };
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for entry in hostlist.split(',').filter(|e| !e.is_empty()) {
        let (host, port) = if let Some(stripped) = entry.strip_prefix('[') {
            let end = stripped
                .find(']')
                .ok_or_else(|| ConnError::Parse("unterminated IPv6 address in URI".into()))?;
            let port = stripped[end + 1..].strip_prefix(':');
            (&stripped[..end], port)
        } else {
            match entry.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (entry, None),
            }
        };
        hosts.push(percent_decode(host)?);
        ports.push(port.unwrap_or("").to_string());
    }
    if !hosts.is_empty() && hosts.iter().any(|h| !h.is_empty()) {
        params.insert("host".into(), hosts.join(","));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        let ports: Vec<&str> = ports
            .iter()
            .map(|p| if p.is_empty() { "5432" } else { p.as_str() })
            .collect();
        params.insert("port".into(), ports.join(","));
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        // `u:pa/ss@host/db` splits at the password's `/`: the rest, with its
        // `@host`, would become the database name and show in messages.
        if db.contains('@') || db.contains('/') {
            return Err(ConnError::Parse(
                "the URI's database name holds \"@\" or \"/\" (if a password holds \"/\", \"?\", \"#\" or \"@\", percent-encode them)"
                    .into(),
            ));
        }
        params.insert("dbname".into(), percent_decode(db)?);
    }
    if let Some(query) = query {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                ConnError::Parse(
                    "a URI parameter has no \"=\" (if a password holds \"/\", \"?\", \"#\" or \"@\", percent-encode them)"
                        .into(),
                )
            })?;
            let key = percent_decode(key)?;
            // libpq accepts `ssl=true` as `sslmode=require`.
            if key == "ssl" && value == "true" {
                params.insert("sslmode".into(), "require".into());
                continue;
            }
            params.insert(key, percent_decode(value)?);
        }
    }
    Ok(params)
}

fn percent_decode(s: &str) -> Result<String, ConnError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ConnError::Parse("invalid percent-encoding in URI".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ConnError::Parse("URI is not valid UTF-8".into()))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Finds a password in a `.pgpass` file for `info`'s host, port, database
/// and user. As libpq, a Unix-socket host matches `localhost`, `*` matches
/// anything, `\:` and `\\` are escapes, and a file readable by group or
/// others is ignored with a warning (the `Err`).
fn pgpass_lookup(path: &Path, info: &ConnInfo) -> Result<Option<String>, String> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Ok(None);
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        ));
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let host = info.host();
    let host = host.split(',').next().unwrap_or_default();
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    let port = info.port().to_string();
    let wanted = [host, port.as_str(), &info.dbname(), &info.user()];
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass_line(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = fields[..4]
            .iter()
            .zip(wanted)
            .all(|(field, want)| field == "*" || field == want);
        if matches {
            return Ok(Some(fields[4..].join(":")));
        }
    }
    Ok(None)
}

fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("non-empty").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("non-empty").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn keyword_value_with_quotes_and_escapes() {
        let info = ConnInfo::parse(r"host=db.example port = 6543 dbname='my db' password='it\'s'")
            .unwrap();
        assert_eq!(info.get("host"), Some("db.example"));
        assert_eq!(info.port(), 6543);
        assert_eq!(info.dbname(), "my db");
        assert_eq!(info.get("password"), Some("it's"));
    }

    #[test]
    fn uri_with_everything() {
        let info = ConnInfo::parse(
            "postgresql://app%40x:s3cr%3At@[::1]:6000/billing%20db?sslmode=require&application_name=ci",
        )
        .unwrap();
        assert_eq!(info.user(), "app@x");
        assert_eq!(info.get("password"), Some("s3cr:t"));
        assert_eq!(info.host(), "::1");
        assert_eq!(info.port(), 6000);
        assert_eq!(info.dbname(), "billing db");
        assert_eq!(info.sslmode(), SslMode::Require);
        assert_eq!(info.get("application_name"), Some("ci"));
    }

    #[test]
    fn uri_with_socket_directory() {
        let info = ConnInfo::parse("postgres://%2Ftmp%2Fsock:5433/db").unwrap();
        assert_eq!(info.host(), "/tmp/sock");
        let info = ConnInfo::parse("postgres:///db?host=/tmp/sock&port=5433").unwrap();
        assert_eq!(info.host(), "/tmp/sock");
        assert_eq!(info.port(), 5433);
    }

    #[test]
    fn unknown_options_and_bad_values_are_errors() {
        assert!(matches!(
            ConnInfo::parse("host=x colour=blue"),
            Err(ConnError::Parse(m)) if !m.contains("colour") && m.contains("the options are")
        ));
        assert!(matches!(
            ConnInfo::parse("port=abc"),
            Err(ConnError::Option { key, .. }) if key == "port"
        ));
        assert!(matches!(
            ConnInfo::parse("sslmode=maybe"),
            Err(ConnError::Option { key, .. }) if key == "sslmode"
        ));
        assert!(ConnInfo::parse("host").is_err());
    }

    #[test]
    fn errors_never_echo_what_may_be_a_password() {
        for (input, secrets) in [
            ("postgres://app:zq/xv@db/app", &["zq", "xv"][..]),
            ("postgres://app:1234/zqxv@db/app", &["zqxv"]),
            ("postgres://app:zqx?vwk@db/app", &["zqx", "vwk"]),
            ("postgres://app:zq#xv@db:5432/app?x", &["zq", "xv"]),
            ("host=db password=zqxv vwkz", &["zqxv", "vwkz"]),
            ("host=db password='zqxv", &["zqxv"]),
            ("dbname=app zqxw=2", &["zqxw"]),
        ] {
            let err = ConnInfo::parse(input).unwrap_err().to_string();
            for secret in secrets {
                assert!(!err.contains(secret), "{input}: {err}");
            }
        }
        let err = ConnInfo::parse("host=db passwrod=x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean \"password\""), "{err}");
    }

    #[test]
    fn environment_fills_what_is_missing() {
        let vars = [
            ("PGHOST", "envhost"),
            ("PGPORT", "7777"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGSSLMODE", "disable"),
        ];
        let info = ConnInfo::resolve_with(Some("dbname=explicit"), env(&vars)).unwrap();
        assert_eq!(info.dbname(), "explicit");
        assert_eq!(info.host(), "envhost");
        assert_eq!(info.port(), 7777);
        assert_eq!(info.user(), "envuser");
        assert_eq!(info.sslmode(), SslMode::Disable);
    }

    #[test]
    fn database_url_is_used_when_no_argument() {
        let vars = [("DATABASE_URL", "postgres://u@h:1234/d"), ("PGPORT", "9")];
        let info = ConnInfo::resolve_with(None, env(&vars)).unwrap();
        assert_eq!((info.host().as_str(), info.port()), ("h", 1234));
        let info = ConnInfo::resolve_with(Some("port=5"), env(&vars)).unwrap();
        assert_eq!(info.port(), 5);
    }

    #[test]
    fn pgpass_matches_with_wildcards_and_escapes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(
            &path,
            "# comment\nother:*:*:*:nope\nlocalhost:5432:*:alice:pa\\:ss\\\\word\n*:*:*:*:fallback\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let passfile = path.to_str().unwrap();
        let vars = [("PGPASSFILE", passfile)];
        let info =
            ConnInfo::resolve_with(Some("host=/tmp user=alice dbname=x"), env(&vars)).unwrap();
        assert_eq!(info.get("password"), Some("pa:ss\\word"));
        let info = ConnInfo::resolve_with(Some("host=db user=bob"), env(&vars)).unwrap();
        assert_eq!(info.get("password"), Some("fallback"));
        // An explicit password wins over the file.
        let info = ConnInfo::resolve_with(Some("host=db password=given"), env(&vars)).unwrap();
        assert_eq!(info.get("password"), Some("given"));
        // A world-readable file is ignored.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let info = ConnInfo::resolve_with(Some("host=db user=bob"), env(&vars)).unwrap();
        assert_eq!(info.get("password"), None);
        assert!(info.warnings()[0].contains("group or world access"));
    }

    #[test]
    fn display_and_debug_redact_the_password() {
        let info = ConnInfo::parse("postgres://u:hunter2@h/d").unwrap();
        assert!(!format!("{info}").contains("hunter2"));
        assert!(!format!("{info:?}").contains("hunter2"));
        assert!(format!("{info}").contains("password=********"));
        assert!(!info.to_uri().contains("hunter2"));
    }
}
