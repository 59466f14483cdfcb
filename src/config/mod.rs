//! Where changes go: the project's `pgpm.toml` (named targets, their
//! environments and products, defaults for options), its `.env`, and the
//! ancestor's global `~/.pgpmconfig` (connection sets), and how a command
//! line selects targets among them.
//!
//! ```toml
//! default = "dev"
//!
//! [defaults]
//! mode = "revision"
//! usage = ["app"]
//!
//! [targets.dev]
//! url = "postgres://deployer@localhost/app"
//!
//! [targets.eu1]
//! host = "db1.eu.example"
//! dbname = "app"
//! user = "${DEPLOY_USER}"
//! environment = "prod"
//! product = "billing"
//! ```
//!
//! Values may name environment variables as `${VAR}` (the process's, then
//! the project's `.env`). Passwords are never stored in the file: they come
//! from `.pgpass`, `PGPASSWORD` or a `${VAR}`.

mod ancestor;
pub mod announce;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::db::conninfo::{ConnError, ConnInfo};
use crate::util::percent_encode;

pub use ancestor::GlobalConfig;
pub use announce::Announce;

/// The project config's file name.
pub const FILE_NAME: &str = "pgpm.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: target {target}: {source}", path.display())]
    Conn {
        path: PathBuf,
        target: String,
        #[source]
        source: ConnError,
    },
    #[error("no target named {name}{}", known_list(known))]
    UnknownTarget { name: String, known: Vec<String> },
    #[error("no target has environment {env}{}{}", product.as_ref().map(|p| format!(" and product {p}")).unwrap_or_default(), names_note(names, *except))]
    EmptySet {
        env: String,
        product: Option<String>,
        names: Vec<String>,
        except: bool,
    },
    #[error("{context}")]
    ResDb {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ConfigError {
    /// Everything but an unreadable file is the user's to fix.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, ConfigError::Io { .. })
    }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        " (no targets are configured: add [targets.NAME] to pgpm.toml)".into()
    } else {
        format!(" (the targets are: {})", known.join(", "))
    }
}

fn names_note(names: &[String], except: bool) -> String {
    match (names.is_empty(), except) {
        (true, _) => String::new(),
        (false, false) => format!(" named {}", names.join(", ")),
        (false, true) => format!(" other than {}", names.join(", ")),
    }
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// One database a command can run against.
#[derive(Debug, Clone)]
pub struct TargetDef {
    pub name: String,
    pub environment: Option<String>,
    pub product: Option<String>,
    /// Where it is defined: the file.
    pub source: PathBuf,
    /// It has a name of its own (the ancestor's entries without a
    /// `unique_name` are named after their database, and, as in the
    /// ancestor, `--name` never selects them).
    pub named: bool,
    /// The connection as written, `${VAR}`s replaced: a URI or
    /// keyword/value string, resolved with [`Project::conninfo`].
    conn: String,
}

/// Defaults for command options, from `[defaults]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub mode: Option<String>,
    pub owner: Option<String>,
    #[serde(default)]
    pub usage: Vec<String>,
    pub lock_timeout: Option<f64>,
    pub object_lock_timeout: Option<f64>,
    pub object_lock_retries: Option<u32>,
    pub patches: Option<PathBuf>,
    pub jobs: Option<usize>,
}

/// The project: its config (when there is one), its `.env`, and the
/// targets of both config files.
#[derive(Debug, Clone, Default)]
pub struct Project {
    /// The directory of `pgpm.toml` (else the directory searched from).
    pub root: PathBuf,
    /// The `pgpm.toml` read, if any.
    pub file: Option<PathBuf>,
    pub default: Option<String>,
    pub defaults: Defaults,
    pub targets: Vec<TargetDef>,
    /// The hooks `--announce` runs, `${VAR}`s replaced.
    pub announce: Announce,
    /// Variables of the project's `.env`.
    dotenv: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectToml {
    default: Option<String>,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    targets: BTreeMap<String, BTreeMap<String, toml::Value>>,
    #[serde(default)]
    announce: Announce,
}

/// Why `[announce]` cannot be used: refused whatever the command, or (only
/// for `--announce`) a variable that is not set.
#[derive(Debug, Default)]
struct AnnounceProblem {
    refused: Option<String>,
    unset: Option<String>,
}

impl AnnounceProblem {
    fn refused(message: String) -> AnnounceProblem {
        AnnounceProblem {
            refused: Some(message),
            unset: None,
        }
    }
}

/// What selects targets on a command line.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--target NAME`, repeatable.
    pub targets: Vec<String>,
    /// `--env ENV`: every target of the environment...
    pub env: Option<String>,
    /// ... and of this product (`--product`) ...
    pub product: Option<String>,
    /// ... named so (`--name`), or all but these (`--except`).
    pub names: Vec<String>,
    pub except: bool,
}

