//! The status contract: worker counts and thresholds in, status line and
//! exit code out. ZopeHealthWatcher's rules live here and nowhere else.
//!
//! Default rules, in order (shared/DESIGN.md §1): a target that cannot be
//! inspected is `FAILURE` (exit 2); no idle worker is `CRITICAL - No more Zeo
//! client available` (exit 3); 4 or more busy workers is `WARNING - Warning,
//! high load` (exit 1); otherwise `OK - Everything looks fine` (exit 0).
//! `-w N` / `-c N` replace the warning / critical rule by "busy > N"; a
//! target with no worker threads at all stays CRITICAL.
//! `--exit-codes nagios` maps to the plugin standard (OK 0, WARNING 1,
//! CRITICAL 2, UNKNOWN 3; a target that is not running is CRITICAL).

use serde::Serialize;

use crate::threshold::Range;

/// The original check's message texts, kept byte for byte.
pub const MSG_OK: &str = "Everything looks fine";
/// Warning text of the original check.
pub const MSG_WARNING: &str = "Warning, high load";
/// Critical text of the original check.
pub const MSG_CRITICAL: &str = "No more Zeo client available";
/// Opens the note a status message gets when the counts come from a partial
/// read (docs/reference/exit-codes.md).
pub const INCOMPLETE: &str = "[incomplete read: ";
/// The original's warning rule: WARNING from this many busy workers.
pub const DEFAULT_WARNING_BUSY: u64 = 4;

/// How a target (or the whole check) fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Free workers, load below the warning rule.
    Ok,
    /// Load at or above the warning rule.
    Warning,
    /// No free worker (or above the critical threshold).
    Critical,
    /// The target could not be inspected.
    Failure,
}

/// Which exit codes (and status words) to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitCodes {
    /// ZopeHealthWatcher's: OK 0, WARNING 1, FAILURE 2, CRITICAL 3.
    #[default]
    Original,
    /// Nagios plugin standard: OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3.
    Nagios,
}

/// Busy-worker thresholds (Nagios ranges); `None` keeps the original rule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Thresholds {
    /// WARNING when the busy count alerts this range (`-w 3`: above 3).
    pub warning: Option<Range>,
    /// CRITICAL when the busy count alerts this range.
    pub critical: Option<Range>,
}

/// Worker counts of one target, the input of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    /// Workers handling a request.
    pub busy: u64,
    /// Workers waiting for one.
    pub idle: u64,
}

impl Counts {
    /// All workers.
    pub fn workers(&self) -> u64 {
        self.busy + self.idle
    }
}

/// The judgement on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetVerdict {
    /// Status before exit-code mapping.
    pub status: Status,
    /// For failures: whether the process simply is not running.
    pub not_running: bool,
    /// The message after `STATUS - `.
    pub message: String,
}

/// The judgement on the whole check, ready to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Worst status over all targets.
    pub status: Status,
    /// The word printed for it under the chosen mapping (`FAILURE`, `UNKNOWN`, …).
    pub label: &'static str,
    /// The message of the worst target.
    pub message: String,
    /// The process exit code.
    pub exit_code: u8,
}

/// The status to report when a target does not answer within `--timeout`
/// (`-t 8:CRITICAL`); by default it cannot be inspected (FAILURE/UNKNOWN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTimeout {
    /// OK.
    Ok,
    /// WARNING.
    Warning,
    /// CRITICAL.
    Critical,
    /// FAILURE (original codes) / UNKNOWN (Nagios codes).
    #[default]
    Unknown,
}

/// Everything that turns a report into statuses.
#[derive(Debug, Clone, Default)]
pub struct CheckPolicy {
    /// `-w`/`-c`.
    pub thresholds: Thresholds,
    /// `--exit-codes`.
    pub codes: ExitCodes,
    /// `-t SECONDS:STATE`.
    pub on_timeout: OnTimeout,
    /// `--expect-workers N`: fewer workers means some died.
    pub expect_workers: Option<u64>,
    /// `zhw serve --long-request SECONDS`: a worker busy on one request at
    /// least this long raises its target to WARNING (Products.LongRequestLogger's idea).
    pub long_request_seconds: Option<f64>,
}

