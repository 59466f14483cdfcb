//! What a statement defines and what it references, read off its syntax tree.

use std::collections::{BTreeMap, HashSet};

use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SyntaxKind, SyntaxNode};

use super::{Call, Namespace, ObjectKind, ObjectName, Signature, StatementKind, canonical_type};

pub(super) struct Analysis {
    pub(super) kind: StatementKind,
    pub(super) defines: Vec<ObjectName>,
    pub(super) references: Vec<ObjectName>,
    pub(super) standard_body: bool,
    pub(super) drops: Vec<ObjectName>,
    pub(super) signature: Option<Signature>,
    pub(super) arities: BTreeMap<ObjectName, Vec<Call>>,
}

/// Classifies one top-level statement and collects its names.
pub(super) fn analyze(node: &SyntaxNode, first_token: SyntaxKind) -> Analysis {
    use SyntaxKind as K;
    let mut defines = Vec::new();
    let mut refs = Refs::new();
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
        K::CREATE_TRIGGER => {
            define_member(node, K::TRIGGER, Namespace::Trigger, &mut defines);
            StatementKind::Create(ObjectKind::Trigger)
        }
        K::CREATE_EVENT_TRIGGER => {
            define_name(
                node,
                K::EVENT_TRIGGER,
                Namespace::EventTrigger,
                &mut defines,
            );
            StatementKind::Create(ObjectKind::EventTrigger)
        }
        K::CREATE_POLICY => {
            define_member(node, K::POLICY, Namespace::Policy, &mut defines);
            StatementKind::Create(ObjectKind::Policy)
        }
        K::CREATE_RULE => {
            define_member(node, K::RULE, Namespace::Rule, &mut defines);
            StatementKind::Create(ObjectKind::Rule)
        }
        K::CREATE_COLLATION => {
            define_path(node, K::COLLATION, Namespace::Collation, &mut defines);
            StatementKind::Create(ObjectKind::Collation)
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

    let signature = match kind {
        StatementKind::Create(ObjectKind::Function) => {
            ast::CreateFunction::cast(node.clone()).and_then(|f| signature(f.param_list(), false))
        }
        StatementKind::Create(ObjectKind::Procedure) => {
            ast::CreateProcedure::cast(node.clone()).and_then(|p| signature(p.param_list(), true))
        }
        StatementKind::Create(ObjectKind::Aggregate) => {
            ast::CreateAggregate::cast(node.clone()).and_then(|a| signature(a.param_list(), false))
        }
        _ => None,
    };
    // `$n` in the routine's body is its argument n.
    refs.params = signature
        .as_ref()
        .map(|s| s.params.clone())
        .unwrap_or_default();

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
            let mut body_refs = Refs::new();
            body_refs.params = refs.params.clone();
            body_refs.walk(&body_root);
            refs.absorb(body_refs);
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
    // SQL-standard bodies (BEGIN ATOMIC ... END, RETURN expr): PostgreSQL 14.
    let standard_body = matches!(
        kind,
        StatementKind::Create(ObjectKind::Function | ObjectKind::Procedure)
    ) && node
        .children()
        .any(|c| matches!(c.kind(), SyntaxKind::RETURN_STMT | SyntaxKind::ATOMIC_BODY));
    let drops = match kind {
        StatementKind::Drop(dropped) => dropped_names(node, dropped),
        _ => Vec::new(),
    };
    let (references, arities) = refs.into_parts();
    Analysis {
        drops,
        standard_body,
        kind,
        defines,
        references,
        signature,
        arities,
    }
}

/// The names a `DROP` removes: its top-level name references (not the
/// argument types of a routine signature), in the namespace of what it
/// drops; a dropped table or view also takes its row type.
fn dropped_names(node: &SyntaxNode, kind: ObjectKind) -> Vec<ObjectName> {
    let namespaces: &[Namespace] = match kind {
        ObjectKind::Function | ObjectKind::Procedure | ObjectKind::Aggregate => {
            &[Namespace::Routine]
        }
        ObjectKind::Type | ObjectKind::Domain => &[Namespace::Type],
        ObjectKind::Table | ObjectKind::View | ObjectKind::MaterializedView => {
            &[Namespace::Relation, Namespace::Type]
        }
        ObjectKind::Sequence | ObjectKind::Index => &[Namespace::Relation],
        ObjectKind::Schema => &[Namespace::Schema],
        ObjectKind::Collation => &[Namespace::Collation],
        // Named by a plain name, not a path.
        ObjectKind::Trigger | ObjectKind::EventTrigger | ObjectKind::Policy | ObjectKind::Rule => {
            let (namespace, holder) = match kind {
                ObjectKind::Trigger => (Namespace::Trigger, SyntaxKind::TRIGGER_REF),
                ObjectKind::EventTrigger => {
                    (Namespace::EventTrigger, SyntaxKind::EVENT_TRIGGER_REF)
                }
                ObjectKind::Policy => (Namespace::Policy, SyntaxKind::POLICY_REF),
                _ => (Namespace::Rule, SyntaxKind::RULE_REF),
            };
            return node
                .descendants()
                .filter(|n| n.kind() == holder)
                .map(|n| ObjectName::new(namespace, None, &member(&n, namespace)))
                .collect();
        }
        _ => return Vec::new(),
    };
    let mut names = Vec::new();
    let mut stack: Vec<SyntaxNode> = node.children().collect();
    while let Some(child) = stack.pop() {
        match child.kind() {
            SyntaxKind::PARAM_LIST => {}
            SyntaxKind::PATH_REF => {
                if let Some((schema, name)) =
                    ast::PathRef::cast(child.clone()).and_then(|p| path_ref_parts(&p))
                {
                    for namespace in namespaces {
                        names.push(ObjectName::new(*namespace, schema.as_deref(), &name));
                    }
                }
            }
            _ => stack.extend(child.children()),
        }
    }
    names
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
        K::DROP_TRIGGER => ObjectKind::Trigger,
        K::DROP_EVENT_TRIGGER => ObjectKind::EventTrigger,
        K::DROP_POLICY => ObjectKind::Policy,
        K::DROP_RULE => ObjectKind::Rule,
        K::DROP_COLLATION => ObjectKind::Collation,
        K::DROP_INDEX => ObjectKind::Index,
        K::DROP_SCHEMA => ObjectKind::Schema,
        K::DROP_EXTENSION => ObjectKind::Extension,
        _ => ObjectKind::Other,
    }
}

