-- pgpm catalog, step 4: versioned APIs for applications.
--
-- An application asks for "billing ^1.4" and gets the highest deployed
-- version that satisfies it, with its session's search_path set to that
-- version's schema, then the schemas of the dependency versions it was
-- deployed against, then public: the path the deploy used when it created
-- the package's objects. The session also LISTENs on the package's deploy
-- channel, so it hears when a new version arrives.
--
-- Requirements are matched exactly as the Rust semver crate (1.x) matches
-- them (src/eval.rs and src/parse.rs there), so pgpm and the database agree
-- on what "^1.4" means; tests/semver_sql.rs checks the agreement on
-- generated pairs. The ancestor's forms (01_02_xx, >01_02_03, x) are
-- translated first, as pgpm::resolve::parse_requirement does.
--
-- Errors have SQLSTATEs of their own:
--   PGPM1  no deployed version satisfies the requirement (the message lists
--          the versions that exist)
--   PGPM2  the requirement cannot be read

-- One comparator of a requirement, as semver::Comparator.
CREATE TYPE _pgpm.semver_comparator AS (
    op     text,     -- '=', '>', '>=', '<', '<=', '~', '^', or '*' (a wildcard such as 1.2.*)
    major  numeric,  -- numeric, not bigint: a requirement may name numbers up to 2^64-1
    minor  numeric,  -- NULL when omitted or a wildcard
    patch  numeric,  -- NULL when omitted or a wildcard
    pre    text      -- pre-release identifiers without the '-', '' for none
);
COMMENT ON TYPE _pgpm.semver_comparator IS 'one comparator of a semver requirement, as the Rust semver crate parses it';

-- A key that orders pre-releases by semver precedence when compared with
-- COLLATE "C": a release ('') above every pre-release; identifier by
-- identifier, numeric ones by value (length, then digits: semver forbids
-- leading zeros), numeric below alphanumeric, alphanumeric ones in ASCII
-- order, and a shorter run of equal identifiers lower (array comparison
-- does that). Numeric identifiers are '0' || their length on ten digits ||
-- the digits; alphanumeric ones '1' || the text; a release is {'2'}.
CREATE FUNCTION _pgpm.semver_pre_key(pre text) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE WHEN pre = '' THEN ARRAY['2']
           ELSE ARRAY(SELECT CASE WHEN id ~ '^[0-9]*$'
                                  THEN '0' || lpad(length(id)::text, 10, '0') || id
                                  ELSE '1' || id END
                        FROM unnest(string_to_array(pre, '.')) WITH ORDINALITY AS t (id, n)
                       ORDER BY n)
           END
$fn$;

