-- pgpm catalog, step 12: the database-side API the ancestor's clients call.
--
-- Applications written for the ancestor (Python pgpm 0.1.62) call
-- _pgpm.set_search_path(p_schema_name, p_v_req), by position or by those
-- argument names, read pkg_name, pkg_v_major, pkg_v_minor and pkg_v_patch
-- from its JSON, and may call _pgpm._find_schema(p_schema_name, p_v_req).
-- After `pgpm install --adopt` they keep working:
-- - the two-argument set_search_path takes the ancestor's argument names
--   (a function's argument names cannot change in place: it is dropped
--   and created again; `pgpm install` grants EXECUTE again to the roles
--   given usage of the catalog);
-- - api_version's JSON, which set_search_path returns, carries the
--   ancestor's keys beside pgpm's;
-- - _find_schema returns the version pgpm would choose, as the ancestor's
--   record.
-- Where the ancestor chose wrongly (`>=01_09_05` picking 1.9.0, an
-- unreadable requirement meaning "latest"), pgpm's choice stands.

CREATE OR REPLACE FUNCTION _pgpm.api_version(package text, requirement text) RETURNS json
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    comparators _pgpm.semver_comparator[];
    chosen record;
    path text;
    existing text;
BEGIN
    IF package IS NULL OR requirement IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'package and requirement must not be null';
    END IF;
    comparators := _pgpm.semver_parse_requirement(requirement);
    SELECT p.package_id, p.version, p.schema_name, p.v_major, p.v_minor, p.v_patch INTO chosen
      FROM _pgpm.packages p
     WHERE p.name = api_version.package AND p.old_rev IS NULL AND p.removed_at IS NULL
       AND _pgpm.semver_satisfies(p.v_major, p.v_minor, p.v_patch, p.v_pre, comparators)
     ORDER BY p.v_major DESC, p.v_minor DESC, p.v_patch DESC,
              _pgpm.semver_pre_key(p.v_pre) COLLATE "C" DESC
     LIMIT 1;
    IF NOT FOUND THEN
        SELECT string_agg(p.version, ', ' ORDER BY p.v_major DESC, p.v_minor DESC, p.v_patch DESC,
                                                   _pgpm.semver_pre_key(p.v_pre) COLLATE "C" DESC)
          INTO existing
          FROM _pgpm.packages p
         WHERE p.name = api_version.package AND p.old_rev IS NULL AND p.removed_at IS NULL;
        RAISE EXCEPTION USING
            ERRCODE = 'PGPM1',
            MESSAGE = format('no deployed version of package "%s" satisfies "%s"; versions that exist: %s',
                             package, btrim(requirement), coalesce(existing, 'none')),
            HINT = CASE WHEN existing IS NULL THEN 'Deploy the package first.'
                        ELSE 'Ask for a requirement that one of these versions satisfies, or deploy one that does.' END;
    END IF;
    -- The package's own schema, its dependencies' schemas by package name
    -- (the order the deploy used), then public. Database-scope packages
    -- have no schema and add nothing.
    SELECT string_agg(quote_ident(s.schema_name), ', ' ORDER BY s.rank, s.name, s.schema_name)
      INTO path
      FROM (SELECT chosen.schema_name, 0 AS rank, '' AS name
            UNION ALL
            SELECT d.schema_name, 1, d.name
              FROM _pgpm.package_dependencies pd
              JOIN _pgpm.packages d ON d.package_id = pd.dependency_id
             WHERE pd.package_id = chosen.package_id
            UNION ALL
            SELECT 'public', 2, '') AS s
     WHERE s.schema_name IS NOT NULL;
    RETURN json_build_object('package', package, 'version', chosen.version,
                             'schema', chosen.schema_name, 'search_path', path,
                             -- The ancestor's keys, for its clients.
                             'pkg_id', chosen.package_id, 'pkg_name', package,
                             'pkg_v_major', chosen.v_major, 'pkg_v_minor', chosen.v_minor,
                             'pkg_v_patch', chosen.v_patch);
END
$fn$;

DROP FUNCTION _pgpm.set_search_path(pg_catalog.text, pg_catalog.text);
CREATE FUNCTION _pgpm.set_search_path(p_schema_name pg_catalog.text, p_v_req pg_catalog.text)
    RETURNS pg_catalog.json
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $fn$
BEGIN
    RETURN _pgpm.set_search_path(set_search_path.p_schema_name, set_search_path.p_v_req, true);
END
$fn$;
REVOKE ALL ON FUNCTION _pgpm.set_search_path(pg_catalog.text, pg_catalog.text) FROM PUBLIC;

CREATE TYPE _pgpm.ancestor_version AS (
    pkg_id       bigint,
    pkg_name     text,
    pkg_v_major  integer,
    pkg_v_minor  integer,
    pkg_v_patch  integer
);
COMMENT ON TYPE _pgpm.ancestor_version IS 'a package version as the ancestor''s _find_schema returned it';

CREATE FUNCTION _pgpm._find_schema(p_schema_name text, p_v_req text) RETURNS _pgpm.ancestor_version
    LANGUAGE sql STABLE SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT ((v ->> 'pkg_id')::bigint, v ->> 'pkg_name', (v ->> 'pkg_v_major')::int,
            (v ->> 'pkg_v_minor')::int, (v ->> 'pkg_v_patch')::int)::_pgpm.ancestor_version
      FROM _pgpm.api_version(p_schema_name, p_v_req) AS v
$fn$;
REVOKE ALL ON FUNCTION _pgpm._find_schema(text, text) FROM PUBLIC;