impl Selection {
    /// Whether the selection names a set (several targets, run as a fleet)
    /// rather than one target.
    pub fn is_set(&self) -> bool {
        self.env.is_some() || self.targets.len() > 1
    }
}

impl Project {
    /// Finds `pgpm.toml` in `start` or the nearest directory above it (or
    /// reads `explicit`), and the `.env` of the project's root. No config
    /// file is no error: the project then has no targets.
    pub fn discover(start: &Path, explicit: Option<&Path>) -> Result<Project> {
        let file = match explicit {
            Some(path) => Some(path.to_path_buf()),
            None => start
                .ancestors()
                .map(|dir| dir.join(FILE_NAME))
                .find(|candidate| candidate.is_file()),
        };
        let root = file
            .as_deref()
            .and_then(Path::parent)
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(start)
            .to_path_buf();
        let dotenv = read_dotenv(&root.join(".env"))?;
        let mut project = Project {
            root,
            file: None,
            dotenv,
            ..Project::default()
        };
        if let Some(file) = file {
            let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Io {
                path: file.clone(),
                source,
            })?;
            project.read_toml(&file, &text)?;
            project.file = Some(file);
        }
        Ok(project)
    }

    fn read_toml(&mut self, path: &Path, text: &str) -> Result<()> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let parsed: ProjectToml = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        self.default = parsed.default;
        self.defaults = parsed.defaults;
        // Checked now; its variables are only needed by --announce.
        if let Err(AnnounceProblem {
            refused: Some(refused),
            ..
        }) = self.read_announce(parsed.announce.clone())
        {
            return Err(invalid(refused));
        }
        self.announce = parsed.announce;
        for (name, fields) in parsed.targets {
            let text_of = |key: &str, value: &toml::Value| -> Result<String> {
                let raw = match value {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    _ => {
                        return Err(invalid(format!(
                            "targets.{name}.{key}: expected a string or a number"
                        )));
                    }
                };
                // In a URL's user and password (`postgres://${USER}:${PW}@host`)
                // a variable's value is percent-encoded, so that an `@`, `:`
                // or `/` in it stays in its part; elsewhere (a whole URL in
                // a variable, hosts, a query) it is taken as it is.
                let encoded = if key == "url" {
                    let userinfo = userinfo_range(&raw);
                    self.interpolate_with(&raw, |at, value| {
                        if userinfo.contains(&at) {
                            percent_encode(value)
                        } else {
                            value.to_string()
                        }
                    })
                } else {
                    self.interpolate(&raw)
                };
                encoded.map_err(|var| {
                    invalid(format!(
                        "targets.{name}.{key}: ${{{var}}} is not set (in the environment or .env)"
                    ))
                })
            };
            if fields.contains_key("password") {
                return Err(invalid(format!(
                    "targets.{name}.password: passwords are never stored in {FILE_NAME}: use ~/.pgpass, PGPASSWORD or password = \"${{VAR}}\" in the url"
                )));
            }
            let mut url = None;
            let mut environment = None;
            let mut product = None;
            let mut keywords = Vec::new();
            for (key, value) in &fields {
                let v = text_of(key, value)?;
                match key.as_str() {
                    "url" => {
                        if let toml::Value::String(raw) = value
                            && literal_password(raw)
                        {
                            return Err(invalid(format!(
                                "targets.{name}.url holds a password: passwords are never stored in {FILE_NAME}: use ~/.pgpass, PGPASSWORD or ${{VAR}}"
                            )));
                        }
                        url = Some(v);
                    }
                    "environment" => environment = Some(v),
                    "product" => product = Some(v),
                    _ => keywords.push(format!(
                        "{key}='{}'",
                        v.replace('\\', "\\\\").replace('\'', "\\'")
                    )),
                }
            }
            let conn = match (url, keywords.is_empty()) {
                (Some(url), true) => url,
                (None, false) => keywords.join(" "),
                (Some(_), false) => {
                    return Err(invalid(format!(
                        "targets.{name}: give either url or connection fields (host, port, dbname, user, ...), not both"
                    )));
                }
                (None, true) => {
                    return Err(invalid(format!(
                        "targets.{name}: no url and no connection fields (host, port, dbname, user, ...)"
                    )));
                }
            };
            let def = TargetDef {
                name: name.clone(),
                environment,
                product,
                source: path.to_path_buf(),
                named: true,
                conn,
            };
            // Checked now, so a typo fails before anything connects.
            self.conninfo(&def)?;
            self.targets.push(def);
        }
        if let Some(default) = &self.default
            && !self.targets.iter().any(|t| &t.name == default)
        {
            return Err(invalid(format!(
                "default = \"{default}\", but no [targets.{default}] is defined"
            )));
        }
        Ok(())
    }

    /// The hooks of `[announce]` as `--announce` runs them: their
    /// `${VAR}`s replaced (an unset one is an error naming it).
    pub fn announce_hooks(&self) -> Result<Announce> {
        self.read_announce(self.announce.clone())
            .map_err(|e| ConfigError::Invalid {
                path: self.file.clone().unwrap_or_else(|| FILE_NAME.into()),
                message: e.refused.or(e.unset).unwrap_or_default(),
            })
    }

    /// The announce hooks with their `${VAR}`s replaced. A password
    /// written in the file is refused (`refused`); an unset variable is
    /// said in `unset`, which only `--announce` needs.
    fn read_announce(&self, mut a: Announce) -> std::result::Result<Announce, AnnounceProblem> {
        let unset = std::cell::RefCell::new(None::<String>);
        let var = |what: &str, text: &mut String| -> std::result::Result<(), AnnounceProblem> {
            match self.interpolate(text) {
                Ok(value) => *text = value,
                Err(v) => {
                    unset.borrow_mut().get_or_insert(format!(
                        "announce.{what}: ${{{v}}} is not set (in the environment or .env)"
                    ));
                }
            }
            Ok(())
        };
        if let Some(email) = &mut a.email {
            if let Some(password) = &mut email.password {
                if !password.contains("${") {
                    return Err(AnnounceProblem::refused(format!(
                        "announce.email.password: passwords are never stored in {FILE_NAME}: write password = \"${{VAR}}\" and set VAR in the environment or .env"
                    )));
                }
                var("email.password", password)?;
            }
            var("email.server", &mut email.server)?;
            if let Some(user) = &mut email.username {
                var("email.username", user)?;
            }
            var("email.from", &mut email.from)?;
            for to in &mut email.to {
                var("email.to", to)?;
            }
            if email.to.is_empty() {
                return Err(AnnounceProblem::refused(
                    "announce.email.to: no recipient".into(),
                ));
            }
            email.ca_file = email.ca_file.take().map(|f| self.root.join(f));
        }
        for hook in &mut a.webhook {
            var("webhook.url", &mut hook.url)?;
            for value in hook.headers.values_mut() {
                var("webhook.headers", value)?;
            }
        }
        match unset.into_inner() {
            Some(unset) => Err(AnnounceProblem {
                refused: None,
                unset: Some(unset),
            }),
            None => Ok(a),
        }
    }

    /// Adds the connection sets of the ancestor's global config. A target
    /// named like one of `pgpm.toml` is left out (the project's wins);
    /// returns the names left out so.
    pub fn add_global(&mut self, global: &GlobalConfig) -> Result<Vec<String>> {
        let mut shadowed = Vec::new();
        for def in global.targets()? {
            if self
                .targets
                .iter()
                .any(|t| t.name == def.name && t.source != def.source)
            {
                shadowed.push(def.name);
                continue;
            }
            self.targets.push(def);
        }
        Ok(shadowed)
    }

    /// A variable as commands see it: the process environment, then `.env`.
    pub fn var(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.dotenv.get(name).cloned())
    }

    /// `text` with each `${VAR}` replaced; the name of an unset variable
    /// as the error.
    fn interpolate(&self, text: &str) -> std::result::Result<String, String> {
        self.interpolate_with(text, |_, v| v.to_string())
    }

    /// Like [`Project::interpolate`], each variable's value passed through
    /// `encode` with the byte offset of its `${` in `text`.
    fn interpolate_with(
        &self,
        text: &str,
        encode: impl Fn(usize, &str) -> String,
    ) -> std::result::Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let at = text.len() - rest.len() + start;
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let var = &after[..end];
            out.push_str(&encode(at, &self.var(var).ok_or_else(|| var.to_string())?));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The connection of a target, resolved as libpq would (unset options
    /// from `PG*`, the password from the password file).
    pub fn conninfo(&self, target: &TargetDef) -> Result<ConnInfo> {
        ConnInfo::resolve_with(Some(&target.conn), |name| self.var(name)).map_err(|source| {
            ConfigError::Conn {
                path: target.source.clone(),
                target: target.name.clone(),
                source,
            }
        })
    }

    /// The connection when no target is selected: the explicit one, else
    /// the project's default target, else `DATABASE_URL` and `PG*` (the
    /// process's, then `.env`'s).
    pub fn default_conninfo(&self, explicit: Option<&str>) -> Result<ConnInfo, ConnError> {
        if explicit.is_none()
            && let Some(target) = self
                .default
                .as_ref()
                .and_then(|d| self.targets.iter().find(|t| &t.name == d))
        {
            return ConnInfo::resolve_with(Some(&target.conn), |name| self.var(name));
        }
        ConnInfo::resolve_with(explicit, |name| self.var(name))
    }

    /// The targets a selection names, in config order (for `--target`, in
    /// the order given). Refuses an unknown name and an empty set.
    pub fn select(&self, selection: &Selection) -> Result<Vec<&TargetDef>> {
        let known = || self.targets.iter().map(|t| t.name.clone()).collect();
        let mut out = Vec::new();
        for name in &selection.targets {
            let target = self
                .targets
                .iter()
                .find(|t| &t.name == name)
                .ok_or_else(|| ConfigError::UnknownTarget {
                    name: name.clone(),
                    known: known(),
                })?;
            out.push(target);
        }
        if let Some(env) = &selection.env {
            for name in &selection.names {
                if !self.targets.iter().any(|t| &t.name == name) {
                    return Err(ConfigError::UnknownTarget {
                        name: name.clone(),
                        known: known(),
                    });
                }
            }
            let matching: Vec<&TargetDef> = self
                .targets
                .iter()
                .filter(|t| t.environment.as_ref() == Some(env))
                .filter(|t| selection.product.is_none() || t.product == selection.product)
                .filter(|t| {
                    selection.names.is_empty()
                        || (t.named && selection.names.contains(&t.name) != selection.except)
                })
                .filter(|t| !out.iter().any(|o: &&TargetDef| o.name == t.name))
                .collect();
            if matching.is_empty() {
                return Err(ConfigError::EmptySet {
                    env: env.clone(),
                    product: selection.product.clone(),
                    names: selection.names.clone(),
                    except: selection.except,
                });
            }
            out.extend(matching);
        }
        Ok(out)
    }
}

