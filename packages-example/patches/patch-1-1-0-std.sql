-- Invoices get a currency and a status. Since PostgreSQL 11 adding a column
-- with a constant default does not rewrite the table.
ALTER TABLE app.invoices
    ADD COLUMN currency char(3) NOT NULL DEFAULT 'EUR',
    ADD COLUMN status text NOT NULL DEFAULT 'draft';

ALTER TABLE app.invoices
    ADD CONSTRAINT invoices_status_check
    CHECK (status IN ('draft', 'issued', 'paid', 'void')) NOT VALID;
ALTER TABLE app.invoices VALIDATE CONSTRAINT invoices_status_check;

COMMENT ON COLUMN app.invoices.currency IS 'ISO 4217 code';
