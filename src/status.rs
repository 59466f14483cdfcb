//! `pgpm status`: what is deployed in a database, what is pending, and
//! whether the server changed under the deployed packages.
//!
//! Each deployment records the server's version number. When the server's
//! major version differs from the one recorded at the last deploy, the
//! server was upgraded (e.g. with `pg_upgrade`) under the packages: long-lived
//! clients that cache OIDs (django-postgres-hot-upgrade's problem) must
//! reconnect, and it is wise to redeploy. `status` warns about it.

use std::fmt::{self, Write as _};
use std::path::Path;

use postgres::GenericClient;
use serde::Serialize;

use crate::{Error, Result, catalog, patches};

/// One deployed package version (its current revision).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PackageStatus {
    pub name: String,
    pub version: String,
    /// `None` for database-scope packages.
    pub schema: Option<String>,
    /// Renamed earlier revisions of this version: `<schema>_<N>`.
    pub old_revisions: Vec<String>,
    pub deployed_at: String,
    pub deployed_by: String,
    pub vcs_ref: Option<String>,
}

/// A pending patch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PendingPatch {
    pub file_name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Everything `pgpm status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub catalog_version: i32,
    pub server_version: String,
    pub server_version_num: i32,
    /// The server version number recorded at the last deploy.
    pub last_deploy_server_version_num: Option<i32>,
    pub packages: Vec<PackageStatus>,
    /// `None` when there is no patch directory to compare with.
    pub pending_patches: Option<Vec<PendingPatch>>,
    pub warnings: Vec<String>,
}

/// Reads the status. `patch_dir`, when it exists, is compared with the
/// applied patches.
pub fn read(client: &mut impl GenericClient, patch_dir: Option<&Path>) -> Result<Status> {
    catalog::require_current(client)?;
    let row = client
        .query_one(
            "SELECT (SELECT catalog_version FROM _pgpm.meta), current_setting('server_version'),
                    current_setting('server_version_num')::int,
                    (SELECT server_version_num FROM _pgpm.deployments
                      ORDER BY started_at DESC, deployment_id DESC LIMIT 1)",
            &[],
        )
        .map_err(Error::db("cannot read the server version"))?;
    let (catalog_version, server_version, server_version_num, last): (
        i32,
        String,
        i32,
        Option<i32>,
    ) = (row.get(0), row.get(1), row.get(2), row.get(3));
    let packages = client
        .query(
            "SELECT p.name, p.version, p.schema_name,
                    coalesce((SELECT array_agg(o.schema_name ORDER BY o.old_rev)
                                FROM _pgpm.packages o
                               WHERE o.name = p.name AND o.version = p.version
                                 AND o.old_rev IS NOT NULL AND o.removed_at IS NULL), '{}'),
                    to_char(p.deployed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"'),
                    p.deployed_by, d.vcs_ref
               FROM _pgpm.packages p
               JOIN _pgpm.deployments d USING (deployment_id)
              WHERE p.old_rev IS NULL AND p.removed_at IS NULL
              ORDER BY p.name, p.v_major, p.v_minor, p.v_patch, p.v_pre",
            &[],
        )
        .map_err(Error::db("cannot read the deployed packages"))?
        .iter()
        .map(|r| PackageStatus {
            name: r.get(0),
            version: r.get(1),
            schema: r.get(2),
            old_revisions: r.get(3),
            deployed_at: r.get(4),
            deployed_by: r.get(5),
            vcs_ref: r.get(6),
        })
        .collect();
    let pending_patches = match patch_dir.filter(|d| d.is_dir()) {
        Some(dir) => {
            let applied = patches::applied(client)?;
            let pending = patches::scan(dir)?
                .into_iter()
                .filter(|p| !applied.iter().any(|a| a.id == p.id))
                .map(|p| PendingPatch {
                    file_name: p.file_name,
                    kind: p.kind.as_str().to_string(),
                })
                .collect();
            Some(pending)
        }
        None => None,
    };
    let mut warnings = Vec::new();
    if let Some(last) = last
        && last / 10000 != server_version_num / 10000
    {
        warnings.push(format!(
            "the server is PostgreSQL {} but the last deploy ran on PostgreSQL {}: the server was upgraded under the deployed packages; long-lived clients that cache OIDs must reconnect, and redeploying is advised",
            server_version_num / 10000,
            last / 10000
        ));
    }
    Ok(Status {
        catalog_version,
        server_version,
        server_version_num,
        last_deploy_server_version_num: last,
        packages,
        pending_patches,
        warnings,
    })
}

impl Status {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("status serialises")
    }
}

/// A plain-text table for people.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "catalog version {}, server PostgreSQL {} ({})",
            self.catalog_version, self.server_version, self.server_version_num
        )?;
        if self.packages.is_empty() {
            writeln!(f, "no packages deployed")?;
        } else {
            let header = [
                "PACKAGE",
                "VERSION",
                "SCHEMA",
                "OLD REVISIONS",
                "DEPLOYED AT",
                "BY",
                "VCS REF",
            ];
            let rows: Vec<[String; 7]> = self
                .packages
                .iter()
                .map(|p| {
                    [
                        p.name.clone(),
                        p.version.clone(),
                        p.schema.clone().unwrap_or_else(|| "(database)".into()),
                        if p.old_revisions.is_empty() {
                            "-".into()
                        } else {
                            p.old_revisions.join(", ")
                        },
                        p.deployed_at.clone(),
                        p.deployed_by.clone(),
                        p.vcs_ref
                            .as_deref()
                            .map(|r| r.chars().take(12).collect())
                            .unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            let mut widths = header.map(str::len);
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let line = |cells: &[&str]| {
                let mut s = String::new();
                for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                    if i + 1 == cells.len() {
                        s.push_str(cell);
                    } else {
                        let _ = write!(s, "{cell:<w$}  ");
                    }
                }
                s
            };
            writeln!(f, "{}", line(&header))?;
            for row in &rows {
                let cells: Vec<&str> = row.iter().map(String::as_str).collect();
                writeln!(f, "{}", line(&cells))?;
            }
        }
        match &self.pending_patches {
            None => {}
            Some(p) if p.is_empty() => writeln!(f, "no pending patches")?,
            Some(p) => {
                writeln!(f, "{} pending patch(es):", p.len())?;
                for patch in p {
                    writeln!(f, "  {}", patch.file_name)?;
                }
            }
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}