/// A stopped process (SIGSTOP, a debugger) serves nobody, whatever its
/// threads were doing when it stopped: CRITICAL, so `/status` answers 503
/// and a load balancer stops sending it requests.
pub fn judge_stopped(verdict: TargetVerdict) -> TargetVerdict {
    const STOPPED: &str = "process is stopped (SIGSTOP, job control or a debugger): no worker \
                           can serve requests";
    TargetVerdict {
        status: Status::Critical,
        not_running: false,
        message: match verdict.status {
            Status::Ok => STOPPED.to_string(),
            _ => format!("{STOPPED}; {}", verdict.message),
        },
    }
}

/// Raise a target to WARNING when `long` workers have been on their current
/// request longer than the limit; a worse status keeps its level and gains
/// the note, so the operator sees both problems.
pub fn judge_long_requests(
    verdict: TargetVerdict,
    long: usize,
    limit_seconds: f64,
) -> TargetVerdict {
    if long == 0 {
        return verdict;
    }
    let note = format!(
        "{long} request{} running longer than {}s",
        if long == 1 { "" } else { "s" },
        limit_seconds
    );
    match verdict.status {
        Status::Ok => TargetVerdict {
            status: Status::Warning,
            not_running: false,
            message: note,
        },
        _ => TargetVerdict {
            message: format!("{}; {note}", verdict.message),
            ..verdict
        },
    }
}

/// Judge one inspected target.
///
/// `expected_workers` is the pool size it should have (`--expect-workers`,
/// or remembered by `--state-file`); fewer means workers died: CRITICAL.
pub fn judge_pool(
    counts: Counts,
    thresholds: &Thresholds,
    expected_workers: Option<u64>,
) -> TargetVerdict {
    if let Some(expected) = expected_workers
        && counts.workers() < expected
    {
        let died = expected - counts.workers();
        let plural = if died == 1 { "" } else { "s" };
        return TargetVerdict {
            status: Status::Critical,
            not_running: false,
            message: format!(
                "{died} worker thread{plural} died ({expected} expected, {} found)",
                counts.workers()
            ),
        };
    }
    judge(counts, thresholds)
}

/// Judge one inspected target by the original rules and thresholds.
pub fn judge(counts: Counts, thresholds: &Thresholds) -> TargetVerdict {
    // A pool with no worker at all has no free worker whatever the limit.
    let critical = counts.workers() == 0
        || match &thresholds.critical {
            Some(range) => range.alerts(counts.busy as f64),
            None => counts.idle == 0,
        };
    let warning = match &thresholds.warning {
        Some(range) => range.alerts(counts.busy as f64),
        None => counts.busy >= DEFAULT_WARNING_BUSY,
    };
    let (status, message) = if critical {
        (Status::Critical, MSG_CRITICAL)
    } else if warning {
        (Status::Warning, MSG_WARNING)
    } else {
        (Status::Ok, MSG_OK)
    };
    TargetVerdict {
        status,
        not_running: false,
        message: message.to_string(),
    }
}

/// Judge a target that could not be inspected.
pub fn judge_failure(message: &str, not_running: bool) -> TargetVerdict {
    TargetVerdict {
        status: Status::Failure,
        not_running,
        message: message.to_string(),
    }
}

/// Exit code and status word of one target verdict under a mapping.
pub fn code_and_label(verdict: &TargetVerdict, codes: ExitCodes) -> (u8, &'static str) {
    match (codes, verdict.status) {
        (_, Status::Ok) => (0, "OK"),
        (_, Status::Warning) => (1, "WARNING"),
        (ExitCodes::Original, Status::Failure) => (2, "FAILURE"),
        (ExitCodes::Original, Status::Critical) => (3, "CRITICAL"),
        (ExitCodes::Nagios, Status::Critical) => (2, "CRITICAL"),
        (ExitCodes::Nagios, Status::Failure) if verdict.not_running => (2, "CRITICAL"),
        (ExitCodes::Nagios, Status::Failure) => (3, "UNKNOWN"),
    }
}

