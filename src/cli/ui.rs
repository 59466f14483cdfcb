//! How the command talks to people and programs: `--json`, `-q`, `-v`,
//! `--log-file`, colour, and the progress display on a terminal.
//!
//! The options are global flags, set once when the arguments are parsed
//! and read everywhere output is made (the fleet's buffers, the notice
//! handler on the connections' threads), so they live in one process-wide
//! value.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgpm::event::Background;
use pgpm::{Error, Result};

/// The flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Print the command's result as one JSON document on stdout (its
    /// shape per command is in the README), errors included; warnings stay
    /// on stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only warnings, errors and what was asked for (no progress, no
    /// lines of what was done).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log each statement as it runs, with the server's notices, on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Also write that log (statements, notices, warnings) to FILE, with
    /// times.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Colour errors and warnings: on a terminal (auto), always or never.
    /// NO_COLOR in the environment means never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// The output settings, fixed when the command starts (plain output, the
/// default, before they are).
#[derive(Default)]
pub struct Ui {
    /// A set of targets runs: what is told as it happens names its target,
    /// and shows on a terminal only (each target's lines come as a block).
    fleet: AtomicBool,
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
    /// Colour on stderr.
    color: bool,
    /// Animated progress on stderr (a terminal, not quiet, not JSON).
    animate: bool,
    log: Option<Mutex<std::fs::File>>,
}

static UI: OnceLock<Ui> = OnceLock::new();

/// Sets the output settings from the global flags (once; later calls,
/// as tests make, keep the first).
pub fn init(global: &Global) -> Result<()> {
    // A log file that cannot be opened is the command's error, reported
    // with the other settings in place (as JSON with --json).
    let (log, failed) = match &global.log_file {
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => (Some(Mutex::new(file)), None),
            Err(e) => (None, Some(Error::io(path)(e))),
        },
        None => (None, None),
    };
    let terminal = std::io::stderr().is_terminal();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let color = match global.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && !no_color,
    };
    pgpm::event::observe(background);
    let _ = UI.set(Ui {
        json: global.json,
        quiet: global.quiet,
        verbose: global.verbose,
        color,
        animate: terminal && !global.quiet && !global.json,
        log,
        ..Ui::default()
    });
    failed.map_or(Ok(()), Err)
}

/// The settings (plain defaults before [`init`]).
pub fn get() -> &'static Ui {
    UI.get_or_init(Ui::default)
}

impl Ui {
    /// A line for stderr, its `error:`, `warning:` or `note:` coloured
    /// when colour is on.
    pub fn paint(&self, line: &str) -> String {
        if !self.color {
            return line.to_string();
        }
        for (prefix, code) in [("error:", "1;31"), ("warning:", "1;33"), ("note:", "1;36")] {
            if let Some(rest) = line.strip_prefix(prefix) {
                return format!("\x1b[{code}m{prefix}\x1b[0m{rest}");
            }
        }
        line.to_string()
    }

    /// A warning (or note, or error) on stderr, and in the log file.
    pub fn eprint(&self, line: &str) {
        self.write_log(line);
        let painted = self.paint(line);
        self.suspended(|| eprintln!("{painted}"));
    }

    /// A line of the verbose log: on stderr with `-v`, and in the log
    /// file.
    pub fn log(&self, line: &str) {
        self.write_log(line);
        if self.verbose {
            self.suspended(|| eprintln!("{line}"));
        }
    }

    /// Whether [`Ui::log`] writes anywhere (so callers can skip building
    /// its lines).
    pub fn logging(&self) -> bool {
        self.verbose || self.log.is_some()
    }

    /// A line for the log file only (nothing without `--log-file`).
    pub fn write_log(&self, line: &str) {
        if let Some(file) = &self.log {
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            for l in line.lines() {
                let _ = writeln!(file, "{} {l}", timestamp(now));
            }
        }
    }

    /// Something starts that may take a while (a package, a patch, a
    /// target): the progress display's message on a terminal, a plain
    /// line on stderr otherwise; nothing with `-q` or `--json`.
    pub fn step(&self, message: &str) {
        self.write_log(message);
        if self.quiet || self.json {
            return;
        }
        if self.animate {
            spinner().set_message(message.to_string());
        } else {
            eprintln!("{message}");
        }
    }

    /// A set of targets starts (or ends) running.
    pub fn set_fleet(&self, on: bool) {
        self.fleet.store(on, Ordering::Relaxed);
    }

    /// Progress: a [`Ui::step`] for one target, a [`Ui::spin`] in a set.
    pub fn progress(&self, message: &str) {
        if self.fleet.load(Ordering::Relaxed) {
            self.write_log(message);
            self.spin(message);
        } else {
            self.step(message);
        }
    }

    /// The progress display's message, on a terminal only (a count that
    /// plain output says otherwise).
    pub fn spin(&self, message: &str) {
        if self.animate {
            spinner().set_message(message.to_string());
        }
    }

    /// Runs `f`, which prints, with the progress display out of its way.
    pub fn suspended(&self, f: impl FnOnce()) {
        let bar = BAR.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// The progress display ends (before the command's own lines).
    pub fn done(&self) {
        if let Some(bar) = BAR.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

/// What the connections and lock watches tell as it happens: the
/// server's warnings always, its other notices in the verbose log, and
/// patches starting and lock waits as progress.
fn background(event: Background<'_>) {
    let ui = get();
    let fleet = ui.fleet.load(Ordering::Relaxed);
    let of = |target: &str| {
        if fleet && !target.is_empty() {
            format!("{target}: ")
        } else {
            String::new()
        }
    };
    match event {
        Background::Notice {
            target,
            severity,
            warning,
            message,
            detail,
            hint,
        } => {
            let mut line = format!("{}{severity}: {message}", of(target));
            for (label, text) in [("detail", detail), ("hint", hint)] {
                if let Some(text) = text {
                    line.push_str(&format!("\n  {label}: {text}"));
                }
            }
            if warning {
                ui.eprint(&format!("warning: the server says: {line}"));
            } else {
                ui.log(&line);
            }
        }
        Background::PatchStarted { target, file_name } => {
            ui.progress(&format!("{}applying {file_name}", of(target)));
        }
        Background::LockWait {
            target,
            waited,
            blocked_by,
        } => ui.progress(&format!(
            "{}waiting {} s for a lock held by {blocked_by}",
            of(target),
            waited.as_secs()
        )),
    }
}

static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// The one spinner, started on first use.
fn spinner() -> ProgressBar {
    let mut bar = BAR.lock().unwrap_or_else(|e| e.into_inner());
    bar.get_or_insert_with(|| {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>3} {wide_msg}")
                .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    })
    .clone()
}

/// `YYYY-MM-DD HH:MM:SS.mmm` UTC.
fn timestamp(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(timestamp(Duration::ZERO), "1970-01-01 00:00:00.000");
        // 2024-02-29 12:34:56.789 UTC, a leap day.
        assert_eq!(
            timestamp(Duration::from_millis(1_709_210_096_789)),
            "2024-02-29 12:34:56.789"
        );
    }

    #[test]
    fn colour_marks_only_the_prefix() {
        let ui = Ui {
            color: true,
            ..Ui::default()
        };
        assert_eq!(
            ui.paint("warning: x"),
            "\x1b[1;33mwarning:\x1b[0m x".to_string()
        );
        assert_eq!(ui.paint("deployed a"), "deployed a");
    }
}
