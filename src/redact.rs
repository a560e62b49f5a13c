//! Keep credentials read out of a target from ever leaving zhw: which names
//! look secret, and a query string with those parameters' values replaced
//! by `***`.
//!
//! Pure string functions, applied where request info and local variables are
//! built (in [`crate::attach`]), so no renderer, JSON file or log can show
//! what was redacted. Redaction goes by *name* only: a secret in a URL path
//! or in a parameter with an innocent name is not recognised (docs/limits.md).
//! Some things are never read at all (the `Authorization` and `Cookie`
//! headers): see [`NEVER_READ`].

/// Name fragments that mark a query parameter, form field, dict key or
/// local variable as secret (compared case-insensitively, anywhere in the
/// name): `password`, `passwd`, `db_pass`, `api_key`, `auth_token`,
/// `sessionid`, Zope's `__ac`, `__ac_name` and `__ac_password`…
pub const DEFAULT_SECRET_NAMES: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "session",
    "sid",
    "csrf",
    "xsrf",
    "credential",
    "signature",
    "cookie",
    "__ac",
    "jwt",
    "bearer",
];

/// WSGI environ keys whose values zhw never reads, not even to redact them:
/// the credentials of the request itself.
pub const NEVER_READ: &[&str] = &[
    "HTTP_AUTHORIZATION",
    "HTTP_COOKIE",
    "HTTP_PROXY_AUTHORIZATION",
];

/// What replaces a secret value.
pub const MASK: &str = "***";

/// The list of secret-looking name fragments in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redactor {
    fragments: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::with_extra(&[])
    }
}

impl Redactor {
    /// The built-in fragments plus `extra` (from `--redact NAME`), lowercased.
    pub fn with_extra(extra: &[String]) -> Redactor {
        let mut fragments: Vec<String> = DEFAULT_SECRET_NAMES
            .iter()
            .map(|s| s.to_string())
            .chain(extra.iter().map(|s| s.trim().to_lowercase()))
            .filter(|s| !s.is_empty())
            .collect();
        fragments.sort();
        fragments.dedup();
        Redactor { fragments }
    }

    /// The fragments, sorted (for documentation and tests).
    pub fn fragments(&self) -> &[String] {
        &self.fragments
    }

    /// Whether a parameter, key or variable called `name` holds a secret.
    pub fn is_secret(&self, name: &str) -> bool {
        let lower = name.to_lowercase();
        NEVER_READ.iter().any(|n| n.eq_ignore_ascii_case(name))
            || self.fragments.iter().any(|f| lower.contains(f.as_str()))
    }

    /// `query` with the value of every secret parameter replaced by `***`.
    /// Parameters are separated by `&` or `;`; a name is compared after
    /// percent-decoding and `+` → space, so `pass%77ord` is caught too.
    pub fn query(&self, query: &str) -> String {
        let mut out = String::with_capacity(query.len());
        let mut rest = query;
        loop {
            let end = rest.find(['&', ';']).unwrap_or(rest.len());
            let (param, tail) = rest.split_at(end);
            match param.split_once('=') {
                Some((name, _)) if self.is_secret(&percent_decode(name)) => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(MASK);
                }
                // A bare secret-looking word without `=` has no value to hide,
                // unless it is itself unparseable noise; keep it.
                _ => out.push_str(param),
            }
            let Some(separator) = tail.chars().next() else {
                break;
            };
            out.push(separator);
            rest = &tail[separator.len_utf8()..];
        }
        out
    }
}

/// Hide the password of every `scheme://user:password@host` in `text`
/// (database URLs in locals, proxies in environs): `user:***@host`.
pub fn userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (head, tail) = rest.split_at(start + 3);
        out.push_str(head);
        let authority_end = tail
            .find(['/', '?', '#', ' ', '\'', '"'])
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// A Host header with credentials in it (`user:pw@host`) keeps only the host.
pub fn host(host: &str) -> String {
    match host.rfind('@') {
        Some(at) => format!("{MASK}@{}", &host[at + 1..]),
        None => host.to_string(),
    }
}

/// Decode `%XX` escapes and `+` (lossily: the result is only compared).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(value) = hex {
                    out.push(value);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_and_host_credentials() {
        assert_eq!(
            userinfo("postgresql://scott:tiger@db/prod and http://h/x"),
            "postgresql://scott:***@db/prod and http://h/x"
        );
        assert_eq!(userinfo("http://user@h/"), "http://user@h/");
        assert_eq!(userinfo("no url"), "no url");
        assert_eq!(host("user:pw@example.org"), "***@example.org");
        assert_eq!(host("example.org:80"), "example.org:80");
    }

    #[test]
    fn query_parameters_by_name() {
        let r = Redactor::default();
        let rows = [
            (
                "user=alice&password=hunter2&q=x",
                "user=alice&password=***&q=x",
            ),
            (
                "__ac_name=bob&__ac_password=pw",
                "__ac_name=***&__ac_password=***",
            ),
            (
                "API_KEY=1;session_id=2;page=3",
                "API_KEY=***;session_id=***;page=3",
            ),
            ("pass%77ord=x&q=%26", "pass%77ord=***&q=%26"),
            ("token", "token"),
            ("", ""),
            ("a=1&&b=2&", "a=1&&b=2&"),
            ("x=caf\u{e9}&auth=\u{e9}", "x=caf\u{e9}&auth=***"),
        ];
        for (input, expected) in rows {
            assert_eq!(r.query(input), expected, "{input}");
        }
    }

    #[test]
    fn extra_names_add_to_the_defaults() {
        let r = Redactor::with_extra(&["PIN".into(), " ".into()]);
        assert!(r.is_secret("card_pin"));
        assert!(r.is_secret("Password"));
        assert!(!r.is_secret("q"));
        assert!(r.is_secret("HTTP_COOKIE") && r.is_secret("HTTP_AUTHORIZATION"));
        assert_eq!(r.query("pin=1234&q=x"), "pin=***&q=x");
        assert!(!r.fragments().iter().any(String::is_empty));
    }
}