/// Defines the trigger, policy or rule named by the `holder` child of
/// `node`, by [`member`]'s name.
fn define_member(
    node: &SyntaxNode,
    holder: SyntaxKind,
    namespace: Namespace,
    defines: &mut Vec<ObjectName>,
) {
    if let Some(name) = child(node, holder) {
        defines.push(ObjectName::new(namespace, None, &member(&name, namespace)));
    }
}

/// The name of a trigger, policy or rule, whose names are per table: `trg
/// on items`, with the table of the statement it is named in (its first
/// relation: `ON items` of `CREATE TRIGGER` and `COMMENT ON TRIGGER`,
/// `ALTER TABLE items`). An event trigger's name is the database's.
fn member(name_node: &SyntaxNode, namespace: Namespace) -> String {
    let name = ast::normalize_name_node(name_node);
    if namespace == Namespace::EventTrigger {
        return name;
    }
    let statement = name_node.ancestors().find(|a| {
        a.parent()
            .is_none_or(|p| p.kind() == SyntaxKind::SOURCE_FILE)
    });
    let table = statement.and_then(|s| {
        s.descendants()
            .filter(|d| {
                matches!(
                    d.kind(),
                    SyntaxKind::RELATION_NAME_REF | SyntaxKind::TABLE_NAME_REF
                )
            })
            .find_map(|d| d.children().find_map(ast::PathRef::cast))
            .as_ref()
            .and_then(path_ref_parts)
            .map(|(_, table)| table)
    });
    match table {
        Some(table) => format!("{name} on {table}"),
        None => name,
    }
}

