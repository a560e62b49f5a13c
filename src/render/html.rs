//! Placeholder of the HTML renderer's interface (replaced by the templated renderer).

use std::io::{self, Write};

use crate::policy::Evaluation;
use crate::report::Report;

/// One point of a target's busy history (dashboard only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPoint {
    /// When, in seconds since the epoch.
    pub unix_seconds: i64,
    /// Busy workers.
    pub busy: u64,
    /// All workers.
    pub workers: u64,
}

/// What differs between the check's report file and the sidecar's dashboard.
#[derive(Debug, Clone, Copy)]
pub struct PageOptions<'a> {
    /// Seconds between automatic reloads (dashboard); `None` for a static report file.
    pub refresh_seconds: Option<u32>,
    /// Busy history per target, same order as `report.targets`.
    pub history: &'a [Vec<HistoryPoint>],
    /// Page title.
    pub title: &'a str,
}

/// Write the page.
pub fn page<W: Write>(
    out: &mut W,
    report: &Report,
    evaluation: &Evaluation,
    options: &PageOptions<'_>,
) -> io::Result<()> {
    let _ = (report, options);
    writeln!(out, "<!doctype html><p>{}</p>", evaluation.verdict.label)
}
