-- pgpm catalog, step 2: what each deployment did to each package, and a
-- view of the live packages with the schemas of their dependencies.

CREATE TABLE _pgpm.deployment_packages (
    deployment_id  bigint NOT NULL REFERENCES _pgpm.deployments,
    package_id     bigint NOT NULL REFERENCES _pgpm.packages,
    action         text NOT NULL CHECK (action IN ('created', 'overwritten', 'files', 'renamed', 'dropped', 'removed')),
    detail         text,
    PRIMARY KEY (deployment_id, package_id, action)
);
CREATE INDEX deployment_packages_package ON _pgpm.deployment_packages (package_id);

CREATE VIEW _pgpm.live_packages AS
SELECT p.package_id, p.name, p.version, p.subclass, p.scope, p.schema_name, p.old_rev,
       p.checksum, p.deployed_at, p.deployed_by, d.vcs_ref,
       coalesce((SELECT array_agg(dep.schema_name ORDER BY dep.name)
                   FROM _pgpm.package_dependencies pd
                   JOIN _pgpm.packages dep ON dep.package_id = pd.dependency_id
                  WHERE pd.package_id = p.package_id), '{}') AS dependency_schemas
  FROM _pgpm.packages p
  JOIN _pgpm.deployments d USING (deployment_id)
 WHERE p.removed_at IS NULL;
COMMENT ON VIEW _pgpm.live_packages IS 'packages whose schema still exists (current and old revisions)';

-- The schema of the current revision of a deployed package version.
CREATE FUNCTION _pgpm.package_schema(p_name text, p_version text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
AS $$
    SELECT schema_name FROM _pgpm.packages
     WHERE name = p_name AND version = p_version AND old_rev IS NULL AND removed_at IS NULL
$$;
REVOKE ALL ON FUNCTION _pgpm.package_schema(text, text) FROM PUBLIC;
