//! Splitting a file into statements, with exact positions, and syntax
//! errors as a user reads them.

use std::path::Path;

use squawk_syntax::ast::AstNode;
use squawk_syntax::{SourceFile, SyntaxKind};

use super::refs::analyze;
use super::{SqlError, Statement};
use crate::util::text::LineIndex;

/// Splits and parses one SQL file.
///
/// `path` is only used for display. Offsets are into `text` as given, so a
/// leading byte-order mark counts as its three bytes. Any syntax error (also
/// inside the string body of a SQL-language function) fails the whole file.
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<Statement>, SqlError> {
    let (depth, deepest) = nesting(text);
    if depth > MAX_NESTING {
        let (line, column) = LineIndex::new(text).line_col(text, deepest);
        return Err(SqlError::TooDeep {
            file: path.to_owned(),
            line,
            column,
            depth,
            limit: MAX_NESTING,
        });
    }
    if depth <= INLINE_NESTING {
        return parse_here(path, text);
    }
    // The parser recurses once per level: give deep input a stack of its
    // own, reserved (not committed) up front, instead of overflowing ours.
    std::thread::scope(|scope| {
        match std::thread::Builder::new()
            .name("pgpm-parse".into())
            .stack_size(DEEP_STACK)
            .spawn_scoped(scope, || parse_here(path, text))
        {
            Ok(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No room for the stack (strict overcommit): try on ours.
            Err(_) => parse_here(path, text),
        }
    })
}

/// Deeper nesting is refused (PostgreSQL refuses far less deep input).
const MAX_NESTING: usize = 10_000;

/// Up to this depth the caller's stack is enough.
const INLINE_NESTING: usize = 200;

/// The stack for parsing deeper input: enough for [`MAX_NESTING`] levels.
const DEEP_STACK: usize = 512 << 20;

/// The deepest nesting of parentheses and brackets in `text` and where it
/// is reached (a byte offset). Those in strings and comments count too:
/// this only bounds what the parser's recursion needs. Nesting without
/// them (long chains of `CASE` or unary operators) is not measured.
fn nesting(text: &str) -> (usize, usize) {
    let (mut depth, mut max, mut at) = (0usize, 0usize, 0usize);
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'(' | b'[' => {
                depth += 1;
                if depth > max {
                    (max, at) = (depth, i);
                }
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (max, at)
}

fn parse_here(path: &Path, text: &str) -> Result<Vec<Statement>, SqlError> {
    let parse = SourceFile::parse(text);
    let lines = LineIndex::new(text);
    if let Some(error) = parse.errors().into_iter().next() {
        let offset = usize::from(error.range().start());
        let (offset, message) = explain(text, offset, error.message());
        let (line, column) = lines.line_col(text, offset);
        return Err(SqlError::Syntax {
            file: path.to_owned(),
            line,
            column,
            message,
        });
    }
    let mut statements = Vec::new();
    for stmt in parse.tree().stmts() {
        let node = stmt.syntax();
        let mut tokens = node
            .descendants_with_tokens()
            .filter_map(|element| element.into_token())
            .filter(|token| !token.kind().is_trivia());
        let Some(first) = tokens.next() else {
            continue;
        };
        if node.kind() == SyntaxKind::EMPTY_STMT {
            continue;
        }
        let last = tokens.last().unwrap_or_else(|| first.clone());
        let start = usize::from(first.text_range().start());
        let end = usize::from(last.text_range().end());
        let (line, column) = lines.line_col(text, start);
        let analysis = analyze(node, first.kind());
        statements.push(Statement {
            file: path.to_owned(),
            offset: start,
            line,
            column,
            sql: text[start..end].to_owned(),
            kind: analysis.kind,
            defines: analysis.defines,
            references: analysis.references,
            standard_body: analysis.standard_body,
            drops: analysis.drops,
            settings: None,
            signature: analysis.signature,
            arities: analysis.arities,
            waits_for: Vec::new(),
        });
    }
    Ok(statements)
}
/// The parser names tokens by their kind (`expected R_PAREN`, `AS_KW`);
/// a user reads `expected ")"` and `AS` better.
fn readable(message: &str) -> String {
    let token = |word: &str| -> Option<String> {
        let punctuation = match word {
            "L_PAREN" => "(",
            "R_PAREN" => ")",
            "L_BRACK" => "[",
            "R_BRACK" => "]",
            "SEMICOLON" => ";",
            "COMMA" => ",",
            "DOT" => ".",
            "COLON" => ":",
            "EQ" => "=",
            "STAR" => "*",
            "IDENT" => return Some("an identifier".into()),
            _ => return word.strip_suffix("_KW").map(|kw| format!("\"{kw}\"")),
        };
        Some(format!("\"{punctuation}\""))
    };
    message
        .split(' ')
        .map(|word| token(word).unwrap_or_else(|| word.to_string()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a syntax error at `offset` means to the user, and where it is.
///
/// The parser stops at the start of a statement it cannot read ("expected
/// command"). When that is a psql meta-command, inline `COPY ... FROM
/// stdin` data, or a known leading keyword followed by a misspelt one
/// (`CREATE FUNCTON`), say so, at the word the user wrote wrong, as
/// PostgreSQL would.
fn explain(text: &str, offset: usize, message: &str) -> (usize, String) {
    let rest = text.get(offset..).unwrap_or("");
    if rest.starts_with(':')
        && rest[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '\'' || c == '"')
    {
        return (
            offset,
            format!(
                "psql variable {}: pgpm sends files to the server, not to psql; write the value itself",
                near(text, offset).trim_start()
            ),
        );
    }
    if message.contains("expected command") {
        if rest.starts_with('\\') {
            return (
                offset,
                format!(
                    "psql meta-command {}: pgpm sends files to the server, not to psql; include files through the manifest's folders, and write values instead of psql variables",
                    near(text, offset).trim_start()
                ),
            );
        }
        if let Some(copy) = copy_from_stdin_before(text, offset) {
            return (
                copy,
                "COPY ... FROM stdin with its data inline is psql's protocol, not SQL: write the rows as INSERT ... VALUES (or load them with a patch)".into(),
            );
        }
        let first: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        if ["CREATE", "ALTER", "DROP", "COMMENT", "GRANT", "REVOKE"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&first))
        {
            let after = &rest[first.len()..];
            let next = offset + first.len() + (after.len() - after.trim_start().len());
            if text[next..].starts_with(|c: char| c.is_ascii_alphabetic()) {
                let word: String = text[next..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '(')
                    .take(30)
                    .collect();
                return (next, format!("at or near \"{word}\""));
            }
        }
    }
    (
        offset,
        format!("{}{}", readable(message), near(text, offset)),
    )
}

/// The offset of a `COPY ... FROM stdin` statement that ends before
/// `offset`, when there is one: the data after it is what cannot parse.
fn copy_from_stdin_before(text: &str, offset: usize) -> Option<usize> {
    let before = &text[..offset.min(text.len())];
    let upper = before.to_ascii_uppercase();
    let at = upper.rfind("COPY ")?;
    let statement = &upper[at..];
    let end = statement.find(';').unwrap_or(statement.len());
    statement[..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w[0] == "FROM" && w[1].trim_end_matches(';') == "STDIN")
        .then_some(at)
}

/// ` (at or near "word")` for an error message, like PostgreSQL says it.
fn near(text: &str, offset: usize) -> String {
    let rest = text.get(offset..).unwrap_or("").trim_start();
    let word: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace())
        .take(30)
        .collect();
    if word.is_empty() {
        " (at end of input)".to_owned()
    } else {
        format!(" (at or near \"{word}\")")
    }
}
