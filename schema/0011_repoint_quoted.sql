-- pgpm catalog, step 11: repoint_search_path (step 10) reads the stored
-- search_path as PostgreSQL writes it.
--
-- A routine's pinned search_path is stored as identifiers separated by
-- commas, quoted where needed: "a,b" is one schema, "Billing" another
-- than billing, and an unquoted item is folded to lower case. Step 10
-- split on commas and compared the text as written. Each item is now read
-- as an identifier, compared with the schema's name, and written back
-- quoted as needed; and the function's own path ends with pg_temp, so that
-- no temporary table can stand in for a catalog it reads.

CREATE OR REPLACE FUNCTION _pgpm.repoint_search_path(p_old text, p_new text, p_dependents text[])
    RETURNS integer
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r record;
    path text;
    n integer := 0;
BEGIN
    FOR r IN
        SELECT p.oid::regprocedure AS ident, substr(c.setting, length('search_path=') + 1) AS value
          FROM pg_proc p
         CROSS JOIN LATERAL unnest(p.proconfig) AS c(setting)
         WHERE p.pronamespace IN (SELECT oid FROM pg_namespace
                                   WHERE nspname = p_old OR nspname = p_new OR nspname = ANY (p_dependents))
           AND c.setting LIKE 'search_path=%'
    LOOP
        SELECT string_agg(quote_ident(CASE WHEN e.name = p_old THEN p_new ELSE e.name END), ', ' ORDER BY e.i)
          INTO path
          FROM (SELECT CASE WHEN m.tok LIKE '"%' THEN replace(substr(m.tok, 2, length(m.tok) - 2), '""', '"')
                            ELSE lower(m.tok) END AS name,
                       m.i
                  FROM regexp_matches(r.value, '"(?:[^"]|"")*"|[^,[:space:]]+', 'g') WITH ORDINALITY AS t(tok, i),
                       LATERAL (SELECT t.tok[1] AS tok, t.i) m) e
        HAVING bool_or(e.name = p_old);
        IF path IS NOT NULL THEN
            EXECUTE format('ALTER ROUTINE %s SET search_path = %s', r.ident, path);
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$fn$;
