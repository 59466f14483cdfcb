-- One row per country: the rate in force today.
CREATE VIEW current_tax_rates AS
SELECT DISTINCT ON (country)
       country, rate, valid_from
  FROM tax_rates
 WHERE valid_from <= current_date
 ORDER BY country, valid_from DESC;
