//! Finding packages and their SQL files on disk.
//!
//! `PATH` is either one package (a folder with a `package.json`, or the
//! ancestor's `config.json`) or a workspace: every package below it.
//! Hidden folders, `target` and `node_modules` are skipped, and a package's
//! own folder is not searched for further packages. Packages are sorted by
//! name and version; files by natural path order (`2.sql` before `10.sql`),
//! so nothing depends on the order the file system lists entries in.
//!
//! Paths keep the form they were given in: a workspace opened as
//! `packages-example` has packages in `packages-example/core`, which is
//! what messages print.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::manifest::{self, Manifest, ManifestError, Phase};
use crate::util::text::{TextError, read_text_file};
use crate::util::{checksum, natural_cmp, natural_path_cmp, parallel_map, slash_path};

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error(
        "no package found in {}: a package is a folder with a package.json",
        path.display()
    )]
    Empty { path: PathBuf },
    #[error(
        "package {name} {version} is defined twice: {} and {}",
        first.display(),
        second.display()
    )]
    Duplicate {
        name: String,
        version: semver::Version,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "{first} ({}) and {second} ({}) would both deploy into schema {schema}; {}",
        first_path.display(),
        second_path.display(),
        if first.split(' ').next() == second.split(' ').next() {
            "a basic package can only have one version in a workspace"
        } else {
            "two packages cannot share a schema: rename one of them"
        }
    )]
    SchemaClash {
        schema: String,
        first: String,
        first_path: PathBuf,
        second: String,
        second_path: PathBuf,
    },
    #[error(
        "{}: {} is in both a {first} folder and a {second} folder; list each file in one phase only",
        manifest.display(),
        file.display()
    )]
    FileInTwoPhases {
        manifest: PathBuf,
        file: PathBuf,
        first: Phase,
        second: Phase,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Text(#[from] TextError),
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl WorkspaceError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> WorkspaceError {
        let path = path.into();
        move |source| WorkspaceError::Io { path, source }
    }
}

type Result<T, E = WorkspaceError> = std::result::Result<T, E>;

/// Every package found under a path.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The path the workspace was opened with.
    pub root: PathBuf,
    /// Sorted by name, then version.
    pub packages: Vec<Package>,
}

/// A package and its SQL files.
#[derive(Debug, Clone)]
pub struct Package {
    pub manifest: Manifest,
    /// Grouped by phase (in deploy order), each group in natural path order.
    pub files: Vec<SourceFile>,
    /// SHA-256 over the manifest and every SQL file (relative path with `/`
    /// separators, then normalised content), files in natural path order.
    pub checksum: String,
    /// Files in the package's folders that are not deployed because they
    /// are not `*.sql` (hidden ones aside), relative to the package
    /// directory, in natural path order: said, never skipped silently.
    pub not_sql: Vec<PathBuf>,
}

/// One SQL file of a package.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub phase: Phase,
    /// Relative to the package directory, e.g. `types/money.sql`.
    pub path: PathBuf,
    /// The content, without a UTF-8 byte-order mark.
    pub text: String,
    /// [`checksum::sha256`] of the file's bytes.
    pub checksum: String,
}

impl Package {
    /// Reads the manifest at `manifest_path` and the SQL files of its folders.
    pub fn load(manifest_path: &Path) -> Result<Package> {
        let bytes = std::fs::read(manifest_path).map_err(WorkspaceError::io(manifest_path))?;
        let manifest = Manifest::from_bytes(manifest_path, &bytes)?;
        let (files, not_sql) = sql_files(&manifest)?;
        let mut sorted: Vec<&SourceFile> = files.iter().collect();
        sorted.sort_by(|a, b| natural_path_cmp(&a.path, &b.path));
        let mut hasher = checksum::Hasher::new();
        let name = manifest_path.file_name().unwrap_or_default();
        hasher.part(&name.to_string_lossy(), &bytes);
        for file in sorted {
            hasher.part(&slash_path(&file.path), file.text.as_bytes());
        }
        Ok(Package {
            manifest,
            files,
            checksum: hasher.finish(),
            not_sql,
        })
    }
}

impl Workspace {
    /// Finds and loads the package or packages at `path`.
    pub fn load(path: &Path) -> Result<Workspace> {
        let manifests = find_manifests(path)?;
        let mut packages = parallel_map(&manifests, |m| Package::load(m))
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        packages.sort_by(|a, b| {
            (&a.manifest.name, &a.manifest.version).cmp(&(&b.manifest.name, &b.manifest.version))
        });
        check_unique(&packages)?;
        Ok(Workspace {
            root: path.to_path_buf(),
            packages,
        })
    }
}

