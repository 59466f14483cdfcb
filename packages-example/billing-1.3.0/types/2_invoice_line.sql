CREATE TYPE invoice_line AS (
    description  text,
    quantity     numeric(12, 3),
    unit_price   money_amount
);
