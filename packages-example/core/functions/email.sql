-- Addresses are compared and stored in one spelling.
CREATE FUNCTION normalize_email(address text) RETURNS email
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN lower(btrim(address))::email;

COMMENT ON FUNCTION normalize_email(text) IS 'trimmed, lower-case e-mail address; fails on anything that is not one';
