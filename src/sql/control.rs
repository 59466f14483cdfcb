//! Statements that act on the session running them rather than on objects:
//! transaction control, savepoints, and changes of role.
//!
//! pgpm runs a whole deploy (or a group of patches) in one transaction that
//! it owns and records: a `COMMIT` in a file would commit half of it, a
//! `ROLLBACK` would undo what came before and let the rest run outside any
//! transaction, and `SET ROLE` would change who runs everything after it.
//! Such statements are found here, by their leading keywords, before
//! anything runs.

use super::{ObjectKind, Statement, StatementKind};

/// What a statement does to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionControl {
    /// `BEGIN`, `START TRANSACTION`, `COMMIT`, `END`, `ROLLBACK`, `ABORT`,
    /// `PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK PREPARED`.
    Transaction,
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`: nest inside a transaction.
    Savepoint,
    /// `SET [SESSION | LOCAL] ROLE`, `SET ... SESSION AUTHORIZATION`,
    /// `RESET ROLE`, `RESET SESSION AUTHORIZATION`, `RESET ALL`.
    Role,
}

impl Statement {
    /// What the statement does to the session running it, if anything
    /// beyond its own work.
    pub fn session_control(&self) -> Option<SessionControl> {
        let words: Vec<String> = self
            .sql
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .filter(|w| !w.is_empty())
            .take(4)
            .map(str::to_ascii_uppercase)
            .collect();
        let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
        match word(0) {
            "BEGIN" | "START" | "COMMIT" | "END" | "ABORT" => Some(SessionControl::Transaction),
            "ROLLBACK" => {
                // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name.
                let next = words[1..]
                    .iter()
                    .find(|w| *w != "WORK" && *w != "TRANSACTION")
                    .map(String::as_str);
                if next == Some("TO") {
                    Some(SessionControl::Savepoint)
                } else {
                    Some(SessionControl::Transaction)
                }
            }
            "PREPARE" if word(1) == "TRANSACTION" => Some(SessionControl::Transaction),
            "SAVEPOINT" | "RELEASE" => Some(SessionControl::Savepoint),
            "SET" if (word(1), word(2)) == ("SESSION", "AUTHORIZATION") => {
                Some(SessionControl::Role)
            }
            "SET" => {
                let at = if matches!(word(1), "SESSION" | "LOCAL") && word(2) != "CHARACTERISTICS" {
                    2
                } else {
                    1
                };
                let target = (word(at), word(at + 1));
                matches!(target, ("ROLE", _) | ("SESSION", "AUTHORIZATION"))
                    .then_some(SessionControl::Role)
            }
            "RESET" => matches!(
                (word(1), word(2)),
                ("ROLE", _) | ("SESSION", "AUTHORIZATION") | ("ALL", _)
            )
            .then_some(SessionControl::Role),
            _ => None,
        }
    }

    /// The setting a statement changes for what follows it in the
    /// session, lower-cased: `SET [SESSION | LOCAL] name ...` (`TIME ZONE`
    /// is `timezone`, `NAMES` is `client_encoding`, `SCHEMA` is
    /// `search_path`), `RESET name`, or a top-level `SELECT
    /// [pg_catalog.]set_config('name', ...)`. `None` for other statements,
    /// and for `SET CONSTRAINTS`, `SET TRANSACTION` and `SET SESSION
    /// CHARACTERISTICS`, which act on the transaction.
    pub fn setting(&self) -> Option<String> {
        let sql = self.sql.trim();
        let mut words = sql
            .split(|c: char| c.is_whitespace() || c == '=' || c == ';')
            .filter(|w| !w.is_empty());
        let first = words.next()?.to_ascii_lowercase();
        match first.as_str() {
            "set" | "reset" => {
                let mut name = words.next()?.to_ascii_lowercase();
                if first == "set" && matches!(name.as_str(), "session" | "local") {
                    name = words.next()?.to_ascii_lowercase();
                }
                let name = match name.as_str() {
                    "constraints" | "transaction" | "characteristics" | "role" | "all" => {
                        return None;
                    }
                    "session" if first == "reset" => return None,
                    "time" => "timezone".to_string(),
                    "names" => "client_encoding".to_string(),
                    "schema" => "search_path".to_string(),
                    "xml" => "xmloption".to_string(),
                    _ => name.trim_matches('"').to_string(),
                };
                Some(name)
            }
            "select" => {
                let rest = sql[first.len()..].trim_start();
                let lower = rest.to_ascii_lowercase();
                let call = lower
                    .strip_prefix("pg_catalog.")
                    .unwrap_or(&lower)
                    .strip_prefix("set_config")?
                    .trim_start()
                    .strip_prefix('(')?
                    .trim_start();
                let name = call.strip_prefix('\'')?.split('\'').next()?;
                // A change of role is not a setting to scope: it runs, and
                // the deploy then refuses to commit (see `RoleChanged`).
                (!matches!(name, "role" | "session_authorization")).then(|| name.to_string())
            }
            _ => None,
        }
    }

    /// Whether running the statement may run code or change data, rather
    /// than only define objects in the catalog. Statements that only
    /// define (`CREATE FUNCTION`, `CREATE TYPE`, `CREATE VIEW`, `DROP`,
    /// `COMMENT`, `GRANT` ...) can be run again, in a savepoint that is
    /// rolled back, without anything showing; the others (DML, `SELECT`,
    /// `DO`, `CREATE TABLE`, `CREATE INDEX`, `ALTER`, ...) may advance a
    /// sequence, take time or call a function, and are never run twice.
    pub fn runs_code(&self) -> bool {
        match self.kind {
            StatementKind::Create(
                ObjectKind::Type
                | ObjectKind::Domain
                | ObjectKind::Function
                | ObjectKind::Procedure
                | ObjectKind::Aggregate
                | ObjectKind::Operator
                | ObjectKind::Cast
                | ObjectKind::View
                | ObjectKind::Trigger
                | ObjectKind::EventTrigger
                | ObjectKind::Policy
                | ObjectKind::Rule
                | ObjectKind::Collation
                | ObjectKind::Schema,
            ) => false,
            StatementKind::Drop(_) => false,
            StatementKind::Other => {
                let first = self
                    .sql
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .find(|w| !w.is_empty())
                    .unwrap_or("")
                    .to_ascii_uppercase();
                !matches!(first.as_str(), "COMMENT" | "GRANT" | "REVOKE")
            }
            StatementKind::Create(_) => true,
        }
    }

    /// The command, when the statement cannot run inside a transaction
    /// block (`CREATE INDEX CONCURRENTLY`, `VACUUM`, ...): a deploy is one
    /// transaction, so such statements belong in a concurrent patch.
    pub fn outside_transaction(&self) -> Option<&'static str> {
        let words: Vec<String> = self
            .sql
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .filter(|w| !w.is_empty())
            .take(4)
            .map(str::to_ascii_uppercase)
            .collect();
        let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
        let concurrently = words.iter().any(|w| w == "CONCURRENTLY");
        match (word(0), word(1)) {
            ("CREATE", "INDEX") | ("CREATE", "UNIQUE") if concurrently => {
                Some("CREATE INDEX CONCURRENTLY")
            }
            ("DROP", "INDEX") if concurrently => Some("DROP INDEX CONCURRENTLY"),
            ("REINDEX", _) if concurrently => Some("REINDEX CONCURRENTLY"),
            ("REINDEX", "DATABASE" | "SYSTEM") => Some("REINDEX DATABASE"),
            ("VACUUM", _) => Some("VACUUM"),
            ("CREATE", "DATABASE") => Some("CREATE DATABASE"),
            ("DROP", "DATABASE") => Some("DROP DATABASE"),
            ("CREATE", "TABLESPACE") => Some("CREATE TABLESPACE"),
            ("DROP", "TABLESPACE") => Some("DROP TABLESPACE"),
            ("ALTER", "SYSTEM") => Some("ALTER SYSTEM"),
            ("CREATE", "SUBSCRIPTION") => Some("CREATE SUBSCRIPTION"),
            ("DROP", "SUBSCRIPTION") => Some("DROP SUBSCRIPTION"),
            _ => None,
        }
    }

    /// Whether the statement creates an event trigger (a database-wide name).
    pub fn is_event_trigger(&self) -> bool {
        let words: Vec<String> = self
            .sql
            .split_whitespace()
            .take(3)
            .map(str::to_ascii_uppercase)
            .collect();
        words.len() == 3 && words[0] == "CREATE" && words[1] == "EVENT" && words[2] == "TRIGGER"
    }

    /// The statement on one line, cut after `max` characters, for messages.
    pub fn excerpt(&self, max: usize) -> String {
        let one_line = self.sql.split_whitespace().collect::<Vec<_>>().join(" ");
        match one_line.char_indices().nth(max) {
            Some((at, _)) => format!("{}...", &one_line[..at]),
            None => one_line,
        }
    }
}

