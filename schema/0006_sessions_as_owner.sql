-- pgpm catalog, step 6: recording sessions works when the catalog's owner
-- is not a superuser.
--
-- record_session (step 5) is SECURITY DEFINER and read the calling
-- session's backend_start from pg_stat_activity as the catalog's owner. On
-- managed PostgreSQL the owner is an ordinary role, and pg_stat_activity
-- hides other roles' backend_start from it: the insert failed with a null
-- backend_start for every application role. The session now reads its own
-- start (always visible to itself) in the SECURITY INVOKER wrapper and
-- passes it in, and sessions whose start the owner cannot see are kept
-- while their pid is alive.

CREATE FUNCTION _pgpm.record_session(p_package text, p_version text, p_backend_start timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF current_setting('transaction_read_only')::boolean OR p_backend_start IS NULL THEN
        RETURN;
    END IF;
    DELETE FROM _pgpm.sessions s
     WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                        WHERE a.pid = s.pid
                          AND (a.backend_start IS NULL OR a.backend_start = s.backend_start));
    INSERT INTO _pgpm.sessions (pid, backend_start, package, version, schemas)
    SELECT pg_backend_pid(), p_backend_start, p_package, p_version,
           array_remove(p.schema_name || ARRAY(
               SELECT d.schema_name FROM _pgpm.package_dependencies pd
                 JOIN _pgpm.packages d ON d.package_id = pd.dependency_id
                WHERE pd.package_id = p.package_id AND d.schema_name IS NOT NULL
                ORDER BY d.name), NULL)
      FROM _pgpm.packages p
     WHERE p.name = p_package AND p.version = p_version
       AND p.old_rev IS NULL AND p.removed_at IS NULL
    ON CONFLICT (pid, backend_start, package)
    DO UPDATE SET version = EXCLUDED.version, schemas = EXCLUDED.schemas, selected_at = now();
END
$fn$;
REVOKE ALL ON FUNCTION _pgpm.record_session(text, text, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION _pgpm.set_search_path(package pg_catalog.text, requirement pg_catalog.text)
    RETURNS pg_catalog.json
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $fn$
DECLARE
    selected pg_catalog.json;
BEGIN
    selected := _pgpm.api_version(set_search_path.package, set_search_path.requirement);
    PERFORM pg_catalog.set_config('search_path', selected OPERATOR(pg_catalog.->>) 'search_path', false);
    EXECUTE pg_catalog.format('LISTEN %I', 'deployment_events$$' OPERATOR(pg_catalog.||) set_search_path.package);
    PERFORM _pgpm.record_session(
        set_search_path.package,
        selected OPERATOR(pg_catalog.->>) 'version',
        (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a
          WHERE a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()));
    RETURN selected;
END
$fn$;
