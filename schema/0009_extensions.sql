-- pgpm catalog, step 9: the extensions packages need.
--
-- A manifest's `extensions` are created with CREATE EXTENSION in the
-- deploy's transaction when the database does not have them. Each deploy
-- records, per package, the extensions it needed, the version installed,
-- and whether this deploy created it. Extensions are the database's: a
-- removed package leaves them in place.

CREATE TABLE _pgpm.package_extensions (
    deployment_id  bigint NOT NULL REFERENCES _pgpm.deployments,
    package        text NOT NULL,
    version        text NOT NULL,
    extension      text NOT NULL,
    extversion     text NOT NULL,
    created        boolean NOT NULL,
    PRIMARY KEY (deployment_id, package, extension)
);
COMMENT ON TABLE _pgpm.package_extensions IS 'per deployment and package: the extensions it needed, their version, and whether the deploy created them';