/// The manifests at `path`: the path itself when it is a manifest file or a
/// package folder, otherwise every package folder below it.
pub fn find_manifests(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.exists() {
        return Err(WorkspaceError::NotFound {
            path: path.to_path_buf(),
        });
    }
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if let Some(manifest) = manifest_in(path) {
        return Ok(vec![manifest]);
    }
    let mut found = Vec::new();
    find_packages(path, &mut found)?;
    if found.is_empty() {
        return Err(WorkspaceError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(found)
}

/// Appends the manifests of the package folders below `dir`, depth first,
/// folders in natural order; links are not followed. A package folder's own
/// entries are never listed: in a workspace of thousands of packages,
/// listing every package folder was the largest part of discovery.
fn find_packages(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let mut folders: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(WorkspaceError::io(dir))? {
        let entry = entry.map_err(WorkspaceError::io(dir))?;
        let is_dir = entry
            .file_type()
            .map_err(WorkspaceError::io(entry.path()))?
            .is_dir();
        if is_dir && !skipped_dir(&entry.file_name()) {
            folders.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            ));
        }
    }
    folders.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    for (_, folder) in folders {
        match manifest_in(&folder) {
            Some(manifest) => found.push(manifest),
            None => find_packages(&folder, found)?,
        }
    }
    Ok(())
}

/// A folder's manifest: `package.json`, else the ancestor's `config.json`.
fn manifest_in(dir: &Path) -> Option<PathBuf> {
    [manifest::FILE_NAME, manifest::ANCESTOR_FILE_NAME]
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// Folders never searched: hidden ones, build output and npm's.
fn skipped_dir(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || name == "target" || name == "node_modules"
}

fn walk_error(root: &Path, e: walkdir::Error) -> WorkspaceError {
    let path = e.path().unwrap_or(root).to_path_buf();
    let source = e
        .into_io_error()
        .unwrap_or_else(|| std::io::Error::other("file system loop"));
    WorkspaceError::Io { path, source }
}

/// The `*.sql` files of every phase's folders (for the ancestor's
/// `config.json`, every file but hidden ones), read and checksummed.
fn sql_files(manifest: &Manifest) -> Result<(Vec<SourceFile>, Vec<PathBuf>)> {
    let mut claimed: HashMap<PathBuf, Phase> = HashMap::new();
    let mut files = Vec::new();
    let mut not_sql: Vec<PathBuf> = Vec::new();
    for phase in Phase::ALL {
        let mut paths: Vec<PathBuf> = Vec::new();
        for folder in manifest.folders(phase) {
            let dir = manifest.dir.join(folder);
            // Links are followed inside a package (a shared file linked
            // into two packages is common); walkdir reports link loops.
            let walk = WalkDir::new(&dir)
                .min_depth(1)
                .follow_links(true)
                .into_iter()
                .filter_entry(|e| !e.file_type().is_dir() || !skipped_dir(e.file_name()));
            for entry in walk {
                let entry = entry.map_err(|e| walk_error(&dir, e))?;
                if !entry.file_type().is_file() {
                    continue;
                }
                let relative = folder.join(entry.path().strip_prefix(&dir).unwrap_or(entry.path()));
                let relative: PathBuf = relative
                    .components()
                    .filter(|c| !matches!(c, std::path::Component::CurDir))
                    .collect();
                // `*.sql` in any case; other files, hidden ones aside, are
                // listed so that nothing is left out without a word.
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                let is_sql = entry
                    .path()
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("sql"))
                    || (manifest.every_file && !hidden);
                if !is_sql {
                    if !hidden && !not_sql.contains(&relative) {
                        not_sql.push(relative);
                    }
                    continue;
                }
                if let Some(&first) = claimed.get(&relative) {
                    if first != phase {
                        return Err(WorkspaceError::FileInTwoPhases {
                            manifest: manifest.manifest_path.clone(),
                            file: relative,
                            first,
                            second: phase,
                        });
                    }
                    continue;
                }
                claimed.insert(relative.clone(), phase);
                paths.push(relative);
            }
        }
        paths.sort_by(|a, b| natural_path_cmp(a, b));
        for path in paths {
            files.push(read_sql(manifest, phase, path)?);
        }
    }
    not_sql.sort_by(|a, b| natural_path_cmp(a, b));
    Ok((files, not_sql))
}

fn read_sql(manifest: &Manifest, phase: Phase, path: PathBuf) -> Result<SourceFile> {
    let file = read_text_file(&manifest.dir.join(&path))?;
    let (text, checksum) = (file.text, file.checksum);
    Ok(SourceFile {
        phase,
        path,
        text,
        checksum,
    })
}

/// Two packages may not share a name and version, nor a schema.
fn check_unique(packages: &[Package]) -> Result<(), WorkspaceError> {
    for pair in packages.windows(2) {
        let (a, b) = (&pair[0].manifest, &pair[1].manifest);
        if a.name == b.name && a.version == b.version {
            return Err(WorkspaceError::Duplicate {
                name: a.name.clone(),
                version: a.version.clone(),
                first: a.manifest_path.clone(),
                second: b.manifest_path.clone(),
            });
        }
    }
    let mut schemas: HashMap<&str, &Manifest> = HashMap::new();
    for package in packages {
        let m = &package.manifest;
        let Some(schema) = m.schema() else { continue };
        if let Some(first) = schemas.insert(schema, m) {
            return Err(WorkspaceError::SchemaClash {
                schema: schema.to_string(),
                first: first.label(),
                first_path: first.manifest_path.clone(),
                second: m.label(),
                second_path: m.manifest_path.clone(),
            });
        }
    }
    Ok(())
}
