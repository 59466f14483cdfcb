-- Formatting and rounding of amounts in cents.

CREATE FUNCTION format_cents(amount cents, currency currency_code) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN to_char(amount / 100.0, 'FM999999999999990.00') || ' ' || currency;

-- Rounds half away from zero, as invoices are required to.
CREATE FUNCTION to_cents(amount numeric) RETURNS cents
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN round(amount)::bigint;
