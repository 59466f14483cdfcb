//! A package's manifest: `package.json` (or the ancestor's `config.json`),
//! its validation, and the schema name it implies.
//!
//! Parsing is strict: an unknown key, a value of the wrong type or a name
//! PostgreSQL would need quoted is an error that says what is allowed, so a
//! typo never silently drops a folder or a dependency. The ancestor's
//! `config.json` is read by the same rules plus its own spellings (`class`,
//! `user_roles`, comma-separated folder lists, `01_04_00` versions), so old
//! packages keep working unchanged.
//!
//! Over 800 lines, 165 of them tests: one validation (and one message) per
//! key of two dialects, kept in one place so that the rules for a key are
//! read together.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use semver::{Version, VersionReq};
use serde_json::{Map, Value};

use crate::version::{self, SemverError};

/// The manifest's file name.
pub const FILE_NAME: &str = "package.json";
/// The ancestor pgpm's manifest file name, still accepted.
pub const ANCESTOR_FILE_NAME: &str = "config.json";

/// PostgreSQL's identifier limit (NAMEDATALEN - 1): longer names are
/// silently truncated by the server, so pgpm refuses them instead.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Keys `package.json` may have.
pub const KNOWN_KEYS: &[&str] = &[
    "name",
    "version",
    "subclass",
    "scope",
    "description",
    "license",
    "owner_role",
    "usage_roles",
    "table_grants",
    "extensions",
    "settings",
    "dependencies",
    "types_path",
    "tables_path",
    "functions_path",
    "views_path",
    "triggers_path",
];

/// The session settings the ancestor deployed with, which a `config.json`
/// package gets unless its `settings` say otherwise.
pub const ANCESTOR_SETTINGS: &[(&str, &str)] = &[
    ("check_function_bodies", "off"),
    ("client_min_messages", "warning"),
    ("escape_string_warning", "off"),
    ("standard_conforming_strings", "off"),
    ("statement_timeout", "0"),
];

/// Keys only the ancestor's `config.json` may have: `class` (always
/// `postgres_sql`, ignored) and `user_roles` (the old name of `usage_roles`).
pub const ANCESTOR_KEYS: &[&str] = &["class", "user_roles"];

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}:{line}:{column}: malformed JSON: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{}: not UTF-8 text (first bad byte at offset {offset}): JSON manifests are UTF-8",
        path.display()
    )]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{}: the manifest must be a JSON object", path.display())]
    NotAnObject { path: PathBuf },
    #[error("{}: unknown key \"{key}\"; the known keys are: {}", path.display(), known.join(", "))]
    UnknownKey {
        path: PathBuf,
        key: String,
        known: Vec<&'static str>,
    },
    #[error("{}: \"{key}\" is required", path.display())]
    Missing { path: PathBuf, key: &'static str },
    #[error(
        "{}: \"table_grants\" of table \"{table}\": \"{privilege}\" is not one of {}",
        path.display(),
        TABLE_PRIVILEGES.join(", ")
    )]
    TablePrivilege {
        path: PathBuf,
        table: String,
        privilege: String,
    },
    #[error("{}: \"{key}\" {expected}", path.display())]
    Type {
        path: PathBuf,
        key: String,
        expected: &'static str,
    },
    #[error(
        "{}: invalid package name \"{name}\": use lower-case letters, digits and `_`, starting with a letter{}",
        path.display(),
        if name.starts_with("pg_") { " (names starting with pg_ are reserved by PostgreSQL)" } else { "" }
    )]
    Name { path: PathBuf, name: String },
    #[error("{}: invalid \"version\"", path.display())]
    Version {
        path: PathBuf,
        #[source]
        source: SemverError,
    },
    #[error("{}: \"{key}\" is \"{value}\"; use one of: {}", path.display(), allowed.join(", "))]
    Choice {
        path: PathBuf,
        key: &'static str,
        value: String,
        allowed: &'static [&'static str],
    },
    #[error(
        "{}: schema name \"{schema}\" is {} bytes, over PostgreSQL's limit of {MAX_IDENTIFIER_BYTES}: shorten the package name",
        path.display(),
        schema.len()
    )]
    SchemaTooLong { path: PathBuf, schema: String },
    #[error("{}: invalid requirement for dependency \"{dependency}\"", path.display())]
    Requirement {
        path: PathBuf,
        dependency: String,
        #[source]
        source: SemverError,
    },
    #[error("{}: invalid dependency name \"{dependency}\": package names use lower-case letters, digits and `_`, starting with a letter", path.display())]
    DependencyName { path: PathBuf, dependency: String },
    #[error("{}: \"extensions\": {message}", path.display())]
    Extension { path: PathBuf, message: String },
    #[error("{}: \"settings\": {message}", path.display())]
    Setting { path: PathBuf, message: String },
    #[error("{}: package \"{name}\" depends on itself", path.display())]
    SelfDependency { path: PathBuf, name: String },
    #[error("{}: \"{key}\" folder \"{folder}\" must be a relative path inside the package", path.display())]
    FolderOutside {
        path: PathBuf,
        key: &'static str,
        folder: String,
    },
    #[error("{}: \"{key}\" folder \"{folder}\" does not exist in {}", path.display(), dir.display())]
    FolderMissing {
        path: PathBuf,
        key: &'static str,
        folder: String,
        dir: PathBuf,
    },
}

