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

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

mod control;
mod order;
mod placeholder;
mod refs;
mod split;
#[cfg(test)]
mod tests;

pub use control::{SessionControl, is_transaction_wrapper};

pub use order::{order, order_tagged};
pub use placeholder::{Placeholders, substitute};
pub use split::parse_file;

use crate::util::text::char_to_byte;

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
    /// A routine with a SQL-standard body (`BEGIN ATOMIC ... END` or
    /// `RETURN expr`), which PostgreSQL accepts from version 14 on.
    pub standard_body: bool,
    /// What a `DROP` removes: every statement that creates or uses one of
    /// these runs after it.
    pub drops: Vec<ObjectName>,
    /// The `SET`s (and `RESET`s, `set_config` calls) of its file that come
    /// before it, in file order: it runs with them, and nothing of another
    /// file does (see `plan`).
    pub settings: Option<std::sync::Arc<Vec<Statement>>>,
    /// For a routine it creates: what calls it accepts.
    pub signature: Option<Signature>,
    /// For routine names it calls: every call's shape (a name also used
    /// without a call, as in `COMMENT ON FUNCTION f`, is not here: it
    /// needs every overload).
    pub arities: BTreeMap<ObjectName, Vec<Call>>,
    /// The statements this one must follow and why its place is what it
    /// is: positions, ascending, in the order [`order`] returns (the
    /// statements it defines, drops or replaces). Empty until ordered.
    pub waits_for: Vec<usize>,
}

impl Statement {
    /// The `SET`s it runs with ([`Statement::settings`]), none for most.
    pub fn settings(&self) -> &[Statement] {
        self.settings.as_deref().map_or(&[], Vec::as_slice)
    }

    /// The byte offset in the file of a 1-based character `position` within
    /// [`Statement::sql`], as PostgreSQL reports an error's position
    /// (`DbError::position`). Pass it to `util::text::line_col` with the file's text.
    /// Positions past the end map to the end of the statement.
    pub fn file_offset(&self, position: usize) -> usize {
        self.offset + char_to_byte(&self.sql, position)
    }
}

/// The input arguments of a routine, as far as a call tells its
/// overloads apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Input arguments without a default: the fewest a call passes.
    pub min: usize,
    /// The most a call passes; `None` with a `VARIADIC` argument.
    pub max: Option<usize>,
    /// The input argument types as written, for messages: `text, int`.
    pub types: String,
    /// The input argument types, canonical (see [`canonical_type`]).
    pub params: Vec<String>,
}

impl Signature {
    /// Whether a call with `n` arguments can reach this routine.
    pub fn accepts(&self, n: usize) -> bool {
        n >= self.min && self.max.is_none_or(|max| n <= max)
    }

    /// Whether a call's arguments whose types are known are exactly this
    /// routine's (PostgreSQL picks an exact match over every other).
    pub fn exactly(&self, call: &Call) -> bool {
        self.max.is_some()
            && call.arity <= self.params.len()
            && call
                .types
                .iter()
                .zip(&self.params)
                .all(|(arg, param)| arg.as_ref().is_none_or(|arg| arg == param))
            && call.types.iter().any(Option::is_some)
    }
}

/// One call of a routine: how many arguments, and the type of each where
/// the call shows it (a cast, a number, `$n` of a routine's own argument,
/// a built-in that returns text).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    pub arity: usize,
    pub types: Vec<Option<String>>,
}

