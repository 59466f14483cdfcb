-- pgpm catalog, step 5: which sessions selected which schemas.
--
-- pg_stat_activity does not show another session's search_path, so
-- `pgpm remove` could not tell that a schema is in use by a connection that
-- selected it and sits idle. set_search_path now records its choice here,
-- keyed by the backend's pid and start time (pids are reused), and remove
-- joins this with pg_stat_activity to list the live sessions using a schema.
-- Unlogged: it describes live sessions, which a crash ends anyway.

CREATE UNLOGGED TABLE _pgpm.sessions (
    pid            integer NOT NULL,
    backend_start  timestamptz NOT NULL,
    package        text NOT NULL,
    version        text NOT NULL,
    schemas        text[] NOT NULL,
    selected_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pid, backend_start, package)
);
COMMENT ON TABLE _pgpm.sessions IS 'sessions that selected a package version with set_search_path, and the schemas on their path';

-- Records that this session selected package version p_version. Does
-- nothing in a read-only transaction (or on a standby), where selecting a
-- version must still work. Forgets sessions that have ended.
CREATE FUNCTION _pgpm.record_session(p_package text, p_version text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF current_setting('transaction_read_only')::boolean THEN
        RETURN;
    END IF;
    DELETE FROM _pgpm.sessions s
     WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                        WHERE a.pid = s.pid AND a.backend_start = s.backend_start);
    INSERT INTO _pgpm.sessions (pid, backend_start, package, version, schemas)
    SELECT pg_backend_pid(), a.backend_start, p_package, p_version,
           array_remove(p.schema_name || ARRAY(
               SELECT d.schema_name FROM _pgpm.package_dependencies pd
                 JOIN _pgpm.packages d ON d.package_id = pd.dependency_id
                WHERE pd.package_id = p.package_id AND d.schema_name IS NOT NULL
                ORDER BY d.name), NULL)
      FROM pg_stat_activity a, _pgpm.packages p
     WHERE a.pid = pg_backend_pid()
       AND p.name = p_package AND p.version = p_version
       AND p.old_rev IS NULL AND p.removed_at IS NULL
    ON CONFLICT (pid, backend_start, package)
    DO UPDATE SET version = EXCLUDED.version, schemas = EXCLUDED.schemas, selected_at = now();
END
$fn$;
REVOKE ALL ON FUNCTION _pgpm.record_session(text, text) FROM PUBLIC;

-- set_search_path as in step 4, now also recording the session's choice.
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
    PERFORM _pgpm.record_session(set_search_path.package, selected OPERATOR(pg_catalog.->>) 'version');
    RETURN selected;
END
$fn$;
