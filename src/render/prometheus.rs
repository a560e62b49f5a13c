//! `/metrics` of `zhw serve`: the latest sample in the Prometheus text
//! exposition format (version 0.0.4), documented in docs/reference/metrics.md.
//!
//! A pure function of the Report, the Evaluation and the sidecar's
//! counters: metrics need no thresholds of their own, and a scrape never
//! triggers a sample. Every series carries a `target` label (the target's
//! display name: the pidfile's stem or the unit's name, stable across
//! restarts of the server it watches; `--match` targets are named `pid N`
//! since nothing else tells them apart). PIDs are not a label of their own,
//! as they would make a new series at every restart.

use std::io::{self, Write};

use crate::classify::State;
use crate::policy::{Evaluation, code_and_label};
use crate::report::Report;

/// Per-target counters kept by the sidecar across samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetCounters {
    /// Sampling rounds that included this target.
    pub samples_total: u64,
    /// Of those, the ones where it could not be read.
    pub errors_total: u64,
}

/// Write every metric. `counters` is in the report's target order.
pub fn write<W: Write>(
    out: &mut W,
    report: &Report,
    evaluation: &Evaluation,
    counters: &[TargetCounters],
) -> io::Result<()> {
    let targets = &report.targets;
    let gauge = |out: &mut W, name: &str, help: &str| -> io::Result<()> {
        writeln!(out, "# HELP {name} {help}")?;
        writeln!(out, "# TYPE {name} gauge")
    };

    gauge(
        out,
        "zhw_target_up",
        "1 when the target's last sample could be read, else 0.",
    )?;
    for target in targets {
        let up = u8::from(target.inspection.is_some());
        writeln!(out, "zhw_target_up{{{}}} {up}", labels(&target.name, &[]))?;
    }

    gauge(
        out,
        "zhw_target_status_code",
        "The check's exit code for the target (0 OK, 1 WARNING, then FAILURE/CRITICAL per --exit-codes).",
    )?;
    for (target, verdict) in targets.iter().zip(&evaluation.targets) {
        let (code, label) = code_and_label(verdict, evaluation.codes);
        writeln!(
            out,
            "zhw_target_status_code{{{}}} {code}",
            labels(&target.name, &[("status", label)])
        )?;
    }

    gauge(
        out,
        "zhw_worker_threads",
        "Worker threads by state in the last sample.",
    )?;
    for target in targets {
        if let Some(inspection) = &target.inspection {
            let stats = inspection.stats;
            for (state, count) in [("busy", stats.busy_count), ("idle", stats.idle_count)] {
                writeln!(
                    out,
                    "zhw_worker_threads{{{}}} {count}",
                    labels(&target.name, &[("state", state)])
                )?;
            }
        }
    }

    gauge(
        out,
        "zhw_busy_workers",
        "Worker threads handling a request in the last sample.",
    )?;
    for target in targets {
        if let Some(inspection) = &target.inspection {
            writeln!(
                out,
                "zhw_busy_workers{{{}}} {}",
                labels(&target.name, &[]),
                inspection.stats.busy_count
            )?;
        }
    }

    gauge(
        out,
        "zhw_service_threads",
        "Python threads that are not workers (main loop, ZEO client thread, ...).",
    )?;
    for target in targets {
        if let Some(inspection) = &target.inspection {
            writeln!(
                out,
                "zhw_service_threads{{{}}} {}",
                labels(&target.name, &[]),
                inspection.stats.service_count
            )?;
        }
    }

    gauge(
        out,
        "zhw_read_incomplete",
        "1 when the last sample's worker counts may be short (a stack too deep to read to the end; the status message says why), else 0.",
    )?;
    for target in targets {
        if let Some(inspection) = &target.inspection {
            writeln!(
                out,
                "zhw_read_incomplete{{{}}} {}",
                labels(&target.name, &[]),
                u8::from(inspection.incomplete.is_some())
            )?;
        }
    }

    gauge(
        out,
        "zhw_longest_request_seconds",
        "Lower bound of how long the longest-running busy worker has been on its request (0 when none is busy).",
    )?;
    for target in targets {
        if let Some(inspection) = &target.inspection {
            let longest = inspection
                .threads
                .iter()
                .filter(|t| t.state == State::Busy)
                .filter_map(|t| t.busy_seconds)
                .fold(0.0_f64, f64::max);
            writeln!(
                out,
                "zhw_longest_request_seconds{{{}}} {}",
                labels(&target.name, &[]),
                number(longest)
            )?;
        }
    }

    gauge(
        out,
        "zhw_sample_duration_seconds",
        "Wall time zhw spent reading the target's stacks in the last sample.",
    )?;
    for target in targets {
        if let Some(inspection) = &target.inspection {
            writeln!(
                out,
                "zhw_sample_duration_seconds{{{}}} {}",
                labels(&target.name, &[]),
                number(inspection.sampling.duration_seconds)
            )?;
        }
    }

    gauge(
        out,
        "zhw_target_resident_memory_bytes",
        "Resident set size of the target process.",
    )?;
    for target in targets {
        if let Some(rss) = target.inspection.as_ref().and_then(|i| i.process.rss_bytes) {
            writeln!(
                out,
                "zhw_target_resident_memory_bytes{{{}}} {rss}",
                labels(&target.name, &[])
            )?;
        }
    }

    for (name, help, pick) in [
        (
            "zhw_samples_total",
            "Sampling rounds that included the target.",
            (|c: &TargetCounters| c.samples_total) as fn(&TargetCounters) -> u64,
        ),
        (
            "zhw_sample_errors_total",
            "Sampling rounds in which the target could not be read.",
            |c: &TargetCounters| c.errors_total,
        ),
    ] {
        writeln!(out, "# HELP {name} {help}")?;
        writeln!(out, "# TYPE {name} counter")?;
        for (target, counter) in targets.iter().zip(counters) {
            writeln!(
                out,
                "{name}{{{}}} {}",
                labels(&target.name, &[]),
                pick(counter)
            )?;
        }
    }
    Ok(())
}

/// `target="…"` plus extra pairs, values escaped as the format requires
/// (backslash, double quote and line feed).
fn labels(target: &str, extra: &[(&str, &str)]) -> String {
    std::iter::once(("target", target))
        .chain(extra.iter().copied())
        .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
        .collect::<Vec<_>>()
        .join(",")
}

fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Finite floats as Prometheus reads them.
fn number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        "NaN".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels("a\"b\\c\nd", &[("state", "busy")]),
            r#"target="a\"b\\c\nd",state="busy""#
        );
    }
}
