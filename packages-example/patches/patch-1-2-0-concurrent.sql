-- Billing looks invoices up by customer, newest first. Built concurrently so
-- that writes to app.invoices are not blocked while it builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_customer_issued_idx
    ON app.invoices (customer_id, issued_on DESC);
