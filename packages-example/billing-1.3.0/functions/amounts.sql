-- Arithmetic on money_amount. Amounts in different currencies never mix.
--
-- SQL functions written with RETURN or BEGIN ATOMIC are bound to the objects
-- they use when they are created. PL/pgSQL looks names up when it runs, in
-- the caller's search_path, so PL/pgSQL functions here pin the search_path
-- the deployer set (this version's schema, then its dependencies').

CREATE FUNCTION amount(cents bigint, currency text) RETURNS money_amount
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN ROW(cents, currency)::money_amount;

CREATE FUNCTION add_amounts(a money_amount, b money_amount) RETURNS money_amount
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path FROM CURRENT
AS $$
BEGIN
    IF a.currency <> b.currency THEN
        RAISE EXCEPTION 'cannot add % to %', b.currency, a.currency
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN ROW(a.cents + b.cents, a.currency)::money_amount;
END
$$;

CREATE FUNCTION format_amount(a money_amount) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN format_cents(a.cents, a.currency);
