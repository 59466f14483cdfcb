//! Quoting identifiers and literals: every identifier pgpm writes into SQL
//! goes through [`quote_ident`]; values are bound as parameters instead.

/// Quotes an SQL identifier: always double-quoted, embedded quotes doubled.
///
/// Every identifier pgpm writes into SQL (schema, role, channel names) goes
/// through this one function; values are bound as parameters instead.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal, for the rare places where a value cannot be
/// a parameter (`NOTIFY` payloads, `--dry-run` output of bound values).
pub fn quote_literal(value: &str) -> String {
    if value.contains('\\') {
        format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(r#"My "Role""#), r#""My ""Role""""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\b"), r"E'a\\b'");
    }
}