/// How bad an exit code is: the original's codes rank by value (FAILURE 2
/// below CRITICAL 3); the Nagios ranking puts UNKNOWN between OK and WARNING,
/// as monitoring-plugins' `max_state` does.
fn severity(code: u8, codes: ExitCodes) -> u8 {
    match (codes, code) {
        (ExitCodes::Original, code) => code,
        (ExitCodes::Nagios, 0) => 0,
        (ExitCodes::Nagios, 3) => 1,
        (ExitCodes::Nagios, 1) => 2,
        (ExitCodes::Nagios, _) => 3,
    }
}

/// Combine per-target verdicts (named) into one: the worst wins; with several
/// targets its name is appended so the operator knows which one.
pub fn overall(targets: &[(String, TargetVerdict)], codes: ExitCodes) -> Verdict {
    let worst = targets.iter().max_by_key(|(_, verdict)| {
        let (code, _) = code_and_label(verdict, codes);
        severity(code, codes)
    });
    match worst {
        None => Verdict {
            status: Status::Failure,
            label: code_and_label(&judge_failure("", false), codes).1,
            message: "no target given".into(),
            exit_code: code_and_label(&judge_failure("", false), codes).0,
        },
        Some((_, verdict)) => {
            let (exit_code, label) = code_and_label(verdict, codes);
            // Name the targets that share the worst status, so the operator
            // knows which; an all-OK check names nobody.
            let worst_names: Vec<&str> = targets
                .iter()
                .filter(|(_, v)| code_and_label(v, codes) == (exit_code, label))
                .map(|(name, _)| name.as_str())
                .collect();
            let message = if targets.len() > 1 && verdict.status != Status::Ok {
                format!("{} ({})", verdict.message, worst_names.join(", "))
            } else {
                verdict.message.clone()
            };
            Verdict {
                status: verdict.status,
                label,
                message,
                exit_code,
            }
        }
    }
}

/// The effective warning/critical ranges on busy workers, for perfdata.
///
/// The original rules expressed as ranges: WARNING from 4 busy is `3`
/// (alert above 3); CRITICAL when none is idle is `workers-1`.
pub fn effective_limits(thresholds: &Thresholds, workers: u64) -> (Option<String>, Option<String>) {
    (
        Some(
            thresholds
                .warning
                .clone()
                .unwrap_or_else(|| Range::above(DEFAULT_WARNING_BUSY - 1))
                .to_string(),
        ),
        match &thresholds.critical {
            Some(range) => Some(range.to_string()),
            None => workers.checked_sub(1).map(|limit| limit.to_string()),
        },
    )
}

/// One performance-data item, formatted per the plugin guidelines
/// (`'label'=value[UOM];[warn];[crit];[min];[max]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Perfdatum {
    /// Label, quoted on output when it contains spaces or quotes.
    pub label: String,
    /// Current value.
    pub value: u64,
    /// Warning range, as given (or the original rule as "alert above N").
    pub warn: Option<String>,
    /// Critical range, as given (or the original rule as "alert above N").
    pub crit: Option<String>,
    /// Minimum possible value.
    pub min: Option<u64>,
    /// Maximum possible value.
    pub max: Option<u64>,
}

impl std::fmt::Display for Perfdatum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let needs_quotes = self.label.contains([' ', '\'', '=']);
        if needs_quotes {
            write!(f, "'{}'", self.label.replace('\'', "''"))?;
        } else {
            f.write_str(&self.label)?;
        }
        write!(
            f,
            "={};{};{};{};{}",
            self.value,
            text(&self.warn),
            text(&self.crit),
            opt(self.min),
            opt(self.max)
        )
    }
}

/// Performance data for one target: busy (with limits), idle and worker
/// totals. `prefix` names the target when several are checked.
pub fn perfdata(prefix: Option<&str>, counts: Counts, thresholds: &Thresholds) -> Vec<Perfdatum> {
    let label = |what: &str| match prefix {
        Some(name) => format!("{name} {what}"),
        None => what.to_string(),
    };
    let workers = counts.workers();
    let (warn, crit) = effective_limits(thresholds, workers);
    vec![
        Perfdatum {
            label: label("busy"),
            value: counts.busy,
            warn,
            crit,
            min: Some(0),
            max: Some(workers),
        },
        Perfdatum {
            label: label("idle"),
            value: counts.idle,
            warn: None,
            crit: None,
            min: Some(0),
            max: Some(workers),
        },
        Perfdatum {
            label: label("workers"),
            value: workers,
            warn: None,
            crit: None,
            min: Some(0),
            max: None,
        },
    ]
}

