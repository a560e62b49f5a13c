//! Command line: parse, run the pipeline, print, and choose the exit code.
//!
//! The only place that maps outcomes to process exit codes (through
//! [`crate::policy`]). Usage errors exit 2 (FAILURE) in the original mapping
//! and 3 (UNKNOWN) under `--exit-codes nagios`, as plugin guidelines ask.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::attach::{DetailOptions, SampleOptions, Sampler};
use crate::classify::{Profile, profiles};
use crate::inspect::{InspectOptions, Source, TargetSpec, inspect};
use crate::policy::{CheckPolicy, ExitCodes, OnTimeout, Thresholds, evaluate};
use crate::redact::Redactor;
use crate::render::text::{CheckText, Layout};
use crate::target::Target;
use crate::threshold::Range;

/// Tell what every thread of a running Python server is doing, from outside the process.
#[derive(Debug, Parser)]
#[command(name = "zhw", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// zhw's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check worker threads and answer with a status line and exit code (Nagios/NRPE).
    Check(CheckArgs),
    /// Print every thread with its role, state and stack (DeadlockDebugger view).
    Dump(DumpArgs),
    /// Watch targets continuously: dashboard, status, JSON and metrics over HTTP; log long requests.
    Serve(ServeArgs),
    /// Start the bundled demo server, hold two requests busy, and check it.
    Demo(DemoArgs),
    /// Write one raw snapshot of a process as JSON (for bug reports and test fixtures).
    #[command(hide = true)]
    Record(RecordArgs),
    /// Print the man page or a shell completion script (used by packaging).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// `zhw generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What to print.
    #[arg(value_enum)]
    pub what: Generated,
}

/// Files generated from the clap definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generated {
    /// The zhw(1) man page (roff).
    Man,
    /// bash completion script.
    Bash,
    /// zsh completion script.
    Zsh,
    /// fish completion script.
    Fish,
}

/// Options shared by every command that reads targets.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// PIDs or pidfiles (e.g. var/client1.pid) of the server processes.
    #[arg(value_name = "TARGET", required = true)]
    pub targets: Vec<OsString>,
    /// Answer within this many seconds, whatever happens; `:STATE` (OK, WARNING,
    /// CRITICAL, UNKNOWN) sets the status of a target that did not answer in time.
    #[arg(short = 't', long, default_value = "10", value_name = "SECONDS[:STATE]", value_parser = parse_timeout)]
    pub timeout: TimeoutArg,
    #[command(flatten)]
    pub reading: ReadingArgs,
    /// Treat TARGETs as recorded snapshot files (from `zhw record`) instead of processes.
    #[arg(long, hide = true)]
    pub replay: bool,
    /// Test hook: wait this long before attaching (to exercise the timeout path).
    #[arg(long, hide = true, default_value_t = 0, value_name = "MS")]
    pub inject_delay_ms: u64,
}

/// How stacks are read and classified (check, dump and serve).
#[derive(Debug, Args)]
pub struct ReadingArgs {
    /// Pause the whole process while reading (py-spy's default; consistent but stalls the target).
    #[arg(long)]
    pub blocking: bool,
    /// Use this server profile instead of detecting one: zserver, waitress, cheroot,
    /// gunicorn, celery, threadpool, generic, or one from the profiles file.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Also use the server profiles in this TOML file (default: /etc/zhw/profiles.toml if present).
    #[arg(long, value_name = "FILE")]
    pub profiles: Option<PathBuf>,
    /// Do not read the request each busy worker serves (method, path, query, host,
    /// client) from the target's memory.
    #[arg(long)]
    pub no_requests: bool,
    /// Show the local variables of each busy worker's frames (bounded reprs;
    /// values of secret-looking names are shown as ***).
    #[arg(long)]
    pub locals: bool,
    /// Also redact query parameters, dict keys and locals whose name contains NAME
    /// (case-insensitive), on top of the built-in list (password, token, key, …).
    #[arg(long = "redact", value_name = "NAME")]
    pub redact: Vec<String>,
}

