//! Versions, requirements and the dependency graph between packages.
//!
//! Versions are semver; requirements are Cargo-style ranges (`^1.2`,
//! `>=1.4, <2`). The ancestor's underscore forms are translated into the
//! same semver terms, so there is one matcher: `01_04_00` is 1.4.0,
//! `01_02_xx` is `=1.2` (any 1.2.x), `>01_02_03` is `>1.2.3` and `x` is `*`.
//!
//! Each dependency resolves to the highest version that satisfies it among
//! the workspace's packages and the versions already deployed in the
//! database; at equal versions the workspace's copy wins, so it is the one
//! deployed. Packages are then ordered so that each comes after its
//! dependencies, ties broken by name and version, which makes the order
//! deterministic whatever order the disk returned the packages in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::path::PathBuf;

use petgraph::graph::{DiGraph, NodeIndex};
use postgres::GenericClient;
use semver::{Version, VersionReq};

use crate::manifest::Manifest;

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
            let parts: Vec<&str> = text.split('_').collect();
            let numbers: Option<Vec<u64>> = parts.iter().map(|p| number(p)).collect();
            match numbers.as_deref() {
                Some(&[major, minor, patch]) => Ok(Version::new(major, minor, patch)),
                _ => Err(SemverError::Version {
                    text: text.to_string(),
                }),
            }
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

/// A package version already deployed in the database (the current
/// revision: `old_rev IS NULL AND removed_at IS NULL` in `_pgpm.packages`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub name: String,
    pub version: Version,
    /// `None` for `scope: database` packages.
    pub schema: Option<String>,
}

impl Deployed {
    /// The current revisions of the packages deployed in a database:
    /// `old_rev IS NULL AND removed_at IS NULL` in `_pgpm.packages`. The
    /// caller checks the catalog first (`catalog::require_current`).
    pub fn read_current(client: &mut impl GenericClient) -> crate::Result<Vec<Deployed>> {
        let rows = client
            .query(
                "SELECT name, version, schema_name FROM _pgpm.packages
                  WHERE old_rev IS NULL AND removed_at IS NULL
                  ORDER BY name, v_major, v_minor, v_patch, v_pre",
                &[],
            )
            .map_err(crate::Error::db("cannot read the deployed packages"))?;
        rows.iter()
            .map(|row| {
                let name: String = row.get(0);
                let text: String = row.get(1);
                let version =
                    parse_version(&text).map_err(|source| ResolveError::DeployedVersion {
                        name: name.clone(),
                        source,
                    })?;
                Ok(Deployed {
                    name,
                    version,
                    schema: row.get(2),
                })
            })
            .collect()
    }
}

/// A dependency as resolved to one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDependency {
    pub name: String,
    /// The requirement as written in the manifest.
    pub requirement: String,
    pub version: Version,
    /// The schema of that version; `None` for `scope: database` packages.
    pub schema: Option<String>,
    /// True when the version is only in the database, not in the workspace.
    pub deployed_only: bool,
}

/// The outcome of resolving a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Indexes into the packages given to [`resolve`], each after its
    /// dependencies.
    pub order: Vec<usize>,
    /// Per package (same indexes as the input), its resolved dependencies
    /// in manifest order (by name).
    pub dependencies: Vec<Vec<ResolvedDependency>>,
}

/// Where a candidate version lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Workspace,
    Deployed,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Workspace => "workspace",
            Source::Deployed => "deployed",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "{package} ({}) depends on \"{dependency}\" {requirement}, but no package \"{dependency}\" is in the workspace or deployed in the database",
        path.display()
    )]
    Missing {
        package: String,
        path: PathBuf,
        dependency: String,
        requirement: String,
    },
    #[error(
        "{package} ({}) depends on \"{dependency}\" {requirement}, which no available version satisfies; versions that exist: {}",
        path.display(),
        available.iter().map(|(v, s)| format!("{v} ({s})")).collect::<Vec<_>>().join(", ")
    )]
    Unsatisfiable {
        package: String,
        path: PathBuf,
        dependency: String,
        requirement: String,
        /// Highest first.
        available: Vec<(Version, Source)>,
    },
    #[error("the catalog records package {name} with an unreadable version")]
    DeployedVersion {
        name: String,
        #[source]
        source: SemverError,
    },
    #[error("dependency cycle between packages: {}", cycle.join(" -> "))]
    Cycle {
        /// `name version (manifest path)`, starting and ending with the same package.
        cycle: Vec<String>,
    },
}

/// A version that could satisfy a dependency.
struct Candidate<'a> {
    version: &'a Version,
    source: Source,
    /// Index into the packages (workspace) or the deployed list.
    index: usize,
}