impl ManifestError {
    /// The manifest the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ManifestError::Json { path, .. }
            | ManifestError::NotUtf8 { path, .. }
            | ManifestError::NotAnObject { path, .. }
            | ManifestError::UnknownKey { path, .. }
            | ManifestError::Missing { path, .. }
            | ManifestError::TablePrivilege { path, .. }
            | ManifestError::Type { path, .. }
            | ManifestError::Name { path, .. }
            | ManifestError::Version { path, .. }
            | ManifestError::Choice { path, .. }
            | ManifestError::SchemaTooLong { path, .. }
            | ManifestError::Requirement { path, .. }
            | ManifestError::DependencyName { path, .. }
            | ManifestError::Extension { path, .. }
            | ManifestError::Setting { path, .. }
            | ManifestError::SelfDependency { path, .. }
            | ManifestError::FolderOutside { path, .. }
            | ManifestError::FolderMissing { path, .. } => path,
        }
    }
}

/// The kinds of SQL folder a package has, in the order they deploy.
///
/// Types come first because everything else uses them; table scripts next
/// because functions, views and triggers refer to tables; triggers last
/// because they need both their table and their function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Types,
    Tables,
    Functions,
    Views,
    Triggers,
}

impl Phase {
    /// Every phase, in deploy order.
    pub const ALL: [Phase; 5] = [
        Phase::Types,
        Phase::Tables,
        Phase::Functions,
        Phase::Views,
        Phase::Triggers,
    ];

    /// Lower-case name: `types`, `tables`, ...
    pub fn name(self) -> &'static str {
        match self {
            Phase::Types => "types",
            Phase::Tables => "tables",
            Phase::Functions => "functions",
            Phase::Views => "views",
            Phase::Triggers => "triggers",
        }
    }

    /// The manifest key naming this phase's folders.
    pub fn key(self) -> &'static str {
        match self {
            Phase::Types => "types_path",
            Phase::Tables => "tables_path",
            Phase::Functions => "functions_path",
            Phase::Views => "views_path",
            Phase::Triggers => "triggers_path",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a package's schema is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subclass {
    /// One schema per version, `name_MAJOR_MINOR_PATCH`: versions live side by side.
    Versioned,
    /// One schema, `name`: a new version replaces the old one.
    Basic,
}

impl Subclass {
    pub fn as_str(self) -> &'static str {
        match self {
            Subclass::Versioned => "versioned",
            Subclass::Basic => "basic",
        }
    }
}

impl fmt::Display for Subclass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a package's objects go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A schema of the package's own.
    Schema,
    /// The database's default `search_path`; no schema of its own.
    Database,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Schema => "schema",
            Scope::Database => "database",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Privileges `table_grants` may name.
pub const TABLE_PRIVILEGES: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
];

/// One entry of `table_grants`: a table of the package and what its usage
/// roles may do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableGrant {
    /// The table's name in the package's schema, as written (not quoted).
    pub table: String,
    /// Upper case, from [`TABLE_PRIVILEGES`], without duplicates.
    pub privileges: Vec<&'static str>,
}

/// One entry of `extensions`: created with `CREATE EXTENSION` when the
/// database does not have it yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// As PostgreSQL names it (`pgcrypto`, `uuid-ossp`).
    pub name: String,
    /// The version it must have; `None` (`"*"` or `null`) for any.
    pub version: Option<String>,
}

/// Settings a package may not take: pgpm sets the search path itself, and
/// who runs the deploy is not the package's to change.
const SETTINGS_NOT_ALLOWED: &[(&str, &str)] = &[
    (
        "search_path",
        "pgpm sets it to the package's schema and its dependencies' schemas; name other schemas in the SQL (@schema@, @dependency@)",
    ),
    (
        "role",
        "give the package's objects an owner with owner_role",
    ),
    (
        "session_authorization",
        "give the package's objects an owner with owner_role",
    ),
];

