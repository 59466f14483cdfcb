-- An invoice as the API returns it: its lines and its totals.
CREATE TYPE invoice AS (
    number    text,
    customer  email,
    issued_on date,
    lines     invoice_line[],
    net       money_amount,
    tax       money_amount,
    gross     money_amount
);
