//! Splitting and parsing SQL files: what each statement defines and
//! references, and the order the statements of one package must run in.
//!
//! Parsing is done by `squawk-syntax`, a lossless PostgreSQL parser, so
//! statement boundaries respect strings, dollar quotes and comments, and a
//! syntax error is reported at its `file:line:column` before anything runs.
//!
//! Ordering follows what PostgreSQL checks when an object is *created*:
//!
//! - types named in attributes, arguments, results, domain bases, range
//!   subtypes, casts, column types and `%TYPE` must exist;
//! - functions used in defaults, checks, indexes and triggers must exist;
//! - the bodies of views and of SQL-language functions (string bodies with
//!   `check_function_bodies` on, and `BEGIN ATOMIC` / `RETURN` bodies) are
//!   analysed, so the functions, relations and types they use must exist;
//! - PL/pgSQL (and other procedural) bodies are only syntax-checked, never
//!   resolved, so what they use creates no ordering constraint. This is what
//!   lets mutually recursive PL/pgSQL functions deploy at all.
//!
//! See <https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-CHECK-FUNCTION-BODIES>.
//!
//! Names resolve without argument types (a call site's argument types cannot
//! be known here), so a reference to an overloaded name depends on every
//! statement defining that name. Names defined nowhere in the given
//! statements (built-ins, other packages) are not errors.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;
use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SourceFile, SyntaxKind, SyntaxNode};

/// One top-level statement of a SQL file, with what it defines and uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The path as passed to [`parse_file`], for display.
    pub file: PathBuf,
    /// Byte offset of the statement's first token in the file's text.
    pub offset: usize,
    /// 1-based line of `offset`.
    pub line: usize,
    /// 1-based column of `offset`, in characters.
    pub column: usize,
    /// The statement as the server should run it: first token through the
    /// terminating `;` (if any). Comments before the first token are left out.
    pub sql: String,
    /// What kind of statement this is.
    pub kind: StatementKind,
    /// What the statement creates (usually one name; a table also defines its
    /// row type, a range type its multirange and constructor functions).
    pub defines: Vec<ObjectName>,
    /// Names the statement uses that must exist when it runs.
    pub references: Vec<ObjectName>,
}

impl Statement {
    /// The byte offset in the file of a 1-based character `position` within
    /// [`Statement::sql`], as PostgreSQL reports an error's position
    /// (`DbError::position`). Pass it to [`line_col`] with the file's text.
    /// Positions past the end map to the end of the statement.
    pub fn file_offset(&self, position: usize) -> usize {
        let within = self
            .sql
            .char_indices()
            .nth(position.saturating_sub(1))
            .map_or(self.sql.len(), |(at, _)| at);
        self.offset + within
    }
}

/// The broad kind of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatementKind {
    /// `CREATE ...` (including `CREATE OR REPLACE`).
    Create(ObjectKind),
    /// `DROP ...`.
    Drop(ObjectKind),
    /// Everything else: `COMMENT`, `GRANT`, `ALTER`, `DO`, `INSERT`, ...
    Other,
}

/// The kind of object a `CREATE` or `DROP` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Type,
    Domain,
    Function,
    Procedure,
    Aggregate,
    Operator,
    Cast,
    Table,
    Sequence,
    View,
    MaterializedView,
    Trigger,
    Index,
    Schema,
    Extension,
    Other,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Type => "type",
            ObjectKind::Domain => "domain",
            ObjectKind::Function => "function",
            ObjectKind::Procedure => "procedure",
            ObjectKind::Aggregate => "aggregate",
            ObjectKind::Operator => "operator",
            ObjectKind::Cast => "cast",
            ObjectKind::Table => "table",
            ObjectKind::Sequence => "sequence",
            ObjectKind::View => "view",
            ObjectKind::MaterializedView => "materialized view",
            ObjectKind::Trigger => "trigger",
            ObjectKind::Index => "index",
            ObjectKind::Schema => "schema",
            ObjectKind::Extension => "extension",
            ObjectKind::Other => "object",
        })
    }
}

/// What a name can resolve to. Names in different namespaces never match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    /// Types and domains; tables and views also define their row type here.
    Type,
    /// Functions, procedures and aggregates.
    Routine,
    /// Tables, views, materialized views, sequences and indexes (`pg_class`).
    Relation,
    /// Schemas.
    Schema,
    /// Anything else that has a name (triggers, operators, casts, extensions).
    Other,
}

/// A possibly schema-qualified name, normalised like PostgreSQL does:
/// unquoted identifiers lower-cased, quoted ones kept as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName {
    pub namespace: Namespace,
    pub schema: Option<String>,
    pub name: String,
}

impl ObjectName {
    /// A name from already-normalised parts.
    pub fn new(namespace: Namespace, schema: Option<&str>, name: &str) -> ObjectName {
        ObjectName {
            namespace,
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for ObjectName {
    /// SQL spelling: `schema.name`, identifiers quoted where needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{}.", squawk_syntax::quote::quote_ident(schema))?;
        }
        // Operators and casts are not identifiers.
        if self.namespace == Namespace::Other {
            f.write_str(&self.name)
        } else {
            f.write_str(&squawk_syntax::quote::quote_ident(&self.name))
        }
    }
}

/// One object on a dependency cycle, with where its statement starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleMember {
    pub kind: ObjectKind,
    pub name: ObjectName,
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for CycleMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parens = match self.kind {
            ObjectKind::Function | ObjectKind::Procedure | ObjectKind::Aggregate => "()",
            _ => "",
        };
        write!(
            f,
            "{} {}{parens} ({}:{})",
            self.kind,
            self.name,
            self.file.display(),
            self.line
        )
    }
}

/// Errors in a package's SQL files; both are the user's to fix.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("{}:{line}:{column}: syntax error: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The statements reference each other in a loop; `objects` walks the
    /// loop once, each member depending on the next and the last on the first.
    #[error("dependency cycle between SQL objects: {}", cycle_display(objects))]
    Cycle { objects: Vec<CycleMember> },
}

fn cycle_display(objects: &[CycleMember]) -> String {
    let mut parts: Vec<String> = objects.iter().map(ToString::to_string).collect();
    if let Some(first) = objects.first() {
        parts.push(first.to_string());
    }
    parts.join(" -> ")
}

/// Splits and parses one SQL file.
///
/// `path` is only used for display. Offsets are into `text` as given, so a
/// leading byte-order mark counts as its three bytes. Any syntax error (also
/// inside the string body of a SQL-language function) fails the whole file.
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<Statement>, SqlError> {
    let parse = SourceFile::parse(text);
    let lines = LineIndex::new(text);
    if let Some(error) = parse.errors().into_iter().next() {
        let offset = usize::from(error.range().start());
        let (line, column) = lines.line_col(text, offset);
        return Err(SqlError::Syntax {
            file: path.to_owned(),
            line,
            column,
            message: format!("{}{}", readable(error.message()), near(text, offset)),
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
        });
    }
    Ok(statements)
}