/// Whether a file's statements are wrapped as a whole in one `BEGIN` ...
/// `COMMIT` pair (as Sqitch's templates and many published scripts write
/// them): the first starts a transaction, the last commits it. A `ROLLBACK`
/// at the end is not a wrapper: the file means to undo itself.
pub fn is_transaction_wrapper(statements: &[Statement]) -> bool {
    let (Some(first), Some(last)) = (statements.first(), statements.last()) else {
        return false;
    };
    if statements.len() < 2 {
        return false;
    }
    let starts = |s: &Statement| {
        let upper = s.sql.trim_start().to_ascii_uppercase();
        upper.starts_with("BEGIN") || upper.starts_with("START")
    };
    let commits = |s: &Statement| {
        let upper = s.sql.trim_start().to_ascii_uppercase();
        upper.starts_with("COMMIT") && !upper.contains("PREPARED") || upper.starts_with("END")
    };
    first.session_control() == Some(SessionControl::Transaction)
        && starts(first)
        && last.session_control() == Some(SessionControl::Transaction)
        && commits(last)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::sql::parse_file;

    fn control(sql: &str) -> Option<SessionControl> {
        parse_file(Path::new("t.sql"), sql).unwrap()[0].session_control()
    }

    #[test]
    fn statements_that_act_on_the_session() {
        use SessionControl::*;
        for (sql, want) in [
            ("BEGIN;", Some(Transaction)),
            (
                "begin transaction isolation level serializable;",
                Some(Transaction),
            ),
            ("START TRANSACTION;", Some(Transaction)),
            ("COMMIT;", Some(Transaction)),
            ("END;", Some(Transaction)),
            ("ROLLBACK;", Some(Transaction)),
            ("ABORT;", Some(Transaction)),
            ("PREPARE TRANSACTION 'x';", Some(Transaction)),
            ("COMMIT PREPARED 'x';", Some(Transaction)),
            ("SAVEPOINT a;", Some(Savepoint)),
            ("RELEASE SAVEPOINT a;", Some(Savepoint)),
            ("ROLLBACK TO SAVEPOINT a;", Some(Savepoint)),
            ("ROLLBACK WORK TO a;", Some(Savepoint)),
            ("SET ROLE admin;", Some(Role)),
            ("SET LOCAL ROLE admin;", Some(Role)),
            ("SET SESSION AUTHORIZATION admin;", Some(Role)),
            ("SET SESSION SESSION AUTHORIZATION admin;", Some(Role)),
            ("RESET ROLE;", Some(Role)),
            ("RESET ALL;", Some(Role)),
            ("SET search_path = x;", None),
            (
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;",
                None,
            ),
            ("RESET search_path;", None),
            (
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;",
                None,
            ),
            ("DO $$ BEGIN PERFORM 1; END $$;", None),
            ("SELECT 1;", None),
        ] {
            assert_eq!(control(sql), want, "{sql}");
        }
    }

    #[test]
    fn statements_that_only_define_objects_run_no_code() {
        let runs = |sql: &str| parse_file(Path::new("t.sql"), sql).unwrap()[0].runs_code();
        for sql in [
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
            "CREATE TYPE t AS (a int);",
            "CREATE DOMAIN d AS int CHECK (VALUE > 0);",
            "CREATE VIEW v AS SELECT 1;",
            "DROP FUNCTION IF EXISTS f();",
            "COMMENT ON FUNCTION f() IS 'x';",
            "GRANT EXECUTE ON FUNCTION f() TO PUBLIC;",
        ] {
            assert!(!runs(sql), "{sql}");
        }
        for sql in [
            "INSERT INTO t VALUES (1);",
            "SELECT nextval('s');",
            "DO $$ BEGIN PERFORM 1; END $$;",
            "CREATE TABLE t AS SELECT now();",
            "CREATE INDEX i ON t (a);",
            "CREATE MATERIALIZED VIEW m AS SELECT 1;",
            "ALTER TABLE t ADD COLUMN b int DEFAULT random();",
            "CREATE EXTENSION pgcrypto;",
        ] {
            assert!(runs(sql), "{sql}");
        }
    }

    #[test]
    fn a_file_wrapped_in_begin_and_commit() {
        let parse = |sql: &str| parse_file(Path::new("t.sql"), sql).unwrap();
        assert!(is_transaction_wrapper(&parse(
            "BEGIN; CREATE TABLE t (); COMMIT;"
        )));
        assert!(is_transaction_wrapper(&parse(
            "start transaction; select 1; end;"
        )));
        assert!(!is_transaction_wrapper(&parse(
            "BEGIN; CREATE TABLE t (); ROLLBACK;"
        )));
        assert!(!is_transaction_wrapper(&parse(
            "CREATE TABLE t (); COMMIT;"
        )));
        assert!(!is_transaction_wrapper(&parse("SELECT 1;")));
    }
}