/// The status rules (check and serve).
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// WARNING when the busy-worker count alerts RANGE (Nagios ranges: N = above N,
    /// N: = below N, ~:N, N:M, @N:M = inside); default: from 4 busy.
    #[arg(
        short = 'w',
        long = "warning",
        value_name = "RANGE",
        allow_hyphen_values = true
    )]
    pub warning: Option<Range>,
    /// CRITICAL when the busy-worker count alerts RANGE; default: when no worker is idle.
    #[arg(
        short = 'c',
        long = "critical",
        value_name = "RANGE",
        allow_hyphen_values = true
    )]
    pub critical: Option<Range>,
    /// Exit codes: the original check's, or the Nagios plugin standard.
    #[arg(long, value_enum, default_value_t = ExitCodes::Original)]
    pub exit_codes: ExitCodes,
    /// CRITICAL when a target has fewer than N worker threads (workers died).
    #[arg(long, value_name = "N")]
    pub expect_workers: Option<u64>,
}

impl PolicyArgs {
    fn policy(&self, on_timeout: OnTimeout, long_request_seconds: Option<f64>) -> CheckPolicy {
        CheckPolicy {
            thresholds: Thresholds {
                warning: self.warning.clone(),
                critical: self.critical.clone(),
            },
            codes: self.exit_codes,
            on_timeout,
            expect_workers: self.expect_workers,
            long_request_seconds,
        }
    }
}

/// `zhw serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// PIDs or pidfiles of the server processes (pidfiles are re-read every round).
    #[arg(value_name = "TARGET")]
    pub targets: Vec<OsString>,
    /// Watch the main process of this systemd unit (repeatable).
    #[arg(long = "unit", value_name = "NAME")]
    pub units: Vec<String>,
    /// Watch every process whose command line matches this regular expression (repeatable).
    #[arg(long = "match", value_name = "REGEX")]
    pub matches: Vec<String>,
    /// Seconds between the starts of two samples.
    #[arg(long, default_value = "1", value_name = "SECONDS", env = "ZHW_INTERVAL", value_parser = parse_interval)]
    pub interval: f64,
    /// Log a worker busy on one request for this many seconds (then again every
    /// as many seconds), and raise its target to WARNING.
    #[arg(long, default_value = "30", value_name = "SECONDS", env = "ZHW_LONG_REQUEST", value_parser = parse_interval)]
    pub long_request: f64,
    /// Address and port for HTTP; loopback only by default (see docs/how-to/systemd.md before exposing it).
    #[arg(
        long,
        default_value = "127.0.0.1:9713",
        value_name = "ADDR:PORT",
        env = "ZHW_LISTEN"
    )]
    pub listen: std::net::SocketAddr,
    #[command(flatten)]
    pub reading: ReadingArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// `--interval` of `zhw check`: milliseconds, or a number with `ms` or `s`.
fn parse_milliseconds(text: &str) -> Result<Duration, String> {
    seconds_with_unit(text, 0.001)
        .filter(|s| (0.001..=60.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| duration_error(text, "500, 500ms, 2s", "1ms and 60s"))
}

/// `zhw serve`'s durations: seconds, or a number with `ms` or `s` (`500ms`).
fn parse_interval(text: &str) -> Result<f64, String> {
    seconds_with_unit(text, 1.0)
        .filter(|s| (0.01..=86_400.0).contains(s))
        .ok_or_else(|| duration_error(text, "1, 0.5, 500ms, 2s", "0.01 and 86400 seconds"))
}

/// A duration in seconds from `500ms`, `2s`, or a bare number counted in
/// units of `bare_scale` seconds; `None` if it is not a finite number.
fn seconds_with_unit(text: &str, bare_scale: f64) -> Option<f64> {
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, bare_scale)
    };
    let seconds = number.trim().parse::<f64>().ok()? * scale;
    seconds.is_finite().then_some(seconds)
}