/// Defines the plain name held by the `holder` child of `node` (an event
/// trigger's: a name that is not schema-qualified).
fn define_name(
    node: &SyntaxNode,
    holder: SyntaxKind,
    namespace: Namespace,
    defines: &mut Vec<ObjectName>,
) {
    if let Some(name) = child(node, holder) {
        defines.push(ObjectName {
            namespace,
            schema: None,
            name: ast::normalize_name_node(&name),
        });
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
    /// Routine names called, with each call's shape.
    calls: BTreeMap<ObjectName, Vec<Call>>,
    /// The canonical argument types of the routine whose body this is
    /// (what `$n` stands for).
    params: Vec<String>,
    /// Routine names also used otherwise (no call, or a call whose
    /// arguments cannot be counted): they need every overload.
    uncounted: HashSet<ObjectName>,
    /// Names of the statement's common table expressions seen so far:
    /// `FROM cte` is not a relation defined elsewhere.
    ctes: HashSet<String>,
}

impl Refs {
    fn new() -> Refs {
        Refs {
            names: Vec::new(),
            seen: HashSet::new(),
            calls: BTreeMap::new(),
            params: Vec::new(),
            uncounted: HashSet::new(),
            ctes: HashSet::new(),
        }
    }

    /// Takes in the names another walk found (a routine's string body).
    fn absorb(&mut self, other: Refs) {
        for name in other.names {
            self.push(name);
        }
        for (name, arities) in other.calls {
            self.calls.entry(name).or_default().extend(arities);
        }
        self.uncounted.extend(other.uncounted);
    }

    /// The names, and the arities of the routine names only ever called
    /// with countable arguments (each list sorted, without duplicates).
    fn into_parts(mut self) -> (Vec<ObjectName>, BTreeMap<ObjectName, Vec<Call>>) {
        self.calls.retain(|name, arities| {
            arities.sort_unstable();
            arities.dedup();
            !self.uncounted.contains(name)
        });
        (self.names, self.calls)
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
            let name = ObjectName {
                namespace,
                schema,
                name,
            };
            if namespace == Namespace::Routine {
                self.uncounted.insert(name.clone());
            }
            self.push(name);
        }
    }

    /// Pushes the name held by a `*_REF` node's `PathRef` child.
    fn push_ref_node(&mut self, namespace: Namespace, node: &SyntaxNode) {
        self.push_path_ref(namespace, node.children().find_map(ast::PathRef::cast));
    }

    fn walk(&mut self, node: &SyntaxNode) {
        use SyntaxKind as K;
        match node.kind() {
            // A common table expression's name comes before its uses in
            // the tree (`WITH x AS (...) SELECT ... FROM x`, and inside a
            // recursive one's body).
            K::CTE_NAME => {
                self.ctes.insert(ast::normalize_name_node(node));
                return;
            }
            K::PATH_TYPE | K::TYPE_NAME_REF | K::DOMAIN_REF => {
                self.push_ref_node(Namespace::Type, node);
                // Type modifiers (`numeric(10, 2)`) hold no names.
                return;
            }
            K::PERCENT_TYPE | K::QUALIFIED_COLUMN_NAME_REF => {
                // `table.column%TYPE` and `table.column` need the table.
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
            K::COLLATION_REF => {
                self.push_ref_node(Namespace::Collation, node);
                return;
            }
            K::TRIGGER_REF | K::EVENT_TRIGGER_REF | K::POLICY_REF | K::RULE_REF => {
                let namespace = match node.kind() {
                    K::TRIGGER_REF => Namespace::Trigger,
                    K::EVENT_TRIGGER_REF => Namespace::EventTrigger,
                    K::POLICY_REF => Namespace::Policy,
                    _ => Namespace::Rule,
                };
                if !ast::normalize_name_node(node).is_empty() {
                    self.push(ObjectName::new(namespace, None, &member(node, namespace)));
                }
                return;
            }
            // `'t'::regclass`, `'f(int)'::regprocedure`: resolved when the
            // statement is parsed, so the object must exist.
            K::CAST_EXPR => self.reg_literal(node),
            K::SCHEMA_REF => {
                let name = ast::normalize_name_node(node);
                if !name.is_empty() {
                    self.push(ObjectName::new(Namespace::Schema, None, &name));
                }
                return;
            }
            // `COMMENT ON AGGREGATE agg(int)`, `ALTER AGGREGATE ... OWNER`:
            // the aggregate, then the argument types below.
            K::AGGREGATE => self.push_ref_node(Namespace::Routine, node),
            // `COMMENT ON CAST (a AS b)`: the cast, then its types below.
            K::CAST_SIG => self.push(cast_name(node)),
            // An operator: in `COMMENT ON OPERATOR`, `ALTER OPERATOR`, and
            // used in an expression.
            K::OP | K::CUSTOM_OP => {
                self.push(operator_name(node));
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
        let name = ObjectName {
            namespace: Namespace::Routine,
            schema,
            name,
        };
        match call_shape(node, &self.params) {
            Some(call) => self.calls.entry(name.clone()).or_default().push(call),
            None => {
                self.uncounted.insert(name.clone());
            }
        }
        self.push(name);
        for child in node.children().skip(1) {
            self.walk(&child);
        }
        true
    }

    /// A string cast to an object identifier type names that object.
    fn reg_literal(&mut self, cast: &SyntaxNode) {
        let Some(text) = cast
            .children()
            .find_map(ast::Literal::cast)
            .and_then(|l| l.string_value())
        else {
            return;
        };
        let Some((_, ty)) = cast
            .children()
            .find(|c| c.kind() == SyntaxKind::PATH_TYPE)
            .and_then(|t| t.children().find_map(ast::PathRef::cast))
            .as_ref()
            .and_then(path_ref_parts)
        else {
            return;
        };
        let (namespace, text, arity) = match ty.as_str() {
            "regclass" => (Namespace::Relation, text.as_str(), None),
            "regtype" => (Namespace::Type, text.as_str(), None),
            "regcollation" => (Namespace::Collation, text.as_str(), None),
            "regnamespace" => (Namespace::Schema, text.as_str(), None),
            "regproc" => (Namespace::Routine, text.as_str(), None),
            "regprocedure" => {
                // `name(type, ...)`: the name, and its argument types.
                let Some((name, args)) = text.split_once('(') else {
                    return;
                };
                let args = args.trim_end().trim_end_matches(')').trim();
                // Commas inside a type modifier (`numeric(10,2)`) do not
                // separate arguments.
                let mut types = Vec::new();
                let (mut depth, mut start) = (0usize, 0);
                for (i, c) in args.char_indices() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth = depth.saturating_sub(1),
                        ',' if depth == 0 => {
                            types.push(Some(canonical_type(&args[start..i])));
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
                if !args.is_empty() {
                    types.push(Some(canonical_type(&args[start..])));
                }
                let call = Call {
                    arity: types.len(),
                    types,
                };
                (Namespace::Routine, name, Some(call))
            }
            _ => return,
        };
        let Some((schema, name)) = parse_qualified(text) else {
            return;
        };
        let name = ObjectName {
            namespace,
            schema,
            name,
        };
        if namespace == Namespace::Routine {
            match arity {
                Some(call) => self.calls.entry(name.clone()).or_default().push(call),
                None => {
                    self.uncounted.insert(name.clone());
                }
            }
        }
        self.push(name);
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

/// How many arguments a call passes (`count(*)` passes none), and their
/// types where the call shows them; `None` when the arguments are not a
/// plain list. `params` are the types of the enclosing routine's own
/// arguments, for `$n`.
fn call_shape(call: &SyntaxNode, params: &[String]) -> Option<Call> {
    let args = ast::CallExpr::cast(call.clone())?.arg_list()?;
    if args.star_token().is_some() {
        return Some(Call {
            arity: 0,
            types: Vec::new(),
        });
    }
    let types: Vec<Option<String>> = args
        .args()
        .map(|arg| arg.expr().and_then(|e| expr_type(&e, params)))
        .collect();
    Some(Call {
        arity: types.len(),
        types,
    })
}

/// Built-in functions that return text, for the type of a call's argument.
const TEXT_FUNCTIONS: &[&str] = &[
    "array_to_string",
    "btrim",
    "concat",
    "concat_ws",
    "format",
    "initcap",
    "left",
    "lower",
    "lpad",
    "ltrim",
    "md5",
    "quote_ident",
    "quote_literal",
    "quote_nullable",
    "regexp_replace",
    "repeat",
    "replace",
    "right",
    "rpad",
    "rtrim",
    "string_agg",
    "substr",
    "to_char",
    "translate",
    "trim",
    "upper",
];

/// The type of an expression where its syntax shows it: a cast, a number
/// or boolean literal, `$n` of a routine's own (not polymorphic) argument,
/// a built-in that returns text, a concatenation with a string literal.
fn expr_type(expr: &ast::Expr, params: &[String]) -> Option<String> {
    match expr {
        ast::Expr::CastExpr(cast) => {
            let ty = cast
                .syntax()
                .children()
                .find(|c| c.kind() == SyntaxKind::PATH_TYPE)?;
            Some(canonical_type(&ty.text().to_string()))
        }
        ast::Expr::Literal(literal) => {
            let token = literal.syntax().first_token()?;
            match token.kind() {
                SyntaxKind::INT_NUMBER => Some("integer".into()),
                SyntaxKind::NUMERIC_NUMBER => Some("numeric".into()),
                SyntaxKind::TRUE_KW | SyntaxKind::FALSE_KW => Some("boolean".into()),
                SyntaxKind::POSITIONAL_PARAM => {
                    let n: usize = token.text().trim_start_matches('$').parse().ok()?;
                    params
                        .get(n.checked_sub(1)?)
                        .filter(|t| !t.starts_with("any"))
                        .cloned()
                }
                _ => None,
            }
        }
        ast::Expr::CallExpr(call) => {
            let callee = call.syntax().first_child()?;
            (callee.kind() == SyntaxKind::NAME_REF
                && TEXT_FUNCTIONS.contains(&ast::normalize_name_node(&callee).as_str()))
            .then(|| "text".into())
        }
        ast::Expr::BinExpr(bin) => {
            let is_concat = bin
                .syntax()
                .children()
                .any(|c| c.kind() == SyntaxKind::CUSTOM_OP && c.text() == "||");
            let string_side = bin
                .syntax()
                .children()
                .filter_map(ast::Literal::cast)
                .any(|l| {
                    l.syntax()
                        .first_token()
                        .is_some_and(|t| t.kind() == SyntaxKind::STRING)
                });
            (is_concat && string_side).then(|| "text".into())
        }
        ast::Expr::ParenExpr(paren) => paren.expr().and_then(|e| expr_type(&e, params)),
        _ => None,
    }
}

/// What calls a routine with these parameters accepts. Output arguments
/// are not passed, except to a procedure (from PostgreSQL 14 on they take
/// a placeholder in `CALL`). An ordered-set aggregate's call is not
/// counted here (`None`: every call may reach it).
fn signature(params: Option<ast::ParamList>, procedure: bool) -> Option<Signature> {
    let Some(params) = params else {
        return Some(Signature {
            min: 0,
            max: Some(0),
            types: String::new(),
            params: Vec::new(),
        });
    };
    if params.aggregate_order_by().is_some() {
        return None;
    }
    if params.star_token().is_some() {
        return Some(Signature {
            min: 0,
            max: Some(0),
            types: "*".into(),
            params: Vec::new(),
        });
    }
    let (mut min, mut max, mut variadic) = (0, 0, false);
    let mut types = String::new();
    let mut canonical = Vec::new();
    for param in params.params() {
        let mode = param.mode();
        if matches!(mode, Some(ast::ParamMode::ParamOut(_))) && !procedure {
            continue;
        }
        variadic |= matches!(mode, Some(ast::ParamMode::ParamVariadic(_)));
        max += 1;
        if param.param_default().is_none() {
            min = max;
        }
        if let Some(ty) = param.func_type() {
            canonical.push(canonical_type(&ty.syntax().text().to_string()));
            // The type as written, whitespace collapsed.
            if !types.is_empty() {
                types.push_str(", ");
            }
            let mut space = false;
            ty.syntax().text().for_each_chunk(|chunk| {
                for c in chunk.chars() {
                    if c.is_whitespace() {
                        space = true;
                    } else {
                        if space && !types.ends_with(", ") && !types.is_empty() {
                            types.push(' ');
                        }
                        space = false;
                        types.push(c);
                    }
                }
            });
        }
    }
    Some(Signature {
        min,
        max: (!variadic).then_some(max),
        types,
        params: canonical,
    })
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
