-- VAT rates by country, valid from a date on. Each billing version keeps the
-- rates it computes with in its own schema; the rows are reference data
-- shipped with the package.
CREATE TABLE IF NOT EXISTS tax_rates (
    country     country_code NOT NULL,
    valid_from  date NOT NULL,
    rate        numeric(5, 4) NOT NULL CHECK (rate >= 0 AND rate < 1),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (country, valid_from)
);

INSERT INTO tax_rates (country, valid_from, rate) VALUES
    ('AT', '2016-01-01', 0.2000),
    ('DE', '2007-01-01', 0.1900),
    ('FR', '2014-01-01', 0.2000),
    ('NL', '2019-01-01', 0.2100)
ON CONFLICT (country, valid_from) DO NOTHING;