/// One entry of `dependencies`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependency {
    pub name: String,
    /// The requirement as written in the manifest (`^1.2`, `01_02_xx`).
    pub requirement: String,
    /// The requirement as a Cargo-style semver range.
    pub req: VersionReq,
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub version: Version,
    pub subclass: Subclass,
    pub scope: Scope,
    pub description: Option<String>,
    pub license: Option<String>,
    pub owner_role: Option<String>,
    pub usage_roles: Vec<String>,
    /// Privileges on the package's own tables that its usage roles get, by
    /// table (sorted): the tables its API reads or writes for them.
    pub table_grants: Vec<TableGrant>,
    /// Extensions the package needs, sorted by name.
    pub extensions: Vec<Extension>,
    /// Session settings the package's statements run with (`SET LOCAL`,
    /// reset after the package), sorted by name; values as PostgreSQL
    /// takes them in `set_config`.
    pub settings: Vec<(String, String)>,
    /// Sorted by name.
    pub dependencies: Vec<Dependency>,
    /// The package directory.
    pub dir: PathBuf,
    /// The manifest file (`<dir>/package.json` or `<dir>/config.json`).
    pub manifest_path: PathBuf,
    /// Folders per phase, relative to `dir`, as listed (duplicates removed).
    folders: [Vec<PathBuf>; 5],
    schema: Option<String>,
    /// Every non-hidden file of the folders is SQL, whatever its name (the
    /// ancestor's rule, for `config.json`); else only `*.sql`.
    pub every_file: bool,
    /// Read from the ancestor's `config.json`: deployed as it deployed
    /// (names, settings, the notification its listeners expect).
    pub ancestor: bool,
    /// What reading the manifest found worth telling (ignored keys).
    pub warnings: Vec<String>,
}

