-- Values checked once, here, instead of in every table and function.

CREATE DOMAIN email AS text
    CHECK (VALUE ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$');
COMMENT ON DOMAIN email IS 'an e-mail address as the customer wrote it (see normalize_email)';

CREATE DOMAIN currency_code AS char(3)
    CHECK (VALUE ~ '^[A-Z]{3}$');
COMMENT ON DOMAIN currency_code IS 'ISO 4217 currency code, upper case';

CREATE DOMAIN country_code AS char(2)
    CHECK (VALUE ~ '^[A-Z]{2}$');
COMMENT ON DOMAIN country_code IS 'ISO 3166-1 alpha-2 country code, upper case';

-- Money is counted in cents of its currency: no rounding surprises.
CREATE DOMAIN cents AS bigint;
CREATE DOMAIN non_negative_cents AS cents
    CHECK (VALUE >= 0);
