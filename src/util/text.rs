//! Text files and positions in them.
//!
//! Package files and patches are read the same way: the bytes are
//! checksummed ([`checksum::sha256`], which ignores a BOM and CRLF), a
//! leading UTF-8 byte-order mark is dropped and the rest must be UTF-8.
//! PostgreSQL reports error positions as 1-based character counts; users
//! read `line:column`. Both conversions live here, once.

use std::path::{Path, PathBuf};

use super::checksum;

/// Where in the user's files something is: the file, and for SQL and JSON
/// the line and column (1-based). Shown as `path:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl Location {
    /// A whole file.
    pub fn file(file: &Path) -> Location {
        Location {
            file: file.to_path_buf(),
            line: None,
            column: None,
        }
    }

    /// A position in a file.
    pub fn at(file: &Path, line: usize, column: usize) -> Location {
        Location {
            file: file.to_path_buf(),
            line: Some(line),
            column: Some(column),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

/// A text file as pgpm reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFile {
    /// The content, without a UTF-8 byte-order mark.
    pub text: String,
    /// [`checksum::sha256`] of the file's bytes.
    pub checksum: String,
}

/// Why a text file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not valid UTF-8 text (first bad byte at offset {offset})", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
}

/// Reads a text file: checksum of its bytes, BOM stripped, UTF-8 required.
pub fn read_text_file(path: &Path) -> Result<TextFile, TextError> {
    let bytes = std::fs::read(path).map_err(|source| TextError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let checksum = checksum::sha256(&bytes);
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let bom = bytes.len() - body.len();
    let text = String::from_utf8(body.to_vec()).map_err(|e| TextError::NotUtf8 {
        path: path.to_path_buf(),
        offset: bom + e.utf8_error().valid_up_to(),
    })?;
    Ok(TextFile { text, checksum })
}

/// The byte offset of PostgreSQL's 1-based character `position` in
/// `text`; positions past the end map to the end.
pub fn char_to_byte(text: &str, position: usize) -> usize {
    text.char_indices()
        .nth(position.saturating_sub(1))
        .map_or(text.len(), |(at, _)| at)
}

/// 1-based line and column (in characters) of a byte offset into `text`.
///
/// A byte-order mark at the start of the text is not counted as a column,
/// matching what editors show. Offsets past the end map to the end.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(text).line_col(text, offset)
}

/// Line starts of one text, so positions of many statements cost a binary
/// search each instead of a scan from the top.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// [`line_col`] of `offset` in `text`, the text this index was made from.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset);
        let mut start = self.starts[line - 1];
        if start == 0 && text.starts_with('\u{feff}') && offset >= 3 {
            start = 3;
        }
        (line, text[start..offset].chars().count() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        assert_eq!(char_to_byte("aé b", 1), 0);
        assert_eq!(char_to_byte("aé b", 3), 3);
        assert_eq!(char_to_byte("ab", 9), 2);
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("\u{feff}ab", 4), (1, 2));
    }

    #[test]
    fn text_files_lose_their_bom_and_must_be_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sql");
        std::fs::write(&path, b"\xEF\xBB\xBFselect 1;\r\n").unwrap();
        let file = read_text_file(&path).unwrap();
        assert_eq!(file.text, "select 1;\r\n");
        assert_eq!(file.checksum, checksum::sha256(b"select 1;\n"));
        std::fs::write(&path, b"select '\xff';").unwrap();
        assert!(matches!(
            read_text_file(&path),
            Err(TextError::NotUtf8 { offset: 8, .. })
        ));
    }
}
