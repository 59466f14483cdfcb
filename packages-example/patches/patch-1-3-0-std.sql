-- Reporting keeps one row per month and currency, refreshed by the
-- reporting package's functions.
CREATE TABLE app.monthly_revenue (
    month         date NOT NULL CHECK (month = date_trunc('month', month)::date),
    currency      char(3) NOT NULL,
    total_cents   bigint NOT NULL DEFAULT 0,
    invoices      integer NOT NULL DEFAULT 0,
    refreshed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (month, currency)
);

-- Invoices issued before statuses existed count as issued.
UPDATE app.invoices SET status = 'issued' WHERE status = 'draft' AND issued_on < current_date;
