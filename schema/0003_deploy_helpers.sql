-- pgpm catalog, step 3: server-side helpers that deploy calls with bound
-- parameters. They enumerate the objects of a schema as they are at that
-- moment in the deploy's transaction, so `--dry-run` can print the one call
-- that will run rather than statements for objects that do not exist yet.
-- Both run with the caller's rights.

-- Makes p_owner the owner of schema p_schema and of every object in it.
-- Returns how many objects changed owner (the schema not counted).
CREATE FUNCTION _pgpm.set_owner(p_schema text, p_owner text) RETURNS integer
    LANGUAGE plpgsql SET search_path = pg_catalog
AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', p_schema, p_owner);
    FOR r IN
        -- Relations; a sequence owned by a table column follows its table.
        SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                              WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                              ELSE 'TABLE' END AS kind,
               c.oid::regclass::text AS ident
          FROM pg_class c
         WHERE c.relnamespace = p_schema::regnamespace
           AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                              AND c.relkind = 'S')
        UNION ALL
        -- Types and domains; array and multirange types follow their element.
        SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype::text
          FROM pg_type t
         WHERE t.typnamespace = p_schema::regnamespace
           AND t.typtype IN ('b', 'c', 'd', 'e', 'r')
           AND t.typcategory <> 'A'
           AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
        UNION ALL
        SELECT CASE p.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END, p.oid::regprocedure::text
          FROM pg_proc p
         WHERE p.pronamespace = p_schema::regnamespace
        UNION ALL
        SELECT 'OPERATOR', o.oid::regoperator::text
          FROM pg_operator o
         WHERE o.oprnamespace = p_schema::regnamespace
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %I', r.kind, r.ident, p_owner);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- Lets p_role use schema p_schema: USAGE on it, EXECUTE on its routines,
-- SELECT on its views.
CREATE FUNCTION _pgpm.grant_usage(p_schema text, p_role text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog
AS $$
DECLARE
    r record;
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', p_schema, p_role);
    EXECUTE format('GRANT EXECUTE ON ALL ROUTINES IN SCHEMA %I TO %I', p_schema, p_role);
    FOR r IN
        SELECT c.oid::regclass::text AS ident
          FROM pg_class c
         WHERE c.relnamespace = p_schema::regnamespace AND c.relkind IN ('v', 'm')
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO %I', r.ident, p_role);
    END LOOP;
END
$$;
