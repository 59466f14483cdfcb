//! Content checksums of SQL files and packages.
//!
//! SHA-256 over normalised bytes: a UTF-8 byte-order mark is stripped and
//! CRLF line endings become LF, so a checkout on Windows or an editor that
//! adds a BOM does not look like a changed file. Rendered as lower-case hex.

use sha2::{Digest, Sha256};

/// Bytes as they are hashed: BOM stripped, CRLF turned into LF.
pub fn normalise(bytes: &[u8]) -> Vec<u8> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// SHA-256 of the normalised bytes, as lower-case hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(normalise(bytes)))
}

/// Incremental checksum over several named parts (a package's files), so
/// that renaming a file or moving bytes between files changes the result.
#[derive(Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Adds one part: its name, then its normalised content.
    pub fn part(&mut self, name: &str, bytes: &[u8]) -> &mut Hasher {
        let content = normalise(bytes);
        self.0.update((name.len() as u64).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update((content.len() as u64).to_le_bytes());
        self.0.update(&content);
        self
    }

    pub fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_and_bom_do_not_change_the_checksum() {
        let unix = sha256(b"select 1;\nselect 2;\n");
        assert_eq!(sha256(b"select 1;\r\nselect 2;\r\n"), unix);
        assert_eq!(sha256(b"\xEF\xBB\xBFselect 1;\nselect 2;\n"), unix);
        assert_ne!(sha256(b"select 1;\nselect 3;\n"), unix);
        assert_eq!(
            sha256(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn package_checksum_depends_on_names_and_boundaries() {
        let mut a = Hasher::new();
        a.part("a.sql", b"ab").part("b.sql", b"c");
        let mut b = Hasher::new();
        b.part("a.sql", b"a").part("b.sql", b"bc");
        let mut c = Hasher::new();
        c.part("x.sql", b"ab").part("b.sql", b"c");
        let (a, b, c) = (a.finish(), b.finish(), c.finish());
        assert_ne!(a, b);
        assert_ne!(a, c);
    }
}
