//! The JSON document (`--format json`, schema_version 1), documented field by
//! field in docs/reference/json.md.
//!
//! Wire types live here, apart from the Report, so the document's shape is
//! one visible contract: the Report's facts plus the Evaluation's statuses.

use std::io::{self, Write};

use serde::Serialize;

use crate::policy::{Evaluation, code_and_label};
use crate::report::{Report, SCHEMA_VERSION, SystemFacts, TargetReport};

#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    status: &'static str,
    exit_code: u8,
    message: &'a str,
    system: &'a SystemFacts,
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    sidecar: Option<&'a Sidecar>,
    targets: Vec<Target<'a>>,
}

/// What `zhw serve`'s `/json` adds to the check's document: which sampling
/// round it comes from (a consumer can tell a stale answer).
#[derive(Debug, Clone, Serialize)]
pub struct Sidecar {
    /// Rounds completed since the sidecar started.
    pub round: u64,
    /// When this round started (RFC 3339, UTC).
    pub sampled_at: String,
    /// How long the round took, in seconds.
    pub round_seconds: f64,
}

#[derive(Serialize)]
struct Target<'a> {
    status: &'static str,
    message: &'a str,
    #[serde(flatten)]
    report: &'a TargetReport,
}

/// Write the check (or dump) as one pretty-printed JSON document;
/// `exit_code` is the code the command exits with.
pub fn write<W: Write>(
    out: &mut W,
    report: &Report,
    eval: &Evaluation,
    exit_code: u8,
) -> io::Result<()> {
    write_document(out, report, eval, exit_code, None)
}

/// The same document with the sidecar's round facts (`zhw serve`'s `/json`).
pub fn write_sidecar<W: Write>(
    out: &mut W,
    report: &Report,
    eval: &Evaluation,
    exit_code: u8,
    sidecar: &Sidecar,
) -> io::Result<()> {
    write_document(out, report, eval, exit_code, Some(sidecar))
}

fn write_document<W: Write>(
    out: &mut W,
    report: &Report,
    eval: &Evaluation,
    exit_code: u8,
    sidecar: Option<&Sidecar>,
) -> io::Result<()> {
    let document = Document {
        schema_version: SCHEMA_VERSION,
        status: eval.verdict.label,
        exit_code,
        message: &eval.verdict.message,
        system: &report.system,
        warnings: &report.warnings,
        sidecar,
        targets: report
            .targets
            .iter()
            .zip(&eval.targets)
            .map(|(report, verdict)| Target {
                status: code_and_label(verdict, eval.codes).1,
                message: &verdict.message,
                report,
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&document).map_err(io_error)?;
    out.write_all(escape_invisible(&text).as_bytes())?;
    writeln!(out)
}

/// serde_json leaves DEL, the C1 controls (U+0080–U+009F, among them the
/// one-character CSI that starts terminal escape sequences), line separators
/// and bidi overrides as raw characters: valid JSON, but `zhw check
/// --format json | less` would pass what the target wrote to the terminal.
/// They are written as `\uXXXX` escapes instead; outside strings a JSON
/// document has only ASCII, so every one of them is inside a string.
fn escape_invisible(text: &str) -> std::borrow::Cow<'_, str> {
    let invisible = |c: char| matches!(c, '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.contains(invisible) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if invisible(c) {
            let _ = std::fmt::Write::write_fmt(&mut escaped, format_args!("\\u{:04x}", c as u32));
        } else {
            escaped.push(c);
        }
    }
    std::borrow::Cow::Owned(escaped)
}

/// Keep the kind of an I/O error that serde_json wrapped, so a closed pipe
/// is still recognised as one.
pub fn io_error(err: serde_json::Error) -> io::Error {
    match err.io_error_kind() {
        Some(kind) => io::Error::new(kind, err),
        None => io::Error::other(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_are_escaped_and_still_json() {
        let value = serde_json::json!({"path": "/a\u{9b}31m\u{7f}\u{202e}b"});
        let text = serde_json::to_string(&value).expect("json");
        let escaped = escape_invisible(&text);
        assert!(!escaped.contains('\u{9b}') && !escaped.contains('\u{7f}'));
        assert!(escaped.contains("\\u009b"));
        let back: serde_json::Value = serde_json::from_str(&escaped).expect("still JSON");
        assert_eq!(back, value);
    }
}
