-- pgpm catalog, step 15: the DDL log (`pgpm install --ddl-log`).
--
-- The ancestor logged every DDL command from an event trigger, and that
-- trigger broke renaming or dropping its own schema. This log is only on
-- when asked for (install --ddl-log creates the event triggers, and
-- --no-ddl-log drops them). Its functions never fail a user's command:
-- when the log is gone (the catalog renamed or being dropped) they do
-- nothing, and an error while logging becomes a WARNING. Commands on the
-- catalog itself are not logged; commands run by pgpm (the session that
-- holds pgpm's advisory lock) are logged with by_pgpm, so that `status`
-- can tell changes made outside pgpm. Each entry is also NOTIFYed on
-- channel pgpm_ddl.

CREATE TABLE _pgpm.ddl_log (
    ddl_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    command_tag       text NOT NULL,
    object_type       text,
    schema_name       text,
    object_identity   text,
    query             text,
    role_name         text NOT NULL DEFAULT session_user,
    application_name  text,
    txid              bigint NOT NULL DEFAULT txid_current(),
    by_pgpm           boolean NOT NULL
);
COMMENT ON TABLE _pgpm.ddl_log IS 'DDL commands run in the database, with pgpm install --ddl-log';
CREATE INDEX ddl_log_schema ON _pgpm.ddl_log (schema_name, logged_at);

-- Whether this session is pgpm making a change (it holds pgpm's advisory
-- lock, key 0x7067706d).
CREATE FUNCTION _pgpm.in_pgpm_change() RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT EXISTS (SELECT 1 FROM pg_locks
                    WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                      AND classid = 0 AND objid = 1885827181 AND objsubid = 1)
$fn$;

CREATE FUNCTION _pgpm.log_ddl() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r record;
    mine boolean;
BEGIN
    IF to_regclass('_pgpm.ddl_log') IS NULL THEN
        RETURN;
    END IF;
    mine := _pgpm.in_pgpm_change();
    BEGIN
        IF tg_event = 'sql_drop' THEN
            FOR r IN SELECT * FROM pg_event_trigger_dropped_objects()
                      WHERE schema_name IS DISTINCT FROM '_pgpm' AND NOT is_temporary
                        AND (original OR object_type = 'schema')
            LOOP
                INSERT INTO _pgpm.ddl_log (command_tag, object_type, schema_name, object_identity, query, application_name, by_pgpm)
                VALUES (tg_tag, r.object_type, coalesce(r.schema_name, CASE WHEN r.object_type = 'schema' THEN r.object_name END),
                        r.object_identity, left(current_query(), 10000), current_setting('application_name'), mine);
            END LOOP;
        ELSE
            FOR r IN SELECT * FROM pg_event_trigger_ddl_commands()
                      WHERE schema_name IS DISTINCT FROM '_pgpm'
                        AND object_identity IS DISTINCT FROM '_pgpm' AND NOT in_extension
            LOOP
                INSERT INTO _pgpm.ddl_log (command_tag, object_type, schema_name, object_identity, query, application_name, by_pgpm)
                VALUES (r.command_tag, r.object_type, coalesce(r.schema_name, CASE WHEN r.object_type = 'schema' THEN r.object_identity END),
                        r.object_identity, left(current_query(), 10000), current_setting('application_name'), mine);
            END LOOP;
        END IF;
        PERFORM pg_notify('pgpm_ddl', tg_tag);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pgpm could not log this DDL command: %', SQLERRM;
    END;
END
$fn$;
REVOKE ALL ON FUNCTION _pgpm.log_ddl() FROM PUBLIC;