/// Resolves every package's dependencies and orders the packages.
///
/// Runs in O((packages + dependencies) log packages): versions are indexed
/// by name once, and the order is Kahn's algorithm with a heap.
pub fn resolve(packages: &[Manifest], deployed: &[Deployed]) -> Result<Resolution, ResolveError> {
    let mut by_name: HashMap<&str, Vec<Candidate<'_>>> = HashMap::new();
    for (index, m) in packages.iter().enumerate() {
        by_name.entry(&m.name).or_default().push(Candidate {
            version: &m.version,
            source: Source::Workspace,
            index,
        });
    }
    for (index, d) in deployed.iter().enumerate() {
        by_name.entry(&d.name).or_default().push(Candidate {
            version: &d.version,
            source: Source::Deployed,
            index,
        });
    }
    // Highest version first; at equal versions the workspace's copy first.
    for candidates in by_name.values_mut() {
        candidates.sort_by(|a, b| {
            b.version
                .cmp(a.version)
                .then_with(|| (a.source as u8).cmp(&(b.source as u8)))
        });
    }

    let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(packages.len(), packages.len());
    let nodes: Vec<NodeIndex> = (0..packages.len()).map(|i| graph.add_node(i)).collect();
    let mut dependencies = Vec::with_capacity(packages.len());
    for (index, m) in packages.iter().enumerate() {
        let mut resolved = Vec::with_capacity(m.dependencies.len());
        for dep in &m.dependencies {
            let candidates = by_name.get(dep.name.as_str()).map(Vec::as_slice);
            let Some(candidates) = candidates.filter(|c| !c.is_empty()) else {
                return Err(ResolveError::Missing {
                    package: m.label(),
                    path: m.manifest_path.clone(),
                    dependency: dep.name.clone(),
                    requirement: dep.requirement.clone(),
                });
            };
            let Some(pick) = candidates.iter().find(|c| dep.req.matches(c.version)) else {
                let mut available: Vec<(Version, Source)> = Vec::new();
                for c in candidates {
                    if !available.iter().any(|(v, _)| v == c.version) {
                        available.push((c.version.clone(), c.source));
                    }
                }
                return Err(ResolveError::Unsatisfiable {
                    package: m.label(),
                    path: m.manifest_path.clone(),
                    dependency: dep.name.clone(),
                    requirement: dep.requirement.clone(),
                    available,
                });
            };
            let schema = match pick.source {
                Source::Workspace => {
                    graph.add_edge(nodes[pick.index], nodes[index], ());
                    packages[pick.index].schema().map(str::to_string)
                }
                Source::Deployed => deployed[pick.index].schema.clone(),
            };
            resolved.push(ResolvedDependency {
                name: dep.name.clone(),
                requirement: dep.requirement.clone(),
                version: pick.version.clone(),
                schema,
                deployed_only: pick.source == Source::Deployed,
            });
        }
        dependencies.push(resolved);
    }

    let order = order(packages, &graph, &nodes)?;
    Ok(Resolution {
        order,
        dependencies,
    })
}

