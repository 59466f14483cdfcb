//! Patch file names: `patch-MAJOR-MINOR-POINT-TYPE.sql`.

use std::fmt;
use std::str::FromStr;

/// The kind of a patch, the last part of its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatchType {
    /// Runs in a transaction with the rest of its group.
    Std,
    /// Like `std`, and meant to be applied on every node of a cluster.
    Direct,
    /// Runs statement by statement outside a transaction.
    Concurrent,
}

impl PatchType {
    pub const ALL: [PatchType; 3] = [PatchType::Std, PatchType::Direct, PatchType::Concurrent];

    pub fn as_str(self) -> &'static str {
        match self {
            PatchType::Std => "std",
            PatchType::Direct => "direct",
            PatchType::Concurrent => "concurrent",
        }
    }

    /// Whether a group of this type runs in one transaction.
    pub fn transactional(self) -> bool {
        self != PatchType::Concurrent
    }
}

impl fmt::Display for PatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PatchType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<PatchType, String> {
        PatchType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("\"{s}\" is not a patch type (std, direct or concurrent)"))
    }
}

/// A patch's identity: its three numbers. Ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatchId {
    pub major: i32,
    pub minor: i32,
    pub point: i32,
}

impl FromStr for PatchId {
    type Err = String;
    /// `1-4-0` (as in a patch's name) or `1.4.0`.
    fn from_str(s: &str) -> Result<PatchId, String> {
        let parts: Vec<&str> = s.trim().split(['-', '.']).collect();
        let numbers: Option<Vec<i32>> = parts.iter().map(|p| p.parse().ok()).collect();
        match numbers.as_deref() {
            Some(&[major, minor, point]) => Ok(PatchId {
                major,
                minor,
                point,
            }),
            _ => Err(format!(
                "\"{s}\" is not a patch number: write MAJOR-MINOR-POINT, as in patch-1-4-0-std.sql"
            )),
        }
    }
}

impl fmt::Display for PatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.major, self.minor, self.point)
    }
}

/// What a file name says about being a patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchName {
    /// Not a patch (a README, a hidden file).
    Other,
    Patch(PatchId, PatchType),
    /// Looks like a patch (starts with `patch-`, or `patch` and ends with
    /// `.sql`, in any case) but does not match the pattern exactly.
    Malformed(String),
}

/// Classifies a file name. Numbers may have leading zeros and must fit a
/// PostgreSQL `integer`.
pub fn classify(name: &str) -> PatchName {
    let lower = name.to_ascii_lowercase();
    let looks = lower.starts_with("patch-")
        || lower.starts_with("patch_")
        || (lower.starts_with("patch") && lower.ends_with(".sql"));
    if name.starts_with('.') || !looks {
        return PatchName::Other;
    }
    let malformed = |why: &str| PatchName::Malformed(why.to_string());
    let Some(stem) = name
        .strip_prefix("patch-")
        .and_then(|s| s.strip_suffix(".sql"))
    else {
        return malformed("expected the prefix \"patch-\" and the suffix \".sql\", in lower case");
    };
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() != 4 {
        return malformed("expected three numbers and a type separated by \"-\"");
    }
    let mut numbers = [0i32; 3];
    for (n, part) in numbers.iter_mut().zip(&parts[..3]) {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return PatchName::Malformed(format!("\"{part}\" is not a number"));
        }
        match part.parse() {
            Ok(v) => *n = v,
            Err(_) => return PatchName::Malformed(format!("{part} is too large")),
        }
    }
    match parts[3].parse() {
        Ok(kind) => PatchName::Patch(
            PatchId {
                major: numbers[0],
                minor: numbers[1],
                point: numbers[2],
            },
            kind,
        ),
        Err(_) => PatchName::Malformed(format!(
            "the type \"{}\" is not std, direct or concurrent",
            parts[3]
        )),
    }
}