/// 1-based line and column (in characters) of a byte offset into `text`.
///
/// A byte-order mark at the start of the text is not counted as a column,
/// matching what editors show. Offsets past the end map to the end.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(text).line_col(text, offset)
}

/// Line starts of one text, so positions of many statements cost a binary
/// search each instead of a scan from the top.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset);
        let mut start = self.starts[line - 1];
        if start == 0 && text.starts_with('\u{feff}') && offset >= 3 {
            start = 3;
        }
        (line, text[start..offset].chars().count() + 1)
    }
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

struct Analysis {
    kind: StatementKind,
    defines: Vec<ObjectName>,
    references: Vec<ObjectName>,
}

/// Classifies one top-level statement and collects its names.
fn analyze(node: &SyntaxNode, first_token: SyntaxKind) -> Analysis {
    use SyntaxKind as K;
    let mut defines = Vec::new();
    let mut refs = Refs::new(node);
    let kind = match node.kind() {
        K::CREATE_TYPE => {
            define_create_type(node, &mut defines, &mut refs);
            StatementKind::Create(ObjectKind::Type)
        }
        K::CREATE_DOMAIN => {
            define_path(node, K::DOMAIN, Namespace::Type, &mut defines);
            StatementKind::Create(ObjectKind::Domain)
        }
        K::CREATE_FUNCTION => {
            define_path(node, K::FUNCTION_NAME, Namespace::Routine, &mut defines);
            StatementKind::Create(ObjectKind::Function)
        }
        K::CREATE_PROCEDURE => {
            define_path(node, K::PROCEDURE_NAME, Namespace::Routine, &mut defines);
            StatementKind::Create(ObjectKind::Procedure)
        }
        K::CREATE_AGGREGATE => {
            define_path(node, K::AGGREGATE_NAME, Namespace::Routine, &mut defines);
            StatementKind::Create(ObjectKind::Aggregate)
        }
        K::CREATE_OPERATOR => {
            if let Some(op) = child(node, K::OP) {
                defines.push(operator_name(&op));
            }
            StatementKind::Create(ObjectKind::Operator)
        }
        K::CREATE_CAST => {
            if let Some(sig) = child(node, K::CAST_SIG) {
                defines.push(cast_name(&sig));
            }
            StatementKind::Create(ObjectKind::Cast)
        }
        K::CREATE_TABLE | K::CREATE_TABLE_AS | K::CREATE_FOREIGN_TABLE => {
            define_path(node, K::TABLE_NAME, Namespace::Relation, &mut defines);
            define_path(node, K::TABLE_NAME, Namespace::Type, &mut defines);
            StatementKind::Create(ObjectKind::Table)
        }
        K::CREATE_SEQUENCE => {
            define_path(node, K::SEQUENCE, Namespace::Relation, &mut defines);
            StatementKind::Create(ObjectKind::Sequence)
        }
        K::CREATE_VIEW | K::CREATE_MATERIALIZED_VIEW => {
            define_path(node, K::VIEW, Namespace::Relation, &mut defines);
            define_path(node, K::VIEW, Namespace::Type, &mut defines);
            StatementKind::Create(if node.kind() == K::CREATE_VIEW {
                ObjectKind::View
            } else {
                ObjectKind::MaterializedView
            })
        }
        K::CREATE_TRIGGER | K::CREATE_EVENT_TRIGGER => {
            let name = child(node, K::TRIGGER).or_else(|| child(node, K::EVENT_TRIGGER));
            if let Some(name) = name {
                defines.push(ObjectName {
                    namespace: Namespace::Other,
                    schema: None,
                    name: ast::normalize_name_node(&name),
                });
            }
            StatementKind::Create(ObjectKind::Trigger)
        }
        K::CREATE_INDEX => {
            define_index(node, &mut defines);
            StatementKind::Create(ObjectKind::Index)
        }
        K::CREATE_SCHEMA => {
            let name = child(node, K::NAMED_SCHEMA)
                .and_then(|named| child(&named, K::SCHEMA))
                .or_else(|| {
                    child(node, K::AUTHORIZATION_SCHEMA).and_then(|auth| child(&auth, K::ROLE))
                });
            if let Some(name) = name {
                defines.push(ObjectName {
                    namespace: Namespace::Schema,
                    schema: None,
                    name: ast::normalize_name_node(&name),
                });
            }
            StatementKind::Create(ObjectKind::Schema)
        }
        K::CREATE_EXTENSION => {
            if let Some(name) = child(node, K::EXTENSION) {
                defines.push(ObjectName {
                    namespace: Namespace::Other,
                    schema: None,
                    name: ast::normalize_name_node(&name),
                });
            }
            StatementKind::Create(ObjectKind::Extension)
        }
        kind if first_token == K::DROP_KW => StatementKind::Drop(drop_kind(kind)),
        _ if first_token == K::CREATE_KW => StatementKind::Create(ObjectKind::Other),
        _ => StatementKind::Other,
    };

    // A DROP names what it removes; it must never be moved after a CREATE of
    // the same name, so it references nothing.
    if !matches!(kind, StatementKind::Drop(_)) {
        refs.walk(node);
        // The string body of a SQL-language function is checked at creation.
        let body = ast::CreateFunction::cast(node.clone())
            .and_then(|function| function.sql_body())
            .or_else(|| ast::CreateProcedure::cast(node.clone()).and_then(|p| p.sql_body()));
        if let Some(body) = body {
            let body_root = body.syntax();
            let mut body_refs = Refs::new(&body_root);
            body_refs.walk(&body_root);
            for name in body_refs.names {
                refs.push(name);
            }
        }
        // Creating an object in a schema needs the schema.
        for name in &defines {
            if let Some(schema) = &name.schema {
                refs.push(ObjectName::new(Namespace::Schema, None, schema));
            }
        }
    }

    let mut seen = HashSet::new();
    defines.retain(|name| seen.insert(name.clone()));
    Analysis {
        kind,
        defines,
        references: refs.names,
    }
}

fn drop_kind(kind: SyntaxKind) -> ObjectKind {
    use SyntaxKind as K;
    match kind {
        K::DROP_TYPE => ObjectKind::Type,
        K::DROP_DOMAIN => ObjectKind::Domain,
        K::DROP_FUNCTION => ObjectKind::Function,
        K::DROP_PROCEDURE => ObjectKind::Procedure,
        K::DROP_AGGREGATE => ObjectKind::Aggregate,
        K::DROP_OPERATOR => ObjectKind::Operator,
        K::DROP_CAST => ObjectKind::Cast,
        K::DROP_TABLE | K::DROP_FOREIGN_TABLE => ObjectKind::Table,
        K::DROP_SEQUENCE => ObjectKind::Sequence,
        K::DROP_VIEW => ObjectKind::View,
        K::DROP_MATERIALIZED_VIEW => ObjectKind::MaterializedView,
        K::DROP_TRIGGER | K::DROP_EVENT_TRIGGER => ObjectKind::Trigger,
        K::DROP_INDEX => ObjectKind::Index,
        K::DROP_SCHEMA => ObjectKind::Schema,
        K::DROP_EXTENSION => ObjectKind::Extension,
        _ => ObjectKind::Other,
    }
}