/// Why a duration was refused: not a number at all, or out of range.
fn duration_error(text: &str, examples: &str, range: &str) -> String {
    if seconds_with_unit(text, 1.0).is_none() {
        format!("{text:?} is not a duration (e.g. {examples})")
    } else {
        format!("must be between {range}")
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// Human and Nagios readable text.
    #[default]
    Text,
    /// One JSON document (docs/reference/json.md).
    Json,
    /// One self-contained HTML page (no script, nothing loaded), e.g. to save or mail.
    Html,
}

/// `zhw check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Order of the text output.
    #[arg(long, value_enum, default_value_t = Layout::Nagios)]
    pub layout: Layout,
    /// Show details (system, processes, busy stacks) even when OK.
    #[arg(short, long)]
    pub verbose: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Name the targets in reports and perfdata labels, in the order the targets are given.
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// A further target whose absence (not running) is reported but does not change the status.
    #[arg(long = "optional", value_name = "TARGET")]
    pub optional: Vec<OsString>,
    /// Remember each target's worker pool here between runs; a pool that shrank is CRITICAL.
    #[arg(long, value_name = "PATH")]
    pub state_file: Option<PathBuf>,
    /// Take N samples, --interval apart, to tell how long each busy worker has been
    /// on its request (a lower bound) and flag workers stuck on one line.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub samples: u32,
    /// Time between samples: a number of milliseconds, or with a unit (500ms, 2s).
    #[arg(long, default_value = "500ms", value_name = "MS", value_parser = parse_milliseconds)]
    pub interval: Duration,
}

/// `zhw dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `zhw demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Python interpreter to run the demo server with.
    #[arg(long, default_value = "python3", value_name = "PATH")]
    pub python: String,
    /// Requests to hold busy (of 4 workers).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=4))]
    pub busy: u8,
}

/// `zhw record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// PID of the process.
    pub pid: u32,
    /// Pause the whole process while reading.
    #[arg(long)]
    pub blocking: bool,
}

/// `-t SECONDS[:STATE]`, as monitoring-plugins write it (`-t 8:UNKNOWN`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeoutArg {
    /// The deadline.
    pub seconds: f64,
    /// The status of a target that misses it.
    pub on_timeout: OnTimeout,
}

fn parse_timeout(text: &str) -> Result<TimeoutArg, String> {
    let (number, state) = match text.split_once(':') {
        Some((number, state)) => (number, Some(state)),
        None => (text, None),
    };
    let seconds: f64 = number
        .parse()
        .map_err(|_| format!("{number:?} is not a number of seconds"))?;
    if !(seconds.is_finite() && (0.01..=3600.0).contains(&seconds)) {
        return Err("the timeout must be between 0.01 and 3600 seconds".into());
    }
    let on_timeout = match state.map(str::to_ascii_uppercase).as_deref() {
        None | Some("UNKNOWN") | Some("FAILURE") => OnTimeout::Unknown,
        Some("OK") => OnTimeout::Ok,
        Some("WARNING") => OnTimeout::Warning,
        Some("CRITICAL") => OnTimeout::Critical,
        Some(other) => {
            return Err(format!(
                "{other:?} is not a status (OK, WARNING, CRITICAL or UNKNOWN)"
            ));
        }
    };
    Ok(TimeoutArg {
        seconds,
        on_timeout,
    })
}

/// Resolve `--profile NAME` among the user's and the built-in profiles.
fn resolve_profile(name: &str, user: &[&'static Profile]) -> Result<&'static Profile, String> {
    user.iter()
        .copied()
        .find(|p| p.name == name)
        .or_else(|| profiles::by_name(name))
        .ok_or_else(|| {
            let known: Vec<&str> = user
                .iter()
                .map(|p| p.name)
                .chain(profiles::BUILTIN.iter().map(|p| p.name))
                .collect();
            format!("unknown profile {name:?}; known: {}", known.join(", "))
        })
}

/// Entry point used by `main`: parse the real command line and run.
pub fn main() -> ExitCode {
    // args_os: a non-UTF-8 pidfile name is a valid path, not a reason to panic.
    let args: Vec<OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => run(cli),
        Err(err) => {
            let _ = err.print();
            if !err.use_stderr() {
                return ExitCode::SUCCESS; // --help, --version
            }
            let code = usage_error_code(&args);
            usage_status_line(code, &err.to_string());
            ExitCode::from(code)
        }
    }
}

/// Monitoring systems show a plugin's first stdout line: give them one for
/// usage errors too (clap's full message stays on stderr).
fn usage_status_line(code: u8, message: &str) {
    let label = if code == 3 { "UNKNOWN" } else { "FAILURE" };
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("").trim_start_matches("error: ");
    // "the following required arguments were not provided:" names them on
    // the next line: a status line must say which.
    let first = match (first.ends_with(':'), lines.next()) {
        (true, Some(next)) => format!("{first} {next}"),
        _ => first.to_string(),
    };
    let first = first.as_str();
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "{label} - invalid arguments: {}",
        crate::sanitize::for_terminal(first)
    );
}

