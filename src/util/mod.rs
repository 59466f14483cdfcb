//! Small helpers every layer may use: natural ordering, paths with `/`,
//! work spread over every core, text files, and the one topological sort.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

pub mod checksum;
pub mod text;
pub mod toposort;

/// `f` over `items` on every available core, results in input order.
/// Large workspaces (thousands of packages) are mostly reading and parsing
/// small files, which spreads well; small ones stay on one thread.
///
/// Each thread takes the next item as soon as it is free rather than a
/// fixed share, so items of very different cost (a file of a thousand
/// functions next to one of three) keep every core busy to the end.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
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

/// Percent-encodes all but the unreserved characters of RFC 3986.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

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
