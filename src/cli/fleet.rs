//! Running a command against one target or a set of them, and what is
//! printed: a single target's lines as they come; a set's per target, in
//! one block as each target ends, then a summary table (or JSON).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use pgpm::ops::fleet::{self, Outcome, Skipped};
use pgpm::{Error, Result};

use super::args::{Connection, Target, Targets};
use super::render::{error_json, print_json};
use super::ui;

/// Where a command's lines go: straight to stdout and stderr, or (for a
/// target of a set) into buffers printed together when the target ends.
/// With `--json` stdout holds only the JSON document, so lines are
/// dropped; `-q` drops the lines of what was done.
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

    /// A line on stdout of what was done (not with `-q` or `--json`).
    pub fn line(&mut self, line: impl std::fmt::Display) {
        let ui = ui::get();
        if ui.quiet || ui.json {
            return;
        }
        match &mut self.buffer {
            None => {
                ui.done();
                println!("{line}")
            }
            Some((out, _)) => {
                let _ = writeln!(out, "{line}");
            }
        }
    }

    /// What the command was asked to show (a rendered script, a table),
    /// as it is; not with `--json`, which shows it as JSON.
    pub fn text(&mut self, text: &str) {
        if ui::get().json {
            return;
        }
        match &mut self.buffer {
            None => {
                ui::get().done();
                print!("{text}")
            }
            Some((out, _)) => out.push_str(text),
        }
    }

    /// A line of the verbose log (see [`ui::Ui::log`]); for a target of
    /// a set, in its block, so that targets' statements do not mix.
    pub fn log(&mut self, line: &str) {
        let ui = ui::get();
        match &mut self.buffer {
            None => ui.log(line),
            Some((_, err)) => {
                ui.write_log(line);
                if ui.verbose {
                    err.push_str(line);
                    err.push('\n');
                }
            }
        }
    }

    /// A line on stderr (warnings, notes), also with `-q` and `--json`.
    pub fn err(&mut self, line: impl std::fmt::Display) {
        match &mut self.buffer {
            None => ui::get().eprint(&line.to_string()),
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
    /// The command's report, for `--json`.
    pub report: serde_json::Value,
    /// The target's name (set by [`run`]).
    pub target: String,
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
        let summary = work(conn, &mut client, out)?;
        Ok(Summary {
            target: conn.name.clone(),
            ..summary
        })
    };
    let ui = ui::get();
    let set = match targets {
        Targets::One(conn) => {
            let summary = work(&conn, &mut Out::live())?;
            ui.done();
            if ui.json {
                print_json(&summary.report);
            }
            return Ok(vec![summary]);
        }
        Targets::Set(set) => set,
    };
    let opts = target.fleet(project_jobs);
    let printing = Mutex::new(0usize);
    ui.set_fleet(true);
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
            let mut finished = printing.lock().unwrap_or_else(|e| e.into_inner());
            *finished += 1;
            ui.spin(&format!("{} of {} targets done", *finished, set.len()));
            let name = &set[run.index].name;
            let (out, error) = match &run.outcome {
                Outcome::Done((out, _)) => (out, None),
                Outcome::Failed(failed) => (&failed.0, Some(&failed.1)),
                Outcome::Skipped(_) => return,
            };
            let (stdout, stderr) = out.buffer.as_ref().expect("a set's output is buffered");
            if ui.quiet && stdout.is_empty() && stderr.is_empty() && error.is_none() {
                return;
            }
            ui.suspended(|| {
                let header = format!("== {name} ({})", set[run.index].info.describe());
                // With --json stdout holds nothing but the JSON document,
                // and with -q nothing but what was asked for.
                if ui.json || ui.quiet {
                    eprintln!("{header}");
                } else {
                    println!("{header}");
                    print!("{stdout}");
                }
                for line in stderr.lines() {
                    eprintln!("{}", ui.paint(line));
                }
                if let Some(e) = error {
                    let message = super::render::error_message(e);
                    eprintln!("{}", ui.paint(&format!("error: {name}: {message}")));
                }
            });
        },
    );
    ui.done();
    ui.set_fleet(false);
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
    if ui.json {
        let rows: Vec<serde_json::Value> = rows.iter().map(Row::json).collect();
        print_json(&serde_json::json!({ "targets": rows }));
    } else if !ui.quiet {
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
    /// The command's report (done) or the error's JSON (failed).
    report: serde_json::Value,
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
            report: s.report.clone(),
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
            report: error_json(e),
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
            report: serde_json::Value::Null,
        }
    }

    /// A target of `{"targets": [...]}`: the summary's fields, then the
    /// command's report or, when it failed, its error as
    /// [`error_json`] gives it (a skipped target's `error` says why).
    fn json(&self) -> serde_json::Value {
        let mut row = serde_json::json!({
            "target": self.target,
            "connection": self.host,
            "outcome": self.outcome,
            "packages": self.packages,
            "patches": self.patches,
            "seconds": self.took.map(|t| t.as_secs_f64()),
            "report": null,
            "error": null,
        });
        if self.report.get("error").is_some() {
            row["error"] = self.report["error"].clone();
        } else if self.outcome == "skipped" {
            row["error"] = serde_json::json!({ "kind": "skipped", "message": self.error });
        } else {
            row["report"] = self.report.clone();
        }
        row
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
