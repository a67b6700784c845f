//! The built-in daemon, for hosts without systemd (containers): the tokio-cron-scheduler
//! loop that calls the run it is given (`app::run_once`) on `[digest] schedule`, and the
//! signal handling that lets a run finish its sends before the process stops. When the
//! schedule fires is [`crate::cadence`]'s business; what a run does is `app`'s, which this
//! module does not import.

use crate::cadence::{missed_run, next_run, parse_cron};
use crate::config::Config;
use crate::error::{Error, Result, exit};
use crate::lock::InstanceLock;
use crate::store::Store;
use chrono::{DateTime, FixedOffset, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken as Shutdown;
use tracing::{debug, error, info, warn};

/// How long a stopping daemon waits for the run in flight to finish its sends and commit.
/// Below systemd's default `TimeoutStopSec` (90 s), so we exit before being killed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// How often the daemon checks whether the zone's UTC offset changed (see [`Ticker`]).
const OFFSET_CHECK: Duration = Duration::from_secs(30);

/// The clock a daemon hands to each run: the system clock, or one shifted to start at a
/// given instant (`--now`) and then advance in real time, so tests can pin the date the
/// sources are asked for while the schedule still ticks for real.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    offset: TimeDelta,
}

impl Clock {
    pub fn system() -> Self {
        Clock::default()
    }

    /// A clock that reads `start` now.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Clock { offset: start - Utc::now() }
    }

    pub fn now(self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

// ---------------------------------------------------------------------------------------
// Signals.

/// Cancels `shutdown` on the first SIGTERM or SIGINT, so a run stops taking new sends and
/// finishes the ones in flight; a second signal exits at once with 75 (the ledger makes an
/// interrupted run safe to repeat). Spawns a task: call it inside a tokio runtime.
pub fn cancel_on_signals(shutdown: &Shutdown) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| internal("installing the SIGTERM handler", e))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| internal("installing the SIGINT handler", e))?;
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(
            "{name} received: finishing the sends in flight, then stopping (send it again to stop at once)"
        );
        shutdown.cancel();
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        warn!("second {name}: stopping now; the next run finishes what this one left");
        std::process::exit(i32::from(exit::TEMPFAIL));
    });
    Ok(())
}

/// An error from the machinery around a run (signal handlers, the scheduler) rather than
/// from the run itself.
fn internal(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(what, e)
}

// ---------------------------------------------------------------------------------------
// The daemon.

/// Runs `run` (`app::run_once`) on `[digest] schedule` in `[digest] timezone` until `shutdown` is
/// cancelled or SIGTERM/SIGINT arrives (it installs its own handlers), then waits up to
/// [`SHUTDOWN_GRACE`] for the run in flight and returns the exit code: 0, or 75 when that
/// run had to be abandoned.
///
/// It holds the single-instance lock for its whole life, so a `run` or a second daemon is
/// refused while it lives; `app::run_once` therefore must not take the lock itself. On start
/// it runs at once when the latest scheduled run was missed ([`missed_run`]). A tick that
/// comes while a run is still going is skipped, never queued.
///
/// The returned future is not required to be `Send`: drive it with `Runtime::block_on`.
pub async fn daemon<R, F, T>(cfg: &Config, shutdown: &Shutdown, clock: Clock, run: R) -> Result<u8>
where
    R: FnMut(DateTime<Utc>) -> F,
    F: Future<Output = Result<T>>,
{
    let lock = InstanceLock::acquire(&cfg.digest.lock_file)?;
    debug!("holding the instance lock {}", lock.path().display());
    cancel_on_signals(shutdown)?;

    let schedule = cfg.digest.schedule.clone();
    // The scheduler parses the expression again itself (its API takes only text); the
    // same parser as `status` and config validation decides whether it is valid.
    if let Err(e) = parse_cron(&schedule) {
        return Err(Error::config(
            &cfg.path,
            "digest.schedule",
            format!(
                "`{schedule}` is not a cron expression with seconds ({e}); expected e.g. \"0 0 7 * * *\""
            ),
        ));
    }
    let tz = cfg.digest.timezone;
    let last_success = Store::open(&cfg.digest.database)?.last_success()?;
    let catch_up = missed_run(last_success, &schedule, tz, clock.now());

    let (tx, ticks) = mpsc::channel(1);
    let ticker = Ticker::start(&schedule, tz, tx).await.map_err(|e| match e {
        tokio_cron_scheduler::JobSchedulerError::ParseSchedule => Error::config(
            &cfg.path,
            "digest.schedule",
            format!("`{schedule}` is not a cron expression with seconds; expected e.g. \"0 0 7 * * *\""),
        ),
        e => internal("starting the scheduler", e),
    })?;
    let mut scheduler = ticker.scheduler.clone();
    let watcher = tokio::spawn(ticker.keep_in_step());

    info!(
        "daemon started: schedule `{schedule}` in {tz}; next run {}{}",
        describe(next_run(&schedule, tz, Utc::now()), tz),
        if catch_up { "; the latest scheduled run was missed, running now" } else { "" }
    );
    let plan = Plan { schedule: &schedule, tz, grace: SHUTDOWN_GRACE, clock };
    let code = serve(&plan, ticks, catch_up, shutdown, run).await;

    watcher.abort();
    if let Err(e) = scheduler.shutdown().await {
        warn!("stopping the scheduler: {e}");
    }
    info!("daemon stopped");
    drop(lock);
    Ok(code)
}

