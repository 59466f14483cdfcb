-- 1.4.0: rates that changed since 1.3.0 shipped.
INSERT INTO tax_rates (country, valid_from, rate) VALUES
    ('EE', '2024-01-01', 0.2200),
    ('CH', '2024-01-01', 0.0810)
ON CONFLICT (country, valid_from) DO NOTHING;
