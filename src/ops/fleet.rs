//! Running one command against many databases: bounded parallelism, each
//! target exactly as a single-target run (its own connection, lock and
//! transaction), failures that do not stop the others unless asked, and
//! canaries that go first.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How a fleet run proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetOptions {
    /// Targets run at once (at least 1).
    pub jobs: usize,
    /// Start no further target once one failed.
    pub fail_fast: bool,
    /// Run this many targets first; run the rest only when all of them
    /// succeeded.
    pub canary: usize,
}

impl FleetOptions {
    /// Two targets per core: the work is mostly waiting for servers.
    pub fn default_jobs() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get() * 2)
            .unwrap_or(4)
            .max(2)
    }
}

impl Default for FleetOptions {
    fn default() -> FleetOptions {
        FleetOptions {
            jobs: FleetOptions::default_jobs(),
            fail_fast: false,
            canary: 0,
        }
    }
}

/// Why a target did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// A canary failed.
    Canary,
    /// Another target failed and `fail_fast` was asked.
    FailFast,
    /// The process was interrupted first.
    Interrupted,
}

/// What became of one target.
#[derive(Debug)]
pub enum Outcome<T, E> {
    Done(T),
    Failed(E),
    Skipped(Skipped),
}

/// One target's run.
#[derive(Debug)]
pub struct TargetRun<T, E> {
    /// The target's index in the list given.
    pub index: usize,
    pub outcome: Outcome<T, E>,
    pub took: Duration,
}

/// Runs `work` for targets `0..count`, at most `opts.jobs` at once, the
/// first `opts.canary` of them before the others. `done` hears each run as
/// it ends (from the worker thread), so output need not wait for the
/// slowest target. Returns every target's run, in target order.
pub fn run<T: Send, E: Send>(
    count: usize,
    opts: &FleetOptions,
    work: impl Fn(usize) -> Result<T, E> + Sync,
    done: impl Fn(&TargetRun<T, E>) + Sync,
) -> Vec<TargetRun<T, E>> {
    let failed = AtomicBool::new(false);
    let runs: Mutex<Vec<TargetRun<T, E>>> = Mutex::new(Vec::with_capacity(count));
    let canary = opts.canary.min(count);
    let wave = |range: std::ops::Range<usize>, skip_all: Option<Skipped>| {
        let next = AtomicUsize::new(range.start);
        let workers = opts.jobs.max(1).min(range.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        if index >= range.end {
                            break;
                        }
                        let skipped = skip_all
                            .or_else(|| {
                                crate::db::connect::interrupted().then_some(Skipped::Interrupted)
                            })
                            .or_else(|| {
                                (opts.fail_fast && failed.load(Ordering::SeqCst))
                                    .then_some(Skipped::FailFast)
                            });
                        let started = Instant::now();
                        let outcome = match skipped {
                            Some(why) => Outcome::Skipped(why),
                            None => match work(index) {
                                Ok(t) => Outcome::Done(t),
                                Err(e) => {
                                    failed.store(true, Ordering::SeqCst);
                                    Outcome::Failed(e)
                                }
                            },
                        };
                        let run = TargetRun {
                            index,
                            outcome,
                            took: started.elapsed(),
                        };
                        done(&run);
                        runs.lock().unwrap_or_else(|e| e.into_inner()).push(run);
                    }
                });
            }
        });
    };
    wave(0..canary, None);
    let canary_failed = failed.load(Ordering::SeqCst);
    wave(canary..count, canary_failed.then_some(Skipped::Canary));
    let mut runs = runs.into_inner().unwrap_or_else(|e| e.into_inner());
    runs.sort_by_key(|r| r.index);
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(runs: &[TargetRun<usize, usize>]) -> Vec<String> {
        runs.iter()
            .map(|r| match &r.outcome {
                Outcome::Done(v) => format!("ok{v}"),
                Outcome::Failed(v) => format!("err{v}"),
                Outcome::Skipped(s) => format!("{s:?}"),
            })
            .collect()
    }

    #[test]
    fn every_target_runs_and_one_failure_stops_none() {
        let opts = FleetOptions {
            jobs: 3,
            fail_fast: false,
            canary: 0,
        };
        let runs = run(6, &opts, |i| if i == 2 { Err(i) } else { Ok(i) }, |_| {});
        assert_eq!(kinds(&runs), ["ok0", "ok1", "err2", "ok3", "ok4", "ok5"]);
    }

    #[test]
    fn a_failed_canary_skips_the_rest() {
        let opts = FleetOptions {
            jobs: 4,
            fail_fast: false,
            canary: 2,
        };
        let runs = run(5, &opts, |i| if i == 1 { Err(i) } else { Ok(i) }, |_| {});
        assert_eq!(kinds(&runs), ["ok0", "err1", "Canary", "Canary", "Canary"]);
    }

    #[test]
    fn fail_fast_starts_nothing_after_a_failure() {
        let opts = FleetOptions {
            jobs: 1,
            fail_fast: true,
            canary: 0,
        };
        let runs = run(4, &opts, |i| if i == 1 { Err(i) } else { Ok(i) }, |_| {});
        assert_eq!(kinds(&runs), ["ok0", "err1", "FailFast", "FailFast"]);
    }

    #[test]
    fn no_more_than_jobs_run_at_once() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let opts = FleetOptions {
            jobs: 3,
            fail_fast: false,
            canary: 0,
        };
        run(
            12,
            &opts,
            |_| -> Result<(), ()> {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            },
            |_| {},
        );
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }
}
