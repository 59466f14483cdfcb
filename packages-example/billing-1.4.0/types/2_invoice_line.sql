-- 1.4.0: lines carry a discount in percent (0 when there is none).
CREATE TYPE invoice_line AS (
    description  text,
    quantity     numeric(12, 3),
    unit_price   money_amount,
    discount     percent
);
