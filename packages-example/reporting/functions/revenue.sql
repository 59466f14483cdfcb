-- Gross amount of a net amount in a country, using billing's rates.
CREATE FUNCTION gross(net money_amount, country country_code, on_day date DEFAULT current_date)
    RETURNS money_amount
    LANGUAGE sql STABLE STRICT
    RETURN add_amounts(net, tax_on(net, country, on_day));

-- Recomputes one month of app.monthly_revenue from the issued invoices
-- (tables from the patches in ../patches). Returns the number of rows written.
CREATE FUNCTION refresh_monthly_revenue(month date) RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    written   integer;
BEGIN
    DELETE FROM app.monthly_revenue r WHERE r.month = first_day;
    INSERT INTO app.monthly_revenue (month, currency, total_cents, invoices)
    SELECT first_day, i.currency, sum(i.total_cents), count(*)
      FROM app.invoices i
     WHERE i.status IN ('issued', 'paid')
       AND i.issued_on >= first_day
       AND i.issued_on < first_day + interval '1 month'
     GROUP BY i.currency;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;
