CREATE TRIGGER tax_rates_touch
    BEFORE UPDATE ON tax_rates
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