/// The verdicts of a whole check: overall, per target (same order as the
/// report's targets), and the performance data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// The one status line.
    pub verdict: Verdict,
    /// One verdict per target.
    pub targets: Vec<TargetVerdict>,
    /// Performance data for all targets.
    pub perfdata: Vec<Perfdatum>,
    /// The exit-code mapping the labels were chosen for.
    pub codes: ExitCodes,
}

/// Judge every target of a report and combine them.
pub fn evaluate(report: &crate::report::Report, policy: &CheckPolicy) -> Evaluation {
    let several = report.targets.len() > 1;
    let mut named = Vec::with_capacity(report.targets.len());
    let mut perf = Vec::new();
    let mut counted = Vec::with_capacity(report.targets.len());
    for target in &report.targets {
        let verdict = match (&target.inspection, &target.error) {
            (Some(inspection), _) => {
                let counts = inspection.stats.counts();
                perf.extend(perfdata(
                    several.then_some(target.name.as_str()),
                    counts,
                    &policy.thresholds,
                ));
                let expected = match (policy.expect_workers, target.remembered_workers) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                let verdict = judge_pool(counts, &policy.thresholds, expected);
                let verdict = if inspection.process.stopped {
                    judge_stopped(verdict)
                } else {
                    verdict
                };
                let mut verdict = match policy.long_request_seconds {
                    Some(limit) => {
                        let long = inspection
                            .threads
                            .iter()
                            .filter(|t| t.busy_seconds.is_some_and(|s| s >= limit))
                            .count();
                        judge_long_requests(verdict, long, limit)
                    }
                    None => verdict,
                };
                // Counts from a partial read keep their status (the worst of
                // what was read) but never pass for complete.
                if let Some(why) = &inspection.incomplete {
                    verdict.message = format!("{} {INCOMPLETE}{why}]", verdict.message);
                }
                verdict
            }
            (None, Some(error)) if error.kind == "timeout" => {
                timed_out(&error.message, policy.on_timeout)
            }
            (None, Some(error)) if target.optional && error.not_running => TargetVerdict {
                status: Status::Ok,
                not_running: true,
                message: format!("{} (optional)", error.message),
            },
            (None, Some(error)) => judge_failure(&error.message, error.not_running),
            (None, None) => judge_failure("no result", false),
        };
        // An absent optional target is reported but never decides the status.
        counted.push(!(target.optional && target.inspection.is_none() && verdict.not_running));
        named.push((target.name.clone(), verdict));
    }
    let deciding: Vec<(String, TargetVerdict)> = named
        .iter()
        .zip(&counted)
        .filter(|(_, counts)| **counts)
        .map(|(entry, _)| entry.clone())
        .collect();
    let mut verdict = if deciding.is_empty() && !named.is_empty() {
        overall(&named, policy.codes)
    } else {
        overall(&deciding, policy.codes)
    };
    // The status line is the one line monitoring shows: if some target's
    // read was partial and the worst target's message does not say so, name it.
    let partial: Vec<&str> = report
        .targets
        .iter()
        .filter(|t| {
            t.inspection
                .as_ref()
                .is_some_and(|i| i.incomplete.is_some())
        })
        .map(|t| t.name.as_str())
        .collect();
    if !partial.is_empty() && !verdict.message.contains(INCOMPLETE) {
        verdict.message = format!("{} {INCOMPLETE}{}]", verdict.message, partial.join(", "));
    }
    Evaluation {
        verdict,
        targets: named.into_iter().map(|(_, verdict)| verdict).collect(),
        perfdata: perf,
        codes: policy.codes,
    }
}