fn child(node: &SyntaxNode, kind: SyntaxKind) -> Option<SyntaxNode> {
    node.children().find(|child| child.kind() == kind)
}

/// Defines the `Path` under the `holder` child of `node` (e.g. `FUNCTION_NAME`).
fn define_path(
    node: &SyntaxNode,
    holder: SyntaxKind,
    namespace: Namespace,
    defines: &mut Vec<ObjectName>,
) {
    let path = child(node, holder).and_then(|holder| holder.children().find_map(ast::Path::cast));
    if let Some((schema, name)) = path.and_then(|path| path_parts(&path)) {
        defines.push(ObjectName {
            namespace,
            schema,
            name,
        });
    }
}

fn path_parts(path: &ast::Path) -> Option<(Option<String>, String)> {
    let name = path.segment()?.text();
    let schema = path
        .qualifier()
        .and_then(|qualifier| qualifier.segment())
        .map(|segment| segment.text());
    (!name.is_empty()).then_some((schema, name))
}

fn path_ref_parts(path: &ast::PathRef) -> Option<(Option<String>, String)> {
    let name = path.segment()?.text();
    let schema = path
        .qualifier()
        .and_then(|qualifier| qualifier.segment())
        .map(|segment| segment.text());
    (!name.is_empty()).then_some((schema, name))
}

/// `CREATE TYPE`: the type itself, plus what range and base types bring.
fn define_create_type(node: &SyntaxNode, defines: &mut Vec<ObjectName>, refs: &mut Refs) {
    define_path(node, SyntaxKind::TYPE_NAME, Namespace::Type, defines);
    let Some(this) = defines.first().cloned() else {
        return;
    };
    if let Some(range) = child(node, SyntaxKind::RANGE_TYPE) {
        // A range type comes with a multirange type and constructor functions
        // named like both.
        // https://www.postgresql.org/docs/current/sql-createtype.html#SQL-CREATETYPE-RANGE
        let explicit = attributes(&range)
            .find(|(key, _)| key == "multirange_type_name")
            .and_then(|(_, value)| value.descendants().find_map(ast::PathRef::cast))
            .and_then(|path| path_ref_parts(&path));
        let (schema, multirange) = explicit.unwrap_or_else(|| {
            let name = match this.name.find("range") {
                Some(at) => format!("{}multirange{}", &this.name[..at], &this.name[at + 5..]),
                None => format!("{}_multirange", this.name),
            };
            (this.schema.clone(), name)
        });
        defines.push(ObjectName::new(
            Namespace::Routine,
            this.schema.as_deref(),
            &this.name,
        ));
        defines.push(ObjectName {
            namespace: Namespace::Type,
            schema: schema.clone(),
            name: multirange.clone(),
        });
        defines.push(ObjectName {
            namespace: Namespace::Routine,
            schema,
            name: multirange,
        });
    } else if child(node, SyntaxKind::BASE_TYPE).is_some() {
        // A base type's I/O functions take and return the shell type created
        // by an earlier bodiless `CREATE TYPE name;`, which must come first.
        refs.push(this);
    }
}

/// `CREATE INDEX name ON [schema.]table`: the index lives in the table's schema.
fn define_index(node: &SyntaxNode, defines: &mut Vec<ObjectName>) {
    let Some(index) = child(node, SyntaxKind::INDEX) else {
        return;
    };
    let Some((schema, name)) = index
        .children()
        .find_map(ast::Path::cast)
        .and_then(|path| path_parts(&path))
    else {
        return;
    };
    let schema = schema.or_else(|| {
        node.descendants()
            .find(|n| n.kind() == SyntaxKind::TABLE_NAME_REF)
            .and_then(|table| table.children().find_map(ast::PathRef::cast))
            .and_then(|path| path_ref_parts(&path))
            .and_then(|(schema, _)| schema)
    });
    defines.push(ObjectName {
        namespace: Namespace::Relation,
        schema,
        name,
    });
}

/// `[schema.]op`: operators are named by their symbol.
fn operator_name(op: &SyntaxNode) -> ObjectName {
    let schema = op
        .children()
        .find_map(ast::PathRef::cast)
        .and_then(|path| path.qualifier())
        .and_then(|qualifier| qualifier.segment())
        .map(|segment| segment.text());
    let name: String = op
        .descendants_with_tokens()
        .filter_map(|element| element.into_token())
        .filter(|token| {
            !token.kind().is_trivia()
                && !token
                    .parent_ancestors()
                    .any(|ancestor| ancestor.kind() == SyntaxKind::PATH_REF)
        })
        .map(|token| token.text().to_owned())
        .collect();
    ObjectName {
        namespace: Namespace::Other,
        schema,
        name,
    }
}