/// A type name as PostgreSQL knows it, for comparing: lower-case, without
/// `pg_catalog.` or a type modifier, aliases resolved (`int` and `int4`
/// are `integer`).
pub fn canonical_type(text: &str) -> String {
    let lower = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let lower = lower
        .strip_prefix("pg_catalog.")
        .unwrap_or(&lower)
        .to_string();
    let (base, array) = match lower.find('[') {
        Some(at) => (lower[..at].trim().to_string(), "[]"),
        None => (lower.clone(), ""),
    };
    let base = match base.find('(') {
        Some(at) => base[..at].trim().to_string(),
        None => base,
    };
    let base = match base.as_str() {
        "int" | "int4" => "integer",
        "int8" => "bigint",
        "int2" => "smallint",
        "bool" => "boolean",
        "varchar" => "character varying",
        "char" | "bpchar" => "character",
        "float8" => "double precision",
        "float4" => "real",
        "decimal" => "numeric",
        "timestamptz" => "timestamp with time zone",
        "timestamp" => "timestamp without time zone",
        "timetz" => "time with time zone",
        other => other,
    }
    .to_string();
    format!("{base}{array}")
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
    EventTrigger,
    Policy,
    Rule,
    Collation,
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
            ObjectKind::EventTrigger => "event trigger",
            ObjectKind::Policy => "policy",
            ObjectKind::Rule => "rule",
            ObjectKind::Collation => "collation",
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
    /// Collations (`pg_collation`).
    Collation,
    /// Triggers, policies and rules: named per table (a name is taken to
    /// mean every table's, which only orders more than needed).
    Trigger,
    Policy,
    Rule,
    /// Event triggers: database-wide names.
    EventTrigger,
    /// Anything else that has a name (operators, casts, extensions).
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
        // Operators and casts are not identifiers, and a trigger's (a
        // policy's, a rule's) name says its table: `trg on items`.
        if matches!(
            self.namespace,
            Namespace::Other | Namespace::Trigger | Namespace::Policy | Namespace::Rule
        ) {
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
    /// A routine's input argument types (`text, integer`).
    pub signature: Option<String>,
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for CycleMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parens = match (self.kind, &self.signature) {
            (_, Some(types)) => format!("({types})"),
            (ObjectKind::Function | ObjectKind::Procedure | ObjectKind::Aggregate, None) => {
                "()".into()
            }
            _ => String::new(),
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
    /// A `@word@` placeholder that stands for no schema the package has.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Placeholder {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The statements reference each other in loops; each of `cycles`
    /// walks one loop once, each member depending on the next and the last
    /// on the first. Every loop is there, the lowest first.
    #[error("{}{}", cycles_display(cycles), if *table_order { TABLE_ORDER } else { "" })]
    Cycle {
        cycles: Vec<Vec<CycleMember>>,
        /// A loop goes through table scripts, which keep their files'
        /// order: the fix is renaming files.
        table_order: bool,
    },
    /// Parentheses nested deeper than any server accepts (PostgreSQL
    /// stops at its `max_stack_depth` long before).
    #[error(
        "{}:{line}:{column}: parentheses nested {depth} deep, more than the {limit} pgpm parses: split the expression",
        file.display()
    )]
    TooDeep {
        file: PathBuf,
        line: usize,
        column: usize,
        depth: usize,
        limit: usize,
    },
}

const TABLE_ORDER: &str = "\ntable scripts run in the order of their file names, and each file's statements in the order written: rename the files (or move the statements) so that what a table script uses comes before it";

fn cycles_display(cycles: &[Vec<CycleMember>]) -> String {
    let walk = |objects: &Vec<CycleMember>| {
        let mut parts: Vec<String> = objects.iter().map(ToString::to_string).collect();
        if let Some(first) = objects.first() {
            parts.push(first.to_string());
        }
        parts.join(" -> ")
    };
    match cycles {
        [one] => format!("dependency cycle between SQL objects: {}", walk(one)),
        many => {
            let mut out = format!("{} dependency cycles between SQL objects:", many.len());
            for (i, cycle) in many.iter().enumerate() {
                out.push_str(&format!("\n  {}. {}", i + 1, walk(cycle)));
            }
            out
        }
    }
}

impl Statement {
    /// The statement in a few words: `create type invoice_line`, or its
    /// first line (cut at 72 characters) when it defines nothing.
    pub fn summary(&self) -> String {
        if let (StatementKind::Create(kind), Some(name)) = (self.kind, self.defines.first()) {
            return match &self.signature {
                Some(sig) => format!("create {kind} {name}({})", sig.types),
                None => format!("create {kind} {name}"),
            };
        }
        let line = self.sql.lines().next().unwrap_or("").trim();
        const MAX: usize = 72;
        if line.chars().count() > MAX {
            let cut: String = line.chars().take(MAX - 3).collect();
            format!("{cut}...")
        } else {
            line.to_string()
        }
    }
}

impl fmt::Display for StatementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatementKind::Create(k) => write!(f, "create {k}"),
            StatementKind::Drop(k) => write!(f, "drop {k}"),
            StatementKind::Other => f.write_str("other"),
        }
    }
}
