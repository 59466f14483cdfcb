-- The application's tables: customers and their invoices.
CREATE SCHEMA app;
COMMENT ON SCHEMA app IS 'tables of the example application; changed only by patches';

CREATE TABLE app.customers (
    customer_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email        text NOT NULL UNIQUE CHECK (email LIKE '%_@_%'),
    name         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.invoices (
    invoice_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES app.customers,
    number       text NOT NULL UNIQUE,
    issued_on    date NOT NULL DEFAULT current_date,
    total_cents  bigint NOT NULL CHECK (total_cents >= 0)
);

CREATE TABLE app.invoice_lines (
    invoice_id        bigint NOT NULL REFERENCES app.invoices ON DELETE CASCADE,
    line_no           integer NOT NULL CHECK (line_no > 0),
    description       text NOT NULL,
    quantity          numeric(12, 3) NOT NULL CHECK (quantity > 0),
    unit_price_cents  bigint NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);
