//! Package versions and dependency requirements, in semver terms.
//!
//! Versions are semver; requirements are Cargo-style ranges (`^1.2`,
//! `>=1.4, <2`). The ancestor's underscore forms are translated into the
//! same semver terms, so there is one matcher: `01_04_00` is 1.4.0,
//! `01_02_xx` is `=1.2` (any 1.2.x), `>01_02_03` is `>1.2.3` and `x` is `*`.
//! This module imports nothing else of pgpm.

use semver::{Version, VersionReq};

/// A version string or requirement pgpm cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SemverError {
    #[error(
        "\"{text}\" is not a version: write semver like 1.4.0 or 2.0.0-rc.1 (or the old 01_04_00 form)"
    )]
    Version { text: String },
    #[error(
        "version \"{text}\" has build metadata (+...), which semver ignores when comparing: two such versions would share a schema; drop it"
    )]
    BuildMetadata { text: String },
    #[error(
        "version \"{text}\" has a number over 2147483647, more than the catalog (and PostgreSQL's integer) holds"
    )]
    TooLarge { text: String },
    #[error(
        "\"{text}\" is not a version requirement: write a Cargo-style range like ^1.2 or >=1.4, <2 (or the old forms 01_02_xx, >01_02_03, x)"
    )]
    Requirement { text: String },
}

/// Parses a package version: semver (`1.4.0`, `2.0.0-rc.1`) or the
/// ancestor's `01_04_00`. Build metadata is refused.
pub fn parse_version(text: &str) -> Result<Version, SemverError> {
    let text = text.trim();
    let version = parse_version_unbounded(text)?;
    let max = i32::MAX as u64;
    if version.major > max || version.minor > max || version.patch > max {
        return Err(SemverError::TooLarge {
            text: text.to_string(),
        });
    }
    Ok(version)
}

fn parse_version_unbounded(text: &str) -> Result<Version, SemverError> {
    match Version::parse(text) {
        Ok(v) if !v.build.is_empty() => Err(SemverError::BuildMetadata {
            text: text.to_string(),
        }),
        Ok(v) => Ok(v),
        Err(_) => {
            // The ancestor's form: MAJOR_MINOR_PATCH, leading zeros
            // allowed, and what follows a fourth `_` (`01_00_00_rc1`) a
            // pre-release.
            let error = || SemverError::Version {
                text: text.to_string(),
            };
            let parts: Vec<&str> = text.splitn(4, '_').collect();
            let numbers: Option<Vec<u64>> = parts.iter().take(3).map(|p| number(p)).collect();
            let Some(&[major, minor, patch]) = numbers.as_deref() else {
                return Err(error());
            };
            let mut version = Version::new(major, minor, patch);
            if let Some(pre) = parts.get(3) {
                if pre.is_empty() {
                    return Err(error());
                }
                version.pre =
                    semver::Prerelease::new(&pre.replace('_', ".")).map_err(|_| error())?;
            }
            Ok(version)
        }
    }
}

/// A run of ASCII digits (leading zeros allowed, as in `01_04_00`).
fn number(part: &str) -> Option<u64> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Parses a dependency requirement.
///
/// Cargo-style semver ranges are taken as they are (`^1.2`, `~1.4.1`,
/// `>=1.4, <2`, `1.*`, `*`; a bare `1.2` means `^1.2`). A requirement with
/// an underscore, or made only of `x`, is the ancestor's form and is
/// translated: an optional operator (`=`, `<`, `<=`, `>`, `>=`; none means
/// `=`), then up to three `_`-separated parts, each a number or a wildcard
/// (`x`, `X`, `xx`); the parts after the first wildcard must be wildcards
/// too. Wildcards widen the range the way a partial semver version does,
/// written out in full: `01_02_xx` is `>=1.2.0, <1.3.0`, `>01_02_03` is
/// `>1.2.3`, `>1_2` is `>=1.3.0`, `<=1_2` is `<1.3.0`, and `x` alone is `*`.
pub fn parse_requirement(text: &str) -> Result<VersionReq, SemverError> {
    let text = text.trim();
    let error = || SemverError::Requirement {
        text: text.to_string(),
    };
    let is_wildcard = |p: &str| !p.is_empty() && p.chars().all(|c| c == 'x' || c == 'X');
    if !(text.contains('_') || is_wildcard(text)) {
        return VersionReq::parse(text).map_err(|_| error());
    }
    let (op, rest) = ["<=", ">=", "<", ">", "="]
        .iter()
        .find_map(|op| text.strip_prefix(op).map(|rest| (*op, rest)))
        .unwrap_or(("=", text));
    let parts: Vec<&str> = rest.trim_start().split('_').collect();
    if parts.len() > 3 {
        return Err(error());
    }
    let mut numbers = Vec::new();
    let mut wildcard = false;
    for part in &parts {
        match number(part) {
            // Numbers may not follow a wildcard.
            Some(n) if !wildcard => numbers.push(n),
            None if is_wildcard(part) => wildcard = true,
            _ => return Err(error()),
        }
    }
    if numbers.is_empty() {
        return match op {
            "=" => Ok(VersionReq::STAR),
            _ => Err(error()),
        };
    }
    // A partial version covers [lower, upper): 1_2 is 1.2.0 up to 1.3.0.
    let (lower, upper) = match numbers[..] {
        [major, minor, patch] => {
            let exact = format!("{major}.{minor}.{patch}");
            return VersionReq::parse(&format!("{op}{exact}")).map_err(|_| error());
        }
        [major, minor] => (
            format!("{major}.{minor}.0"),
            format!("{major}.{}.0", minor + 1),
        ),
        [major] => (format!("{major}.0.0"), format!("{}.0.0", major + 1)),
        _ => return Err(error()),
    };
    let semver = match op {
        "=" => format!(">={lower}, <{upper}"),
        ">" => format!(">={upper}"),
        ">=" => format!(">={lower}"),
        "<" => format!("<{lower}"),
        _ => format!("<{upper}"),
    };
    VersionReq::parse(&semver).map_err(|_| error())
}