/// Whether a URI as written holds a password that is not a `${VAR}`.
fn literal_password(raw: &str) -> bool {
    let Some(rest) = raw
        .strip_prefix("postgres://")
        .or_else(|| raw.strip_prefix("postgresql://"))
    else {
        // keyword/value: password=... (spaces around `=` allowed)
        return raw
            .replace(" =", "=")
            .replace("= ", "=")
            .split_whitespace()
            .any(|kv| kv.starts_with("password=") && !kv.contains("${"));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return rest.contains("password=") && !rest.contains("password=${");
    };
    if rest.contains("password=") && !rest.contains("password=${") {
        return true;
    }
    match userinfo.split_once(':') {
        Some((_, password)) => !(password.starts_with("${") && password.ends_with('}')),
        None => false,
    }
}

/// `KEY=VALUE` lines of a `.env` file (`export ` prefixes, quotes and
/// `#` comments allowed), as dbmate and sqlx read them. None when there
/// is no file.
fn read_dotenv(path: &Path) -> Result<HashMap<String, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(source) => {
            return Err(ConfigError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut vars = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            // `export NAME` alone exports what the shell has: nothing here.
            if line.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!("line {}: expected KEY=VALUE", n + 1),
            });
        };
        let value = value.trim();
        // A comment after a quoted value: `PW="abc" # note`.
        let value = match value.chars().next() {
            Some(q @ ('"' | '\'')) => match value[1..].find(q) {
                Some(end) => &value[..end + 2],
                None => value,
            },
            _ => value,
        };
        let value = match value.chars().next() {
            Some(q @ ('"' | '\'')) if value.len() >= 2 && value.ends_with(q) => {
                value[1..value.len() - 1].to_string()
            }
            _ => value
                .split_once(" #")
                .map(|(v, _)| v)
                .unwrap_or(value)
                .trim()
                .to_string(),
        };
        vars.insert(key.trim().to_string(), value);
    }
    Ok(vars)
}

