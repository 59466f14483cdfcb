-- pgpm catalog, step 1: what was deployed where, by whom, and which patches ran.
--
-- The installer runs every step in one transaction and records the catalog
-- version in _pgpm.meta. Steps are never edited once released: a change is a
-- new step.

CREATE SCHEMA _pgpm;
COMMENT ON SCHEMA _pgpm IS 'pgpm catalog: deployed packages, deployments and applied patches';
REVOKE ALL ON SCHEMA _pgpm FROM PUBLIC;

CREATE TABLE _pgpm.meta (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    catalog_version  integer NOT NULL CHECK (catalog_version > 0),
    pgpm_version     text NOT NULL,
    installed_at     timestamptz NOT NULL DEFAULT now(),
    installed_by     text NOT NULL DEFAULT session_user,
    upgraded_at      timestamptz,
    upgraded_by      text
);
COMMENT ON TABLE _pgpm.meta IS 'one row: the catalog version and who installed it';

-- One row per pgpm command that changed the database (deploy, remove).
CREATE TABLE _pgpm.deployments (
    deployment_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command             text NOT NULL DEFAULT 'deploy',
    mode                text CHECK (mode IN ('safe', 'moderate', 'unsafe', 'overwrite')),
    vcs_ref             text,
    vcs_link            text,
    issue_ref           text,
    issue_link          text,
    pgpm_version        text NOT NULL,
    server_version_num  integer NOT NULL DEFAULT current_setting('server_version_num')::integer,
    txid                bigint NOT NULL DEFAULT txid_current(),
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    deployed_by         text NOT NULL DEFAULT session_user,
    client_addr         inet DEFAULT inet_client_addr()
);

-- One row per deployed package version and schema. When a deploy in
-- moderate mode renames a schema to <schema>_<N>, the row of the version
-- that lived there keeps its history and gets old_rev = N.
CREATE TABLE _pgpm.packages (
    package_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text NOT NULL,
    version        text NOT NULL,
    v_major        integer NOT NULL,
    v_minor        integer NOT NULL,
    v_patch        integer NOT NULL,
    v_pre          text NOT NULL DEFAULT '',
    subclass       text NOT NULL CHECK (subclass IN ('versioned', 'basic')),
    scope          text NOT NULL DEFAULT 'schema' CHECK (scope IN ('schema', 'database')),
    schema_name    text,
    old_rev        integer CHECK (old_rev >= 0),
    description    text,
    license        text,
    owner_role     text,
    checksum       text NOT NULL,
    deployment_id  bigint NOT NULL REFERENCES _pgpm.deployments,
    deployed_at    timestamptz NOT NULL DEFAULT now(),
    deployed_by    text NOT NULL DEFAULT session_user,
    removed_at     timestamptz,
    removed_by     text,
    CHECK ((scope = 'schema') = (schema_name IS NOT NULL))
);
COMMENT ON COLUMN _pgpm.packages.old_rev IS 'NULL for the current revision; N when the schema was renamed to <schema>_<N>';
CREATE UNIQUE INDEX packages_current_version ON _pgpm.packages (name, version)
    WHERE old_rev IS NULL AND removed_at IS NULL;
CREATE UNIQUE INDEX packages_live_schema ON _pgpm.packages (schema_name)
    WHERE removed_at IS NULL;

-- The exact deployed versions a package resolved its dependencies to.
CREATE TABLE _pgpm.package_dependencies (
    package_id     bigint NOT NULL REFERENCES _pgpm.packages ON DELETE CASCADE,
    dependency_id  bigint NOT NULL REFERENCES _pgpm.packages,
    requirement    text NOT NULL,
    PRIMARY KEY (package_id, dependency_id),
    CHECK (package_id <> dependency_id)
);
CREATE INDEX package_dependencies_dependency ON _pgpm.package_dependencies (dependency_id);

-- Numbered patch migrations (patch-MAJOR-MINOR-POINT-TYPE.sql), applied once.
CREATE TABLE _pgpm.migrations (
    major        integer NOT NULL,
    minor        integer NOT NULL,
    point        integer NOT NULL,
    type         text NOT NULL CHECK (type IN ('std', 'direct', 'concurrent')),
    file_name    text NOT NULL,
    checksum     text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz,
    applied_by   text NOT NULL DEFAULT session_user,
    PRIMARY KEY (major, minor, point)
);

-- Table scripts of packages: run once per package, target schema and file.
-- A schema created afresh (a new version, or after a rename or drop) gets
-- its tables again; target_schema is '' for database-scope packages.
CREATE TABLE _pgpm.table_scripts (
    package_name   text NOT NULL,
    target_schema  text NOT NULL,
    file_name      text NOT NULL,
    checksum       text NOT NULL,
    deployment_id  bigint REFERENCES _pgpm.deployments,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    applied_by     text NOT NULL DEFAULT session_user,
    PRIMARY KEY (package_name, target_schema, file_name)
);