fn timed_out(message: &str, on_timeout: OnTimeout) -> TargetVerdict {
    let status = match on_timeout {
        OnTimeout::Ok => Status::Ok,
        OnTimeout::Warning => Status::Warning,
        OnTimeout::Critical => Status::Critical,
        OnTimeout::Unknown => return judge_failure(message, false),
    };
    TargetVerdict {
        status,
        not_running: false,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge_(c: Counts, t: &Thresholds) -> TargetVerdict {
        judge(c, t)
    }

    fn counts(busy: u64, idle: u64) -> Counts {
        Counts { busy, idle }
    }

    #[test]
    fn a_stopped_process_is_critical() {
        let verdict = judge_stopped(judge(counts(0, 4), &Thresholds::default()));
        assert_eq!(verdict.status, Status::Critical);
        assert!(verdict.message.starts_with("process is stopped"));
        assert!(verdict.message.ends_with("no worker can serve requests"));
        let busy = judge_stopped(judge(counts(4, 0), &Thresholds::default()));
        assert!(busy.message.ends_with("; No more Zeo client available"));
    }

    #[test]
    fn long_requests_raise_to_warning_and_keep_worse() {
        let ok = judge(counts(1, 3), &Thresholds::default());
        assert_eq!(judge_long_requests(ok.clone(), 0, 30.0), ok);
        let raised = judge_long_requests(ok, 2, 30.0);
        assert_eq!(raised.status, Status::Warning);
        assert_eq!(raised.message, "2 requests running longer than 30s");
        let critical = judge(counts(4, 0), &Thresholds::default());
        let kept = judge_long_requests(critical, 1, 0.5);
        assert_eq!(kept.status, Status::Critical);
        assert_eq!(
            kept.message,
            "No more Zeo client available; 1 request running longer than 0.5s"
        );
    }

    #[test]
    fn original_rules_in_order() {
        let none = Thresholds::default();
        let rows = [
            (counts(0, 4), Status::Ok),
            (counts(1, 3), Status::Ok),
            (counts(3, 1), Status::Ok),
            (counts(4, 0), Status::Critical),
            (counts(4, 2), Status::Warning),
            (counts(0, 0), Status::Critical),
            (counts(9, 1), Status::Warning),
        ];
        for (c, expected) in rows {
            assert_eq!(judge(c, &none).status, expected, "{c:?}");
        }
        assert_eq!(judge_(counts(2, 2), &none).message, "Everything looks fine");
        assert_eq!(judge_(counts(4, 2), &none).message, "Warning, high load");
        assert_eq!(
            judge_(counts(4, 0), &none).message,
            "No more Zeo client available"
        );
    }

    #[test]
    fn ranges_in_thresholds() {
        let range = |w: &str| Thresholds {
            warning: Some(w.parse().expect("range")),
            critical: None,
        };
        // "10:" alerts below 10: WARNING while fewer than 2 are busy.
        assert_eq!(judge_(counts(1, 3), &range("2:")).status, Status::Warning);
        assert_eq!(judge_(counts(2, 2), &range("2:")).status, Status::Ok);
        assert_eq!(judge_(counts(2, 2), &range("@2:3")).status, Status::Warning);
        assert_eq!(judge_(counts(1, 3), &range("@2:3")).status, Status::Ok);
        assert_eq!(judge_(counts(3, 1), &range("~:2")).status, Status::Warning);
    }

    #[test]
    fn thresholds_replace_their_own_rule() {
        let w1 = Thresholds {
            warning: Some(Range::above(1)),
            critical: None,
        };
        assert_eq!(judge_(counts(1, 3), &w1).status, Status::Ok);
        assert_eq!(judge_(counts(2, 2), &w1).status, Status::Warning);
        assert_eq!(
            judge_(counts(4, 0), &w1).status,
            Status::Critical,
            "idle==0 rule stays"
        );
        let c2 = Thresholds {
            warning: None,
            critical: Some(Range::above(2)),
        };
        assert_eq!(judge_(counts(3, 1), &c2).status, Status::Critical);
        assert_eq!(
            judge_(counts(2, 0), &c2).status,
            Status::Ok,
            "critical rule replaced"
        );
        assert_eq!(
            judge_(counts(0, 0), &c2).status,
            Status::Critical,
            "no workers at all"
        );
        let wide = Thresholds {
            warning: Some(Range::above(10)),
            critical: Some(Range::above(20)),
        };
        assert_eq!(judge_(counts(4, 0), &wide).status, Status::Ok);
    }

    #[test]
    fn exit_codes_in_both_mappings() {
        let ok = judge_(counts(0, 1), &Thresholds::default());
        let crit = judge_(counts(1, 0), &Thresholds::default());
        let gone = judge_failure("gone", true);
        let unreadable = judge_failure("denied", false);
        use ExitCodes::*;
        assert_eq!(code_and_label(&ok, Original), (0, "OK"));
        assert_eq!(code_and_label(&crit, Original), (3, "CRITICAL"));
        assert_eq!(code_and_label(&gone, Original), (2, "FAILURE"));
        assert_eq!(code_and_label(&unreadable, Original), (2, "FAILURE"));
        assert_eq!(code_and_label(&crit, Nagios), (2, "CRITICAL"));
        assert_eq!(code_and_label(&gone, Nagios), (2, "CRITICAL"));
        assert_eq!(code_and_label(&unreadable, Nagios), (3, "UNKNOWN"));
    }

    #[test]
    fn worst_target_wins() {
        let t = |name: &str, v: TargetVerdict| (name.to_string(), v);
        let warn = judge_(counts(4, 2), &Thresholds::default());
        let fail = judge_failure("pid 9 is not running", true);
        let unknown = judge_failure("denied", false);
        let both = [t("a", warn.clone()), t("b", unknown.clone())];
        let v = overall(&both, ExitCodes::Original);
        assert_eq!((v.label, v.exit_code), ("FAILURE", 2));
        assert_eq!(v.message, "denied (b)");
        let v = overall(&both, ExitCodes::Nagios);
        assert_eq!(
            (v.label, v.exit_code),
            ("WARNING", 1),
            "UNKNOWN ranks below WARNING"
        );
        let v = overall(&[t("a", warn), t("b", fail)], ExitCodes::Nagios);
        assert_eq!((v.label, v.exit_code), ("CRITICAL", 2));
        let single = overall(&[t("a", unknown)], ExitCodes::Original);
        assert_eq!(
            single.message, "denied",
            "no name suffix for a single target"
        );
        let ok = judge_(counts(1, 3), &Thresholds::default());
        let all_ok = overall(&[t("a", ok.clone()), t("b", ok)], ExitCodes::Original);
        assert_eq!(
            all_ok.message, "Everything looks fine",
            "an OK check names nobody"
        );
        let crit = judge_(counts(4, 0), &Thresholds::default());
        let two = overall(&[t("a", crit.clone()), t("b", crit)], ExitCodes::Original);
        assert_eq!(two.message, "No more Zeo client available (a, b)");
    }

    #[test]
    fn perfdata_format() {
        let items = perfdata(None, counts(2, 2), &Thresholds::default());
        let text: Vec<String> = items.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["busy=2;3;3;0;4", "idle=2;;;0;4", "workers=4;;;0;"]);
        let named = perfdata(
            Some("client1"),
            counts(1, 5),
            &Thresholds {
                warning: Some(Range::above(2)),
                critical: None,
            },
        );
        assert_eq!(named[0].to_string(), "'client1 busy'=1;2;5;0;6");
        let quote = Perfdatum {
            label: "it's".into(),
            value: 1,
            warn: None,
            crit: None,
            min: None,
            max: None,
        };
        assert_eq!(quote.to_string(), "'it''s'=1;;;;");
    }

    #[test]
    fn perfdata_limits() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            effective_limits(&Thresholds::default(), 4),
            (s("3"), s("3"))
        );
        assert_eq!(
            effective_limits(&Thresholds::default(), 6),
            (s("3"), s("5"))
        );
        assert_eq!(effective_limits(&Thresholds::default(), 0), (s("3"), None));
        let t = Thresholds {
            warning: Some("1:".parse().expect("range")),
            critical: Some("@2:9".parse().expect("range")),
        };
        assert_eq!(effective_limits(&t, 4), (s("1:"), s("@2:9")));
    }
}
