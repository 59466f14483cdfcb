//! The catalog's SQL semver matcher (`_pgpm.semver_matches`, step 4) must
//! agree with the Rust `semver` crate that pgpm resolves dependencies with:
//! the database picks the API version an application gets, pgpm picks the
//! versions a deploy links against, and "^1.4" must mean the same to both.
//!
//! Pairs are generated deterministically (a small LCG) over versions with
//! and without pre-releases and requirements of every shape: each operator,
//! partial versions, wildcards, pre-releases, several comparators, and the
//! ancestor's underscore forms. Each check is one query over arrays.

use crate::common::TestDb;
use semver::{Prerelease, Version};

/// A 64-bit linear congruential generator (Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Pre-releases (the first six are none), ordered in interesting ways:
/// numeric against alphanumeric, 2 against 11, a prefix against a longer one.
const PRES: &[&str] = &[
    "",
    "",
    "",
    "",
    "",
    "",
    "alpha",
    "alpha.1",
    "alpha.beta",
    "beta",
    "beta.2",
    "beta.11",
    "rc.1",
    "rc.1.1",
    "1",
    "0.3.7",
    "x.7.z.92",
    "alpha.0",
    "rc-1",
    "Beta",
];

fn version(rng: &mut Lcg) -> Version {
    let mut v = Version::new(rng.below(4), rng.below(4), rng.below(4));
    if rng.below(2) == 0 {
        v.pre = Prerelease::new(rng.pick(&PRES[6..])).unwrap();
    }
    v
}

/// Version numbers for requirements: half the time the version's own, so
/// that requirements land near the version and both answers are common.
struct Near<'a> {
    rng: &'a mut Lcg,
    version: &'a Version,
}

impl Near<'_> {
    fn numbers(&mut self) -> (u64, u64, u64) {
        let v = self.version;
        let mut n = |own: u64| match self.rng.below(5) {
            0..=2 => own,
            3 => own.saturating_sub(1) + self.rng.below(3),
            _ => self.rng.below(4),
        };
        (n(v.major), n(v.minor), n(v.patch))
    }

    /// A pre-release for a requirement: often the version's own.
    fn pre(&mut self) -> String {
        match (self.rng.below(3), self.version.pre.is_empty()) {
            (0, false) => self.version.pre.to_string(),
            _ => self.rng.pick(&PRES[6..]).to_string(),
        }
    }

    /// `1`, `1.2` or `1.2.3`, the last sometimes with a pre-release.
    fn partial(&mut self) -> String {
        let (a, b, c) = self.numbers();
        match self.rng.below(6) {
            0 => format!("{a}"),
            1 => format!("{a}.{b}"),
            2 | 3 => format!("{a}.{b}.{c}-{}", self.pre()),
            _ => format!("{a}.{b}.{c}"),
        }
    }

    fn comparator(&mut self) -> String {
        let (a, b, _) = self.numbers();
        if self.rng.below(8) == 0 {
            return self
                .rng
                .pick(&[
                    format!("{a}.*").as_str(),
                    &format!("{a}.{b}.x"),
                    &format!("{a}.X"),
                    &format!("{a}.*.*"),
                    &format!(">={a}.*"),
                    &format!("<{a}.{b}.*"),
                    &format!("~{a}.*"),
                    &format!("^{a}.{b}.X"),
                ])
                .to_string();
        }
        let op = self.rng.pick(&["", "=", ">", ">=", "<", "<=", "~", "^"]);
        let space = self.rng.pick(&["", "", " "]);
        format!("{op}{space}{}", self.partial())
    }

    /// The ancestor's form: optional operator, zero-padded parts, wildcards.
    fn ancestor(&mut self) -> String {
        let wild = self.rng.pick(&["x", "X", "xx"]);
        let (a, b, c) = self.numbers();
        let parts = match self.rng.below(6) {
            0 => format!("{a:02}_{b:02}_{c:02}"),
            1 => format!("{a}_{b}_{c}"),
            2 => format!("{a:02}_{b:02}_{wild}"),
            3 => format!("{a}_{b}"),
            4 => format!("{a:02}_{wild}_{wild}"),
            _ => return self.rng.pick(&["x", "X", "xx", "XXX"]).to_string(),
        };
        let op = self.rng.pick(&["", "", "=", ">", ">=", "<", "<="]);
        format!("{op}{parts}")
    }

    fn requirement(&mut self) -> String {
        match self.rng.below(10) {
            0 | 1 => self.ancestor(),
            2 => "*".to_string(),
            3 | 4 => {
                let n = 2 + self.rng.below(2);
                let sep = self.rng.pick(&[", ", ",", " , "]);
                (0..n)
                    .map(|_| self.comparator())
                    .collect::<Vec<_>>()
                    .join(sep)
            }
            _ => self.comparator(),
        }
    }
}

