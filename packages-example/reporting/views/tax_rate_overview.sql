-- Today's rates for the back office, as percentages, with an example price.
CREATE VIEW tax_rate_overview AS
SELECT country,
       round(rate * 100, 2) AS rate_percent,
       format_amount(gross(amount(10000, 'EUR'), country)) AS gross_of_100_eur
  FROM current_tax_rates
 ORDER BY country;
