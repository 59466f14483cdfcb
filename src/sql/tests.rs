//! Tests of splitting, analysis and ordering together.

use std::path::Path;

use super::*;
use crate::util::text::line_col;

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
    Ok(order(all, None)?
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
            let SqlError::Cycle { cycles, .. } = err else {
                unreachable!()
            };
            (cycles[0].iter().map(ToString::to_string).collect(), message)
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
            &[name(Namespace::Trigger, None, "trg on t")],
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
            StatementKind::Create(O::Policy),
            &[name(Namespace::Policy, None, "p on t")],
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
    assert_eq!(order, ["touch", "items", "stamp on items"]);
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
fn overloaded_name_depends_on_every_definition_its_call_may_reach() {
    let order = |call: &str| {
        ordered(&[(
            "f.sql",
            &format!(
                "create view v as select {call};\n\
                 create function area(int) returns int language sql return 1;\n\
                 create table unrelated (a int);\n\
                 create function area(text) returns int language sql return 2;"
            ),
        )])
        .unwrap()
    };
    // An unknown-type literal could reach either overload.
    assert_eq!(order("area('x')"), ["area", "unrelated", "area", "v"]);
    // An integer reaches area(int) exactly.
    assert_eq!(order("area(1)"), ["area", "v", "unrelated", "area"]);
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
    let order: Vec<String> = order(statements, None)
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
    order(parse(text), None)
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

#[test]
fn deep_nesting_parses_on_a_stack_of_its_own_or_is_refused() {
    let deep = |n: usize| format!("SELECT {}1{};\n", "(".repeat(n), ")".repeat(n));
    // Deeper than the caller's stack would take, but within the limit.
    let statements = parse_file(Path::new("deep.sql"), &deep(5_000)).expect("parses");
    assert_eq!(statements.len(), 1);
    match parse_file(
        Path::new("deeper.sql"),
        &format!("SELECT 1;\n{}", deep(20_000)),
    ) {
        Err(SqlError::TooDeep {
            line, depth, limit, ..
        }) => assert_eq!((line, depth, limit), (2, 20_000, 10_000)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_drop_runs_before_whatever_creates_or_uses_what_it_drops() {
    let order = ordered(&[(
        "a.sql",
        "create function f() returns int language sql return 1;\n\
         create view v as select f();\n\
         drop view if exists v;\n\
         drop function if exists public.f();",
    )])
    .unwrap();
    assert_eq!(
        order,
        [
            "drop view if exists v;",
            "drop function if exists public.f();",
            "f",
            "v"
        ]
    );
    // The argument types of a signature are not dropped.
    let order = ordered(&[(
        "a.sql",
        "create type t as (a int);\ndrop function if exists g(t);",
    )])
    .unwrap();
    assert_eq!(order, ["t", "drop function if exists g(t);"]);
}

#[test]
fn a_reference_qualified_with_the_packages_own_schema_matches_its_definitions() {
    let mut all = Vec::new();
    all.extend(
        parse_file(
            Path::new("v.sql"),
            "create view mypkg_v as select mypkg.url_encode('x');",
        )
        .unwrap(),
    );
    all.extend(
        parse_file(
            Path::new("f.sql"),
            "create function url_encode(t text) returns text language sql return t;",
        )
        .unwrap(),
    );
    let names = |order: Vec<Statement>| -> Vec<String> {
        order
            .into_iter()
            .map(|s| s.defines.first().map(ToString::to_string).unwrap_or(s.sql))
            .collect()
    };
    assert_eq!(
        names(order(all.clone(), Some("mypkg")).unwrap()),
        ["url_encode", "mypkg_v"]
    );
    // Another schema's name does not match.
    assert_eq!(
        names(order(all, Some("other")).unwrap()),
        ["mypkg_v", "url_encode"]
    );
}

#[test]
fn a_placeholder_view_and_its_replacement_keep_their_order() {
    // pg_dump's way out of a cycle: a placeholder, what needs it, the real view.
    let order = ordered(&[(
        "dump.sql",
        "create view v as select null::int as a;\n\
         create function f() returns int language sql as 'select a from v';\n\
         create or replace view v as select f() as a;",
    )])
    .unwrap();
    assert_eq!(order, ["v", "f", "v"]);
}

#[test]
fn a_routines_signature_says_which_calls_reach_it() {
    let sig = |sql: &str| {
        let s = parse(sql).remove(0).signature.expect("a signature");
        (s.min, s.max, s.types)
    };
    assert_eq!(
        sig("create function f() returns int language sql return 1"),
        (0, Some(0), String::new())
    );
    assert_eq!(
        sig(
            "create function f(a int, b  text default 'x', out c int) returns int language sql return 1"
        ),
        (1, Some(2), "int, text".into())
    );
    assert_eq!(
        sig("create function f(a int, variadic rest text[]) returns int language sql return 1"),
        (2, None, "int, text[]".into())
    );
    // A procedure's OUT arguments take a place in CALL.
    assert_eq!(
        sig("create procedure p(inout a int, out b int) language sql begin atomic select 1; end"),
        (2, Some(2), "int, int".into())
    );
    assert_eq!(
        sig("create aggregate agg(*) (sfunc = f, stype = int)"),
        (0, Some(0), "*".into())
    );
    // Calls: counted per name; a name also used without a call is not.
    let s = parse(
        "create function g() returns int language sql as $$ select f(1) + f(1, 2) + count(*) $$",
    )
    .remove(0);
    let f = ObjectName::new(Namespace::Routine, None, "f");
    let arities = |s: &Statement| -> Option<Vec<usize>> {
        s.arities
            .get(&f)
            .map(|calls| calls.iter().map(|c| c.arity).collect())
    };
    assert_eq!(arities(&s), Some(vec![1, 2]));
    let s = parse("comment on function f(int) is 'x'").remove(0);
    assert_eq!(arities(&s), None);
}

#[test]
fn a_call_depends_on_the_overloads_its_arguments_reach() {
    let statements = parse(
        "create function d(int) returns text language sql as $$ select d($1::text) $$;\n\
         create function d(text) returns text language sql as $$ select d($1, 1) $$;\n\
         create function d(text, int) returns text language sql as $$ select $1 $$;",
    );
    let order: Vec<String> = order(statements, None)
        .unwrap()
        .into_iter()
        .map(|s| s.signature.unwrap().types)
        .collect();
    assert_eq!(order, ["text, int", "text", "int"]);
    // Named arguments are counted too; a call no overload takes needs all.
    let order = ordered(&[(
        "x.sql",
        "create function e(a int) returns int language sql as $$ select e(1, 2, 3) $$;\n\
         create function e(a int, b int) returns int language sql return 1;",
    )]);
    assert!(order.is_ok(), "{order:?}");
}

#[test]
fn chained_statements_keep_their_order_and_a_loop_through_them_says_so() {
    let tagged = |files: &[(&str, &str, bool)]| -> Vec<(bool, Statement)> {
        files
            .iter()
            .flat_map(|(path, text, chained)| {
                parse_file(Path::new(path), text)
                    .unwrap()
                    .into_iter()
                    .map(move |s| (*chained, s))
            })
            .collect()
    };
    // The table's DEFAULT needs a function of a later phase: it moves
    // after it, and the INSERT of its file stays after it.
    let ordered = order_tagged(
        tagged(&[
            (
                "t.sql",
                "create table t (c text default f());\ninsert into t default values;",
                true,
            ),
            ("u.sql", "create table u (n int);", true),
            (
                "f.sql",
                "create function f() returns text language sql return 'x';",
                false,
            ),
        ]),
        None,
        |chained| *chained,
    )
    .unwrap();
    let sqls: Vec<&str> = ordered.iter().map(|(_, s)| s.sql.as_str()).collect();
    assert_eq!(
        sqls,
        [
            "create function f() returns text language sql return 'x';",
            "create table t (c text default f());",
            "insert into t default values;",
            "create table u (n int);"
        ]
    );
    // A table file that uses the table of a later file.
    let err = order_tagged(
        tagged(&[
            ("a.sql", "create table a (b_id int references b);", true),
            ("b.sql", "create table b (id int primary key);", true),
        ]),
        None,
        |chained| *chained,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            SqlError::Cycle {
                table_order: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("rename the files (or move the statements)"),
        "{err}"
    );
}

#[test]
fn triggers_policies_rules_event_triggers_and_collations_are_named() {
    let order = ordered(&[(
        "x.sql",
        "comment on event trigger evt is 'logs';\n\
         alter table t disable trigger trg;\n\
         comment on policy p on t is 'x';\n\
         comment on rule r on t is 'x';\n\
         create domain d as text collate ci;\n\
         drop trigger if exists trg on t;\n\
         create event trigger evt on ddl_command_end execute function f();\n\
         create trigger trg before update on t for each row execute function f();\n\
         create policy p on t using (true);\n\
         create rule r as on delete to t do instead nothing;\n\
         create collation ci from \"C\";",
    )])
    .unwrap();
    // Definitions are named by their name, others by their SQL.
    let at = |name: &str| {
        order
            .iter()
            .position(|s| s == name || (name.len() > 3 && s.starts_with(name)))
            .unwrap_or_else(|| panic!("{name} in {order:?}"))
    };
    assert!(at("evt") < at("comment on event trigger"), "{order:?}");
    assert!(at("drop trigger") < at("trg on t"), "{order:?}");
    assert!(at("trg on t") < at("alter table t disable"), "{order:?}");
    assert!(at("p on t") < at("comment on policy"), "{order:?}");
    assert!(at("r on t") < at("comment on rule"), "{order:?}");
    assert!(at("ci") < at("d"), "{order:?}");
}

#[test]
fn object_identifier_literals_are_references() {
    let s = parse(
        "create view v as select 'kinds'::regclass, 'f(int, text)'::regprocedure, 'g'::regproc, 'api.t'::regtype",
    )
    .remove(0);
    let refs: Vec<String> = s
        .references
        .iter()
        .map(|r| format!("{:?} {r}", r.namespace))
        .collect();
    assert!(refs.contains(&"Relation kinds".to_string()), "{refs:?}");
    assert!(refs.contains(&"Routine f".to_string()), "{refs:?}");
    assert!(refs.contains(&"Routine g".to_string()), "{refs:?}");
    assert!(refs.contains(&"Type api.t".to_string()), "{refs:?}");
    let f = ObjectName::new(Namespace::Routine, None, "f");
    let calls = s.arities.get(&f).unwrap();
    assert_eq!(
        calls[0].types,
        [Some("integer".to_string()), Some("text".to_string())]
    );
}

#[test]
fn triggers_of_two_tables_with_one_name_are_two_triggers() {
    // Each table script drops and creates its own set_updated_at: neither
    // waits for the other's (which, with table scripts in file order,
    // was a loop).
    let order = ordered(&[
        (
            "a.sql",
            "drop trigger if exists set_updated_at on a;\ncreate trigger set_updated_at before update on a for each row execute function f();\ncomment on trigger set_updated_at on a is 'a';",
        ),
        (
            "b.sql",
            "drop trigger if exists set_updated_at on b;\ncreate trigger set_updated_at before update on b for each row execute function f();",
        ),
    ])
    .unwrap();
    assert_eq!(order[1], "set_updated_at on a");
    assert_eq!(order[2], "comment on trigger set_updated_at on a is 'a';");
    // A relation of another schema is another relation.
    let order = ordered(&[(
        "x.sql",
        "create or replace view app.orders as select 1 as n;\ncreate view api.orders as select * from app.orders;",
    )]);
    assert!(order.is_ok(), "{order:?}");
}

#[test]
fn a_call_whose_argument_types_show_reaches_the_exact_overload() {
    // pgTAP's diag: four overloads of one argument, each calling another.
    let statements = parse(
        "create function diag(msg text) returns text as $$ select '# ' || msg $$ language sql;\n\
         create function diag(msg anyelement) returns text as $$ select diag($1::text) $$ language sql;\n\
         create function diag(variadic text[]) returns text as $$ select diag(array_to_string($1, '')) $$ language sql;\n\
         create function diag(variadic anyarray) returns text as $$ select diag(array_to_string($1, '')) $$ language sql;\n\
         create function twice(n int) returns int as $$ select plus(n, 1) + plus($1, 2::bigint) $$ language sql;\n\
         create function plus(a int, b int) returns int language sql return a + b;\n\
         create function plus(a int, b bigint) returns int language sql return a;",
    );
    let order: Vec<String> = order(statements, None)
        .unwrap()
        .into_iter()
        .map(|s| s.summary())
        .collect();
    assert_eq!(order[0], "create function diag(text)", "{order:?}");
    // twice waits for both plus overloads: plus(n, 1) and plus($1, 2::bigint).
    let at = |name: &str| order.iter().position(|s| s == name).unwrap();
    assert!(
        at("create function twice(int)") > at("create function plus(int, bigint)"),
        "{order:?}"
    );
    assert!(
        at("create function twice(int)") > at("create function plus(int, int)"),
        "{order:?}"
    );
    assert_eq!(canonical_type("INT4"), "integer");
    assert_eq!(
        canonical_type("pg_catalog.varchar(10)[]"),
        "character varying[]"
    );
}
