-- pgpm catalog, step 13: edited patches accepted, with the reason.
--
-- `pgpm migrate accept FILE --reason TEXT` records the new checksum of an
-- applied patch that was edited (a comment fixed, a statement made
-- idempotent), as Flyway's repair does, but auditably: the old checksum,
-- the new one, why and who stay here.

CREATE TABLE _pgpm.accepted_patches (
    major          integer NOT NULL,
    minor          integer NOT NULL,
    point          integer NOT NULL,
    file_name      text NOT NULL,
    old_checksum   text NOT NULL,
    new_checksum   text NOT NULL,
    reason         text NOT NULL CHECK (reason <> ''),
    accepted_at    timestamptz NOT NULL DEFAULT now(),
    accepted_by    text NOT NULL DEFAULT session_user
);
COMMENT ON TABLE _pgpm.accepted_patches IS 'checksums of edited applied patches accepted with migrate accept, and why';
