//! `zhw serve`: the long-running sidecar. A sampling thread
//! ([`scheduler`]) reads every target each interval and publishes the
//! result; an HTTP thread ([`http`]) serves the last published result as a
//! dashboard, status, JSON and metrics; the main thread waits for SIGTERM or
//! SIGINT and shuts both down. The two sides share nothing but a watch
//! channel holding an `Arc`, so neither can stall the other.
//!
//! Under systemd (`Type=notify`) zhw reports READY after its first round,
//! a STATUS line after each, and pings the watchdog from the sampling loop,
//! so a wedged sampler gets the service restarted (examples/systemd/zhw.service).

pub mod http;
pub mod journal;
pub mod scheduler;

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use tokio::sync::{Notify, watch};

use crate::inspect::InspectOptions;
use crate::policy::CheckPolicy;
use journal::{Level, Notifier};
use scheduler::{Published, Scheduler, Watched};

/// Everything `zhw serve` was asked to do, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The targets, re-resolved every round.
    pub watched: Vec<Watched>,
    /// Time between the starts of two rounds.
    pub interval: Duration,
    /// Where HTTP listens.
    pub listen: SocketAddr,
    /// Thresholds, exit-code mapping, long-request limit.
    pub policy: CheckPolicy,
    /// How to read and classify.
    pub options: InspectOptions,
    /// How much busy history the dashboard shows.
    pub history: Duration,
}

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The HTTP address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address asked for.
        address: SocketAddr,
        /// The OS's reason.
        source: std::io::Error,
    },
    /// Threads, runtime or signal set-up failed.
    #[error("cannot start: {0}")]
    Start(String),
}

/// Run until SIGTERM or SIGINT; `Ok` after a clean shutdown.
pub fn run(config: ServeConfig) -> Result<(), ServeError> {
    raise_open_file_limit();
    // Block the stop signals in every thread (the mask is inherited), so the
    // main thread alone receives them with sigwait.
    let mut stop_signals = SigSet::empty();
    stop_signals.add(Signal::SIGTERM);
    stop_signals.add(Signal::SIGINT);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&stop_signals), None)
        .map_err(|err| ServeError::Start(format!("blocking signals: {err}")))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|err| ServeError::Start(format!("HTTP runtime: {err}")))?;
    let listener = runtime
        .block_on(http::bind(config.listen))
        .map_err(|source| ServeError::Listen {
            address: config.listen,
            source,
        })?;
    let address = listener.local_addr().unwrap_or(config.listen);

    let (publish, latest) = watch::channel::<Option<Arc<Published>>>(None);
    let refresh_seconds = config.interval.as_secs().clamp(2, 60) as u32;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default();
    let site = Arc::new(http::Site::new(
        latest,
        config.policy.clone(),
        refresh_seconds,
        crate::sanitize::for_terminal(&format!("zhw serve on {host}")).into_owned(),
    ));
    let http_stop = Arc::new(Notify::new());
    let http_thread = {
        let http_stop = Arc::clone(&http_stop);
        std::thread::Builder::new()
            .name("zhw-http".into())
            .spawn(move || runtime.block_on(http::serve(listener, site, http_stop)))
            .map_err(|err| ServeError::Start(format!("HTTP thread: {err}")))?
    };

    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let notifier = Notifier::from_env();
    let sampler_thread = {
        let stop = Arc::clone(&stop);
        let scheduler = Scheduler::new(
            config.watched.clone(),
            config.options,
            config.policy.clone(),
            config.history,
        );
        std::thread::Builder::new()
            .name("zhw-sampler".into())
            .spawn(move || {
                sample_until_stopped(scheduler, config.interval, &publish, &stop, notifier)
            })
            .map_err(|err| ServeError::Start(format!("sampling thread: {err}")))?
    };
    journal::log(
        Level::Info,
        &format!(
            "serving http://{address}/ (dashboard), /status, /json, /metrics; sampling every {}s",
            config.interval.as_secs_f64()
        ),
    );

    let signal = stop_signals.wait();
    journal::log(
        Level::Info,
        &format!(
            "stopping on {}",
            signal.map(|s| s.as_str()).unwrap_or("signal")
        ),
    );
    notifier.stopping();
    let (flag, wake) = &*stop;
    if let Ok(mut stopped) = flag.lock() {
        *stopped = true;
    }
    wake.notify_all();
    http_stop.notify_one();
    let _ = sampler_thread.join();
    let _ = http_thread.join();
    Ok(())
}

/// The sampling loop: a round, publish, wait for the next tick (pinging
/// the watchdog meanwhile) or for the stop flag.
fn sample_until_stopped(
    mut scheduler: Scheduler,
    interval: Duration,
    publish: &watch::Sender<Option<Arc<Published>>>,
    stop: &(Mutex<bool>, Condvar),
    notifier: Notifier,
) {
    let (flag, wake) = stop;
    let mut first = true;
    loop {
        let started = Instant::now();
        let published = scheduler.round();
        let summary = summary(&published);
        publish.send_replace(Some(Arc::new(published)));
        if first {
            notifier.ready(&summary);
            first = false;
        } else {
            notifier.status(&summary);
        }
        notifier.watchdog();

        let next = started + interval;
        let Ok(mut stopped) = flag.lock() else {
            return;
        };
        loop {
            if *stopped {
                return;
            }
            let now = Instant::now();
            if now >= next {
                break;
            }
            let mut wait = next - now;
            if let Some(period) = notifier.watchdog {
                wait = wait.min(period);
            }
            stopped = match wake.wait_timeout(stopped, wait) {
                Ok((guard, _)) => guard,
                Err(_) => return,
            };
            notifier.watchdog();
        }
    }
}

/// The line `systemctl status` shows: the overall status and worker counts.
fn summary(published: &Published) -> String {
    let verdict = &published.evaluation.verdict;
    let (busy, workers) = published
        .report
        .targets
        .iter()
        .filter_map(|t| t.inspection.as_ref())
        .fold((0, 0), |(busy, all), i| {
            (busy + i.stats.busy_count, all + i.stats.total_threads)
        });
    let line = format!(
        "{} - {}; {busy}/{workers} workers busy in {} target(s)",
        verdict.label,
        verdict.message,
        published.report.targets.len()
    );
    crate::sanitize::for_terminal(&line).into_owned()
}

/// A thousand dashboard clients need a thousand sockets: raise the soft
/// open-file limit to the hard one (no privilege needed).
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(1 << 20), hard);
    }
}