/// The hidden test hooks read arbitrary files or stall on purpose; they
/// exist only in debug builds (what `cargo test` runs), never in a binary
/// that an operator may grant root or CAP_SYS_PTRACE.
fn reject_test_hooks_in_release(read: &ReadArgs) -> Result<(), String> {
    if cfg!(debug_assertions) || (!read.replay && read.inject_delay_ms == 0) {
        Ok(())
    } else {
        Err("--replay and --inject-delay-ms are test hooks, available in debug builds only".into())
    }
}

/// FAILURE (2) normally; UNKNOWN (3) when the user asked for Nagios codes.
fn usage_error_code(args: &[OsString]) -> u8 {
    // The sidecar is no plugin: its invalid arguments are always 2.
    if args.get(1).is_some_and(|word| word == "serve") {
        return 2;
    }
    let nagios = args
        .windows(2)
        .any(|w| w[0] == "--exit-codes" && w[1] == "nagios")
        || args.iter().any(|a| a == "--exit-codes=nagios");
    if nagios { 3 } else { 2 }
}

/// Run a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> ExitCode {
    let hooks = match &cli.command {
        Command::Check(args) => reject_test_hooks_in_release(&args.read).map_err(|e| {
            (
                e,
                if args.policy.exit_codes == ExitCodes::Nagios {
                    3
                } else {
                    2
                },
            )
        }),
        Command::Dump(args) => reject_test_hooks_in_release(&args.read).map_err(|e| (e, 2)),
        _ => Ok(()),
    };
    if let Err((message, code)) = hooks {
        eprintln!("error: {message}");
        usage_status_line(code, &message);
        return ExitCode::from(code);
    }
    let result = match cli.command {
        Command::Check(args) => check(&args),
        Command::Dump(args) => dump(&args),
        Command::Serve(args) => serve(&args),
        Command::Demo(args) => crate::demo::run(&args.python, args.busy),
        Command::Record(args) => record(&args),
        Command::Generate(args) => generate(args.what),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("zhw: {err}");
            ExitCode::from(2)
        }
    }
}

/// The targets as sources, each distinct word once (naming a target twice
/// must not count its workers twice).
fn sources(read: &ReadArgs) -> Vec<TargetSpec> {
    let mut seen = std::collections::HashSet::new();
    read.targets
        .iter()
        .filter(|word| seen.insert(word.as_os_str()))
        .map(|word| source(read, word).into())
        .collect()
}

fn source(read: &ReadArgs, word: &OsString) -> Source {
    if read.replay {
        Source::Replay(PathBuf::from(word))
    } else {
        Source::Live(Target::parse(word))
    }
}

/// The check's targets: the positional ones (named by `--name` in order),
/// then the `--optional` ones.
fn check_specs(args: &CheckArgs) -> Result<Vec<TargetSpec>, String> {
    let mut specs = sources(&args.read);
    if args.names.len() > specs.len() {
        return Err(format!(
            "{} --name given for {} target(s)",
            args.names.len(),
            specs.len()
        ));
    }
    for (spec, name) in specs.iter_mut().zip(&args.names) {
        spec.name = Some(name.clone());
    }
    for word in &args.optional {
        if !args.read.targets.contains(word) {
            specs.push(TargetSpec {
                source: source(&args.read, word),
                name: None,
                optional: true,
            });
        }
    }
    Ok(specs)
}

