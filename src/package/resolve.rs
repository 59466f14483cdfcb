//! The dependency graph between packages. Pure: what is deployed comes in
//! as plain data ([`Deployed`], read by `catalog::read::deployed`).
//!
//! Each dependency resolves to the highest version that satisfies it among
//! the workspace's packages and the versions already deployed in the
//! database; at equal versions the workspace's copy wins, so it is the one
//! deployed. Packages are then ordered so that each comes after its
//! dependencies, ties broken by name and version, which makes the order
//! deterministic whatever order the disk returned the packages in.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use semver::Version;

use super::manifest::Manifest;
use crate::util::toposort::toposort;

/// A package version already deployed in the database (the current
/// revision: `old_rev IS NULL AND removed_at IS NULL` in `_pgpm.packages`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub name: String,
    pub version: Version,
    /// `None` for `scope: database` packages.
    pub schema: Option<String>,
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

impl Source {
    /// At equal versions the lower rank wins: the workspace's copy is the
    /// one deployed.
    fn rank(self) -> u8 {
        match self {
            Source::Workspace => 0,
            Source::Deployed => 1,
        }
    }
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
                .then_with(|| a.source.rank().cmp(&b.source.rank()))
        });
    }

    // deps[i]: the workspace packages package i depends on.
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); packages.len()];
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
                    deps[index].push(pick.index);
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

    let order = order(packages, &deps)?;
    Ok(Resolution {
        order,
        dependencies,
    })
}

/// Packages after their dependencies, ties broken by (name, version), so
/// the order does not depend on the input order.
fn order(packages: &[Manifest], deps: &[Vec<usize>]) -> Result<Vec<usize>, ResolveError> {
    let key = |i: usize| (&packages[i].name, &packages[i].version);
    // rank[pos] is the package that sorts at pos; the sort runs on positions.
    let mut rank: Vec<usize> = (0..packages.len()).collect();
    rank.sort_by(|&a, &b| key(a).cmp(&key(b)));
    let mut position = vec![0; packages.len()];
    for (pos, &i) in rank.iter().enumerate() {
        position[i] = pos;
    }
    let by_position: Vec<Vec<usize>> = rank
        .iter()
        .map(|&i| deps[i].iter().map(|&d| position[d]).collect())
        .collect();
    match toposort(&by_position) {
        Ok(sorted) => Ok(sorted.into_iter().map(|pos| rank[pos]).collect()),
        Err(cycles) => {
            // The first cycle: a package cycle is fixed one edge at a time.
            let walk = cycles.into_iter().next().unwrap_or_default();
            let label = |pos: usize| {
                let m = &packages[rank[pos]];
                format!("{} ({})", m.label(), m.manifest_path.display())
            };
            let mut cycle: Vec<String> = walk.iter().map(|&pos| label(pos)).collect();
            if let Some(&first) = walk.first() {
                cycle.push(label(first));
            }
            Err(ResolveError::Cycle { cycle })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use semver::Version;

    use super::*;
    use crate::package::manifest::Manifest;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
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
