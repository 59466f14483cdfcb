-- URL- and file-name-safe form of a title: "Invoice 2024/07 (DE)" -> "invoice-2024-07-de".
CREATE FUNCTION slugify(value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN btrim(regexp_replace(lower(value), '[^a-z0-9]+', '-', 'g'), '-');
