//! Schema placeholders in package files, in the spirit of `@extschema@`
//! and `@extschema:name@` in PostgreSQL's extension scripts.
//!
//! A versioned package's schema carries its version (`billing_1_4_0`), so
//! its files cannot spell it, nor the schema of the dependency version
//! that resolution picks. `@schema@` stands for the package's own schema
//! and `@name@` for the schema of its dependency `name`; both are replaced
//! in the file's text before it is parsed, everywhere (strings and
//! function bodies too, as PostgreSQL does). Schema names are
//! `[a-z][a-z0-9_]*`, so they go in unquoted and lines keep their numbers.
//!
//! Any other `@word@` (lower-case letters, digits, `_`) is an error rather
//! than text left in place: a misspelt placeholder would otherwise fail
//! later as a syntax error, or not at all inside a string.

use std::borrow::Cow;
use std::path::Path;

use super::SqlError;
use crate::util::text::line_col;

/// The schemas one package's placeholders stand for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placeholders {
    /// The package's name, for messages.
    pub package: String,
    /// `@schema@`; `None` for `scope: database` packages.
    pub schema: Option<String>,
    /// `@name@` for each dependency, by name; `None` for a dependency
    /// with `scope: database`, which has no schema of its own.
    pub dependencies: Vec<(String, Option<String>)>,
}

impl Placeholders {
    fn lookup(&self, word: &str) -> Result<&str, String> {
        let (what, schema) = if word == "schema" {
            ("the package", &self.schema)
        } else if let Some((_, schema)) = self.dependencies.iter().find(|(name, _)| name == word) {
            ("its dependency", schema)
        } else {
            let mut known = vec!["@schema@".to_string()];
            known.extend(
                self.dependencies
                    .iter()
                    .map(|(name, _)| format!("@{name}@")),
            );
            return Err(format!(
                "@{word}@ names no dependency of {}: the placeholders it can use are {}",
                self.package,
                known.join(", ")
            ));
        };
        schema.as_deref().ok_or_else(|| {
            format!("@{word}@: {what} has scope database and so no schema of its own")
        })
    }
}

/// `text` with every placeholder replaced, borrowed when it has none.
/// `path` names the file in errors, which give the placeholder's line and
/// column.
pub fn substitute<'t>(
    path: &Path,
    text: &'t str,
    placeholders: &Placeholders,
) -> Result<Cow<'t, str>, SqlError> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = text[at..].find('@') {
        let start = at + found;
        let word_start = start + 1;
        let word_len = bytes[word_start..]
            .iter()
            .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || **b == b'_')
            .count();
        let end = word_start + word_len;
        if word_len == 0 || !bytes[word_start].is_ascii_lowercase() || bytes.get(end) != Some(&b'@')
        {
            at = word_start;
            continue;
        }
        let schema = placeholders
            .lookup(&text[word_start..end])
            .map_err(|message| {
                let (line, column) = line_col(text, start);
                SqlError::Placeholder {
                    file: path.to_path_buf(),
                    line,
                    column,
                    message,
                }
            })?;
        out.push_str(&text[copied..start]);
        out.push_str(schema);
        copied = end + 1;
        at = copied;
    }
    if copied == 0 {
        return Ok(Cow::Borrowed(text));
    }
    out.push_str(&text[copied..]);
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn billing() -> Placeholders {
        Placeholders {
            package: "billing".into(),
            schema: Some("billing_1_4_0".into()),
            dependencies: vec![
                ("core".into(), Some("core_2_0_1".into())),
                ("settings".into(), None),
            ],
        }
    }

    fn run(text: &str) -> Result<String, String> {
        substitute(Path::new("f.sql"), text, &billing())
            .map(Cow::into_owned)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn own_and_dependency_schemas_are_substituted_everywhere() {
        assert_eq!(
            run("CREATE FUNCTION f(m @core@.money) RETURNS text LANGUAGE sql\n  AS $$ SELECT '@schema@' $$;\n")
                .unwrap(),
            "CREATE FUNCTION f(m core_2_0_1.money) RETURNS text LANGUAGE sql\n  AS $$ SELECT 'billing_1_4_0' $$;\n"
        );
        assert_eq!(run("@schema@@core@").unwrap(), "billing_1_4_0core_2_0_1");
    }

    #[test]
    fn operators_addresses_and_jsonpath_are_left_alone() {
        for text in [
            "SELECT a @> b, a <@ b, q @@ t, @ -5;",
            "SELECT 'ops@example.com', '$.a ? (@ > 1)', '@Schema@', '@1@', 'a@@b';",
            "SELECT '@schema', 'core@';",
        ] {
            assert!(matches!(
                substitute(Path::new("f.sql"), text, &billing()),
                Ok(Cow::Borrowed(_))
            ));
        }
    }

    #[test]
    fn an_unknown_placeholder_is_an_error_at_its_line_and_column() {
        let err = run("SELECT 1;\nSELECT x FROM  @cor@.t;\n").unwrap_err();
        assert_eq!(
            err,
            "f.sql:2:16: @cor@ names no dependency of billing: the placeholders it can use are @schema@, @core@, @settings@"
        );
    }

    #[test]
    fn a_placeholder_for_a_database_scope_package_is_an_error() {
        assert_eq!(
            run("SELECT @settings@.f();").unwrap_err(),
            "f.sql:1:8: @settings@: its dependency has scope database and so no schema of its own"
        );
        let database = Placeholders {
            schema: None,
            ..billing()
        };
        assert!(
            substitute(
                Path::new("f.sql"),
                "GRANT USAGE ON SCHEMA @schema@ TO app;",
                &database
            )
            .unwrap_err()
            .to_string()
            .contains("the package has scope database")
        );
    }
}
