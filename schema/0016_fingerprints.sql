-- pgpm catalog, step 16: what a deploy left in a package's schema.
--
-- Without the DDL log (step 15), `status` can still tell that a package's
-- schema was changed outside pgpm: each deploy records a fingerprint of
-- the schema's definitions as it leaves them, and status compares it with
-- the schema as it is. Definitions only: routines (name, arguments,
-- result, body, settings, attributes), relations with their columns and view
-- queries, types with their labels and attributes, constraints, triggers
-- and indexes; not data, owners or grants.

ALTER TABLE _pgpm.packages ADD COLUMN fingerprint text;
COMMENT ON COLUMN _pgpm.packages.fingerprint IS 'the schema''s definitions when the deploy committed (_pgpm.schema_fingerprint)';

CREATE FUNCTION _pgpm.schema_fingerprint(p_schema text) RETURNS text
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT md5(coalesce(string_agg(d, E'\n' ORDER BY d COLLATE "C"), ''))
      FROM (
        SELECT 'f ' || concat_ws(' ', p.proname, p.proargtypes::text, p.prorettype::text,
                                 p.prokind::text, p.provolatile::text, p.proisstrict::text,
                                 p.prosecdef::text, p.proretset::text, p.proconfig::text,
                                 p.proargnames::text, md5(p.prosrc),
                                 pg_get_expr(p.proargdefaults, 0),
                                 -- A SQL-standard body is not in prosrc.
                                 CASE WHEN p.prosrc = '' THEN md5(pg_get_functiondef(p.oid)) END)
          FROM pg_proc p WHERE p.pronamespace = to_regnamespace(p_schema)
        UNION ALL
        SELECT 'r ' || c.relname || ' ' || c.relkind::text || ' '
               || coalesce((SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod)
                                              || ':' || a.attnotnull::text
                                              || ':' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), ''),
                                              ',' ORDER BY a.attnum)
                              FROM pg_attribute a
                              LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
               || CASE WHEN c.relkind IN ('v', 'm') THEN ' ' || md5(pg_get_viewdef(c.oid)) ELSE '' END
          FROM pg_class c
         WHERE c.relnamespace = to_regnamespace(p_schema) AND c.relkind IN ('r', 'p', 'v', 'm', 'c', 'f', 'S', 'i', 'I')
        UNION ALL
        SELECT 't ' || t.typname || ' ' || t.typtype::text || ' '
               || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                              FROM pg_enum e WHERE e.enumtypid = t.oid), '')
               || coalesce(' ' || format_type(t.typbasetype, t.typtypmod), '')
          FROM pg_type t
         WHERE t.typnamespace = to_regnamespace(p_schema) AND t.typtype IN ('b', 'd', 'e', 'r')
        UNION ALL
        SELECT 'c ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
          FROM pg_constraint co WHERE co.connamespace = to_regnamespace(p_schema)
        UNION ALL
        SELECT 'g ' || tg.tgname || ' ' || md5(pg_get_triggerdef(tg.oid))
          FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
         WHERE c.relnamespace = to_regnamespace(p_schema) AND NOT tg.tgisinternal
      ) x(d)
$fn$;
