-- The rate in force in a country on a day.
CREATE FUNCTION tax_rate(country country_code, on_day date DEFAULT current_date)
    RETURNS numeric
    LANGUAGE sql STABLE STRICT
BEGIN ATOMIC
    SELECT r.rate
      FROM tax_rates r
     WHERE r.country = tax_rate.country AND r.valid_from <= on_day
     ORDER BY r.valid_from DESC
     LIMIT 1;
END;

CREATE FUNCTION tax_on(net money_amount, country country_code, on_day date DEFAULT current_date)
    RETURNS money_amount
    LANGUAGE sql STABLE STRICT
    RETURN amount(to_cents(net.cents * tax_rate(country, on_day)), net.currency);