/// What [`serve`] needs besides the ticks: the schedule (for log lines), how long to wait
/// for a run on shutdown, and the clock handed to each run.
struct Plan<'a> {
    schedule: &'a str,
    tz: Tz,
    grace: Duration,
    clock: Clock,
}

/// The daemon's loop, apart from the scheduler so it can be tested with a fake run: waits
/// for a tick (or runs at once when `catch_up`), runs, skips ticks that come meanwhile, and
/// on shutdown waits up to `plan.grace` for the run in flight. Returns the exit code.
async fn serve<R, F, T>(
    plan: &Plan<'_>,
    mut ticks: mpsc::Receiver<DateTime<Utc>>,
    mut catch_up: bool,
    shutdown: &Shutdown,
    mut run: R,
) -> u8
where
    R: FnMut(DateTime<Utc>) -> F,
    F: Future<Output = Result<T>>,
{
    loop {
        if catch_up {
            catch_up = false;
        } else {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return exit::OK,
                tick = ticks.recv() => {
                    // `None`: the scheduler is gone and nothing will ever tick again.
                    let Some(at) = tick else {
                        error!("the scheduler stopped; exiting so the supervisor restarts the daemon");
                        return exit::TEMPFAIL;
                    };
                    debug!("tick at {at}");
                }
            }
        }
        if shutdown.is_cancelled() {
            return exit::OK;
        }

        let started = std::time::Instant::now();
        let running = run(plan.clock.now());
        tokio::pin!(running);
        let result = loop {
            tokio::select! {
                biased;
                result = &mut running => break result,
                () = shutdown.cancelled() => {
                    info!("waiting up to {}s for the run in flight to finish its sends", plan.grace.as_secs());
                    let Ok(result) = tokio::time::timeout(plan.grace, &mut running).await else {
                        error!(
                            "the run in flight did not finish within {}s; stopping anyway (the next run resends what it left, with the same Message-IDs)",
                            plan.grace.as_secs()
                        );
                        return exit::TEMPFAIL;
                    };
                    report(&result, started.elapsed(), None);
                    return exit::OK;
                }
                Some(at) = ticks.recv() => {
                    info!("skipping the tick at {at}: the previous run is still going");
                }
            }
        };
        // A tick that came in the same instant the run ended belongs to that run's time.
        while let Ok(at) = ticks.try_recv() {
            info!("skipping the tick at {at}: the previous run was still going");
        }
        let next = next_run(plan.schedule, plan.tz, Utc::now());
        report(&result, started.elapsed(), Some(describe(next, plan.tz)));
    }
}

/// A run logs its own summary line; the daemon adds only what it knows: how a run
/// ended when it failed outright, and when the next one is.
fn report<T>(result: &Result<T>, took: Duration, next: Option<String>) {
    let next = next.map(|n| format!("; next run {n}")).unwrap_or_default();
    match result {
        Ok(_) => info!("daemon: run done in {:.1}s{next}", took.as_secs_f64()),
        Err(e) => error!("daemon: run failed after {:.1}s: {e}{next}", took.as_secs_f64()),
    }
}

