//! The order the statements of one package run in.

use std::collections::HashMap;

use squawk_syntax::SourceFile;
use squawk_syntax::ast::{self, AstNode};

use super::{
    Call, CycleMember, Namespace, ObjectKind, ObjectName, SqlError, Statement, StatementKind,
};
use crate::util::toposort::toposort;

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
///
/// `own_schema` is the schema the package deploys into: a reference
/// qualified with it (`mypkg.url_encode(x)`) matches the package's
/// unqualified definitions. A relation defined twice (pg_dump's placeholder
/// view, then `CREATE OR REPLACE VIEW`) keeps its definitions in input
/// order, and a reference needs only the first: routines defined under one
/// name are overloads instead, and a reference needs them all.
pub fn order(
    statements: Vec<Statement>,
    own_schema: Option<&str>,
) -> Result<Vec<Statement>, SqlError> {
    let tagged = statements.into_iter().map(|s| ((), s)).collect();
    Ok(order_tagged(tagged, own_schema, |_| false)?
        .into_iter()
        .map(|(_, s)| s)
        .collect())
}

/// [`order`] over statements that each carry a tag (the phase they come
/// from), which comes along. The statements `chained` selects keep their
/// input order among themselves (each waits for the one before it), as
/// table scripts do; the others move as their references ask.
pub fn order_tagged<T>(
    tagged: Vec<(T, Statement)>,
    own_schema: Option<&str>,
    chained: impl Fn(&T) -> bool,
) -> Result<Vec<(T, Statement)>, SqlError> {
    let (tags, statements): (Vec<T>, Vec<Statement>) = tagged.into_iter().unzip();
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
    let replaces: Vec<bool> = statements.iter().map(is_replacement).collect();
    let mut droppers: Definers = HashMap::new();
    for (index, statement) in statements.iter().enumerate() {
        for name in &statement.drops {
            droppers
                .entry((name.namespace, name.name.as_str()))
                .or_default()
                .push((name.schema.as_deref(), index));
        }
    }

    // deps[i]: statements i must come after, ascending and distinct.
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (index, statement) in statements.iter().enumerate() {
        let mut targets = Vec::new();
        for name in &statement.references {
            let Some(candidates) = definers.get(&(name.namespace, name.name.as_str())) else {
                continue;
            };
            let same_schema = |schema: &Option<&str>| {
                name.schema.is_none()
                    || name.schema.as_deref() == *schema
                    || (schema.is_none() && name.schema.as_deref() == own_schema)
            };
            let matching: Vec<usize> = candidates
                .iter()
                .filter(|(schema, other)| *other != index && same_schema(schema))
                .map(|&(_, other)| other)
                .collect();
            let before = targets.len();
            if name.namespace == Namespace::Relation {
                // Redefinitions of a relation: the first one is enough
                // (the one that creates it; see below).
                targets.extend(first_definition(&matching, &replaces));
            } else {
                targets.extend(reachable(
                    &statements,
                    &matching,
                    statement.arities.get(name),
                ));
            }
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
        // A relation defined more than once (pg_dump's placeholder view,
        // then CREATE OR REPLACE VIEW): the definitions run in input
        // order, except that the one that creates it (a CREATE without OR
        // REPLACE) runs first wherever it is.
        for name in &statement.defines {
            if name.namespace != Namespace::Relation {
                continue;
            }
            let Some(others) = definers.get(&(name.namespace, name.name.as_str())) else {
                continue;
            };
            // Definitions in another schema are another relation.
            let here = name.schema.as_deref().or(own_schema);
            let others: Vec<usize> = others
                .iter()
                .filter(|(schema, _)| schema.or(own_schema) == here)
                .map(|&(_, o)| o)
                .filter(|&o| o != index)
                .collect();
            if replaces[index] {
                targets.extend(first_definition(&others, &replaces).filter(|&c| !replaces[c]));
                targets.extend(
                    others
                        .iter()
                        .copied()
                        .filter(|&o| o < index && replaces[o])
                        .max(),
                );
            } else {
                // Two that create it: the server refuses the second; keep
                // them in input order, so that it says so.
                targets.extend(
                    others
                        .iter()
                        .copied()
                        .filter(|&o| o < index && !replaces[o])
                        .max(),
                );
            }
        }
        // A DROP of a name runs before every statement that creates or
        // uses it, or the object would be gone after the deploy.
        for name in statement.defines.iter().chain(&statement.references) {
            let Some(drops) = droppers.get(&(name.namespace, name.name.as_str())) else {
                continue;
            };
            targets.extend(
                drops
                    .iter()
                    .filter(|(schema, other)| {
                        *other != index
                            && (name.schema.is_none()
                                || schema.is_none()
                                || name.schema.as_deref() == *schema)
                    })
                    .map(|&(_, other)| other),
            );
        }
        targets.sort_unstable();
        targets.dedup();
        deps[index] = targets;
    }
    let mut previous: Option<usize> = None;
    for (index, tag) in tags.iter().enumerate() {
        if chained(tag) {
            if let Some(before) = previous
                && let Err(at) = deps[index].binary_search(&before)
            {
                deps[index].insert(at, before);
            }
            previous = Some(index);
        }
    }

    let sequence = toposort(&deps).map_err(|cycles| {
        // Two chained statements next to each other on a loop: the chain
        // is one of its edges.
        let table_order = cycles.iter().any(|walk| {
            walk.iter()
                .zip(walk.iter().cycle().skip(1))
                .any(|(&a, &b)| chained(&tags[a]) && chained(&tags[b]))
        });
        cycle_error(&statements, cycles, table_order)
    })?;
    let mut position = vec![0; count];
    for (at, &index) in sequence.iter().enumerate() {
        position[index] = at;
    }
    let mut slots: Vec<Option<(T, Statement)>> =
        tags.into_iter().zip(statements).map(Some).collect();
    Ok(sequence
        .into_iter()
        .filter_map(|index| {
            let (tag, mut statement) = slots[index].take()?;
            let mut waits_for: Vec<usize> = deps[index].iter().map(|&d| position[d]).collect();
            waits_for.sort_unstable();
            statement.waits_for = waits_for;
            Some((tag, statement))
        })
        .collect())
}

/// The overloads among `candidates` that these calls can reach: for each
/// call, the ones whose parameters are exactly the call's argument types
/// where it shows them (PostgreSQL prefers an exact match), else those
/// its number of arguments fits. All of them when the calls are not known
/// or reach none (named arguments, an overload defined elsewhere:
/// depending on every candidate is then the safe guess).
fn reachable(
    statements: &[Statement],
    candidates: &[usize],
    calls: Option<&Vec<Call>>,
) -> Vec<usize> {
    let Some(calls) = calls else {
        return candidates.to_vec();
    };
    let signature = |c: usize| statements[c].signature.as_ref();
    let mut reached: Vec<usize> = Vec::new();
    for call in calls {
        let exact: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&c| signature(c).is_some_and(|sig| sig.exactly(call)))
            .collect();
        if exact.is_empty() {
            reached.extend(
                candidates
                    .iter()
                    .copied()
                    .filter(|&c| signature(c).is_none_or(|sig| sig.accepts(call.arity))),
            );
        } else {
            reached.extend(exact);
        }
    }
    reached.sort_unstable();
    reached.dedup();
    if reached.is_empty() {
        candidates.to_vec()
    } else {
        reached
    }
}

/// Among the definitions of one relation, the one a reference needs: the
/// one that creates it (no `OR REPLACE`), else the first.
fn first_definition(definitions: &[usize], replaces: &[bool]) -> Option<usize> {
    definitions
        .iter()
        .copied()
        .min_by_key(|&d| (replaces[d], d))
}

/// Whether a statement is a `CREATE OR REPLACE`.
fn is_replacement(statement: &Statement) -> bool {
    let mut words = statement.sql.split_whitespace();
    matches!(statement.kind, StatementKind::Create(_))
        && words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("create"))
        && words.next().is_some_and(|w| w.eq_ignore_ascii_case("or"))
        && words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("replace"))
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

/// Names the objects of the cycles [`toposort`] found, in dependency
/// order, routines with their argument types.
fn cycle_error(statements: &[Statement], cycles: Vec<Vec<usize>>, table_order: bool) -> SqlError {
    let member = |index: usize| {
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
            signature: statement.signature.as_ref().map(|s| s.types.clone()),
            file: statement.file.clone(),
            line: statement.line,
        }
    };
    SqlError::Cycle {
        table_order,
        cycles: cycles
            .into_iter()
            .map(|walk| walk.into_iter().map(member).collect())
            .collect(),
    }
}