/// `(source AS target)`, with whitespace collapsed and names lower-cased.
fn cast_name(sig: &SyntaxNode) -> ObjectName {
    let types: Vec<String> = sig
        .children()
        .map(|ty| {
            ty.descendants_with_tokens()
                .filter_map(|element| element.into_token())
                .filter(|token| !token.kind().is_trivia())
                .map(|token| {
                    let text = token.text();
                    if text.starts_with('"') {
                        text.to_owned()
                    } else {
                        text.to_ascii_lowercase()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
                .replace(" . ", ".")
                .replace(" [", "[")
                .replace("[ ", "[")
                .replace(" ]", "]")
        })
        .collect();
    ObjectName {
        namespace: Namespace::Other,
        schema: None,
        name: format!("({})", types.join(" as ")),
    }
}

/// `key = value` pairs of an attribute list (`CREATE AGGREGATE`, `CREATE
/// OPERATOR`, range and base types), keys lower-cased.
fn attributes(node: &SyntaxNode) -> impl Iterator<Item = (String, SyntaxNode)> {
    node.descendants()
        .filter_map(ast::AttributeOption::cast)
        .filter_map(|option| {
            let key = ast::normalize_name_node(option.name()?.syntax());
            Some((key, option.attribute_value()?.syntax().clone()))
        })
}

/// Attribute keys whose value names a function.
const ROUTINE_KEYS: &[&str] = &[
    // CREATE AGGREGATE
    "sfunc",
    "finalfunc",
    "combinefunc",
    "serialfunc",
    "deserialfunc",
    "msfunc",
    "minvfunc",
    "mfinalfunc",
    // CREATE OPERATOR
    "function",
    "procedure",
    "restrict",
    "join",
    // CREATE TYPE (base and range)
    "input",
    "output",
    "receive",
    "send",
    "typmod_in",
    "typmod_out",
    "analyze",
    "subscript",
    "canonical",
    "subtype_diff",
];

/// Attribute keys whose value names a type.
const TYPE_KEYS: &[&str] = &[
    "stype", "mstype", "basetype", "leftarg", "rightarg", "subtype", "element", "like",
];

/// Names used by a statement, in order of first use, without duplicates.
struct Refs {
    names: Vec<ObjectName>,
    seen: HashSet<ObjectName>,
    /// Names of the statement's common table expressions: `FROM cte` is not
    /// a relation defined elsewhere.
    ctes: HashSet<String>,
}

impl Refs {
    fn new(root: &SyntaxNode) -> Refs {
        let ctes = root
            .descendants()
            .filter(|node| node.kind() == SyntaxKind::CTE_NAME)
            .map(|node| ast::normalize_name_node(&node))
            .collect();
        Refs {
            names: Vec::new(),
            seen: HashSet::new(),
            ctes,
        }
    }

    fn push(&mut self, name: ObjectName) {
        if self.seen.insert(name.clone()) {
            self.names.push(name);
        }
    }

    fn push_path_ref(&mut self, namespace: Namespace, path: Option<ast::PathRef>) {
        if let Some((schema, name)) = path.as_ref().and_then(path_ref_parts) {
            if namespace == Namespace::Relation && schema.is_none() && self.ctes.contains(&name) {
                return;
            }
            self.push(ObjectName {
                namespace,
                schema,
                name,
            });
        }
    }

    /// Pushes the name held by a `*_REF` node's `PathRef` child.
    fn push_ref_node(&mut self, namespace: Namespace, node: &SyntaxNode) {
        self.push_path_ref(namespace, node.children().find_map(ast::PathRef::cast));
    }

    fn walk(&mut self, node: &SyntaxNode) {
        use SyntaxKind as K;
        match node.kind() {
            K::PATH_TYPE | K::TYPE_NAME_REF | K::DOMAIN_REF => {
                self.push_ref_node(Namespace::Type, node);
                // Type modifiers (`numeric(10, 2)`) hold no names.
                return;
            }
            K::PERCENT_TYPE => {
                // `table.column%TYPE` needs the table.
                let table = node
                    .children()
                    .find_map(ast::PathRef::cast)
                    .and_then(|path| path.qualifier());
                self.push_path_ref(Namespace::Relation, table);
                return;
            }
            K::FUNCTION_NAME_REF | K::PROCEDURE_NAME_REF | K::ROUTINE_NAME_REF => {
                self.push_ref_node(Namespace::Routine, node);
                return;
            }
            K::RELATION_NAME_REF | K::TABLE_NAME_REF | K::VIEW_REF | K::SEQUENCE_REF => {
                self.push_ref_node(Namespace::Relation, node);
                return;
            }
            K::QUALIFIED_COLUMN_NAME_REF => {
                let table = node
                    .children()
                    .find_map(ast::PathRef::cast)
                    .and_then(|path| path.qualifier());
                self.push_path_ref(Namespace::Relation, table);
                return;
            }
            K::SCHEMA_REF => {
                let name = ast::normalize_name_node(node);
                if !name.is_empty() {
                    self.push(ObjectName::new(Namespace::Schema, None, &name));
                }
                return;
            }
            K::CALL_EXPR if self.call(node) => return,
            K::ATTRIBUTE_OPTION => {
                self.attribute(node);
                return;
            }
            _ => {}
        }
        for child in node.children() {
            self.walk(&child);
        }
    }

    /// A function call: its name, and a sequence named in a string passed to
    /// `nextval`/`currval`/`setval` (a `regclass` resolved at parse time).
    /// Returns whether the arguments were walked already.
    fn call(&mut self, node: &SyntaxNode) -> bool {
        let Some(callee) = node.first_child() else {
            return false;
        };
        let (schema, name) = match callee.kind() {
            SyntaxKind::NAME_REF => (None, ast::normalize_name_node(&callee)),
            SyntaxKind::FIELD_EXPR => {
                let parts: Vec<SyntaxNode> = callee.children().collect();
                match parts.as_slice() {
                    [schema, name]
                        if schema.kind() == SyntaxKind::NAME_REF
                            && name.kind() == SyntaxKind::NAME_REF =>
                    {
                        (
                            Some(ast::normalize_name_node(schema)),
                            ast::normalize_name_node(name),
                        )
                    }
                    _ => return false,
                }
            }
            _ => return false,
        };
        if name.is_empty() {
            return false;
        }
        if schema.as_deref().is_none_or(|s| s == "pg_catalog")
            && matches!(name.as_str(), "nextval" | "currval" | "setval")
            && let Some(sequence) = first_string_arg(node).and_then(|s| parse_qualified(&s))
        {
            self.push(ObjectName {
                namespace: Namespace::Relation,
                schema: sequence.0,
                name: sequence.1,
            });
        }
        self.push(ObjectName {
            namespace: Namespace::Routine,
            schema,
            name,
        });
        for child in node.children().skip(1) {
            self.walk(&child);
        }
        true
    }

    fn attribute(&mut self, node: &SyntaxNode) {
        let Some(option) = ast::AttributeOption::cast(node.clone()) else {
            return;
        };
        let (Some(key), Some(value)) = (option.name(), option.attribute_value()) else {
            return;
        };
        let key = ast::normalize_name_node(key.syntax());
        if ROUTINE_KEYS.contains(&key.as_str()) {
            let path = value.syntax().descendants().find_map(ast::PathRef::cast);
            self.push_path_ref(Namespace::Routine, path);
        } else if TYPE_KEYS.contains(&key.as_str()) {
            self.walk(value.syntax());
        }
    }
}

/// The first argument of a call when it is a plain string literal.
fn first_string_arg(call: &SyntaxNode) -> Option<String> {
    let args = ast::CallExpr::cast(call.clone())?.arg_list()?;
    let first = args.args().next()?;
    match first.expr()? {
        ast::Expr::Literal(literal) => literal.string_value(),
        _ => None,
    }
}

/// Splits `schema.name` (as written inside a `regclass` string) into
/// normalised parts.
fn parse_qualified(text: &str) -> Option<(Option<String>, String)> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
        }
        parts.push(part);
        match chars.next() {
            Some('.') => continue,
            None => break,
            Some(_) => return None,
        }
    }
    let name = parts.pop().filter(|name| !name.is_empty())?;
    Some((parts.pop(), name))
}