/// Kahn's algorithm, always taking the ready package that sorts first by
/// (name, version), so the order does not depend on the input order.
fn order(
    packages: &[Manifest],
    graph: &DiGraph<usize, ()>,
    nodes: &[NodeIndex],
) -> Result<Vec<usize>, ResolveError> {
    let mut rank: Vec<usize> = (0..packages.len()).collect();
    rank.sort_by(|&a, &b| key(&packages[a]).cmp(&key(&packages[b])));
    // position[i] = where package i sorts; heap holds positions.
    let mut position = vec![0; packages.len()];
    for (pos, &i) in rank.iter().enumerate() {
        position[i] = pos;
    }
    let mut waiting: Vec<usize> = nodes
        .iter()
        .map(|&n| {
            graph
                .neighbors_directed(n, petgraph::Direction::Incoming)
                .count()
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = waiting
        .iter()
        .enumerate()
        .filter(|(_, w)| **w == 0)
        .map(|(i, _)| Reverse(position[i]))
        .collect();
    let mut order = Vec::with_capacity(packages.len());
    while let Some(Reverse(pos)) = ready.pop() {
        let i = rank[pos];
        order.push(i);
        for next in graph.neighbors_directed(nodes[i], petgraph::Direction::Outgoing) {
            let j = graph[next];
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.push(Reverse(position[j]));
            }
        }
    }
    if order.len() < packages.len() {
        return Err(cycle_error(packages, graph, &position));
    }
    Ok(order)
}

fn key(m: &Manifest) -> (&str, &Version) {
    (&m.name, &m.version)
}

/// Names one cycle: the shortest path back to itself from the first
/// package (by name and version) of the first strongly connected component.
fn cycle_error(
    packages: &[Manifest],
    graph: &DiGraph<usize, ()>,
    position: &[usize],
) -> ResolveError {
    let scc = petgraph::algo::tarjan_scc(graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .min_by_key(|c| c.iter().map(|n| position[graph[*n]]).min())
        .unwrap_or_default();
    let label = |n: NodeIndex| {
        let m = &packages[graph[n]];
        format!("{} ({})", m.label(), m.manifest_path.display())
    };
    let Some(&start) = scc.iter().min_by_key(|n| position[graph[**n]]) else {
        return ResolveError::Cycle { cycle: Vec::new() };
    };
    // Breadth-first search inside the component for the way back to `start`,
    // visiting neighbours in (name, version) order so the answer is stable.
    let mut previous: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut end = None;
    'search: while let Some(n) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph
            .neighbors_directed(n, petgraph::Direction::Incoming)
            .filter(|m| scc.contains(m))
            .collect();
        next.sort_by_key(|m| position[graph[*m]]);
        for m in next {
            if m == start {
                end = Some(n);
                break 'search;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = previous.entry(m) {
                e.insert(n);
                queue.push_back(m);
            }
        }
    }
    // Edges point from a dependency to its dependant; walking them backwards
    // from `start` follows "depends on", which is how the cycle reads.
    let mut cycle = vec![label(start)];
    let mut path = Vec::new();
    let mut n = end.unwrap_or(start);
    while n != start {
        path.push(n);
        n = previous[&n];
    }
    cycle.extend(path.into_iter().rev().map(label));
    cycle.push(label(start));
    ResolveError::Cycle { cycle }
}

#[cfg(test)]
mod tests {

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

    use super::*;

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
        for bad in ["1.4", "01_04", "1_4_x", "v1.4.0", "", "1.4.0_1"] {
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

    fn manifest(name: &str, version: &str, deps: &[(&str, &str)]) -> Manifest {
        let deps: Vec<String> = deps
            .iter()
            .map(|(n, r)| format!("\"{n}\": \"{r}\""))
            .collect();
        let json = format!(
            r#"{{ "name": "{name}", "version": "{version}", "dependencies": {{ {} }} }}"#,
            deps.join(", ")
        );
        let path = PathBuf::from(format!("{name}-{version}/package.json"));
        Manifest::parse(&path, &json).unwrap()
    }

    fn labels(packages: &[Manifest], order: &[usize]) -> Vec<String> {
        order.iter().map(|&i| packages[i].label()).collect()
    }

    #[test]
    fn order_puts_dependencies_first_and_ignores_input_order() {
        let mut packages = vec![
            manifest("app", "1.0.0", &[("web", "^2"), ("db", "^1")]),
            manifest("web", "2.1.0", &[("db", "^1.1")]),
            manifest("db", "1.0.0", &[]),
            manifest("db", "1.1.0", &[]),
            manifest("aux", "0.1.0", &[]),
        ];
        let expected = [
            "aux 0.1.0",
            "db 1.0.0",
            "db 1.1.0",
            "web 2.1.0",
            "app 1.0.0",
        ];
        let r = resolve(&packages, &[]).unwrap();
        assert_eq!(labels(&packages, &r.order), expected);
        assert_eq!(r.dependencies[0][0].name, "db");
        assert_eq!(r.dependencies[0][0].version, v("1.1.0"));
        packages.reverse();
        let r = resolve(&packages, &[]).unwrap();
        assert_eq!(labels(&packages, &r.order), expected);
    }

    #[test]
    fn cycles_are_named_in_dependency_order() {
        let packages = vec![
            manifest("c", "1.0.0", &[("a", "*")]),
            manifest("b", "1.0.0", &[("c", "*")]),
            manifest("a", "1.0.0", &[("b", "*")]),
            manifest("z", "1.0.0", &[("a", "*")]),
        ];
        let err = resolve(&packages, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dependency cycle between packages: a 1.0.0 (a-1.0.0/package.json) -> b 1.0.0 (b-1.0.0/package.json) -> c 1.0.0 (c-1.0.0/package.json) -> a 1.0.0 (a-1.0.0/package.json)"
        );
    }

    #[test]
    fn deployed_schemas_are_used_for_deployed_picks() {
        let packages = vec![manifest("app", "1.0.0", &[("db", ">=1.1")])];
        let deployed = [
            Deployed {
                name: "db".into(),
                version: v("1.0.0"),
                schema: Some("db_1_0_0".into()),
            },
            Deployed {
                name: "db".into(),
                version: v("1.2.0"),
                schema: None,
            },
        ];
        let r = resolve(&packages, &deployed).unwrap();
        assert_eq!(
            r.dependencies[0],
            [ResolvedDependency {
                name: "db".into(),
                requirement: ">=1.1".into(),
                version: v("1.2.0"),
                schema: None,
                deployed_only: true,
            }]
        );
    }
}