-- Semver precedence of two pre-releases: -1, 0 or 1 (as Prerelease::cmp).
CREATE FUNCTION _pgpm.semver_pre_cmp(a text, b text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE WHEN _pgpm.semver_pre_key(a) COLLATE "C" < _pgpm.semver_pre_key(b) THEN -1
                WHEN _pgpm.semver_pre_key(a) COLLATE "C" > _pgpm.semver_pre_key(b) THEN 1
                ELSE 0 END
$fn$;

-- Parses a requirement into comparators, as semver::VersionReq::from_str
-- after pgpm's own handling: surrounding whitespace is trimmed, and a
-- requirement with an underscore, or made only of x/X, is the ancestor's
-- form. '*' (and the ancestor's 'x') is the empty array. Raises PGPM2.
CREATE FUNCTION _pgpm.semver_parse_requirement(requirement text) RETURNS _pgpm.semver_comparator[]
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- ASCII whitespace; Rust's trim also removes Unicode spaces (U+00A0, ...).
    ws constant text := E' \t\n\r\f\x0B';
    max_u64 constant numeric := 18446744073709551615;
    t constant text := btrim(requirement, ws);
    rest text;
    op text;
    default_op boolean;
    has_wildcard boolean;
    parts text[];
    part text;
    numbers numeric[] := '{}';
    wildcard boolean := false;
    m text[];
    major numeric;
    minor numeric;
    patch numeric;
    pre text;
    result _pgpm.semver_comparator[] := '{}';
    problem text;
BEGIN
    IF strpos(t, '_') > 0 OR t ~ '^[xX]+$' THEN
        -- The ancestor's form: [op] part[_part[_part]], each part a number
        -- (leading zeros allowed) or a wildcard, no number after a wildcard.
        IF left(t, 2) IN ('<=', '>=') THEN
            op := left(t, 2);
        ELSIF left(t, 1) IN ('<', '>', '=') THEN
            op := left(t, 1);
        ELSE
            op := '';
        END IF;
        rest := ltrim(substr(t, length(op) + 1), ws);
        IF op = '' THEN
            op := '=';
        END IF;
        parts := string_to_array(rest, '_');
        IF cardinality(parts) > 3 THEN
            problem := 'more than three parts';
        END IF;
        FOREACH part IN ARRAY parts LOOP
            EXIT WHEN problem IS NOT NULL;
            IF part ~ '^[0-9]+$' AND NOT wildcard AND part::numeric <= max_u64 THEN
                numbers := numbers || part::numeric;
            ELSIF part ~ '^[xX]+$' THEN
                wildcard := true;
            ELSE
                problem := format('"%s" is not a number or a wildcard here', part);
            END IF;
        END LOOP;
        IF problem IS NULL AND cardinality(numbers) = 0 THEN
            IF op = '=' THEN
                RETURN '{}';
            END IF;
            problem := format('%s needs a version', op);
        END IF;
        IF problem IS NULL THEN
            RETURN ARRAY[ROW(op, numbers[1], numbers[2], numbers[3], '')::_pgpm.semver_comparator];
        END IF;
    ELSE
        -- Cargo-style semver, following semver's parse.rs step by step.
        rest := ltrim(t, ' ');
        IF left(rest, 1) IN ('*', 'x', 'X') THEN
            IF ltrim(substr(rest, 2), ' ') = '' THEN
                RETURN '{}';
            END IF;
            problem := 'a wildcard must be the only comparator';
        END IF;
        <<comparators>>
        WHILE problem IS NULL LOOP
            default_op := false;
            IF left(rest, 2) IN ('>=', '<=') THEN
                op := left(rest, 2);
            ELSIF left(rest, 1) IN ('=', '>', '<', '~', '^') THEN
                op := left(rest, 1);
            ELSE
                op := '';
            END IF;
            rest := ltrim(substr(rest, length(op) + 1), ' ');
            IF op = '' THEN
                op := '^';
                default_op := true;
            END IF;
            minor := NULL;
            patch := NULL;
            pre := '';
            has_wildcard := false;

            m := regexp_match(rest, '^[0-9]+');
            IF m IS NULL THEN
                problem := 'expected a major version number';
                EXIT comparators;
            END IF;
            major := m[1]::numeric;
            rest := substr(rest, length(m[1]) + 1);
            IF (length(m[1]) > 1 AND left(m[1], 1) = '0') OR major > max_u64 THEN
                problem := format('invalid number %s (leading zero or too large)', m[1]);
                EXIT comparators;
            END IF;

            IF left(rest, 1) = '.' THEN
                rest := substr(rest, 2);
                IF left(rest, 1) IN ('*', 'x', 'X') THEN
                    has_wildcard := true;
                    IF default_op THEN
                        op := '*';
                    END IF;
                    rest := substr(rest, 2);
                ELSE
                    m := regexp_match(rest, '^[0-9]+');
                    IF m IS NULL THEN
                        problem := 'expected a minor version number';
                        EXIT comparators;
                    END IF;
                    minor := m[1]::numeric;
                    rest := substr(rest, length(m[1]) + 1);
                    IF (length(m[1]) > 1 AND left(m[1], 1) = '0') OR minor > max_u64 THEN
                        problem := format('invalid number %s (leading zero or too large)', m[1]);
                        EXIT comparators;
                    END IF;
                END IF;

                IF left(rest, 1) = '.' THEN
                    rest := substr(rest, 2);
                    IF left(rest, 1) IN ('*', 'x', 'X') THEN
                        IF default_op THEN
                            op := '*';
                        END IF;
                        rest := substr(rest, 2);
                    ELSIF has_wildcard THEN
                        problem := 'a number after a wildcard';
                        EXIT comparators;
                    ELSE
                        m := regexp_match(rest, '^[0-9]+');
                        IF m IS NULL THEN
                            problem := 'expected a patch version number';
                            EXIT comparators;
                        END IF;
                        patch := m[1]::numeric;
                        rest := substr(rest, length(m[1]) + 1);
                        IF (length(m[1]) > 1 AND left(m[1], 1) = '0') OR patch > max_u64 THEN
                            problem := format('invalid number %s (leading zero or too large)', m[1]);
                            EXIT comparators;
                        END IF;
                    END IF;
                END IF;
            END IF;

            -- Pre-release and build metadata only follow a full version.
            IF patch IS NOT NULL AND left(rest, 1) = '-' THEN
                m := regexp_match(substr(rest, 2), '^[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*');
                IF m IS NULL OR substr(rest, length(m[1]) + 2, 1) = '.' THEN
                    problem := 'empty pre-release identifier';
                    EXIT comparators;
                END IF;
                IF EXISTS (SELECT FROM unnest(string_to_array(m[1], '.')) AS id WHERE id ~ '^0[0-9]+$') THEN
                    problem := 'leading zero in a numeric pre-release identifier';
                    EXIT comparators;
                END IF;
                pre := m[1];
                rest := substr(rest, length(m[1]) + 2);
            END IF;
            IF patch IS NOT NULL AND left(rest, 1) = '+' THEN
                m := regexp_match(substr(rest, 2), '^[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*');
                IF m IS NULL OR substr(rest, length(m[1]) + 2, 1) = '.' THEN
                    problem := 'empty build metadata identifier';
                    EXIT comparators;
                END IF;
                rest := substr(rest, length(m[1]) + 2);
            END IF;
            rest := ltrim(rest, ' ');

            result := result || ROW(op, major, minor, patch, pre)::_pgpm.semver_comparator;
            EXIT comparators WHEN rest = '';
            IF left(rest, 1) <> ',' THEN
                problem := format('expected a comma before "%s"', rest);
            ELSIF cardinality(result) = 32 THEN
                problem := 'more than 32 comparators';
            END IF;
            rest := ltrim(substr(rest, 2), ' ');
        END LOOP;
        IF problem IS NULL THEN
            RETURN result;
        END IF;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'PGPM2',
        MESSAGE = format('"%s" is not a version requirement: write a Cargo-style range like ^1.2 or >=1.4, <2 (or the old forms 01_02_xx, >01_02_03, x)', t),
        DETAIL = problem;
END
$fn$;

-- Whether version major.minor.patch[-pre] satisfies one comparator, ignoring
-- the pre-release rule that spans the whole requirement (semver's
-- matches_impl).
CREATE FUNCTION _pgpm.semver_comparator_matches(v_major integer, v_minor integer, v_patch integer, v_pre text, c _pgpm.semver_comparator)
    RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    exact constant boolean := v_major = c.major
        AND (c.minor IS NULL OR v_minor = c.minor)
        AND (c.patch IS NULL OR v_patch = c.patch)
        AND v_pre = c.pre;
    greater boolean;
    less boolean;
BEGIN
    IF c.op IN ('=', '*') THEN
        RETURN exact;
    END IF;
    IF c.op IN ('>', '>=') THEN
        greater := CASE
            WHEN v_major <> c.major THEN v_major > c.major
            WHEN c.minor IS NULL THEN false
            WHEN v_minor <> c.minor THEN v_minor > c.minor
            WHEN c.patch IS NULL THEN false
            WHEN v_patch <> c.patch THEN v_patch > c.patch
            ELSE _pgpm.semver_pre_cmp(v_pre, c.pre) > 0
        END;
        RETURN greater OR (c.op = '>=' AND exact);
    END IF;
    IF c.op IN ('<', '<=') THEN
        less := CASE
            WHEN v_major <> c.major THEN v_major < c.major
            WHEN c.minor IS NULL THEN false
            WHEN v_minor <> c.minor THEN v_minor < c.minor
            WHEN c.patch IS NULL THEN false
            WHEN v_patch <> c.patch THEN v_patch < c.patch
            ELSE _pgpm.semver_pre_cmp(v_pre, c.pre) < 0
        END;
        RETURN less OR (c.op = '<=' AND exact);
    END IF;
    IF c.op = '~' THEN
        RETURN CASE
            WHEN v_major <> c.major THEN false
            WHEN c.minor IS NOT NULL AND v_minor <> c.minor THEN false
            WHEN c.patch IS NOT NULL AND v_patch <> c.patch THEN v_patch > c.patch
            ELSE _pgpm.semver_pre_cmp(v_pre, c.pre) >= 0
        END;
    END IF;
    IF c.op = '^' THEN
        RETURN CASE
            WHEN v_major <> c.major THEN false
            WHEN c.minor IS NULL THEN true
            WHEN c.patch IS NULL AND c.major > 0 THEN v_minor >= c.minor
            WHEN c.patch IS NULL THEN v_minor = c.minor
            WHEN c.major > 0 AND v_minor <> c.minor THEN v_minor > c.minor
            WHEN c.major > 0 AND v_patch <> c.patch THEN v_patch > c.patch
            WHEN c.major = 0 AND c.minor > 0 AND v_minor <> c.minor THEN false
            WHEN c.major = 0 AND c.minor > 0 AND v_patch <> c.patch THEN v_patch > c.patch
            WHEN c.major = 0 AND c.minor = 0 AND (v_minor <> c.minor OR v_patch <> c.patch) THEN false
            ELSE _pgpm.semver_pre_cmp(v_pre, c.pre) >= 0
        END;
    END IF;
    RAISE EXCEPTION 'unknown semver comparator operator "%"', c.op;
END
$fn$;

-- Whether a version satisfies parsed comparators (semver's matches_req):
-- every comparator matches, and a pre-release version only when some
-- comparator names the same major.minor.patch with a pre-release of its own.
CREATE FUNCTION _pgpm.semver_satisfies(v_major integer, v_minor integer, v_patch integer, v_pre text, comparators _pgpm.semver_comparator[])
    RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    c _pgpm.semver_comparator;
BEGIN
    FOREACH c IN ARRAY comparators LOOP
        IF NOT _pgpm.semver_comparator_matches(v_major, v_minor, v_patch, v_pre, c) THEN
            RETURN false;
        END IF;
    END LOOP;
    IF v_pre = '' THEN
        RETURN true;
    END IF;
    FOREACH c IN ARRAY comparators LOOP
        IF c.major = v_major AND c.minor = v_minor AND c.patch = v_patch AND c.pre <> '' THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$fn$;

-- Whether version major.minor.patch[-pre] satisfies a requirement.
-- Raises PGPM2 when the requirement cannot be read.
CREATE FUNCTION _pgpm.semver_matches(v_major integer, v_minor integer, v_patch integer, v_pre text, requirement text)
    RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT _pgpm.semver_satisfies(v_major, v_minor, v_patch, v_pre, _pgpm.semver_parse_requirement(requirement))
$fn$;

-- Chooses the version of a package an application gets, and the
-- search_path that goes with it, without changing anything: the highest
-- current (not renamed, not removed) version satisfying the requirement by
-- semver precedence. Returns {package, version, schema, search_path}, the
-- path with every schema quoted. Raises PGPM1 when nothing matches (the
-- message lists the versions that exist) and PGPM2 for a bad requirement.
--
-- SECURITY DEFINER so that applications need no read access to the
-- catalog's tables, hence the pinned search_path.
CREATE FUNCTION _pgpm.api_version(package text, requirement text) RETURNS json
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    comparators _pgpm.semver_comparator[];
    chosen record;
    path text;
    existing text;
BEGIN
    IF package IS NULL OR requirement IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'package and requirement must not be null';
    END IF;
    comparators := _pgpm.semver_parse_requirement(requirement);
    SELECT p.package_id, p.version, p.schema_name INTO chosen
      FROM _pgpm.packages p
     WHERE p.name = api_version.package AND p.old_rev IS NULL AND p.removed_at IS NULL
       AND _pgpm.semver_satisfies(p.v_major, p.v_minor, p.v_patch, p.v_pre, comparators)
     ORDER BY p.v_major DESC, p.v_minor DESC, p.v_patch DESC,
              _pgpm.semver_pre_key(p.v_pre) COLLATE "C" DESC
     LIMIT 1;
    IF NOT FOUND THEN
        SELECT string_agg(p.version, ', ' ORDER BY p.v_major DESC, p.v_minor DESC, p.v_patch DESC,
                                                   _pgpm.semver_pre_key(p.v_pre) COLLATE "C" DESC)
          INTO existing
          FROM _pgpm.packages p
         WHERE p.name = api_version.package AND p.old_rev IS NULL AND p.removed_at IS NULL;
        RAISE EXCEPTION USING
            ERRCODE = 'PGPM1',
            MESSAGE = format('no deployed version of package "%s" satisfies "%s"; versions that exist: %s',
                             package, btrim(requirement), coalesce(existing, 'none')),
            HINT = CASE WHEN existing IS NULL THEN 'Deploy the package first.'
                        ELSE 'Ask for a requirement that one of these versions satisfies, or deploy one that does.' END;
    END IF;
    -- The package's own schema, its dependencies' schemas by package name
    -- (the order the deploy used), then public. Database-scope packages
    -- have no schema and add nothing.
    SELECT string_agg(quote_ident(s.schema_name), ', ' ORDER BY s.rank, s.name, s.schema_name)
      INTO path
      FROM (SELECT chosen.schema_name, 0 AS rank, '' AS name
            UNION ALL
            SELECT d.schema_name, 1, d.name
              FROM _pgpm.package_dependencies pd
              JOIN _pgpm.packages d ON d.package_id = pd.dependency_id
             WHERE pd.package_id = chosen.package_id
            UNION ALL
            SELECT 'public', 2, '') AS s
     WHERE s.schema_name IS NOT NULL;
    RETURN json_build_object('package', package, 'version', chosen.version,
                             'schema', chosen.schema_name, 'search_path', path);
END
$fn$;
REVOKE ALL ON FUNCTION _pgpm.api_version(text, text) FROM PUBLIC;

-- Selects a version of a package for this session: sets search_path as
-- _pgpm.api_version chose it, LISTENs on "deployment_events$$<package>"
-- (which every deploy of the package NOTIFYs), and returns api_version's
-- JSON. Raises PGPM1 / PGPM2 as api_version does.
--
-- Why two functions. A function's own SET clause (SET search_path = ...)
-- is undone when the function returns, and so is any set_config() made
-- inside it, even with is_local = false: "the effects of a SET clause or
-- set_config() executed inside the function are restricted to the
-- function" (https://www.postgresql.org/docs/current/sql-createfunction.html).
-- A SECURITY DEFINER function must pin its search_path, so it cannot set
-- the caller's. So the privileged part (reading the catalog) is
-- api_version above, pinned; and this function, which only applies the
-- result, runs with the caller's rights (SECURITY INVOKER) and has no SET
-- clause, so its set_config outlives it. Running as the caller, it can do
-- nothing the caller could not do directly; still, every name in it is
-- schema-qualified, operators included, so that a schema earlier in the
-- caller's search_path cannot substitute a function, operator or type of
-- its own (pg_temp is searched before pg_catalog for types unless named).
CREATE FUNCTION _pgpm.set_search_path(package pg_catalog.text, requirement pg_catalog.text)
    RETURNS pg_catalog.json
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $fn$
DECLARE
    selected pg_catalog.json;
BEGIN
    selected := _pgpm.api_version(set_search_path.package, set_search_path.requirement);
    PERFORM pg_catalog.set_config('search_path', selected OPERATOR(pg_catalog.->>) 'search_path', false);
    EXECUTE pg_catalog.format('LISTEN %I', 'deployment_events$$' OPERATOR(pg_catalog.||) set_search_path.package);
    RETURN selected;
END
$fn$;
REVOKE ALL ON FUNCTION _pgpm.set_search_path(pg_catalog.text, pg_catalog.text) FROM PUBLIC;