/// Statements defining each name: `(namespace, name)` to `(schema, index)`.
type Definers<'a> = HashMap<(Namespace, &'a str), Vec<(Option<&'a str>, usize)>>;

/// Orders the statements of one package so each comes after the statements
/// defining what it references.
///
/// Stable: statements keep their input order unless one must wait for a
/// later definition; then it moves to just after it (the smallest possible
/// move, ties broken by input order). A reference to a name several
/// statements define depends on all of them; a schema-qualified reference
/// only matches definitions in that schema, an unqualified one any schema.
/// A shell type (`CREATE TYPE name;`) satisfies references to its name on
/// its own, which is what lets a base type's I/O functions precede it.
pub fn order(statements: Vec<Statement>) -> Result<Vec<Statement>, SqlError> {
    let count = statements.len();
    let mut definers: Definers = HashMap::new();
    for (index, statement) in statements.iter().enumerate() {
        for name in &statement.defines {
            definers
                .entry((name.namespace, name.name.as_str()))
                .or_default()
                .push((name.schema.as_deref(), index));
        }
    }
    let shell: Vec<bool> = statements.iter().map(is_shell_type).collect();

    // deps[i]: statements i must come after, ascending and distinct.
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (index, statement) in statements.iter().enumerate() {
        let mut targets = Vec::new();
        for name in &statement.references {
            let Some(candidates) = definers.get(&(name.namespace, name.name.as_str())) else {
                continue;
            };
            let matching = candidates.iter().filter(|(schema, other)| {
                *other != index && (name.schema.is_none() || name.schema.as_deref() == *schema)
            });
            let before = targets.len();
            targets.extend(matching.map(|&(_, other)| other));
            if targets[before..].iter().any(|&other| shell[other]) {
                let mut at = before;
                while at < targets.len() {
                    if shell[targets[at]] {
                        at += 1;
                    } else {
                        targets.swap_remove(at);
                    }
                }
            }
        }
        targets.sort_unstable();
        targets.dedup();
        deps[index] = targets;
    }

    // Kahn's algorithm, always taking the earliest ready statement.
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (index, targets) in deps.iter().enumerate() {
        for &target in targets {
            dependents[target].push(index);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..count)
        .filter(|&index| waiting[index] == 0)
        .map(Reverse)
        .collect();
    let mut sequence = Vec::with_capacity(count);
    while let Some(Reverse(index)) = ready.pop() {
        sequence.push(index);
        for &dependent in &dependents[index] {
            waiting[dependent] -= 1;
            if waiting[dependent] == 0 {
                ready.push(Reverse(dependent));
            }
        }
    }
    if sequence.len() < count {
        return Err(cycle_error(&statements, &deps, &waiting));
    }

    let mut slots: Vec<Option<Statement>> = statements.into_iter().map(Some).collect();
    Ok(sequence
        .into_iter()
        .filter_map(|index| slots[index].take())
        .collect())
}

/// Whether a statement is a bodiless `CREATE TYPE name;`.
fn is_shell_type(statement: &Statement) -> bool {
    if statement.kind != StatementKind::Create(ObjectKind::Type) {
        return false;
    }
    let parse = SourceFile::parse(&statement.sql);
    parse.tree().stmts().next().is_some_and(|stmt| {
        ast::CreateType::cast(stmt.syntax().clone()).is_some_and(|ty| ty.kind().is_none())
    })
}

/// Names one cycle among the statements Kahn's algorithm could not place:
/// the strongly connected component holding the earliest such statement,
/// walked from that statement through every member and back.
fn cycle_error(statements: &[Statement], deps: &[Vec<usize>], waiting: &[usize]) -> SqlError {
    let mut graph: DiGraphMap<usize, (), std::hash::RandomState> = DiGraphMap::default();
    for (index, targets) in deps.iter().enumerate() {
        if waiting[index] == 0 {
            continue;
        }
        graph.add_node(index);
        for &target in targets {
            if waiting[target] > 0 {
                graph.add_edge(index, target, ());
            }
        }
    }
    let component = tarjan_scc(&graph)
        .into_iter()
        .filter(|component| component.len() > 1)
        .min_by_key(|component| component.iter().min().copied())
        .unwrap_or_default();
    let members: HashSet<usize> = component.iter().copied().collect();
    let start = component.iter().min().copied().unwrap_or_default();

    let mut walk = vec![start];
    let mut visited: HashSet<usize> = HashSet::from([start]);
    let mut at = start;
    while visited.len() < members.len() {
        let step = shortest_path(deps, &members, at, |node| !visited.contains(&node));
        let Some(&end) = step.last() else { break };
        visited.extend(step.iter().copied());
        walk.extend(step);
        at = end;
    }
    let back = shortest_path(deps, &members, at, |node| node == start);
    walk.extend(back.iter().take(back.len().saturating_sub(1)));

    let objects = walk
        .into_iter()
        .map(|index| {
            let statement = &statements[index];
            CycleMember {
                kind: match statement.kind {
                    StatementKind::Create(kind) => kind,
                    _ => ObjectKind::Other,
                },
                name: statement
                    .defines
                    .first()
                    .cloned()
                    .unwrap_or_else(|| ObjectName::new(Namespace::Other, None, &statement.sql)),
                file: statement.file.clone(),
                line: statement.line,
            }
        })
        .collect();
    SqlError::Cycle { objects }
}

/// The nodes after `from` on a shortest path (breadth first, edges in
/// ascending order) to the first node satisfying `goal`, staying inside
/// `members`. `goal` may accept `from` itself, reached again via a loop.
fn shortest_path(
    deps: &[Vec<usize>],
    members: &HashSet<usize>,
    from: usize,
    goal: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let mut previous: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        for &next in &deps[node] {
            if !members.contains(&next) {
                continue;
            }
            if goal(next) {
                let mut path = vec![next];
                let mut at = node;
                while at != from {
                    path.push(at);
                    at = previous[&at];
                }
                path.reverse();
                return path;
            }
            if next != from && !previous.contains_key(&next) {
                previous.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Statement> {
        parse_file(Path::new("test.sql"), text).expect("parses")
    }

    fn sqls(text: &str) -> Vec<String> {
        parse(text).into_iter().map(|s| s.sql).collect()
    }

    /// Parses each `(path, text)` in turn, orders all statements together and
    /// names each by its first definition (or its SQL when it defines nothing).
    fn ordered(files: &[(&str, &str)]) -> Result<Vec<String>, SqlError> {
        let mut all = Vec::new();
        for (path, text) in files {
            all.extend(parse_file(Path::new(path), text).expect("parses"));
        }
        Ok(order(all)?
            .into_iter()
            .map(|s| match s.defines.first() {
                Some(name) => name.to_string(),
                None => s.sql,
            })
            .collect())
    }

    fn cycle(files: &[(&str, &str)]) -> (Vec<String>, String) {
        match ordered(files) {
            Err(err @ SqlError::Cycle { .. }) => {
                let message = err.to_string();
                let SqlError::Cycle { objects } = err else {
                    unreachable!()
                };
                (objects.iter().map(ToString::to_string).collect(), message)
            }
            other => panic!("expected a cycle, got {other:?}"),
        }
    }

    fn name(namespace: Namespace, schema: Option<&str>, name: &str) -> ObjectName {
        ObjectName::new(namespace, schema, name)
    }

    #[test]
    fn splits_around_semicolons_in_strings_comments_and_dollar_quotes() {
        let text = "\
-- leading; comment
select 'a;b', E'it\\'s;' ; /* block ; comment */ select 2;
create function f() returns text language plpgsql as $body$
begin
  return $$;$$; -- inner ; semicolons
end
$body$;
select 3 -- no semicolon at the end
";
        assert_eq!(
            sqls(text),
            [
                "select 'a;b', E'it\\'s;' ;",
                "select 2;",
                "create function f() returns text language plpgsql as $body$\n\
                 begin\n  return $$;$$; -- inner ; semicolons\nend\n$body$;",
                "select 3",
            ]
        );
    }

    #[test]
    fn empty_statements_and_comment_only_files_yield_nothing() {
        assert!(parse(";;\n-- only a comment\n/* and ; this */\n").is_empty());
    }

    #[test]
    fn offsets_lines_and_columns_are_exact() {
        let text = "-- header\n\n  create table t (a int);  select 1;\n\tselect 'é';\n";
        let statements = parse(text);
        let positions: Vec<_> = statements
            .iter()
            .map(|s| (s.offset, s.line, s.column))
            .collect();
        assert_eq!(positions, [(13, 3, 3), (38, 3, 28), (49, 4, 2)]);
        for s in &statements {
            assert_eq!(&text[s.offset..s.offset + s.sql.len()], s.sql);
        }
    }

    #[test]
    fn bom_and_crlf_keep_offsets_into_the_original_text() {
        let text = "\u{feff}select 1;\r\n  select 2;\r\n";
        let statements = parse(text);
        let positions: Vec<_> = statements
            .iter()
            .map(|s| (s.offset, s.line, s.column, s.sql.as_str()))
            .collect();
        assert_eq!(positions, [(3, 1, 1, "select 1;"), (16, 2, 3, "select 2;")]);
    }

    #[test]
    fn line_col_counts_characters_from_one() {
        let text = "ab\r\nçé x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 2), (1, 3));
        assert_eq!(line_col(text, 4), (2, 1));
        // `x` is after two two-byte characters and a space.
        assert_eq!(line_col(text, 9), (2, 4));
        assert_eq!(line_col(text, text.len()), (3, 1));
        assert_eq!(line_col(text, 1000), (3, 1));
        assert_eq!(line_col("\u{feff}x", 3), (1, 1));
    }

    #[test]
    fn server_error_position_maps_back_to_the_file() {
        let text = "select 1;\n\n  select 'é', nope();\n";
        let statement = &parse(text)[1];
        // PostgreSQL counts characters from 1: `nope` is the 13th.
        let offset = statement.file_offset(13);
        assert_eq!(&text[offset..offset + 4], "nope");
        assert_eq!(line_col(text, offset), (3, 15));
        assert_eq!(
            statement.file_offset(1000),
            statement.offset + statement.sql.len()
        );
    }

    #[test]
    fn syntax_error_reports_file_line_and_column() {
        let text = "select 1;\n\ncreate table t (a int;\n";
        let err = parse_file(Path::new("pkg/tables.sql"), text).unwrap_err();
        let SqlError::Syntax { line, column, .. } = &err else {
            panic!("expected a syntax error, got {err:?}");
        };
        assert_eq!((*line, *column), (3, 22));
        assert_eq!(
            err.to_string(),
            "pkg/tables.sql:3:22: syntax error: expected \")\" (at or near \";\")"
        );
    }

    #[test]
    fn syntax_error_inside_a_sql_function_body_points_into_the_file() {
        let text = "create function f() returns int language sql as $$\n  select 1 +;\n$$;\n";
        let err = parse_file(Path::new("f.sql"), text).unwrap_err();
        assert!(
            matches!(
                err,
                SqlError::Syntax {
                    line: 2,
                    column: 13,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn missing_semicolon_between_statements() {
        let text = "create table t (a int)\ncreate table u (b int);\n";
        let err = parse_file(Path::new("t.sql"), text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.sql:1:23: syntax error: Missing semicolon between statements \
             (at or near \"create\")"
        );
    }

    #[test]
    fn syntax_error_at_end_of_input() {
        let err = parse_file(Path::new("t.sql"), "create table t (\n  a int").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.sql:2:8: syntax error: expected \")\" (at end of input)"
        );
    }

    #[test]
    fn unterminated_dollar_quote_is_a_syntax_error() {
        let err = parse_file(Path::new("f.sql"), "select 1;\nselect $$ abc;\n").unwrap_err();
        assert!(
            matches!(
                err,
                SqlError::Syntax {
                    line: 2,
                    column: 8,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn detects_each_object_kind_and_its_name() {
        use ObjectKind as O;
        let cases: &[(&str, StatementKind, &[ObjectName])] = &[
            (
                "create type s.t as (a int)",
                StatementKind::Create(O::Type),
                &[name(Namespace::Type, Some("s"), "t")],
            ),
            (
                "create domain \"Pos\" as int check (value > 0)",
                StatementKind::Create(O::Domain),
                &[name(Namespace::Type, None, "Pos")],
            ),
            (
                "create or replace function F(a int) returns int language sql return a",
                StatementKind::Create(O::Function),
                &[name(Namespace::Routine, None, "f")],
            ),
            (
                "create procedure p() language sql as 'select 1'",
                StatementKind::Create(O::Procedure),
                &[name(Namespace::Routine, None, "p")],
            ),
            (
                "create aggregate agg(int) (sfunc = int4pl, stype = int)",
                StatementKind::Create(O::Aggregate),
                &[name(Namespace::Routine, None, "agg")],
            ),
            (
                "create operator s.=== (leftarg = box, rightarg = box, function = box_eq)",
                StatementKind::Create(O::Operator),
                &[name(Namespace::Other, Some("s"), "===")],
            ),
            (
                "create cast (Int AS s.T) with inout",
                StatementKind::Create(O::Cast),
                &[name(Namespace::Other, None, "(int as s.t)")],
            ),
            (
                "create table t (a int)",
                StatementKind::Create(O::Table),
                &[
                    name(Namespace::Relation, None, "t"),
                    name(Namespace::Type, None, "t"),
                ],
            ),
            (
                "create table t2 as select 1",
                StatementKind::Create(O::Table),
                &[
                    name(Namespace::Relation, None, "t2"),
                    name(Namespace::Type, None, "t2"),
                ],
            ),
            (
                "create sequence seq",
                StatementKind::Create(O::Sequence),
                &[name(Namespace::Relation, None, "seq")],
            ),
            (
                "create view v as select 1",
                StatementKind::Create(O::View),
                &[
                    name(Namespace::Relation, None, "v"),
                    name(Namespace::Type, None, "v"),
                ],
            ),
            (
                "create materialized view mv as select 1",
                StatementKind::Create(O::MaterializedView),
                &[
                    name(Namespace::Relation, None, "mv"),
                    name(Namespace::Type, None, "mv"),
                ],
            ),
            (
                "create trigger trg before insert on t for each row execute function f()",
                StatementKind::Create(O::Trigger),
                &[name(Namespace::Other, None, "trg")],
            ),
            (
                "create index idx on s.t (a)",
                StatementKind::Create(O::Index),
                &[name(Namespace::Relation, Some("s"), "idx")],
            ),
            (
                "create schema if not exists api",
                StatementKind::Create(O::Schema),
                &[name(Namespace::Schema, None, "api")],
            ),
            (
                "create extension if not exists \"uuid-ossp\"",
                StatementKind::Create(O::Extension),
                &[name(Namespace::Other, None, "uuid-ossp")],
            ),
            (
                "create policy p on t using (true)",
                StatementKind::Create(O::Other),
                &[],
            ),
            (
                "drop function if exists f(int), g",
                StatementKind::Drop(O::Function),
                &[],
            ),
            ("drop type t cascade", StatementKind::Drop(O::Type), &[]),
            ("drop view v", StatementKind::Drop(O::View), &[]),
            ("drop table t", StatementKind::Drop(O::Table), &[]),
            (
                "comment on function f(int) is 'x'",
                StatementKind::Other,
                &[],
            ),
            (
                "grant execute on function f(int) to public",
                StatementKind::Other,
                &[],
            ),
            ("alter table t add column b int", StatementKind::Other, &[]),
            ("do $$ begin null; end $$", StatementKind::Other, &[]),
            ("insert into t values (1)", StatementKind::Other, &[]),
        ];
        for (sql, kind, defines) in cases {
            let statements = parse(sql);
            assert_eq!(statements.len(), 1, "{sql}");
            assert_eq!(statements[0].kind, *kind, "{sql}");
            assert_eq!(statements[0].defines, *defines, "{sql}");
        }
    }

    #[test]
    fn range_type_defines_its_multirange_and_constructors() {
        let statements = parse(
            "create type floatrange as range (subtype = float8, subtype_diff = float8mi);\n\
             create type r2 as range (subtype = t, multirange_type_name = s.r2_many);",
        );
        assert_eq!(
            statements[0].defines,
            [
                name(Namespace::Type, None, "floatrange"),
                name(Namespace::Routine, None, "floatrange"),
                name(Namespace::Type, None, "floatmultirange"),
                name(Namespace::Routine, None, "floatmultirange"),
            ]
        );
        assert_eq!(
            statements[0].references,
            [
                name(Namespace::Type, None, "float8"),
                name(Namespace::Routine, None, "float8mi"),
            ]
        );
        assert_eq!(
            statements[1].defines[2..],
            [
                name(Namespace::Type, Some("s"), "r2_many"),
                name(Namespace::Routine, Some("s"), "r2_many"),
            ]
        );
    }

    #[test]
    fn references_of_a_function_signature() {
        let statements = parse(
            "create function api.f(a mytype, b s.other[], c tab.col%type, out d int) \
             returns setof result language plpgsql as $$ begin perform g(); end $$;",
        );
        assert_eq!(
            statements[0].references,
            [
                name(Namespace::Type, None, "mytype"),
                name(Namespace::Type, Some("s"), "other"),
                name(Namespace::Relation, None, "tab"),
                name(Namespace::Type, None, "int"),
                name(Namespace::Type, None, "result"),
                name(Namespace::Schema, None, "api"),
            ]
        );
    }

    #[test]
    fn references_of_views_tables_and_triggers() {
        let statements = parse(
            "create view v as with recent as (select * from events) \
               select f(x.a), x.b::mytype from recent join s.x on true, lateral s.g(1) gg;\n\
             create table t (id int default nextval('s.t_id_seq'), o other references parent, \
               check (valid(id)));\n\
             create trigger trg after insert on t for each row execute function audit();",
        );
        assert_eq!(
            statements[0].references,
            [
                name(Namespace::Relation, None, "events"),
                name(Namespace::Routine, None, "f"),
                name(Namespace::Type, None, "mytype"),
                name(Namespace::Relation, Some("s"), "x"),
                name(Namespace::Routine, Some("s"), "g"),
            ]
        );
        assert_eq!(
            statements[1].references,
            [
                name(Namespace::Type, None, "int"),
                name(Namespace::Relation, Some("s"), "t_id_seq"),
                name(Namespace::Routine, None, "nextval"),
                name(Namespace::Type, None, "other"),
                name(Namespace::Relation, None, "parent"),
                name(Namespace::Routine, None, "valid"),
            ]
        );
        assert_eq!(
            statements[2].references,
            [
                name(Namespace::Relation, None, "t"),
                name(Namespace::Routine, None, "audit"),
            ]
        );
    }

    #[test]
    fn drop_references_nothing_and_stays_before_the_create() {
        let order = ordered(&[(
            "a.sql",
            "create view v as select f();\ndrop function if exists f();\n\
             create function f() returns int language sql return 1;",
        )])
        .unwrap();
        assert_eq!(order, ["drop function if exists f();", "f", "v"]);
    }

    #[test]
    fn composite_of_composite_in_reverse_order_is_reordered() {
        let order = ordered(&[
            (
                "types/a.sql",
                "create type outer_t as (i inner_t[], n int);",
            ),
            ("types/b.sql", "create type inner_t as (m middle_t);"),
            ("types/c.sql", "create type middle_t as (x int);"),
        ])
        .unwrap();
        assert_eq!(order, ["middle_t", "inner_t", "outer_t"]);
    }

    #[test]
    fn enum_used_by_composite() {
        let order = ordered(&[(
            "t.sql",
            "create type person as (name text, feeling mood);\n\
             create type mood as enum ('happy', 'sad');",
        )])
        .unwrap();
        assert_eq!(order, ["mood", "person"]);
    }

    #[test]
    fn domain_over_domain() {
        let order = ordered(&[(
            "d.sql",
            "create domain small_pos as pos check (value < 10);\n\
             create domain pos as int check (value > 0);",
        )])
        .unwrap();
        assert_eq!(order, ["pos", "small_pos"]);
    }

    #[test]
    fn range_over_type() {
        let order = ordered(&[(
            "r.sql",
            "create type price_range as range (subtype = price);\n\
             create domain price as numeric(10, 2);",
        )])
        .unwrap();
        assert_eq!(order, ["price", "price_range"]);
    }

    #[test]
    fn types_used_in_function_arguments_and_results() {
        let order = ordered(&[
            (
                "f.sql",
                "create function total(items line_item[]) returns setof money_t \
                 language plpgsql as $$ begin end $$;",
            ),
            ("types1.sql", "create type money_t as (amount numeric);"),
            ("types2.sql", "create type line_item as (qty int);"),
        ])
        .unwrap();
        assert_eq!(order, ["money_t", "line_item", "total"]);
    }

    #[test]
    fn sql_function_referencing_another_sql_function() {
        let order = ordered(&[(
            "f.sql",
            "create function a() returns int language sql as $$ select b() + c() $$;\n\
             create function b() returns int language sql begin atomic select c(); end;\n\
             create function c() returns int language sql return 1;",
        )])
        .unwrap();
        assert_eq!(order, ["c", "b", "a"]);
    }

    #[test]
    fn view_referencing_view_and_function() {
        let order = ordered(&[
            (
                "views/a.sql",
                "create view top as select * from base_v where ok(id);",
            ),
            ("views/b.sql", "create view base_v as select id from t;"),
            (
                "functions/ok.sql",
                "create function ok(int) returns bool language sql as 'select true';",
            ),
            ("tables/t.sql", "create table t (id int);"),
        ])
        .unwrap();
        assert_eq!(order, ["ok", "t", "base_v", "top"]);
    }

    #[test]
    fn trigger_after_its_function_and_table() {
        let order = ordered(&[
            (
                "triggers.sql",
                "create trigger stamp before update on items for each row execute function touch();",
            ),
            (
                "functions.sql",
                "create function touch() returns trigger language plpgsql as $$ begin return new; end $$;",
            ),
            ("tables.sql", "create table items (id int);"),
        ])
        .unwrap();
        assert_eq!(order, ["touch", "items", "stamp"]);
    }

    #[test]
    fn plpgsql_mutual_recursion_is_not_a_cycle() {
        let order = ordered(&[
            (
                "even.sql",
                "create function is_even(n int) returns bool language plpgsql as $$\n\
                 begin return n = 0 or is_odd(n - 1); end $$;",
            ),
            (
                "odd.sql",
                "create function is_odd(n int) returns bool language plpgsql as $$\n\
                 begin return n <> 0 and is_even(n - 1); end $$;",
            ),
        ])
        .unwrap();
        assert_eq!(order, ["is_even", "is_odd"]);
    }

    #[test]
    fn sql_mutual_recursion_is_a_cycle_naming_both() {
        let (members, message) = cycle(&[
            (
                "functions/a.sql",
                "-- a calls b\n\n\ncreate function a() returns int language sql as $$ select b() $$;",
            ),
            (
                "functions/b.sql",
                "create function b() returns int language sql begin atomic select a(); end;",
            ),
        ]);
        assert_eq!(
            members,
            [
                "function a() (functions/a.sql:4)",
                "function b() (functions/b.sql:1)"
            ]
        );
        assert_eq!(
            message,
            "dependency cycle between SQL objects: function a() (functions/a.sql:4) -> \
             function b() (functions/b.sql:1) -> function a() (functions/a.sql:4)"
        );
    }

    #[test]
    fn composite_types_containing_each_other_are_a_cycle() {
        let (members, _) = cycle(&[(
            "t.sql",
            "create type other as (x int);\n\
             create type a as (b_list b[]);\n\
             create type b as (a_one s.a);\n\
             create type s.a as (b_one b);",
        )]);
        // `a` needs `b`, `b` needs `s.a`, `s.a` needs `b`: the cycle is `b`
        // and `s.a`; `a` only waits on it.
        assert_eq!(members, ["type b (t.sql:3)", "type s.a (t.sql:4)"]);
    }

    #[test]
    fn cycle_of_three_is_walked_in_dependency_order() {
        let (members, _) = cycle(&[(
            "v.sql",
            "create view v1 as select * from v2;\n\
             create view v3 as select * from v1;\n\
             create view v2 as select * from v3;",
        )]);
        assert_eq!(
            members,
            [
                "view v1 (v.sql:1)",
                "view v2 (v.sql:3)",
                "view v3 (v.sql:2)"
            ]
        );
    }

    #[test]
    fn overloaded_name_depends_on_every_definition() {
        let order = ordered(&[(
            "f.sql",
            "create view v as select area(1);\n\
             create function area(int) returns int language sql return 1;\n\
             create table unrelated (a int);\n\
             create function area(text) returns int language sql return 2;",
        )])
        .unwrap();
        assert_eq!(order, ["area", "unrelated", "area", "v"]);
    }

    #[test]
    fn qualified_references_match_only_their_schema() {
        let statements: Vec<Statement> = [
            "create view v as select * from api.t;",
            "create table t (a int);",
            "create table internal.t (a int);",
            "create table api.t (a int);",
        ]
        .iter()
        .flat_map(|sql| parse(sql))
        .collect();
        let order: Vec<String> = order(statements)
            .unwrap()
            .into_iter()
            .map(|s| s.sql)
            .collect();
        assert_eq!(
            order,
            [
                "create table t (a int);",
                "create table internal.t (a int);",
                "create table api.t (a int);",
                "create view v as select * from api.t;",
            ]
        );
        let unqualified = ordered(&[(
            "x.sql",
            "create view v as select * from t;\ncreate table internal.t (a int);",
        )])
        .unwrap();
        assert_eq!(unqualified, ["internal.t", "v"]);
    }

    #[test]
    fn unknown_references_keep_input_order() {
        let order = ordered(&[(
            "x.sql",
            "create view b as select now(), * from pg_class;\n\
             create function a(x text) returns uuid language sql return gen_random_uuid();\n\
             grant select on b to public;",
        )])
        .unwrap();
        assert_eq!(order, ["b", "a", "grant select on b to public;"]);
    }

    #[test]
    fn statements_about_an_object_follow_its_creation() {
        let order = ordered(&[(
            "x.sql",
            "comment on function f(int) is 'doc';\n\
             create schema api;\n\
             create function api.g() returns int language sql return 1;\n\
             create function f(int) returns int language sql return 1;",
        )])
        .unwrap();
        // The schema comes before what is created in it even when the
        // function file sorts first.
        assert_eq!(
            order,
            ["api", "api.g", "f", "comment on function f(int) is 'doc';"]
        );
    }

    #[test]
    fn ctes_are_not_relation_references() {
        let order = ordered(&[(
            "x.sql",
            "create view v as with recent as (select 1 as a) select a from recent;\n\
             create view recent as select 2 as a;",
        )])
        .unwrap();
        assert_eq!(order, ["v", "recent"]);
    }

    #[test]
    fn sequence_named_in_a_default_comes_first() {
        let order = ordered(&[(
            "x.sql",
            "create table t (id bigint default nextval('T_ID_seq'));\n\
             create sequence t_id_seq;",
        )])
        .unwrap();
        assert_eq!(order, ["t_id_seq", "t"]);
    }

    #[test]
    fn percent_type_needs_its_table() {
        let order = ordered(&[(
            "x.sql",
            "create function f(x accounts.id%type) returns int language sql return 1;\n\
             create table accounts (id int);",
        )])
        .unwrap();
        assert_eq!(order, ["accounts", "f"]);
    }

    #[test]
    fn base_type_after_its_shell_and_io_functions() {
        let order = ordered(&[(
            "t.sql",
            "create type complex (input = complex_in, output = complex_out, internallength = 16);\n\
             create function complex_in(cstring) returns complex as 'mod' language c;\n\
             create function complex_out(complex) returns cstring as 'mod' language c;\n\
             create type complex;\n\
             create table c (v complex);",
        )])
        .unwrap();
        assert_eq!(
            order,
            ["complex", "complex_in", "complex_out", "complex", "c"]
        );
        let sql: Vec<String> = order_sql(
            "create type complex (input = complex_in, output = complex_out);\n\
             create function complex_in(cstring) returns complex as 'mod' language c;\n\
             create function complex_out(complex) returns cstring as 'mod' language c;\n\
             create type complex;",
        );
        assert_eq!(sql[0], "create type complex;");
        assert!(sql[3].starts_with("create type complex (input"));
    }

    fn order_sql(text: &str) -> Vec<String> {
        order(parse(text))
            .unwrap()
            .into_iter()
            .map(|s| s.sql)
            .collect()
    }

    #[test]
    fn aggregate_and_operator_after_their_functions_and_types() {
        let order = ordered(&[(
            "x.sql",
            "create operator === (leftarg = pair, rightarg = pair, function = pair_eq);\n\
             create aggregate total(pair) (sfunc = pair_add, stype = pair);\n\
             create function pair_eq(pair, pair) returns bool language sql return true;\n\
             create function pair_add(pair, pair) returns pair language sql return $1;\n\
             create type pair as (a int, b int);",
        )])
        .unwrap();
        assert_eq!(order, ["pair", "pair_eq", "===", "pair_add", "total"]);
    }
}
