-- An amount is meaningless without its currency.
CREATE TYPE money_amount AS (
    cents     cents,
    currency  currency_code
);