#[cfg(test)]
mod tests {
    use semver::{Version, VersionReq};

    use super::*;

    #[test]
    fn versions_must_fit_the_catalog() {
        assert!(parse_version("2147483647.0.0").is_ok());
        assert!(matches!(
            parse_version("2147483648.0.0"),
            Err(SemverError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_version("1_0_99999999999"),
            Err(SemverError::TooLarge { .. })
        ));
    }

    fn req(text: &str) -> VersionReq {
        parse_requirement(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn versions_in_both_forms() {
        assert_eq!(parse_version("1.4.0").unwrap(), v("1.4.0"));
        assert_eq!(parse_version("2.0.0-rc.1").unwrap(), v("2.0.0-rc.1"));
        assert_eq!(parse_version("01_04_00").unwrap(), v("1.4.0"));
        assert_eq!(parse_version("1_4_10").unwrap(), v("1.4.10"));
        // The ancestor's pre-releases, ordered before the release.
        assert_eq!(parse_version("01_00_00_rc1").unwrap(), v("1.0.0-rc1"));
        assert_eq!(parse_version("1_0_0_beta_2").unwrap(), v("1.0.0-beta.2"));
        assert!(parse_version("01_00_00_rc1").unwrap() < v("1.0.0"));
        for bad in [
            "1.4", "01_04", "1_4_x", "v1.4.0", "", "1.4.0_1", "1_0_0_", "1_0_0_01",
        ] {
            assert_eq!(
                parse_version(bad),
                Err(SemverError::Version { text: bad.into() }),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_version("1.4.0+build.5"),
            Err(SemverError::BuildMetadata { .. })
        ));
    }

    #[test]
    fn ancestor_requirements_translate_to_semver() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "01_02_xx",
                &["1.2.0", "1.2.9"],
                &["1.1.9", "1.3.0", "2.2.0"],
            ),
            ("1_2_x", &["1.2.0", "1.2.9"], &["1.3.0"]),
            ("1_2_X", &["1.2.5"], &["1.3.0"]),
            ("01_02_03", &["1.2.3"], &["1.2.4", "1.2.2"]),
            (">01_02_03", &["1.2.4", "2.0.0"], &["1.2.3", "1.0.0"]),
            (">=1_2_3", &["1.2.3", "3.0.0"], &["1.2.2"]),
            ("<1_2_3", &["1.2.2", "0.1.0"], &["1.2.3"]),
            ("<=1_2", &["1.2.9", "1.0.0"], &["1.3.0"]),
            (">0_4", &["0.5.0", "1.0.0"], &["0.4.9"]),
            ("1_x", &["1.0.0", "1.9.9"], &["2.0.0", "0.9.0"]),
            ("x", &["0.0.1", "9.9.9"], &[]),
            ("XX", &["1.0.0"], &[]),
        ];
        for (text, yes, no) in cases {
            let r = req(text);
            for y in *yes {
                assert!(r.matches(&v(y)), "{text} should match {y}");
            }
            for n in *no {
                assert!(!r.matches(&v(n)), "{text} should not match {n}");
            }
        }
        assert_eq!(req("01_02_xx"), req(">=1.2.0, <1.3.0"));
        assert_eq!(req(">01_02_03"), req(">1.2.3"));
        assert_eq!(req(">1_2").to_string(), ">=1.3.0");
        assert_eq!(req("<=1_2").to_string(), "<1.3.0");
        assert_eq!(req("1_x").to_string(), ">=1.0.0, <2.0.0");
        assert_eq!(req("x"), VersionReq::STAR);
    }

    #[test]
    fn cargo_requirements_and_bad_ones() {
        assert!(req("^1.2").matches(&v("1.9.0")));
        assert!(!req("^1.2").matches(&v("2.0.0")));
        assert!(req(">=1.4, <2").matches(&v("1.4.0")));
        assert!(!req(">=1.4, <2").matches(&v("1.3.9")));
        assert!(req("1.2").matches(&v("1.3.0")), "bare versions are caret");
        for bad in [
            "",
            "1_x_3",
            "1_2_3_4",
            ">x",
            "abc",
            "1__2",
            ">=1.4 <2 junk",
            "=1_y",
        ] {
            assert_eq!(
                parse_requirement(bad),
                Err(SemverError::Requirement { text: bad.into() }),
                "{bad}"
            );
        }
    }
}
