-- pgpm catalog, step 14: patches imported from lazr.postgresql.
--
-- `pgpm migrate --adopt-lazr` records the patches that lp-migrate applied
-- (its lazrdatabaserevision table) as applied, with lazr's start and end
-- times and the checksum of the file as it is now. Such rows say so.

ALTER TABLE _pgpm.migrations DROP CONSTRAINT migrations_how_check;
ALTER TABLE _pgpm.migrations ADD CONSTRAINT migrations_how_check
    CHECK (how IN ('applied', 'baseline', 'lazr'));
COMMENT ON COLUMN _pgpm.migrations.how IS 'applied: the patch ran; baseline: recorded by migrate baseline without running; lazr: applied by lp-migrate, imported by migrate --adopt-lazr';