fn describe(t: Option<DateTime<Utc>>, tz: Tz) -> String {
    t.map_or_else(
        || "never (the schedule has no future time)".into(),
        |t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z").to_string(),
    )
}

/// The cron job that feeds ticks into the daemon's channel.
///
/// tokio-cron-scheduler computes a job's first tick in the real zone, but every later tick
/// in the UTC offset the zone had when the job was created (it stores a fixed
/// `time_offset_seconds`). Left alone, a daemon started in winter would fire at 08:00 all
/// summer. So the job is re-created whenever the zone's offset changes, within
/// [`OFFSET_CHECK`] of the change.
struct Ticker {
    scheduler: JobScheduler,
    job: Job,
    schedule: String,
    tz: Tz,
    offset: FixedOffset,
    tx: mpsc::Sender<DateTime<Utc>>,
}

impl Ticker {
    async fn start(
        schedule: &str,
        tz: Tz,
        tx: mpsc::Sender<DateTime<Utc>>,
    ) -> std::result::Result<Ticker, tokio_cron_scheduler::JobSchedulerError> {
        let scheduler = JobScheduler::new().await?;
        let job = Self::job(schedule, tz, &tx)?;
        scheduler.add(job.clone()).await?;
        scheduler.start().await?;
        Ok(Ticker { scheduler, job, schedule: schedule.into(), tz, offset: offset_at(tz, Utc::now()), tx })
    }

    fn job(
        schedule: &str,
        tz: Tz,
        tx: &mpsc::Sender<DateTime<Utc>>,
    ) -> std::result::Result<Job, tokio_cron_scheduler::JobSchedulerError> {
        let tx = tx.clone();
        Job::new_async_tz(schedule, tz, move |_id, _scheduler| {
            let tx = tx.clone();
            Box::pin(async move {
                // Full means a tick is already waiting to be handled: this one adds nothing.
                if tx.try_send(Utc::now()).is_err() {
                    debug!("a tick is already pending; dropping this one");
                }
            })
        })
    }

    /// Re-creates the job after each change of the zone's UTC offset, for as long as it lives.
    async fn keep_in_step(mut self) {
        let mut every = tokio::time::interval(OFFSET_CHECK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let offset = offset_at(self.tz, Utc::now());
            if offset == self.offset {
                continue;
            }
            match self.rearm().await {
                Ok(()) => {
                    info!(
                        "{} is now at UTC{offset}; schedule re-armed, next run {}",
                        self.tz,
                        describe(next_run(&self.schedule, self.tz, Utc::now()), self.tz)
                    );
                    self.offset = offset;
                }
                Err(e) => warn!("re-arming the schedule after a UTC offset change: {e}; trying again"),
            }
        }
    }

    async fn rearm(&mut self) -> std::result::Result<(), tokio_cron_scheduler::JobSchedulerError> {
        let job = Self::job(&self.schedule, self.tz, &self.tx)?;
        self.scheduler.add(job.clone()).await?;
        let old = std::mem::replace(&mut self.job, job);
        self.scheduler.remove(&old.guid()).await
    }
}

