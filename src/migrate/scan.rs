//! Reading a directory of patches.

use std::path::{Path, PathBuf};

use super::PatchError;
use super::name::{PatchId, PatchName, PatchType, classify};
use crate::util::text::read_text_file;

/// A patch file read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub id: PatchId,
    pub kind: PatchType,
    /// The path as found (the directory joined with the file name), for messages.
    pub path: PathBuf,
    /// The file name, as recorded in the catalog.
    pub file_name: String,
    /// The file's text, a leading byte-order mark removed.
    pub text: String,
    /// SHA-256 of the file's normalised bytes (`util::checksum::sha256`).
    pub checksum: String,
}

/// Reads the patches of a directory, in order. Other files are ignored;
/// a file that looks like a patch but is misnamed is an error, so that it
/// is not silently left out.
pub fn scan(dir: &Path) -> Result<Vec<Patch>, PatchError> {
    if !dir.is_dir() {
        return Err(PatchError::NoDir {
            path: dir.to_owned(),
        });
    }
    let io = |source| PatchError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(io)?;
    entries.sort();
    let mut patches: Vec<Patch> = Vec::new();
    for name in entries {
        let path = dir.join(&name);
        let name = name.to_string_lossy();
        let (id, kind) = match classify(&name) {
            PatchName::Other => continue,
            // A name that says "patch" must be one: a directory, a dangling
            // link or a link loop is an error, not something to skip.
            _ if !path.is_file() => return Err(PatchError::NotAFile { path }),
            PatchName::Malformed(reason) => return Err(PatchError::BadName { path, reason }),
            PatchName::Patch(id, kind) => (id, kind),
        };
        let file = read_text_file(&path)?;
        let (text, checksum) = (file.text, file.checksum);
        patches.push(Patch {
            id,
            kind,
            file_name: name.into_owned(),
            path,
            text,
            checksum,
        });
    }
    patches.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.file_name.cmp(&b.file_name)));
    if let Some(pair) = patches.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(PatchError::Duplicate {
            id: pair[0].id,
            first: pair[0].path.clone(),
            second: pair[1].path.clone(),
        });
    }
    Ok(patches)
}