/// Output that could not be written because the reader went away (`| head`)
/// does not change the answer: the exit code still carries the status.
fn ignore_broken_pipe(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Options for reading targets; loads the profiles file, so it can fail
/// (a malformed file or an unknown `--profile` is a usage error).
fn inspect_options(read: &ReadArgs) -> Result<InspectOptions, String> {
    let mut options = reading_options(&read.reading)?;
    options.timeout = Duration::from_secs_f64(read.timeout.seconds);
    options.inject_delay = Duration::from_millis(read.inject_delay_ms);
    Ok(options)
}

/// Options from `--blocking`, `--profile` and `--profiles`.
fn reading_options(reading: &ReadingArgs) -> Result<InspectOptions, String> {
    let user_profiles: &'static [&'static Profile] =
        crate::classify::user::load(reading.profiles.as_deref())?.leak();
    let profile = match &reading.profile {
        Some(name) => Some(resolve_profile(name, user_profiles)?),
        None => None,
    };
    Ok(InspectOptions {
        sample: SampleOptions {
            blocking: reading.blocking,
        },
        timeout: Duration::from_secs(10),
        profile,
        user_profiles,
        inject_delay: Duration::ZERO,
        details: DetailOptions {
            requests: !reading.no_requests,
            locals: reading.locals,
            redactor: Box::leak(Box::new(Redactor::with_extra(&reading.redact))),
        },
    })
}

/// `zhw serve`: validate, then run until stopped. Exit 0 after SIGTERM or
/// SIGINT, 1 when it cannot start, 2 for invalid arguments.
fn serve(args: &ServeArgs) -> io::Result<u8> {
    let config = match serve_config(args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("zhw serve: error: {message}");
            return Ok(2);
        }
    };
    match crate::serve::run(config) {
        Ok(()) => Ok(0),
        Err(err) => {
            crate::serve::journal::log(crate::serve::journal::Level::Error, &err.to_string());
            Ok(1)
        }
    }
}

fn serve_config(args: &ServeArgs) -> Result<crate::serve::ServeConfig, String> {
    use crate::serve::scheduler::Watched;
    let mut watched = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for word in args.targets.iter().filter(|w| seen.insert(w.as_os_str())) {
        watched.push(Watched::Named(Target::parse(word)));
    }
    for unit in &args.units {
        if unit.is_empty() || unit.starts_with('-') {
            return Err(format!("--unit {unit:?} is not a unit name"));
        }
        watched.push(Watched::Named(Target::Unit(unit.clone())));
    }
    for pattern in &args.matches {
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|err| format!("--match {pattern:?}: {err}"))?;
        watched.push(Watched::Matching(regex));
    }
    if watched.is_empty() {
        return Err("nothing to watch: give a TARGET, --unit NAME or --match REGEX".into());
    }
    Ok(crate::serve::ServeConfig {
        watched,
        interval: Duration::from_secs_f64(args.interval),
        listen: args.listen,
        policy: args
            .policy
            .policy(OnTimeout::Unknown, Some(args.long_request)),
        options: reading_options(&args.reading)?,
        history: Duration::from_secs(3600),
    })
}

/// Report a usage error found after parsing (stderr, and a status line).
fn late_usage_error(message: &str, codes: ExitCodes) -> u8 {
    let code = if codes == ExitCodes::Nagios { 3 } else { 2 };
    eprintln!("error: {message}");
    usage_status_line(code, message);
    code
}

