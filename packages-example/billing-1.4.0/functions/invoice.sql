-- Builds the invoice document from its lines: net, tax and gross totals.
CREATE FUNCTION make_invoice(
    number     text,
    customer   text,
    country    country_code,
    issued_on  date,
    lines      invoice_line[]
) RETURNS invoice
    LANGUAGE plpgsql STABLE
    SET search_path FROM CURRENT
AS $$
DECLARE
    net money_amount := lines_net(lines);
    tax money_amount := tax_on(net, country, issued_on);
BEGIN
    IF net IS NULL THEN
        RAISE EXCEPTION 'invoice % has no lines', number
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN ROW(number, normalize_email(customer), issued_on, lines,
               net, tax, add_amounts(net, tax))::invoice;
END
$$;

-- Keeps updated_at honest on every table that has one.
CREATE FUNCTION touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