fn offset_at(tz: Tz, at: DateTime<Utc>) -> FixedOffset {
    tz.offset_from_utc_datetime(&at.naive_utc()).fix()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{Europe::Berlin, UTC};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_shifted_clock_starts_at_the_given_time_and_advances() {
        let clock = Clock::starting_at(at("2024-11-27T08:00:00Z"));
        let now = clock.now();
        assert!(now >= at("2024-11-27T08:00:00Z") && now < at("2024-11-27T08:00:05Z"), "{now}");
    }

    #[test]
    fn the_offset_watch_sees_the_berlin_change() {
        let winter = offset_at(Berlin, at("2025-03-30T00:59:59Z"));
        let summer = offset_at(Berlin, at("2025-03-30T01:00:00Z"));
        assert_eq!(winter.local_minus_utc(), 3600);
        assert_eq!(summer.local_minus_utc(), 7200);
    }

    // --- the daemon loop, with a fake run ---------------------------------------------

    fn plan(grace_ms: u64) -> Plan<'static> {
        Plan {
            schedule: "* * * * * *",
            tz: UTC,
            grace: Duration::from_millis(grace_ms),
            clock: Clock::system(),
        }
    }

    /// A run that takes `ms` milliseconds and counts how often it started and finished.
    fn slow_run(
        ms: u64,
        started: &Arc<AtomicUsize>,
        finished: &Arc<AtomicUsize>,
    ) -> impl FnMut(DateTime<Utc>) -> std::pin::Pin<Box<dyn Future<Output = Result<usize>>>> {
        let (started, finished) = (started.clone(), finished.clone());
        move |_now| {
            let (started, finished) = (started.clone(), finished.clone());
            Box::pin(async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                // What a run gives back is the caller's business: a count stands in.
                Ok(1)
            })
        }
    }

    fn counters() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)))
    }

    #[tokio::test]
    async fn a_tick_during_a_run_is_skipped_not_queued() {
        let (tx, rx) = mpsc::channel(1);
        let shutdown = Shutdown::new();
        let (started, finished) = counters();
        let run = slow_run(400, &started, &finished);
        let driver = async {
            tx.send(Utc::now()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(Utc::now()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(Utc::now()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(600)).await;
            shutdown.cancel();
        };
        let plan = plan(1000);
        let (code, ()) = tokio::join!(serve(&plan, rx, false, &shutdown, run), driver);
        assert_eq!(code, exit::OK);
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert_eq!(finished.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn shutdown_waits_for_the_run_in_flight() {
        let (_tx, rx) = mpsc::channel(1);
        let shutdown = Shutdown::new();
        let (started, finished) = counters();
        let run = slow_run(300, &started, &finished);
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            shutdown.cancel();
        };
        let plan = plan(5000);
        let (code, ()) = tokio::join!(serve(&plan, rx, true, &shutdown, run), stopper);
        assert_eq!(code, exit::OK);
        assert_eq!(finished.load(Ordering::SeqCst), 1, "the run finished before the daemon returned");
    }

    #[tokio::test]
    async fn a_run_that_outlasts_the_grace_period_is_abandoned_with_75() {
        let (_tx, rx) = mpsc::channel(1);
        let shutdown = Shutdown::new();
        let (started, finished) = counters();
        let run = slow_run(5000, &started, &finished);
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            shutdown.cancel();
        };
        let begun = std::time::Instant::now();
        let plan = plan(200);
        let (code, ()) = tokio::join!(serve(&plan, rx, true, &shutdown, run), stopper);
        assert_eq!(code, exit::TEMPFAIL);
        assert!(begun.elapsed() < Duration::from_secs(2));
        assert_eq!(finished.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_failed_run_does_not_stop_the_daemon() {
        let (tx, rx) = mpsc::channel(1);
        let shutdown = Shutdown::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let run = {
            let runs = runs.clone();
            move |_now| {
                let n = runs.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(Error::AllSourcesFailed { failed: 1, sources: vec!["huggingface".into()] })
                    } else {
                        Ok(0_usize)
                    }
                }
            }
        };
        let driver = async {
            for _ in 0..2 {
                tx.send(Utc::now()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            shutdown.cancel();
        };
        let plan = plan(1000);
        let (code, ()) = tokio::join!(serve(&plan, rx, false, &shutdown, run), driver);
        assert_eq!(code, exit::OK);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn catch_up_runs_at_once_without_waiting_for_a_tick() {
        let (_tx, rx) = mpsc::channel(1);
        let shutdown = Shutdown::new();
        let (started, finished) = counters();
        let run = slow_run(10, &started, &finished);
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            shutdown.cancel();
        };
        let plan = plan(1000);
        tokio::join!(serve(&plan, rx, true, &shutdown, run), stopper);
        assert_eq!(finished.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_ticker_fires_on_a_one_second_schedule() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut ticker = Ticker::start("* * * * * *", Berlin, tx).await.unwrap();
        let mut fired = Vec::new();
        for _ in 0..2 {
            let at = tokio::time::timeout(Duration::from_secs(4), rx.recv()).await.unwrap().unwrap();
            fired.push(at);
        }
        // Re-arming (as after an offset change) keeps it firing.
        ticker.rearm().await.unwrap();
        let at = tokio::time::timeout(Duration::from_secs(4), rx.recv()).await.unwrap().unwrap();
        fired.push(at);
        assert!(fired.windows(2).all(|w| w[0] < w[1]), "{fired:?}");
        ticker.scheduler.shutdown().await.unwrap();
    }
}
