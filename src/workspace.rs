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

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use walkdir::WalkDir;

use crate::checksum;
use crate::manifest::{self, Manifest, Phase};
use crate::{Error, Result};

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
        "{first} ({}) and {second} ({}) would both deploy into schema {schema}; a basic package can only have one version in a workspace",
        first_path.display(),
        second_path.display()
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
    #[error("{} is not valid UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
}

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
        let bytes = std::fs::read(manifest_path).map_err(Error::io(manifest_path))?;
        let manifest = Manifest::from_bytes(manifest_path, &bytes)?;
        let files = sql_files(&manifest)?;
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
        })
    }

    /// The package's files of one phase, in natural path order.
    pub fn files(&self, phase: Phase) -> impl Iterator<Item = &SourceFile> {
        self.files.iter().filter(move |f| f.phase == phase)
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
        }
        .into());
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
        }
        .into());
    }
    Ok(found)
}

/// Appends the manifests of the package folders below `dir`, depth first,
/// folders in natural order; links are not followed. A package folder's own
/// entries are never listed: in a workspace of thousands of packages,
/// listing every package folder was the largest part of discovery.
fn find_packages(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let mut folders: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        let is_dir = entry.file_type().map_err(Error::io(entry.path()))?.is_dir();
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

fn walk_error(root: &Path, e: walkdir::Error) -> Error {
    let path = e.path().unwrap_or(root).to_path_buf();
    let source = e
        .into_io_error()
        .unwrap_or_else(|| std::io::Error::other("file system loop"));
    Error::Io { path, source }
}

/// The `*.sql` files of every phase's folders, read and checksummed.
fn sql_files(manifest: &Manifest) -> Result<Vec<SourceFile>> {
    let mut claimed: HashMap<PathBuf, Phase> = HashMap::new();
    let mut files = Vec::new();
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
                let is_sql = entry.path().extension().is_some_and(|e| e == "sql");
                if !entry.file_type().is_file() || !is_sql {
                    continue;
                }
                let relative = folder.join(entry.path().strip_prefix(&dir).unwrap_or(entry.path()));
                let relative: PathBuf = relative
                    .components()
                    .filter(|c| !matches!(c, std::path::Component::CurDir))
                    .collect();
                if let Some(&first) = claimed.get(&relative) {
                    if first != phase {
                        return Err(WorkspaceError::FileInTwoPhases {
                            manifest: manifest.manifest_path.clone(),
                            file: relative,
                            first,
                            second: phase,
                        }
                        .into());
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
    Ok(files)
}

fn read_sql(manifest: &Manifest, phase: Phase, path: PathBuf) -> Result<SourceFile> {
    let full = manifest.dir.join(&path);
    let bytes = std::fs::read(&full).map_err(Error::io(&full))?;
    let checksum = checksum::sha256(&bytes);
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| WorkspaceError::NotUtf8 { path: full.clone() })?;
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

/// `f` over `items` on every available core, results in input order.
/// Large workspaces (thousands of packages) are mostly reading and parsing
/// small files, which spreads well; small ones stay on one thread.
///
/// Each thread takes the next item as soon as it is free rather than a
/// fixed share, so items of very different cost (a file of a thousand
/// functions next to one of three) keep every core busy to the end.
pub(crate) fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const MIN_PER_THREAD: usize = 64;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().div_ceil(MIN_PER_THREAD));
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, AtomicOrdering::Relaxed);
            let Some(item) = items.get(index) else {
                return done;
            };
            done.push((index, f(item)));
        }
    };
    let mut results: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let own = work();
        let all = std::iter::once(own).chain(
            helpers
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
        );
        for done in all {
            for (index, result) in done {
                results[index] = Some(result);
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.expect("every item is done once"))
        .collect()
}

/// A relative path with `/` separators, the same on every platform.
pub fn slash_path(path: &Path) -> String {
    let parts: Vec<_> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    parts.join("/")
}

/// Compares paths component by component with [`natural_cmp`].
pub fn natural_path_cmp(a: &Path, b: &Path) -> Ordering {
    let mut a = a.components();
    let mut b = b.components();
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = natural_cmp(
                    &x.as_os_str().to_string_lossy(),
                    &y.as_os_str().to_string_lossy(),
                );
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// "Natural" string order: runs of digits compare as numbers (`2` before
/// `10`), everything else byte by byte. Equal numbers with different
/// leading zeros (`01`, `1`) fall back to byte order, so the order is total.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        if x[i].is_ascii_digit() && y[j].is_ascii_digit() {
            let (si, sj) = (i, j);
            while i < x.len() && x[i].is_ascii_digit() {
                i += 1;
            }
            while j < y.len() && y[j].is_ascii_digit() {
                j += 1;
            }
            let p = trim_zeros(&x[si..i]);
            let q = trim_zeros(&y[sj..j]);
            let o = p.len().cmp(&q.len()).then_with(|| p.cmp(q));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            if x[i] != y[j] {
                return x[i].cmp(&y[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (x.len() - i).cmp(&(y.len() - j)).then_with(|| a.cmp(b))
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let start = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    &digits[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut names = vec![
            "10.sql",
            "2.sql",
            "1.sql",
            "a10b.sql",
            "a2b.sql",
            "b.sql",
            "a.sql",
            "01.sql",
            "002_x.sql",
            "2_a.sql",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "01.sql",
                "1.sql",
                "2.sql",
                "2_a.sql",
                "002_x.sql",
                "10.sql",
                "a.sql",
                "a2b.sql",
                "a10b.sql",
                "b.sql"
            ]
        );
        let mut paths = vec![
            PathBuf::from("tables/10_b.sql"),
            PathBuf::from("tables/2/z.sql"),
            PathBuf::from("tables/2_a.sql"),
        ];
        paths.sort_by(|a, b| natural_path_cmp(a, b));
        assert_eq!(
            paths,
            [
                PathBuf::from("tables/2/z.sql"),
                PathBuf::from("tables/2_a.sql"),
                PathBuf::from("tables/10_b.sql")
            ]
        );
    }
}