fn check(args: &CheckArgs) -> io::Result<u8> {
    let ready = check_specs(args).and_then(|specs| Ok((specs, inspect_options(&args.read)?)));
    let (specs, options) = match ready {
        Ok(ready) => ready,
        Err(message) => return Ok(late_usage_error(&message, args.policy.exit_codes)),
    };
    let mut report = if args.samples > 1 {
        crate::inspect::inspect_series(&specs, options, args.samples, args.interval)
    } else {
        inspect(&specs, options)
    };
    if let Some(path) = &args.state_file {
        let remembered = crate::state::remember(path, &report);
        for (target, workers) in report.targets.iter_mut().zip(remembered.workers) {
            // A pool that shrank during this check's own samples counts too.
            target.remembered_workers = target.remembered_workers.max(workers);
        }
        report.warnings.extend(remembered.warnings);
    }
    let policy = args.policy.policy(args.read.timeout.on_timeout, None);
    let eval = evaluate(&report, &policy);
    let mut out = io::BufWriter::new(io::stdout().lock());
    ignore_broken_pipe(match args.format {
        Format::Text => crate::render::text::check(
            &mut out,
            &report,
            &eval,
            CheckText {
                layout: args.layout,
                verbose: args.verbose,
            },
        )
        .and_then(|()| out.flush()),
        Format::Json => {
            crate::render::json::write(&mut out, &report, &eval, eval.verdict.exit_code)
                .and_then(|()| out.flush())
        }
        Format::Html => html_page(&mut out, &report, &eval, "zhw check"),
    })?;
    Ok(eval.verdict.exit_code)
}

fn dump(args: &DumpArgs) -> io::Result<u8> {
    let options = match inspect_options(&args.read) {
        Ok(options) => options,
        Err(message) => return Ok(late_usage_error(&message, ExitCodes::Original)),
    };
    let report = inspect(&sources(&args.read), options);
    let eval = evaluate(&report, &CheckPolicy::default());
    // A dump succeeds when every target could be read.
    let unreadable = report.targets.iter().any(|t| t.error.is_some());
    let code = if unreadable { 2 } else { 0 };
    let mut out = io::BufWriter::new(io::stdout().lock());
    ignore_broken_pipe(match args.format {
        Format::Text => crate::render::text::dump(&mut out, &report).and_then(|()| out.flush()),
        Format::Json => {
            crate::render::json::write(&mut out, &report, &eval, code).and_then(|()| out.flush())
        }
        Format::Html => html_page(&mut out, &report, &eval, "zhw dump"),
    })?;
    Ok(code)
}

/// The standalone report page (no refresh, no history) for `--format html`.
fn html_page<W: Write>(
    out: &mut W,
    report: &crate::report::Report,
    eval: &crate::policy::Evaluation,
    title: &str,
) -> io::Result<()> {
    let options = crate::render::html::PageOptions {
        refresh_seconds: None,
        history: &[],
        title,
    };
    crate::render::html::page(out, report, eval, &options).and_then(|()| out.flush())
}

fn generate(what: Generated) -> io::Result<u8> {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut out = io::BufWriter::new(io::stdout().lock());
    let shell = match what {
        Generated::Man => {
            let mut page = Vec::new();
            man_page(&command, &mut page)?;
            return ignore_broken_pipe(out.write_all(&page).and_then(|()| out.flush())).map(|()| 0);
        }
        Generated::Bash => clap_complete::Shell::Bash,
        Generated::Zsh => clap_complete::Shell::Zsh,
        Generated::Fish => clap_complete::Shell::Fish,
    };
    // Into memory first: clap_complete panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "zhw", &mut script);
    ignore_broken_pipe(out.write_all(&script).and_then(|()| out.flush())).map(|()| 0)
}

