//! Running a command against one target or a set of them, and what is
//! printed: a single target's lines as they come; a set's per target, in
//! one block as each target ends, then a summary table (or JSON).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use pgpm::ops::fleet::{self, Outcome, Skipped};
use pgpm::{Error, Result};

use super::args::{Connection, Target, Targets};

/// Where a command's lines go: straight to stdout and stderr, or (for a
/// target of a set) into buffers printed together when the target ends.
pub struct Out {
    buffer: Option<(String, String)>,
}

impl Out {
    pub fn live() -> Out {
        Out { buffer: None }
    }

    fn buffered() -> Out {
        Out {
            buffer: Some((String::new(), String::new())),
        }
    }

    /// A line on stdout.
    pub fn line(&mut self, line: impl std::fmt::Display) {
        match &mut self.buffer {
            None => println!("{line}"),
            Some((out, _)) => {
                let _ = writeln!(out, "{line}");
            }
        }
    }

    /// Text on stdout as it is (a rendered script, a table).
    pub fn text(&mut self, text: &str) {
        match &mut self.buffer {
            None => print!("{text}"),
            Some((out, _)) => out.push_str(text),
        }
    }

    /// A line on stderr (warnings, notes).
    pub fn err(&mut self, line: impl std::fmt::Display) {
        match &mut self.buffer {
            None => eprintln!("{line}"),
            Some((_, err)) => {
                let _ = writeln!(err, "{line}");
            }
        }
    }
}

/// What one target's run changed, for the summary.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// `deployed`, `up to date`, `applied`, ...
    pub outcome: String,
    /// Packages deployed (or removed).
    pub packages: usize,
    /// Patches applied.
    pub patches: usize,
    /// The database is behind the workspace (for `status --exit-code`).
    pub behind: bool,
}

/// Runs `work` against what `targets` resolves to, on a connection opened
/// for each (with `--wait` as asked). One target: its lines
/// as they come, its error as the command's. A set: every target (see
/// [`pgpm::ops::fleet::run`]), a block of lines per target, a summary; an
/// error naming the targets that failed. Returns every target's summary.
pub fn run(
    target: &Target,
    targets: Targets,
    project_jobs: Option<usize>,
    work: impl Fn(&Connection, &mut postgres::Client, &mut Out) -> Result<Summary> + Sync,
) -> Result<Vec<Summary>> {
    let work = |conn: &Connection, out: &mut Out| -> Result<Summary> {
        let mut client = target.open(conn)?;
        work(conn, &mut client, out)
    };
    let set = match targets {
        Targets::One(conn) => return Ok(vec![work(&conn, &mut Out::live())?]),
        Targets::Set(set) => set,
    };
    let opts = target.fleet(project_jobs);
    let printing = Mutex::new(());
    let runs = fleet::run(
        set.len(),
        &opts,
        |i| {
            let mut out = Out::buffered();
            match work(&set[i], &mut out) {
                Ok(summary) => Ok((out, summary)),
                Err(e) => Err(Box::new((out, e))),
            }
        },
        |run| {
            let _guard = printing.lock().unwrap_or_else(|e| e.into_inner());
            let name = &set[run.index].name;
            let (out, error) = match &run.outcome {
                Outcome::Done((out, _)) => (Some(out), None),
                Outcome::Failed(failed) => (Some(&failed.0), Some(&failed.1)),
                Outcome::Skipped(_) => return,
            };
            // With a JSON summary, stdout holds nothing else.
            let json = target.json_summary;
            let header = format!("== {name} ({})", set[run.index].info.describe());
            if json {
                eprintln!("{header}");
            } else {
                println!("{header}");
            }
            if let Some(Out {
                buffer: Some((stdout, stderr)),
            }) = out
            {
                if json {
                    eprint!("{stdout}");
                } else {
                    print!("{stdout}");
                }
                eprint!("{stderr}");
            }
            if let Some(e) = error {
                let chain = super::error_chain(e);
                eprintln!(
                    "error: {name}: {}",
                    chain.strip_prefix("error: ").unwrap_or(&chain)
                );
            }
        },
    );
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let mut code = 0;
    let mut summaries = Vec::new();
    for run in &runs {
        let conn = &set[run.index];
        let row = match &run.outcome {
            Outcome::Done((_, s)) => {
                summaries.push(s.clone());
                Row::done(conn, s, run.took)
            }
            Outcome::Failed(boxed) => {
                let e = &boxed.1;
                failed.push(conn.name.clone());
                code = code.max(e.exit_code());
                Row::failed(conn, e, run.took)
            }
            Outcome::Skipped(why) => Row::skipped(conn, *why),
        };
        rows.push(row);
    }
    if target.json_summary {
        let json: Vec<serde_json::Value> = rows.iter().map(Row::json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("JSON of plain values")
        );
    } else {
        print!("{}", table(&rows));
    }
    if failed.is_empty() && rows.iter().all(|r| r.outcome != "skipped") {
        return Ok(summaries);
    }
    let skipped = rows.iter().filter(|r| r.outcome == "skipped").count();
    Err(Error::Fleet {
        failed,
        skipped,
        total: rows.len(),
        code: code.max(pgpm::error::EXIT_USER),
    })
}

/// A line of the summary.
struct Row {
    target: String,
    host: String,
    outcome: String,
    packages: Option<usize>,
    patches: Option<usize>,
    took: Option<Duration>,
    error: Option<String>,
}

impl Row {
    fn done(conn: &Connection, s: &Summary, took: Duration) -> Row {
        Row {
            target: conn.name.clone(),
            host: conn.info.describe(),
            outcome: s.outcome.clone(),
            packages: Some(s.packages),
            patches: Some(s.patches),
            took: Some(took),
            error: None,
        }
    }

    fn failed(conn: &Connection, e: &Error, took: Duration) -> Row {
        Row {
            target: conn.name.clone(),
            host: conn.info.describe(),
            outcome: "failed".into(),
            packages: None,
            patches: None,
            took: Some(took),
            error: Some(e.to_string()),
        }
    }

    fn skipped(conn: &Connection, why: Skipped) -> Row {
        Row {
            target: conn.name.clone(),
            host: conn.info.describe(),
            outcome: "skipped".into(),
            packages: None,
            patches: None,
            took: None,
            error: Some(
                match why {
                    Skipped::Canary => "not run: a canary failed",
                    Skipped::FailFast => "not run: another target failed (--fail-fast)",
                    Skipped::Interrupted => "not run: interrupted",
                }
                .into(),
            ),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "target": self.target,
            "connection": self.host,
            "outcome": self.outcome,
            "packages": self.packages,
            "patches": self.patches,
            "seconds": self.took.map(|t| t.as_secs_f64()),
            "error": self.error,
        })
    }
}

fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.target.clone(),
                r.outcome.clone(),
                r.packages.map_or("-".into(), |n| n.to_string()),
                r.patches.map_or("-".into(), |n| n.to_string()),
                r.took
                    .map_or("-".into(), |t| format!("{:.2} s", t.as_secs_f64())),
            ]
        })
        .collect();
    let head = ["target", "outcome", "packages", "patches", "time"];
    let mut widths = head.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::from("\n");
    let line = |out: &mut String, cells: [&str; 5], error: Option<&str>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i >= 2 {
                let _ = write!(l, "{c:>w$}  ");
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        if let Some(e) = error {
            l.push_str(e.lines().next().unwrap_or(""));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut out, head, None);
    for (row, r) in cells.iter().zip(rows) {
        line(
            &mut out,
            [&row[0], &row[1], &row[2], &row[3], &row[4]],
            r.error.as_deref(),
        );
    }
    out
}
