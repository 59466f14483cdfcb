//! The ancestor's global config, `~/.pgpmconfig` (JSON), and the
//! connection sets in it, so that its users keep their sets:
//!
//! ```json
//! {"connection_sets": [
//!   {"type": "LIST", "payload": [
//!     {"host": "db1", "port": 5432, "dbname": "app", "environment": "prod",
//!      "product": "billing", "unique_name": "eu1"}]},
//!   {"type": "RESDB", "connection_string": "host=resdb dbname=inventory",
//!    "payload": "SELECT host, port, dbname, environment, product, unique_name FROM dbs"}]}
//! ```
//!
//! As in the ancestor, a file given with `--global-config` is read over
//! `~/.pgpmconfig`: its top-level keys replace the home file's. A target is
//! named by its `unique_name`, else its `dbname`; the user comes from the
//! entry's `user`, else `PGUSER` (the ancestor took it from `-u`).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{ConfigError, Result, TargetDef};
use crate::db::conninfo::ConnInfo;

/// The ancestor's global config, as merged from its files.
#[derive(Debug, Clone, Default)]
pub struct GlobalConfig {
    /// The files read, home file first.
    pub files: Vec<PathBuf>,
    merged: Map<String, Value>,
}

impl GlobalConfig {
    /// Reads `home` (usually `~/.pgpmconfig`) and `extra` when they exist;
    /// a missing file is no error, an unreadable or invalid one is.
    pub fn read(home: Option<&Path>, extra: Option<&Path>) -> Result<GlobalConfig> {
        let mut config = GlobalConfig::default();
        for path in home.into_iter().chain(extra) {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && Some(path) == home => {
                    continue;
                }
                Err(source) => {
                    return Err(ConfigError::Io {
                        path: path.to_path_buf(),
                        source,
                    });
                }
            };
            let value: Value = serde_json::from_str(&text).map_err(|e| ConfigError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            let Value::Object(map) = value else {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: "expected a JSON object".into(),
                });
            };
            config.merged.extend(map);
            config.files.push(path.to_path_buf());
        }
        Ok(config)
    }

    fn file(&self) -> PathBuf {
        self.files.last().cloned().unwrap_or_default()
    }

    /// Every target of the connection sets; `RESDB` sets are queried.
    pub fn targets(&self) -> Result<Vec<TargetDef>> {
        let invalid = |message: String| ConfigError::Invalid {
            path: self.file(),
            message,
        };
        let Some(sets) = self.merged.get("connection_sets") else {
            return Ok(Vec::new());
        };
        let sets = sets
            .as_array()
            .ok_or_else(|| invalid("connection_sets: expected a list".into()))?;
        let mut out = Vec::new();
        for (i, set) in sets.iter().enumerate() {
            let kind = set.get("type").and_then(Value::as_str).unwrap_or("");
            let entries: Vec<Map<String, Value>> = match kind {
                "LIST" => set
                    .get("payload")
                    .and_then(Value::as_array)
                    .ok_or_else(|| {
                        invalid(format!("connection_sets[{i}]: a LIST needs a payload list"))
                    })?
                    .iter()
                    .map(|e| {
                        e.as_object().cloned().ok_or_else(|| {
                            invalid(format!("connection_sets[{i}]: entries are objects"))
                        })
                    })
                    .collect::<Result<_>>()?,
                "RESDB" => {
                    let conn = set
                        .get("connection_string")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            invalid(format!(
                                "connection_sets[{i}]: a RESDB needs a connection_string"
                            ))
                        })?;
                    let query = set.get("payload").and_then(Value::as_str).ok_or_else(|| {
                        invalid(format!(
                            "connection_sets[{i}]: a RESDB needs a payload query"
                        ))
                    })?;
                    query_resdb(conn, query)?
                }
                other => {
                    return Err(invalid(format!(
                        "connection_sets[{i}]: unknown type \"{other}\" (LIST or RESDB)"
                    )));
                }
            };
            for entry in entries {
                let target = self
                    .target(&entry)
                    .map_err(|m| invalid(format!("connection_sets[{i}]: {m}")))?;
                // A unique_name names one database: two would make
                // --target NAME pick one of them silently.
                if target.named
                    && out
                        .iter()
                        .any(|t: &TargetDef| t.named && t.name == target.name)
                {
                    return Err(invalid(format!(
                        "connection_sets[{i}]: unique_name \"{}\" is given to two connections; names must be unique",
                        target.name
                    )));
                }
                out.push(target);
            }
        }
        Ok(out)
    }

    fn target(&self, entry: &Map<String, Value>) -> std::result::Result<TargetDef, String> {
        let text = |key: &str| -> Option<String> {
            match entry.get(key)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let dbname = text("dbname").ok_or("an entry without dbname")?;
        let mut conn = Vec::new();
        for key in ["host", "port", "dbname", "user", "sslmode"] {
            if let Some(v) = text(key) {
                conn.push(format!(
                    "{key}='{}'",
                    v.replace('\\', "\\\\").replace('\'', "\\'")
                ));
            }
        }
        let unique = text("unique_name").filter(|n| !n.is_empty());
        Ok(TargetDef {
            named: unique.is_some(),
            name: unique.unwrap_or(dbname),
            environment: text("environment"),
            product: text("product"),
            source: self.file(),
            conn: conn.join(" "),
        })
    }
}

/// The rows of a RESDB set's query, as objects by column name.
fn query_resdb(conn: &str, query: &str) -> Result<Vec<Map<String, Value>>> {
    let resdb = |e: Box<dyn std::error::Error + Send + Sync>| ConfigError::ResDb {
        context: "cannot read the connection set from its RESDB database".into(),
        source: e,
    };
    let info = ConnInfo::resolve(Some(conn)).map_err(|e| resdb(e.into()))?;
    let mut client = info.connect().map_err(|e| resdb(e.into()))?;
    // Every column as text, whatever its type.
    let rows = client.simple_query(query).map_err(|e| resdb(e.into()))?;
    let mut out = Vec::new();
    for message in rows {
        if let postgres::SimpleQueryMessage::Row(row) = message {
            let mut map = Map::new();
            for (i, column) in row.columns().iter().enumerate() {
                if let Some(v) = row.get(i) {
                    map.insert(column.name().to_string(), Value::String(v.to_string()));
                }
            }
            out.push(map);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_connections_with_one_unique_name_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpmconfig");
        let entry = |host: &str, name: &str| {
            format!(
                r#"{{"host": "{host}", "port": 5432, "dbname": "app", "environment": "prod", "product": "shop", "unique_name": "{name}"}}"#
            )
        };
        let write = |entries: &[String]| {
            std::fs::write(
                &file,
                format!(
                    r#"{{"connection_sets": [{{"type": "LIST", "payload": [{}]}}]}}"#,
                    entries.join(",")
                ),
            )
            .unwrap();
            GlobalConfig::read(None, Some(&file)).unwrap().targets()
        };
        let err = write(&[entry("h1", "eu1"), entry("h2", "eu1")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("unique_name \"eu1\" is given to two"),
            "{err}"
        );
        assert_eq!(
            write(&[entry("h1", "eu1"), entry("h2", "eu2")])
                .unwrap()
                .len(),
            2
        );
    }
}
