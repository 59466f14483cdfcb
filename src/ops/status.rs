//! `pgpm status`: what is deployed in a database, what is pending, and
//! whether the server changed under the deployed packages.
//!
//! Each deployment records the server's version number. When the server's
//! major version differs from the one recorded at the last deploy, the
//! server was upgraded (e.g. with `pg_upgrade`) under the packages: long-lived
//! clients that cache OIDs (django-postgres-hot-upgrade's problem) must
//! reconnect, and it is wise to redeploy. `status` warns about it.

use std::path::Path;

use postgres::GenericClient;

use crate::catalog::read::{self, PackageStatus, ServerState};
use crate::catalog::{self, CatalogError};
use crate::migrate::plan::{Applied, Warning};
use crate::migrate::{PatchError, scan};
use crate::package::workspace::Workspace;

/// A pending patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPatch {
    pub file_name: String,
    pub kind: &'static str,
}

/// Everything `pgpm status` reports.
#[derive(Debug, Clone)]
pub struct Status {
    pub server: ServerState,
    pub packages: Vec<PackageStatus>,
    /// `None` when there is no patch directory to compare with.
    pub pending_patches: Option<Vec<PendingPatch>>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Patch(#[from] PatchError),
}

impl StatusError {
    pub fn is_user_error(&self) -> bool {
        match self {
            StatusError::Catalog(e) => e.is_user_error(),
            StatusError::Patch(e) => e.is_user_error(),
        }
    }
}

/// Reads the status. `patch_dir`, when it exists, is compared with the
/// applied patches.
pub fn read(
    client: &mut impl GenericClient,
    patch_dir: Option<&Path>,
) -> Result<Status, StatusError> {
    catalog::require_current(client)?;
    let server = read::server_state(client)?;
    let packages = read::package_statuses(client)?;
    let mut patch_warnings = Vec::new();
    let pending_patches = match patch_dir.filter(|d| d.is_dir()) {
        Some(dir) => {
            let applied = read::applied_patches(client)?;
            let scanned = scan::scan(dir)?;
            let newest = applied
                .iter()
                .map(|a| (a.major, a.minor, a.point))
                .max()
                .map(|n| {
                    applied
                        .iter()
                        .find(|a| (a.major, a.minor, a.point) == n)
                        .expect("there")
                });
            for p in &scanned {
                let key = (p.id.major, p.id.minor, p.id.point);
                match applied.iter().find(|a| (a.major, a.minor, a.point) == key) {
                    Some(a) if a.checksum != p.checksum => patch_warnings.push(format!(
                        "{} changed since it was applied at {}: migrate refuses to go on until it is restored, or accepted with `pgpm migrate accept {} --reason ...`",
                        p.path.display(),
                        a.applied_at,
                        p.path.display()
                    )),
                    None if newest.is_some_and(|n| (n.major, n.minor, n.point) > key) => {
                        patch_warnings.push(format!(
                            "{} is pending but numbered before {}, which is applied: migrate applies it only with --out-of-order",
                            p.file_name,
                            newest.expect("checked").file_name
                        ));
                    }
                    _ => {}
                }
            }
            let pending = scanned
                .into_iter()
                .filter(|p| {
                    !applied.iter().any(|a| {
                        (a.major, a.minor, a.point) == (p.id.major, p.id.minor, p.id.point)
                    })
                })
                .map(|p| PendingPatch {
                    file_name: p.file_name,
                    kind: p.kind.as_str(),
                })
                .collect();
            Some(pending)
        }
        None => None,
    };
    let mut warnings: Vec<String> = packages
        .iter()
        .filter(|p| p.schema_missing)
        .map(|p| {
            format!(
                "{} {}: schema {} was dropped outside pgpm; the next deploy creates it again",
                p.name,
                p.version,
                p.schema.as_deref().unwrap_or_default()
            )
        })
        .collect();
    warnings.extend(patch_warnings);
    for (label, schema) in read::changed_schemas(client)? {
        warnings.push(format!(
            "{label}: schema {schema} is not as its deploy left it (definitions were changed, added or dropped since, by a patch or by hand); redeploy the package, or put the change in it"
        ));
    }
    for change in read::changes_outside_pgpm(client, 20)? {
        warnings.push(format!(
            "changed outside pgpm: {change}; the deployed package no longer says what is there (redeploy it, or put the change in the package)"
        ));
    }
    let applied: Vec<Applied> = read::applied_patches(client)?
        .into_iter()
        .map(Applied::from)
        .collect();
    let progress = read::concurrent_progress(client)?;
    let invalid = read::invalid_indexes(client, true)?;
    warnings.extend(
        Warning::from_database(&progress, &applied, invalid)
            .iter()
            .map(ToString::to_string),
    );
    let now = server.server_version_num;
    if let Some(last) = server.last_deploy_server_version_num
        && last / 10000 != now / 10000
    {
        warnings.push(format!(
            "the server is PostgreSQL {} but the last deploy ran on PostgreSQL {}: the server was upgraded under the deployed packages; long-lived clients that cache OIDs must reconnect, and redeploying is advised",
            now / 10000,
            last / 10000
        ));
    }
    Ok(Status {
        server,
        packages,
        pending_patches,
        warnings,
    })
}

impl Status {
    /// How many patches are pending (none without a patch directory).
    pub fn pending_patches(&self) -> usize {
        self.pending_patches.as_ref().map_or(0, Vec::len)
    }
}

/// The packages of `workspace` whose content is not what the database has
/// deployed for their version (not deployed, or deployed with other
/// content), as `name version`.
pub fn differing(
    client: &mut impl GenericClient,
    workspace: &Workspace,
) -> Result<Vec<String>, StatusError> {
    let targets = read::target_states(client, workspace.packages.iter().map(|p| &p.manifest))?;
    Ok(workspace
        .packages
        .iter()
        .filter(|p| {
            !targets
                .get(&p.manifest.manifest_path)
                .is_some_and(|t| t.holds(&p.manifest, &p.checksum))
        })
        .map(|p| p.manifest.label())
        .collect())
}
