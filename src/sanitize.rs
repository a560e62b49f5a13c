//! Make strings read from a target safe to print on an operator's terminal.
//!
//! Function names, file names and thread names come from target memory and
//! can hold anything: escape sequences that retitle or clear a terminal,
//! carriage returns that overwrite a line, bidi overrides that reorder it.
//! Every such character is shown as a visible escape instead.

use std::borrow::Cow;
use std::fmt::Write;

/// Return `text` with control and bidi-formatting characters escaped (`\x1b`, `\u{202e}`).
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_unsafe(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// A name safe inside a status line and a perfdata label: controls,
/// invisible characters, `|`, `=` and quotes become `_`.
pub fn label(text: &str) -> String {
    text.chars()
        .map(|c| {
            if is_unsafe(c) || matches!(c, '|' | '=' | '\'' | '"') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn is_unsafe(c: char) -> bool {
    c.is_control() || is_invisible(c)
}

/// Format and separator characters (Unicode Cf, Zl, Zp) that reorder, hide
/// or break text on a terminal: bidi controls, zero-width characters, line
/// and paragraph separators, the byte-order mark.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{61c}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert_eq!(for_terminal("handler_thread"), "handler_thread");
        assert_eq!(for_terminal("a\x1b]0;pwned\x07b"), "a\\x1b]0;pwned\\x07b");
        assert_eq!(for_terminal("x\ry\nz\t"), "x\\x0dy\\x0az\\x09");
        assert_eq!(for_terminal("\u{202e}txt.py"), "\\u{202e}txt.py");
        assert_eq!(for_terminal("\u{9b}2J"), "\\x9b2J");
        assert_eq!(for_terminal("café/ünïcode.py"), "café/ünïcode.py");
        for hidden in ['\u{61c}', '\u{200b}', '\u{2028}', '\u{2029}', '\u{feff}'] {
            assert!(
                !for_terminal(&format!("a{hidden}b")).contains(hidden),
                "{hidden:?}"
            );
        }
    }
}
