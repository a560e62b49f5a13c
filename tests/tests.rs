//! zhw's integration tests, one binary (link once): live checks against real
//! Python servers on every interpreter present, error statuses, and
//! deterministic CLI tests on recorded snapshots.

mod support;

mod bounded_reads;
mod browser;
mod cli_replay;
mod demo;
mod errors;
mod live_celery;
mod live_cheroot;
mod live_frameworks;
mod live_gunicorn;
mod live_waitress;
mod live_zserver;
mod monitoring;
mod serve;
mod shapes;
mod thread_names;
mod user_profiles;