impl Manifest {
    /// Validates a manifest read from `path` and checks that its folders exist.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ManifestError::NotUtf8 {
            path: path.to_path_buf(),
            offset: e.valid_up_to(),
        })?;
        let manifest = Manifest::parse(path, text)?;
        manifest.check_folders()?;
        Ok(manifest)
    }

    /// Validates manifest text; `path` names the file in messages and
    /// decides the dialect (`config.json` is the ancestor's). Does not touch
    /// the disk.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let ancestor = path.file_name().is_some_and(|n| n == ANCESTOR_FILE_NAME);
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value: Value = serde_json::from_str(text).map_err(|e| ManifestError::Json {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: json_message(&e),
        })?;
        let Value::Object(map) = value else {
            return Err(ManifestError::NotAnObject {
                path: path.to_path_buf(),
            });
        };
        Fields {
            path,
            map,
            ancestor,
            warnings: Vec::new(),
        }
        .manifest()
    }

    /// The schema the package deploys into; `None` for `scope: database`.
    /// Named after the package (and, for `versioned`, its version) unless a
    /// deploy chose another with [`Manifest::deploy_into`].
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Makes the package deploy into `schema` instead: the schema of a new
    /// revision, or the one the catalog records for its current revision.
    /// Does nothing to a `scope: database` package, which has none.
    pub fn deploy_into(&mut self, schema: String) {
        if self.schema.is_some() {
            self.schema = Some(schema);
        }
    }

    /// The phase's folders, relative to the package directory.
    pub fn folders(&self, phase: Phase) -> &[PathBuf] {
        &self.folders[phase.index()]
    }

    /// `name version`, the way messages name a package.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    /// Every listed folder must be a directory.
    fn check_folders(&self) -> Result<(), ManifestError> {
        for phase in Phase::ALL {
            for folder in self.folders(phase) {
                if !self.dir.join(folder).is_dir() {
                    return Err(ManifestError::FolderMissing {
                        path: self.manifest_path.clone(),
                        key: phase.key(),
                        folder: folder.display().to_string(),
                        dir: self.dir.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The schema name for a package version: `name` for basic packages,
/// `name_MAJOR_MINOR_PATCH[_PRE]` for versioned ones, where every character
/// of the pre-release that is not a letter or digit becomes `_` and letters
/// are lower-cased (`2.0.0-rc.1` gives `_2_0_0_rc_1`), so the result never
/// needs quoting.
pub fn schema_name(name: &str, version: &Version, subclass: Subclass) -> String {
    match subclass {
        Subclass::Basic => name.to_string(),
        Subclass::Versioned => {
            let mut schema = format!(
                "{name}_{}_{}_{}",
                version.major, version.minor, version.patch
            );
            if !version.pre.is_empty() {
                schema.push('_');
                schema.extend(version.pre.as_str().chars().map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                }));
            }
            schema
        }
    }
}

/// The ancestor's schema name for a `config.json` package: `name` for
/// basic packages, `name_VERSION` for versioned ones with the version as
/// written (`billing_01_09_00`), lower-cased as PostgreSQL folds the
/// unquoted identifier the ancestor created, and every character that is
/// not a letter, digit or `_` made `_`.
pub fn ancestor_schema_name(name: &str, version_text: &str, subclass: Subclass) -> String {
    let raw = match subclass {
        Subclass::Basic => name.to_string(),
        Subclass::Versioned => format!("{name}_{}", version_text.trim()),
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The ancestor's requirements of one number (`"01"`, `">01"`): a major
/// version, any minor and patch, written so [`version::parse_requirement`]
/// reads them as the ancestor's form (`01_x`, `>01_x`). Others as they are.
fn ancestor_requirement(text: &str) -> String {
    let t = text.trim();
    let digits = t.trim_start_matches(['<', '>', '=']).trim_start();
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let op = &t[..t.len() - digits.len()];
        format!("{}{digits}_x", op.trim())
    } else {
        text.to_string()
    }
}

/// Whether `name` is a valid package name: `[a-z][a-z0-9_]*`, not `pg_...`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("pg_")
}

/// serde_json's message without its trailing " at line L column C".
fn json_message(e: &serde_json::Error) -> String {
    let message = e.to_string();
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    }
}

/// The manifest's keys while they are being validated.
struct Fields<'a> {
    path: &'a Path,
    map: Map<String, Value>,
    ancestor: bool,
    warnings: Vec<String>,
}

impl Fields<'_> {
    fn manifest(mut self) -> Result<Manifest, ManifestError> {
        self.check_keys()?;
        let name = self.string("name")?.ok_or_else(|| self.missing("name"))?;
        // The ancestor also took names that start with `_` (`_audit`).
        let valid = valid_name(&name)
            || (self.ancestor && name.starts_with('_') && valid_name(&format!("a{name}")));
        if !valid {
            return Err(ManifestError::Name {
                path: self.path.to_path_buf(),
                name,
            });
        }
        let version_text = self
            .string("version")?
            .ok_or_else(|| self.missing("version"))?;
        let version =
            version::parse_version(&version_text).map_err(|source| ManifestError::Version {
                path: self.path.to_path_buf(),
                source,
            })?;
        let subclass = match self.choice("subclass", &["versioned", "basic"])? {
            Some("basic") => Subclass::Basic,
            _ => Subclass::Versioned,
        };
        // The ancestor wrote the scope in capitals (`"DATABASE"`).
        if self.ancestor
            && let Some(Value::String(scope)) = self.map.get_mut("scope")
        {
            *scope = scope.to_ascii_lowercase();
        }
        let scope = match self.choice("scope", &["schema", "database"])? {
            Some("database") => Scope::Database,
            _ => Scope::Schema,
        };
        let schema = match scope {
            Scope::Database => None,
            Scope::Schema => {
                let schema = if self.ancestor {
                    ancestor_schema_name(&name, &version_text, subclass)
                } else {
                    schema_name(&name, &version, subclass)
                };
                if schema.len() > MAX_IDENTIFIER_BYTES {
                    return Err(ManifestError::SchemaTooLong {
                        path: self.path.to_path_buf(),
                        schema,
                    });
                }
                Some(schema)
            }
        };
        let mut usage_roles = self.strings("usage_roles")?;
        if self.ancestor {
            usage_roles.extend(self.strings("user_roles")?);
        }
        let mut folders: [Vec<PathBuf>; 5] = Default::default();
        for phase in Phase::ALL {
            folders[phase.index()] = self.folders(phase)?;
        }
        let dependencies = self.dependencies(&name)?;
        let table_grants = self.table_grants()?;
        let extensions = self.extensions()?;
        let settings = self.settings()?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(Manifest {
            description: self.string("description")?,
            license: self.string("license")?,
            owner_role: self.string("owner_role")?,
            name,
            version,
            subclass,
            scope,
            usage_roles,
            table_grants,
            extensions,
            settings,
            dependencies,
            dir,
            manifest_path: self.path.to_path_buf(),
            folders,
            schema,
            every_file: self.ancestor,
            ancestor: self.ancestor,
            warnings: self.warnings,
        })
    }

    /// Refuses a key pgpm does not know; in the ancestor's `config.json`,
    /// which had keys of its users' own (`"users"`), they are dropped and
    /// named in warnings instead.
    fn check_keys(&mut self) -> Result<(), ManifestError> {
        let known =
            |k: &str| KNOWN_KEYS.contains(&k) || (self.ancestor && ANCESTOR_KEYS.contains(&k));
        if self.ancestor {
            let unknown: Vec<String> = self.map.keys().filter(|k| !known(k)).cloned().collect();
            for key in unknown {
                self.map.remove(&key);
                self.warnings.push(format!(
                    "{}: unknown key \"{key}\" is ignored (the ancestor ignored it too)",
                    self.path.display()
                ));
            }
            return Ok(());
        }
        // serde_json's map is sorted, so the first unknown key is deterministic.
        if let Some(key) = self.map.keys().find(|k| !known(k)) {
            let mut list = KNOWN_KEYS.to_vec();
            if self.ancestor {
                list.extend(ANCESTOR_KEYS);
            }
            return Err(ManifestError::UnknownKey {
                path: self.path.to_path_buf(),
                key: key.clone(),
                known: list,
            });
        }
        Ok(())
    }

    fn missing(&self, key: &'static str) -> ManifestError {
        ManifestError::Missing {
            path: self.path.to_path_buf(),
            key,
        }
    }

    fn type_error(&self, key: &str, expected: &'static str) -> ManifestError {
        ManifestError::Type {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            expected,
        }
    }

    /// A string value; `null` counts as absent.
    fn string(&mut self, key: &str) -> Result<Option<String>, ManifestError> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.type_error(key, "must be a string")),
        }
    }

    fn choice(
        &mut self,
        key: &'static str,
        allowed: &'static [&'static str],
    ) -> Result<Option<&'static str>, ManifestError> {
        let Some(value) = self.string(key)? else {
            return Ok(None);
        };
        match allowed.iter().find(|a| **a == value) {
            Some(a) => Ok(Some(*a)),
            None => Err(ManifestError::Choice {
                path: self.path.to_path_buf(),
                key,
                value,
                allowed,
            }),
        }
    }

    fn strings(&mut self, key: &str) -> Result<Vec<String>, ManifestError> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(self.type_error(key, "must be a list of strings")),
                })
                .collect(),
            Some(_) => Err(self.type_error(key, "must be a list of strings")),
        }
    }

    /// `table_grants`: `{"table": ["SELECT", ...]}`.
    fn table_grants(&mut self) -> Result<Vec<TableGrant>, ManifestError> {
        let expected = "must be an object of table names to lists of privileges";
        let map = match self.map.remove("table_grants") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(self.type_error("table_grants", expected)),
        };
        let mut grants = Vec::new();
        for (table, privileges) in map {
            let Value::Array(privileges) = privileges else {
                return Err(self.type_error("table_grants", expected));
            };
            let mut named: Vec<&'static str> = Vec::new();
            for privilege in privileges {
                let Value::String(privilege) = privilege else {
                    return Err(self.type_error("table_grants", expected));
                };
                let Some(known) = TABLE_PRIVILEGES
                    .iter()
                    .find(|p| p.eq_ignore_ascii_case(privilege.trim()))
                else {
                    return Err(ManifestError::TablePrivilege {
                        path: self.path.to_path_buf(),
                        table,
                        privilege,
                    });
                };
                if !named.contains(known) {
                    named.push(known);
                }
            }
            if table.is_empty() || named.is_empty() {
                return Err(self.type_error("table_grants", expected));
            }
            grants.push(TableGrant {
                table,
                privileges: named,
            });
        }
        Ok(grants)
    }

    /// `extensions`: `{"pgcrypto": "*", "citext": "1.6"}`, or a list of
    /// names when any version will do.
    fn extensions(&mut self) -> Result<Vec<Extension>, ManifestError> {
        let expected = "must be an object of extension names to versions (\"*\" for any), or a list of extension names";
        let entries: Vec<(String, Value)> = match self.map.remove("extensions") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Object(map)) => map.into_iter().collect(),
            Some(Value::Array(names)) => names.into_iter().map(|n| (String::new(), n)).collect(),
            Some(_) => return Err(self.type_error("extensions", expected)),
        };
        let word = |s: &str| {
            !s.is_empty()
                && s.len() <= MAX_IDENTIFIER_BYTES
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        let mut extensions = Vec::new();
        for (key, value) in entries {
            let (name, version) = match (key.is_empty(), value) {
                (true, Value::String(name)) => (name, None),
                (false, Value::Null) => (key, None),
                (false, Value::String(v)) if v.trim() == "*" => (key, None),
                (false, Value::String(v)) => (key, Some(v.trim().to_string())),
                _ => return Err(self.type_error("extensions", expected)),
            };
            if !word(&name) || version.as_deref().is_some_and(|v| !word(v)) {
                return Err(ManifestError::Extension {
                    path: self.path.to_path_buf(),
                    message: format!(
                        "\"{name}\"{}: names and versions use letters, digits, `_`, `-` and `.`",
                        version.map(|v| format!(" \"{v}\"")).unwrap_or_default()
                    ),
                });
            }
            extensions.push(Extension { name, version });
        }
        extensions.sort_by(|a, b| a.name.cmp(&b.name));
        extensions.dedup_by(|a, b| a.name == b.name && a.version == b.version);
        Ok(extensions)
    }

    /// `settings`: `{"check_function_bodies": "off", "lock_timeout": "5s"}`;
    /// numbers and booleans are taken as PostgreSQL would spell them.
    fn settings(&mut self) -> Result<Vec<(String, String)>, ManifestError> {
        let expected =
            "must be an object of setting names to values (strings, numbers or booleans)";
        let map = match self.map.remove("settings") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(self.type_error("settings", expected)),
        };
        let part = |s: &str| {
            s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let mut settings = Vec::new();
        for (name, value) in map {
            let value = match value {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => if b { "on" } else { "off" }.to_string(),
                _ => return Err(self.type_error("settings", expected)),
            };
            let lower = name.to_ascii_lowercase();
            let error = |message: String| ManifestError::Setting {
                path: self.path.to_path_buf(),
                message,
            };
            if lower.split('.').count() > 2 || !lower.split('.').all(part) {
                return Err(error(format!("\"{name}\" is not a setting name")));
            }
            if let Some((_, hint)) = SETTINGS_NOT_ALLOWED.iter().find(|(n, _)| *n == lower) {
                return Err(error(format!(
                    "\"{name}\" cannot be a package setting: {hint}"
                )));
            }
            settings.push((lower, value));
        }
        // The ancestor deployed with these; its packages are written for
        // them (backslashes in plain strings, forward references in SQL
        // functions). The manifest's own settings win.
        if self.ancestor {
            for (name, value) in ANCESTOR_SETTINGS {
                if !settings.iter().any(|(n, _)| n == name) {
                    settings.push((name.to_string(), value.to_string()));
                }
            }
        }
        settings.sort();
        Ok(settings)
    }

    /// A folder or a list of folders. The ancestor also wrote several
    /// folders as one comma-separated string (`"functions,triggers"`).
    fn folders(&mut self, phase: Phase) -> Result<Vec<PathBuf>, ManifestError> {
        let key = phase.key();
        let expected = "must be a folder or a list of folders";
        let listed: Vec<String> = match self.map.remove(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) if self.ancestor => {
                s.split(',').map(|s| s.trim().to_string()).collect()
            }
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(self.type_error(key, expected)),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(self.type_error(key, expected)),
        };
        let mut folders: Vec<PathBuf> = Vec::new();
        for folder in listed {
            let path = Path::new(&folder);
            let inside = !folder.is_empty()
                && path.components().all(|c| {
                    matches!(c, Component::Normal(_) | Component::CurDir)
                        // The ancestor shared folders between packages
                        // (`"../shared_sql"`).
                        || (self.ancestor && matches!(c, Component::ParentDir))
                });
            if !inside {
                return Err(ManifestError::FolderOutside {
                    path: self.path.to_path_buf(),
                    key,
                    folder,
                });
            }
            // `./types/` and `types` are the same folder.
            let normal: PathBuf = path
                .components()
                .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
                .collect();
            let normal = if normal.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                normal
            };
            if !folders.contains(&normal) {
                folders.push(normal);
            }
        }
        Ok(folders)
    }

    fn dependencies(&mut self, own_name: &str) -> Result<Vec<Dependency>, ManifestError> {
        let expected = "must be an object mapping package names to version requirements";
        let map = match self.map.remove("dependencies") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(self.type_error("dependencies", expected)),
        };
        let mut dependencies = Vec::with_capacity(map.len());
        for (name, requirement) in map {
            let Value::String(requirement) = requirement else {
                return Err(self.type_error("dependencies", expected));
            };
            if !valid_name(&name) {
                return Err(ManifestError::DependencyName {
                    path: self.path.to_path_buf(),
                    dependency: name,
                });
            }
            if name == own_name {
                return Err(ManifestError::SelfDependency {
                    path: self.path.to_path_buf(),
                    name,
                });
            }
            let text = if self.ancestor {
                ancestor_requirement(&requirement)
            } else {
                requirement.clone()
            };
            let req =
                version::parse_requirement(&text).map_err(|source| ManifestError::Requirement {
                    path: self.path.to_path_buf(),
                    dependency: name.clone(),
                    source,
                })?;
            dependencies.push(Dependency {
                name,
                requirement,
                req,
            });
        }
        // The map is sorted by key already; keep that order explicit.
        dependencies.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(dependencies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("pkg/package.json"), json)
    }

    fn error(json: &str) -> String {
        parse(json).unwrap_err().to_string()
    }

    #[test]
    fn schema_names_follow_subclass_version_and_scope() {
        let m = parse(r#"{ "name": "billing", "version": "1.4.0" }"#).unwrap();
        assert_eq!(m.subclass, Subclass::Versioned);
        assert_eq!(m.scope, Scope::Schema);
        assert_eq!(m.schema(), Some("billing_1_4_0"));
        assert_eq!(m.dir, Path::new("pkg"));
        let m = parse(r#"{ "name": "billing", "version": "2.0.0-RC.1+x" }"#);
        assert!(matches!(m, Err(ManifestError::Version { .. })));
        let m = parse(r#"{ "name": "billing", "version": "2.0.0-rc.1" }"#).unwrap();
        assert_eq!(m.schema(), Some("billing_2_0_0_rc_1"));
        let m = parse(r#"{ "name": "b", "version": "1.0.0-Beta-2.x" }"#).unwrap();
        assert_eq!(m.schema(), Some("b_1_0_0_beta_2_x"));
        let m = parse(r#"{ "name": "core", "version": "01_04_00", "subclass": "basic" }"#).unwrap();
        assert_eq!(m.version, Version::new(1, 4, 0));
        assert_eq!(m.schema(), Some("core"));
        let m = parse(r#"{ "name": "ext", "version": "1.0.0", "scope": "database" }"#).unwrap();
        assert_eq!(m.schema(), None);
    }

    #[test]
    fn a_schema_name_over_63_bytes_is_refused() {
        let name = "a".repeat(57);
        // 57 + "_1_0_0" = 63 bytes: allowed.
        let ok = format!(r#"{{ "name": "{name}", "version": "1.0.0" }}"#);
        assert_eq!(parse(&ok).unwrap().schema().unwrap().len(), 63);
        let long = format!(r#"{{ "name": "{name}", "version": "1.0.10" }}"#);
        assert_eq!(
            error(&long),
            format!(
                "pkg/package.json: schema name \"{name}_1_0_10\" is 64 bytes, over PostgreSQL's limit of 63: shorten the package name"
            )
        );
    }

    #[test]
    fn names_are_lower_case_identifiers() {
        for bad in ["Billing", "1billing", "bil-ling", "_billing", "", "bïlling"] {
            let json = format!(r#"{{ "name": "{bad}", "version": "1.0.0" }}"#);
            assert_eq!(
                error(&json),
                format!(
                    "pkg/package.json: invalid package name \"{bad}\": use lower-case letters, digits and `_`, starting with a letter"
                ),
            );
        }
        assert!(
            error(r#"{ "name": "pg_stuff", "version": "1.0.0" }"#)
                .ends_with("(names starting with pg_ are reserved by PostgreSQL)")
        );
        assert!(parse(r#"{ "name": "a1_b2", "version": "1.0.0" }"#).is_ok());
    }

    #[test]
    fn fields_are_checked_with_messages_that_say_what_is_allowed() {
        assert_eq!(
            error(r#"{ "version": "1.0.0" }"#),
            "pkg/package.json: \"name\" is required"
        );
        assert_eq!(
            error(r#"{ "name": "a" }"#),
            "pkg/package.json: \"version\" is required"
        );
        assert_eq!(
            error(r#"{ "name": "a", "version": 1 }"#),
            "pkg/package.json: \"version\" must be a string"
        );
        assert_eq!(
            error(r#"{ "name": "a", "version": "1.0.0", "subclass": "fancy" }"#),
            "pkg/package.json: \"subclass\" is \"fancy\"; use one of: versioned, basic"
        );
        assert_eq!(
            error(r#"{ "name": "a", "version": "1.0.0", "scope": "global" }"#),
            "pkg/package.json: \"scope\" is \"global\"; use one of: schema, database"
        );
        assert_eq!(
            error(r#"{ "name": "a", "version": "1.0.0", "usage_roles": "app" }"#),
            "pkg/package.json: \"usage_roles\" must be a list of strings"
        );
        assert_eq!(
            error(r#"{ "name": "a", "version": "1.0.0", "types_path": "../shared" }"#),
            "pkg/package.json: \"types_path\" folder \"../shared\" must be a relative path inside the package"
        );
        assert_eq!(
            error(r#"{ "name": "a", "version": "1.0.0", "dependencies": { "b": "^^1" } }"#),
            "pkg/package.json: invalid requirement for dependency \"b\""
        );
        assert_eq!(
            error(r#"{ "name": "a", "version": "1.0.0", "dependencies": { "a": "^1" } }"#),
            "pkg/package.json: package \"a\" depends on itself"
        );
        assert_eq!(
            error(r#"{ "name": "a", "version": "1.0.0", "dependencies": ["b"] }"#),
            "pkg/package.json: \"dependencies\" must be an object mapping package names to version requirements"
        );
        assert_eq!(
            error("[1]"),
            "pkg/package.json: the manifest must be a JSON object"
        );
        assert_eq!(
            error("{\n  \"name\": \"a\",\n}"),
            "pkg/package.json:3:1: malformed JSON: trailing comma"
        );
    }

    #[test]
    fn folders_and_dependencies() {
        let m = parse(
            r#"{
                "name": "a", "version": "1.0.0",
                "types_path": ["types", "./types/", "more/types"],
                "functions_path": "functions",
                "dependencies": { "zeta": "^1", "core": "01_02_xx" },
                "usage_roles": ["reader", "writer"], "owner_role": "owner",
                "description": "d", "license": "MIT"
            }"#,
        )
        .unwrap();
        assert_eq!(
            m.folders(Phase::Types),
            [PathBuf::from("types"), PathBuf::from("more/types")]
        );
        assert_eq!(m.folders(Phase::Functions), [PathBuf::from("functions")]);
        assert!(m.folders(Phase::Tables).is_empty());
        let deps: Vec<(&str, &str, String)> = m
            .dependencies
            .iter()
            .map(|d| (d.name.as_str(), d.requirement.as_str(), d.req.to_string()))
            .collect();
        assert_eq!(
            deps,
            [
                ("core", "01_02_xx", ">=1.2.0, <1.3.0".to_string()),
                ("zeta", "^1", "^1".to_string())
            ]
        );
        assert_eq!(m.usage_roles, ["reader", "writer"]);
        assert_eq!(m.owner_role.as_deref(), Some("owner"));
        // A comma in a package.json folder is part of the name; only the
        // ancestor's config.json lists folders that way.
        let m = parse(r#"{ "name": "a", "version": "1.0.0", "functions_path": "f,g" }"#).unwrap();
        assert_eq!(m.folders(Phase::Functions), [PathBuf::from("f,g")]);
        let m = Manifest::parse(
            Path::new("old/config.json"),
            r#"{ "name": "a", "version": "00_01_00", "functions_path": "f, g" }"#,
        )
        .unwrap();
        assert_eq!(
            m.folders(Phase::Functions),
            [PathBuf::from("f"), PathBuf::from("g")]
        );
    }

    #[test]
    fn extensions_and_settings() {
        let m = parse(
            r#"{
                "name": "a", "version": "1.0.0",
                "extensions": { "pgcrypto": "*", "citext": "1.6", "uuid-ossp": null },
                "settings": { "check_function_bodies": false, "lock_timeout": "5s", "Work_Mem": 64, "app.mode": "x" }
            }"#,
        )
        .unwrap();
        let extensions: Vec<(&str, Option<&str>)> = m
            .extensions
            .iter()
            .map(|e| (e.name.as_str(), e.version.as_deref()))
            .collect();
        assert_eq!(
            extensions,
            [
                ("citext", Some("1.6")),
                ("pgcrypto", None),
                ("uuid-ossp", None)
            ]
        );
        let settings: Vec<(&str, &str)> = m
            .settings
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            settings,
            [
                ("app.mode", "x"),
                ("check_function_bodies", "off"),
                ("lock_timeout", "5s"),
                ("work_mem", "64")
            ]
        );
        let m = parse(r#"{ "name": "a", "version": "1.0.0", "extensions": ["hstore"] }"#).unwrap();
        assert_eq!(m.extensions[0].name, "hstore");
        assert_eq!(m.extensions[0].version, None);

        assert_eq!(
            error(r#"{ "name": "a", "version": "1.0.0", "settings": { "search_path": "x" } }"#),
            "pkg/package.json: \"settings\": \"search_path\" cannot be a package setting: pgpm sets it to the package's schema and its dependencies' schemas; name other schemas in the SQL (@schema@, @dependency@)"
        );
        assert!(
            error(r#"{ "name": "a", "version": "1.0.0", "settings": { "ROLE": "x" } }"#)
                .contains("owner_role")
        );
        assert_eq!(
            error(r#"{ "name": "a", "version": "1.0.0", "settings": { "a b": "x" } }"#),
            "pkg/package.json: \"settings\": \"a b\" is not a setting name"
        );
        assert!(
            error(r#"{ "name": "a", "version": "1.0.0", "settings": { "x": [1] } }"#)
                .contains("must be an object of setting names to values")
        );
        assert_eq!(
            error(r#"{ "name": "a", "version": "1.0.0", "extensions": { "x; DROP": "*" } }"#),
            "pkg/package.json: \"extensions\": \"x; DROP\": names and versions use letters, digits, `_`, `-` and `.`"
        );
        assert!(
            error(r#"{ "name": "a", "version": "1.0.0", "extensions": "pgcrypto" }"#)
                .contains("must be an object of extension names")
        );
    }
}