#[test]
fn sql_matcher_agrees_with_the_semver_crate() {
    const PAIRS: usize = 4000;
    let mut rng = Lcg(0x5eed_2024);
    let mut versions = Vec::with_capacity(PAIRS);
    let mut requirements = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        let v = version(&mut rng);
        requirements.push(
            Near {
                rng: &mut rng,
                version: &v,
            }
            .requirement(),
        );
        versions.push(v);
    }
    let expected: Vec<bool> = versions
        .iter()
        .zip(&requirements)
        .map(|(v, r)| {
            pgpm::version::parse_requirement(r)
                .unwrap_or_else(|e| panic!("generated an invalid requirement: {e}"))
                .matches(v)
        })
        .collect();

    let db = TestDb::installed();
    let int = |f: fn(&Version) -> u64| versions.iter().map(|v| f(v) as i32).collect::<Vec<_>>();
    let (majors, minors, patches) = (int(|v| v.major), int(|v| v.minor), int(|v| v.patch));
    let pres: Vec<&str> = versions.iter().map(|v| v.pre.as_str()).collect();
    let got: Vec<bool> = db
        .connect()
        .query(
            "SELECT _pgpm.semver_matches(v.major, v.minor, v.patch, v.pre, v.req)
               FROM unnest($1::int[], $2::int[], $3::int[], $4::text[], $5::text[])
                    WITH ORDINALITY AS v (major, minor, patch, pre, req, n)
              ORDER BY v.n",
            &[&majors, &minors, &patches, &pres, &requirements],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(got.len(), PAIRS);

    let mismatches: Vec<String> = (0..PAIRS)
        .filter(|&i| got[i] != expected[i])
        .map(|i| {
            format!(
                "  {} against \"{}\": semver says {}, SQL says {}",
                versions[i], requirements[i], expected[i], got[i]
            )
        })
        .collect();
    let matching = expected.iter().filter(|m| **m).count();
    let pre_matching = (0..PAIRS)
        .filter(|&i| expected[i] && !versions[i].pre.is_empty())
        .count();
    eprintln!(
        "{PAIRS} pairs: {matching} match, {} do not, {pre_matching} pre-releases match; {} mismatches",
        PAIRS - matching,
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {PAIRS} pairs disagree:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // The generator must exercise both answers, pre-releases included.
    assert!(matching > PAIRS / 10 && PAIRS - matching > PAIRS / 10);
    assert!(pre_matching > 20, "{pre_matching}");
}

#[test]
fn sql_precedence_agrees_with_the_semver_crate() {
    let mut rng = Lcg(7);
    let mut versions: Vec<Version> = (0..400).map(|_| version(&mut rng)).collect();
    versions.sort();
    versions.dedup();
    let texts: Vec<String> = versions.iter().map(Version::to_string).collect();
    let db = TestDb::installed();
    // Shuffled in, sorted by the SQL key: the same order as semver's Ord.
    let mut shuffled = texts.clone();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let sorted: Vec<String> = db
        .connect()
        .query(
            "SELECT v FROM unnest($1::text[]) AS v,
                    LATERAL (SELECT split_part(split_part(v, '-', 1), '.', 1)::int AS major,
                                    split_part(split_part(v, '-', 1), '.', 2)::int AS minor,
                                    split_part(split_part(v, '-', 1), '.', 3)::int AS patch,
                                    CASE WHEN strpos(v, '-') > 0 THEN substr(v, strpos(v, '-') + 1) ELSE '' END AS pre) p
              ORDER BY p.major, p.minor, p.patch, _pgpm.semver_pre_key(p.pre) COLLATE \"C\"",
            &[&shuffled],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(sorted, texts);

    // And the comparison helper, pair by pair.
    let pres: Vec<&str> = PRES.to_vec();
    let (mut left, mut right, mut expected) = (Vec::new(), Vec::new(), Vec::new());
    for a in &pres {
        for b in &pres {
            left.push(*a);
            right.push(*b);
            let (pa, pb) = (Prerelease::new(a).unwrap(), Prerelease::new(b).unwrap());
            expected.push(pa.cmp(&pb) as i32);
        }
    }
    let got: Vec<i32> = db
        .connect()
        .query(
            "SELECT _pgpm.semver_pre_cmp(a, b) FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t (a, b, n) ORDER BY n",
            &[&left, &right],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn sql_parser_accepts_and_refuses_what_pgpm_does() {
    let texts = [
        // Valid in both.
        "^1.4",
        "~1.4.2",
        ">=1.2, <2",
        "1.4.*",
        "*",
        "=1.4.0",
        " 1.2 ",
        ">= 1.2 ,  <2",
        "1.2.3+build.5",
        "1.2.3-alpha.1+b",
        "x",
        "X",
        "xx",
        "01_04_xx",
        "1_4_x",
        ">01_02_03",
        "=x_x",
        "< 1_2",
        "0.0.0",
        "18446744073709551615",
        "1.x.X",
        "~1.*",
        // Invalid in both.
        "",
        " ",
        "1.2-alpha",
        "01.2",
        "1.02",
        "*, 1",
        "1, *",
        "x.1",
        "1.*.3",
        "1.2.3-",
        "1.2.3-alpha.",
        "1.2.3-01",
        "1.2.3-a..b",
        "1.2.3+",
        "1.2,",
        ",1.2",
        "1 2",
        "==1",
        "=>1",
        "1.2.3.4",
        "v1.2",
        "18446744073709551616",
        ">x",
        "1_2_3_4",
        "1__2",
        "1_x_3",
        "1_y",
        "1_2_3, >1",
        "a",
        "1.2.3-alpha_1",
        "1.2 - 2.0",
        "^",
        ">=",
        "=x",
        ">=_",
        "1.2.3-ä",
        "1.\u{0}",
    ];
    let thirty_three = vec!["1"; 33].join(", ");
    let thirty_two = vec!["1"; 32].join(", ");
    let mut texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    texts.retain(|t| !t.contains('\u{0}')); // PostgreSQL text cannot hold NUL
    texts.push(thirty_two);
    texts.push(thirty_three);
    let expected: Vec<bool> = texts
        .iter()
        .map(|t| pgpm::version::parse_requirement(t).is_ok())
        .collect();

    let db = TestDb::installed();
    let mut client = db.connect();
    client
        .batch_execute(
            "CREATE FUNCTION pg_temp.readable(r text) RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN
                 PERFORM _pgpm.semver_parse_requirement(r);
                 RETURN true;
             EXCEPTION WHEN SQLSTATE 'PGPM2' THEN
                 RETURN false;
             END $$",
        )
        .unwrap();
    let got: Vec<bool> = client
        .query(
            "SELECT pg_temp.readable(r) FROM unnest($1::text[]) WITH ORDINALITY AS t (r, n) ORDER BY n",
            &[&texts],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mismatches: Vec<String> = texts
        .iter()
        .zip(expected.iter().zip(&got))
        .filter(|(_, (e, g))| e != g)
        .map(|(t, (e, g))| format!("  {t:?}: pgpm accepts: {e}, SQL accepts: {g}"))
        .collect();
    assert!(mismatches.is_empty(), "\n{}", mismatches.join("\n"));
    assert!(expected.iter().filter(|e| **e).count() > 15);
    assert!(expected.iter().filter(|e| !**e).count() > 30);
}
