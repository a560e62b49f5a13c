//! Nagios threshold ranges, as the monitoring-plugins guidelines define them.
//!
//! `N` alerts outside 0..N (so `-w 3` alerts above 3), `N:` below N, `~:N`
//! above N, `N:M` outside N..M, and a leading `@` inverts: `@N:M` alerts
//! inside N..M (inclusive). Operators know this syntax from every standard
//! plugin, so `-w`/`-c` take it unchanged.

use std::fmt;
use std::str::FromStr;

/// One `-w`/`-c` range.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    /// Lower bound; `-inf` for `~`.
    start: f64,
    /// Upper bound; `+inf` when omitted after `:`.
    end: f64,
    /// `@`: alert when the value is inside rather than outside.
    inside: bool,
    /// The text as given, echoed in performance data.
    text: String,
}

impl Range {
    /// Alert for `value`?
    pub fn alerts(&self, value: f64) -> bool {
        let within = self.start <= value && value <= self.end;
        if self.inside { within } else { !within }
    }

    /// The plain "alert above N" range (`N`), as the original rules are
    /// expressed in performance data.
    pub fn above(limit: u64) -> Range {
        Range {
            start: 0.0,
            end: limit as f64,
            inside: false,
            text: limit.to_string(),
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Range {
    type Err = String;

    fn from_str(text: &str) -> Result<Range, String> {
        let (inside, body) = match text.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if body.is_empty() {
            return Err("empty range".into());
        }
        let (start, end) = match body.split_once(':') {
            None => (0.0, number(body)?),
            Some((start, end)) => {
                let start = match start {
                    "~" => f64::NEG_INFINITY,
                    "" => 0.0,
                    s => number(s)?,
                };
                let end = if end.is_empty() {
                    f64::INFINITY
                } else {
                    number(end)?
                };
                (start, end)
            }
        };
        if start > end {
            return Err(format!("the start of {text:?} is greater than its end"));
        }
        Ok(Range {
            start,
            end,
            inside,
            text: text.to_string(),
        })
    }
}

fn number(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| {
            format!("{text:?} is not a number (ranges look like 10, 10:, ~:10, 10:20, @10:20)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Range {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn guideline_examples() {
        // (range, value, alert?) from the monitoring-plugins guidelines' table.
        let rows = [
            ("10", -1.0, true),
            ("10", 0.0, false),
            ("10", 10.0, false),
            ("10", 11.0, true),
            ("10:", 9.0, true),
            ("10:", 10.0, false),
            ("10:", 1e9, false),
            ("~:10", -1e9, false),
            ("~:10", 10.0, false),
            ("~:10", 11.0, true),
            ("10:20", 9.0, true),
            ("10:20", 10.0, false),
            ("10:20", 20.0, false),
            ("10:20", 21.0, true),
            ("@10:20", 9.0, false),
            ("@10:20", 10.0, true),
            ("@10:20", 20.0, true),
            ("@10:20", 21.0, false),
            ("3", 3.0, false),
            ("3", 4.0, true),
            ("0", 1.0, true),
            ("0", 0.0, false),
            ("2.5", 3.0, true),
        ];
        for (text, value, alert) in rows {
            assert_eq!(r(text).alerts(value), alert, "{text} at {value}");
        }
    }

    #[test]
    fn malformed_ranges_say_why() {
        for bad in ["", "@", "x", "10:x", "20:10", "~", "1:2:3", "inf", "nan"] {
            let err = bad.parse::<Range>().expect_err(bad);
            assert!(!err.is_empty(), "{bad}");
        }
        assert_eq!(
            "20:10".parse::<Range>().expect_err("reversed"),
            "the start of \"20:10\" is greater than its end"
        );
    }

    #[test]
    fn displays_as_given() {
        assert_eq!(r("@10:20").to_string(), "@10:20");
        assert_eq!(Range::above(3).to_string(), "3");
        assert!(Range::above(3).alerts(4.0) && !Range::above(3).alerts(3.0));
    }
}