/// Where a URL's user and password are (between `://` and the `@` before
/// the host), as written with its `${VAR}`s; empty without them.
fn userinfo_range(url: &str) -> std::ops::Range<usize> {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return 0..0;
    };
    let rest = &url[scheme_end..];
    // The authority ends at the first `/`, `?` or `#` outside a `${...}`.
    let mut depth = 0;
    let mut end = rest.len();
    let bytes = rest.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'$' if bytes.get(i + 1) == Some(&b'{') => depth += 1,
            b'}' if depth > 0 => depth -= 1,
            b'/' | b'?' | b'#' if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    match rest[..end].rfind('@') {
        Some(at) => scheme_end..scheme_end + at,
        None => 0..0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(toml: &str) -> Result<Project> {
        let mut p = Project::default();
        p.dotenv.insert("DEPLOY_USER".into(), "deployer".into());
        p.read_toml(Path::new("pgpm.toml"), toml)?;
        Ok(p)
    }

    #[test]
    fn targets_from_urls_and_fields_with_variables() {
        let p = project(
            r#"
            default = "dev"
            [targets.dev]
            url = "postgres://me@localhost/app"
            [targets.eu1]
            host = "db1.eu"
            port = 6432
            dbname = "app"
            user = "${DEPLOY_USER}"
            environment = "prod"
            product = "billing"
            "#,
        )
        .unwrap();
        let eu1 = p.conninfo(&p.targets[0]).unwrap();
        assert_eq!(p.targets[0].name, "dev");
        assert_eq!(eu1.dbname(), "app");
        let eu1 = p.conninfo(&p.targets[1]).unwrap();
        assert_eq!(eu1.user(), "deployer");
        assert_eq!(eu1.port(), 6432);
        assert_eq!(eu1.host(), "db1.eu");
    }

    #[test]
    fn a_variable_inside_a_url_is_one_part_of_it() {
        let mut p = Project::default();
        p.dotenv.insert("PW".into(), "p@ss/w:rd".into());
        p.dotenv
            .insert("URL".into(), "postgres://u@h:5433/whole".into());
        p.read_toml(
            Path::new("pgpm.toml"),
            "[targets.a]\nurl = \"postgres://me:${PW}@h/db\"\n[targets.b]\nurl = \"${URL}\"",
        )
        .unwrap();
        let a = p.conninfo(&p.targets[0]).unwrap();
        assert_eq!(a.get("password"), Some("p@ss/w:rd"));
        assert_eq!((a.host().as_str(), a.dbname().as_str()), ("h", "db"));
        let b = p.conninfo(&p.targets[1]).unwrap();
        assert_eq!((b.port(), b.dbname().as_str()), (5433, "whole"));
        // Only the user and password are encoded: a URL that starts with a
        // variable, and hosts in one, are taken as they are.
        let mut p = Project::default();
        p.dotenv
            .insert("URL".into(), "postgres://u@h:5433/whole".into());
        p.dotenv.insert("HOSTS".into(), "h1:5432,h2:5433".into());
        p.read_toml(
            Path::new("pgpm.toml"),
            "[targets.a]\nurl = \"${URL}?sslmode=disable\"\n[targets.b]\nurl = \"postgres://me@${HOSTS}/db\"",
        )
        .unwrap();
        let a = p.conninfo(&p.targets[0]).unwrap();
        assert_eq!(
            (a.dbname().as_str(), a.get("sslmode")),
            ("whole", Some("disable"))
        );
        let b = p.conninfo(&p.targets[1]).unwrap();
        assert_eq!(b.host(), "h1,h2");
    }

    #[test]
    fn announce_variables_are_needed_by_announce_only() {
        let toml = "[announce.email]\nserver = \"smtp\"\npassword = \"${SMTP_PW_UNSET}\"\nfrom = \"a@b\"\nto = [\"c@d\"]";
        let p = project(toml).unwrap();
        let err = p.announce_hooks().unwrap_err().to_string();
        assert!(err.contains("${SMTP_PW_UNSET} is not set"), "{err}");
        // A literal password is refused whatever the command.
        let err = project(&toml.replace("${SMTP_PW_UNSET}", "hunter2")).unwrap_err();
        assert!(err.to_string().contains("never stored"), "{err}");
    }

    #[test]
    fn passwords_unknown_keys_and_unset_variables_are_refused() {
        let err = |toml: &str| project(toml).unwrap_err().to_string();
        assert!(err("[targets.a]\nurl = \"postgres://me:secret@h/db\"").contains("never stored"),);
        assert!(err("[targets.a]\nhost = \"h\"\npassword = \"x\"").contains("never stored"));
        assert!(
            project("[targets.a]\nurl = \"postgres://me:${PW}@h/db\"")
                .is_err_and(|e| e.to_string().contains("${PW} is not set"))
        );
        assert!(err("[targets.a]\nhots = \"h\"").contains("did you mean \"host\""));
        assert!(err("defaults = 1").contains("pgpm.toml"));
        assert!(err("default = \"b\"\n[targets.a]\nhost = \"h\"").contains("no [targets.b]"));
    }

    #[test]
    fn selection_by_environment_product_and_names() {
        let p = project(
            r#"
            [targets.a]
            host = "a"
            environment = "prod"
            product = "billing"
            [targets.b]
            host = "b"
            environment = "prod"
            product = "billing"
            [targets.c]
            host = "c"
            environment = "prod"
            product = "shop"
            [targets.d]
            host = "d"
            environment = "test"
            "#,
        )
        .unwrap();
        let names = |s: Selection| -> Vec<String> {
            p.select(&s)
                .unwrap()
                .iter()
                .map(|t| t.name.clone())
                .collect()
        };
        let prod = Selection {
            env: Some("prod".into()),
            ..Selection::default()
        };
        assert_eq!(names(prod.clone()), ["a", "b", "c"]);
        let billing = Selection {
            product: Some("billing".into()),
            ..prod.clone()
        };
        assert_eq!(names(billing.clone()), ["a", "b"]);
        assert_eq!(
            names(Selection {
                names: vec!["a".into()],
                except: true,
                ..billing.clone()
            }),
            ["b"]
        );
        assert_eq!(
            names(Selection {
                names: vec!["b".into()],
                ..billing
            }),
            ["b"]
        );
        let err = p
            .select(&Selection {
                env: Some("staging".into()),
                ..Selection::default()
            })
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("no target has environment staging")
        );
        let err = p
            .select(&Selection {
                targets: vec!["zz".into()],
                ..Selection::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("the targets are: a, b, c, d"));
    }

    #[test]
    fn dotenv_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "# comment\nexport DATABASE_URL=\"postgres://x@h/db\"\nPGPORT=6543 # the port\nEMPTY=\n",
        )
        .unwrap();
        let vars = read_dotenv(&path).unwrap();
        assert_eq!(vars["DATABASE_URL"], "postgres://x@h/db");
        assert_eq!(vars["PGPORT"], "6543");
        assert_eq!(vars["EMPTY"], "");
    }
}