/// One man page for zhw(1) with a section per subcommand (rather than
/// clap_mangen's default, which points at zhw-check(1) pages that a single
/// binary does not ship), and the exit-status contract.
fn man_page(command: &clap::Command, page: &mut Vec<u8>) -> io::Result<()> {
    let top = clap_mangen::Man::new(command.clone());
    top.render_title(page)?;
    top.render_name_section(page)?;
    top.render_synopsis_section(page)?;
    top.render_description_section(page)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("zhw {}", sub.get_name());
        let sub = sub.clone().name(name.clone()).bin_name(name.clone());
        writeln!(page, ".SH \"{}\"", name.to_uppercase())?;
        if let Some(about) = sub.get_about() {
            writeln!(page, "{about}")?;
        }
        let man = clap_mangen::Man::new(sub);
        let mut parts = Vec::new();
        man.render_synopsis_section(&mut parts)?;
        man.render_options_section(&mut parts)?;
        let parts = String::from_utf8_lossy(&parts)
            .replace(".SH SYNOPSIS", ".SS Synopsis")
            .replace(".SH OPTIONS", ".SS Options");
        page.extend_from_slice(parts.as_bytes());
    }
    page.extend_from_slice(
        concat!(
            ".SH \"EXIT STATUS\"\n",
            "zhw check exits with its status, by default as ZopeHealthWatcher did: ",
            "0 OK, 1 WARNING, 2 FAILURE (a target could not be inspected, or a usage error), ",
            "3 CRITICAL (no free worker, or workers died). With --exit-codes nagios: ",
            "0 OK, 1 WARNING, 2 CRITICAL (including a target that is not running), ",
            "3 UNKNOWN. zhw dump exits 0 when every target was read, else 2.\n",
            ".SH \"SEE ALSO\"\n",
            "/usr/share/doc/zhw/ (docs/reference/exit-codes.md, json.md, cli.md)\n",
        )
        .as_bytes(),
    );
    top.render_version_section(page)?;
    Ok(())
}

fn record(args: &RecordArgs) -> io::Result<u8> {
    // Requests too (redacted as always), so that a recording replays
    // the way a live check shows it.
    let snapshot = Sampler::attach(
        args.pid,
        SampleOptions {
            blocking: args.blocking,
        },
    )
    .and_then(|mut sampler| {
        let mut snapshot = sampler.sample()?;
        let classes = crate::classify::classify(&snapshot, None, &[]);
        crate::inspect::read_details(
            &mut sampler,
            &mut snapshot,
            &classes,
            DetailOptions::default(),
        );
        Ok(snapshot)
    });
    match snapshot {
        Ok(snapshot) => {
            let mut out = io::BufWriter::new(io::stdout().lock());
            serde_json::to_writer_pretty(&mut out, &snapshot)
                .map_err(crate::render::json::io_error)?;
            writeln!(out)?;
            Ok(0)
        }
        Err(err) => {
            eprintln!("zhw: {err}");
            Ok(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_error_codes_follow_the_mapping() {
        let words = |s: &str| s.split(' ').map(OsString::from).collect::<Vec<_>>();
        assert_eq!(usage_error_code(&words("zhw check --bogus")), 2);
        assert_eq!(
            usage_error_code(&words("zhw check --exit-codes nagios --bogus")),
            3
        );
        assert_eq!(
            usage_error_code(&words("zhw check --exit-codes=nagios -w x")),
            3
        );
    }

    #[test]
    fn check_intervals_take_units() {
        assert_eq!(parse_milliseconds("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_milliseconds("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_milliseconds("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_milliseconds("0").is_err());
        assert!(parse_milliseconds("61s").is_err());
        assert!(parse_milliseconds("soon").is_err());
        assert_eq!(parse_interval("500ms"), Ok(0.5));
        assert_eq!(parse_interval("2s"), Ok(2.0));
        assert_eq!(parse_interval("1.5"), Ok(1.5));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("later").is_err());
    }

    #[test]
    fn timeouts_are_validated() {
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("nan").is_err());
        assert!(parse_timeout("1e-9").is_err());
        assert!(parse_timeout("inf").is_err());
        assert!(parse_timeout("abc").is_err());
        assert!(parse_timeout("8:MAYBE").is_err());
        assert_eq!(parse_timeout("2.5").map(|t| t.seconds), Ok(2.5));
        assert_eq!(
            parse_timeout("8:critical").map(|t| t.on_timeout),
            Ok(OnTimeout::Critical)
        );
        assert_eq!(
            parse_timeout("8:UNKNOWN").map(|t| t.on_timeout),
            Ok(OnTimeout::Unknown)
        );
        assert_eq!(
            parse_timeout("8").map(|t| t.on_timeout),
            Ok(OnTimeout::Unknown)
        );
    }
}
