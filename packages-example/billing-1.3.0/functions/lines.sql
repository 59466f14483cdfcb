CREATE FUNCTION line_net(line invoice_line) RETURNS money_amount
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN amount(to_cents(line.quantity * (line.unit_price).cents), (line.unit_price).currency);

-- The sum of the lines' net amounts; NULL for an invoice without lines.
CREATE FUNCTION lines_net(lines invoice_line[]) RETURNS money_amount
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path FROM CURRENT
AS $$
DECLARE
    total money_amount;
    line  invoice_line;
BEGIN
    FOREACH line IN ARRAY lines LOOP
        total := CASE WHEN total IS NULL THEN line_net(line)
                      ELSE add_amounts(total, line_net(line)) END;
    END LOOP;
    RETURN total;
END
$$;
