-- pgpm catalog, step 8: patches recorded without running them.
--
-- `pgpm migrate baseline VERSION` marks every patch up to VERSION as
-- applied without running it, for a database that already has what those
-- patches create (Flyway's baseline). Such rows say so.

ALTER TABLE _pgpm.migrations
    ADD COLUMN how text NOT NULL DEFAULT 'applied' CHECK (how IN ('applied', 'baseline'));
COMMENT ON COLUMN _pgpm.migrations.how IS 'applied: the patch ran; baseline: recorded by migrate baseline without running';
