-- pgpm catalog, step 10: live clients through redeploys.
--
-- 1. Selecting a version without LISTEN. A session that LISTENs and then
--    sits idle slows every NOTIFY of the database (the notification queue
--    waits for the slowest listener), so an application with a pool of
--    sessions selects with listen => false on each of them and listens on
--    one connection per process instead (the pgpm-client crate does that).
-- 2. Hot standbys. LISTEN is refused during recovery and the catalog
--    cannot be written there: set_search_path selects on a standby exactly
--    as on the primary, without listening or recording the session.
-- 3. Revision mode. A redeploy of changed content in --mode revision goes
--    into a schema of its own next to the current one, which is never
--    renamed; deployments record the mode.
-- 4. Moderate mode repoints what named the renamed schema: the pinned
--    search_path of the routines in it and in the packages that depend on
--    it, so that the old revision keeps working under its new name.

ALTER TABLE _pgpm.deployments DROP CONSTRAINT deployments_mode_check;
ALTER TABLE _pgpm.deployments ADD CONSTRAINT deployments_mode_check
    CHECK (mode IN ('safe', 'moderate', 'unsafe', 'overwrite', 'revision'));
ALTER TABLE _pgpm.deployment_packages DROP CONSTRAINT deployment_packages_action_check;
ALTER TABLE _pgpm.deployment_packages ADD CONSTRAINT deployment_packages_action_check
    CHECK (action IN ('created', 'overwritten', 'files', 'renamed', 'dropped', 'removed', 'superseded'));
COMMENT ON COLUMN _pgpm.packages.old_rev IS 'NULL for the current revision; N for an old one: renamed to <schema>_<N> (moderate) or left in its schema when a new revision was deployed beside it (revision)';

-- set_search_path with a choice of listening. Every name is qualified, as
-- in step 4: this runs with the caller's rights and search_path.
CREATE FUNCTION _pgpm.set_search_path(package pg_catalog.text, requirement pg_catalog.text, listen pg_catalog.bool)
    RETURNS pg_catalog.json
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $fn$
DECLARE
    selected pg_catalog.json;
BEGIN
    selected := _pgpm.api_version(set_search_path.package, set_search_path.requirement);
    PERFORM pg_catalog.set_config('search_path', selected OPERATOR(pg_catalog.->>) 'search_path', false);
    IF set_search_path.listen AND NOT pg_catalog.pg_is_in_recovery() THEN
        EXECUTE pg_catalog.format('LISTEN %I', 'deployment_events$$' OPERATOR(pg_catalog.||) set_search_path.package);
    END IF;
    IF NOT pg_catalog.pg_is_in_recovery() THEN
        PERFORM _pgpm.record_session(
            set_search_path.package,
            selected OPERATOR(pg_catalog.->>) 'version',
            (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a
              WHERE a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()));
    END IF;
    RETURN selected;
END
$fn$;
REVOKE ALL ON FUNCTION _pgpm.set_search_path(pg_catalog.text, pg_catalog.text, pg_catalog.bool) FROM PUBLIC;

-- The two-argument form listens, as it always did (and as the ancestor's
-- clients expect), except on a standby.
CREATE OR REPLACE FUNCTION _pgpm.set_search_path(package pg_catalog.text, requirement pg_catalog.text)
    RETURNS pg_catalog.json
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $fn$
BEGIN
    RETURN _pgpm.set_search_path(set_search_path.package, set_search_path.requirement, true);
END
$fn$;

-- The id of the last deployment (deploy or remove) that committed: a
-- client on a hot standby, where there is no NOTIFY, polls it to hear of
-- deploys. SECURITY DEFINER, like api_version, so that applications need
-- no access to the catalog's tables.
CREATE FUNCTION _pgpm.last_change() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT coalesce(max(deployment_id), 0) FROM _pgpm.deployments
$fn$;
REVOKE ALL ON FUNCTION _pgpm.last_change() FROM PUBLIC;

-- After ALTER SCHEMA p_old RENAME TO p_new: every routine in p_new, and in
-- p_dependents, whose pinned search_path names p_old names p_new instead.
-- Returns the routines changed. Runs with the caller's rights (the
-- deployer, who owns them or is a member of their owner).
CREATE FUNCTION _pgpm.repoint_search_path(p_old text, p_new text, p_dependents text[])
    RETURNS integer
    LANGUAGE plpgsql SET search_path = pg_catalog
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
                                   WHERE nspname = p_new OR nspname = ANY (p_dependents))
           AND c.setting LIKE 'search_path=%'
    LOOP
        -- The setting as SET stored it: identifiers, quoted where needed,
        -- separated by commas.
        SELECT string_agg(CASE WHEN e.item IN (p_old, quote_ident(p_old)) THEN quote_ident(p_new)
                               ELSE e.item END, ', ' ORDER BY e.i)
          INTO path
          FROM regexp_split_to_table(r.value, '\s*,\s*') WITH ORDINALITY AS e(item, i)
        HAVING bool_or(e.item IN (p_old, quote_ident(p_old)));
        IF path IS NOT NULL THEN
            EXECUTE format('ALTER ROUTINE %s SET search_path = %s', r.ident, path);
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$fn$;
