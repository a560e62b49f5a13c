//! Find the request a busy worker is serving and read what identifies it —
//! method, path, query string, host, user agent, client address — out of
//! the WSGI `environ` dict (or the request object holding one), bounded and
//! with secrets redacted before anything leaves this module.
//!
//! Only the keys listed in [`KEYS`] are ever looked up: the `Authorization`
//! and `Cookie` headers ([`crate::redact::NEVER_READ`]) are not read at all,
//! and query parameters with secret-looking names are replaced by `***` here,
//! when the [`RequestInfo`] is built, so no renderer sees them.

use remoteprocess::ProcessMemory;

use super::frames::{WalkedFrame, Walker};
use super::objects::{Kind, Mapping, Read, ReadError, Reader, Text};
use crate::classify::RequestLocation;
use crate::model::RequestInfo;
use crate::redact::Redactor;

/// The environ keys zhw reads, and nothing else.
const KEYS: [&str; 10] = [
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "HTTP_USER_AGENT",
    "REMOTE_ADDR",
    "HTTP_X_FORWARDED_FOR",
];
const METHOD: usize = 0;
const SCRIPT_NAME: usize = 1;
const PATH_INFO: usize = 2;
const QUERY_STRING: usize = 3;
const HTTP_HOST: usize = 4;
const SERVER_NAME: usize = 5;
const SERVER_PORT: usize = 6;
const USER_AGENT: usize = 7;
const REMOTE_ADDR: usize = 8;
const FORWARDED_FOR: usize = 9;

/// Bytes read per field: enough to recognise a request, little enough that
/// a 10 MB path costs nothing.
fn field_limit(index: usize, strings: usize) -> usize {
    match index {
        METHOD => 32,
        SCRIPT_NAME | PATH_INFO | QUERY_STRING => strings,
        USER_AGENT => 512,
        _ => 256,
    }
}

/// Attributes of a request object that may hold its environ, when the
/// location does not name one.
const ENVIRON_ATTRIBUTES: &[&str] = &["environ", "_environ"];

/// Look through `locations` in order (each in its frame, outermost frame
/// first) for a WSGI environ or request object, and read the request.
/// `Ok(None)`: no request found, which is normal for many busy threads.
pub(crate) fn find<'l, P: ProcessMemory>(
    walker: &Walker<'_, '_, P>,
    frames: &[WalkedFrame],
    locations: impl IntoIterator<Item = &'l RequestLocation>,
    redactor: &Redactor,
) -> Read<Option<RequestInfo>> {
    let mut last_error = None;
    for location in locations {
        let matching = frames.iter().rev().filter(|frame| {
            location
                .frame
                .as_ref()
                .is_none_or(|m| m.matches(&frame.code.function, &frame.code.file))
        });
        for frame in matching {
            let found = walker
                .local_named(frame, location.local)
                .and_then(|value| match value {
                    Some(addr) => read(walker.reader, addr, location.attribute, redactor),
                    None => Ok(None),
                });
            match found {
                Ok(Some(info)) => return Ok(Some(info)),
                Ok(None) => {}
                Err(ReadError::Budget) => return Err(ReadError::Budget),
                Err(err) => last_error = Some(err),
            }
        }
    }
    match last_error {
        Some(err) => Err(err),
        None => Ok(None),
    }
}

/// The request behind the object at `addr`: an environ dict, or a request
/// object whose `attribute` (or `environ`) is one.
pub(crate) fn read<P: ProcessMemory>(
    reader: &Reader<'_, P>,
    addr: usize,
    attribute: Option<&str>,
    redactor: &Redactor,
) -> Read<Option<RequestInfo>> {
    let obj = reader.object(addr)?;
    match obj.kind {
        Kind::Dict => environ(reader, Mapping::Dict(addr), addr, redactor),
        Kind::Other | Kind::OldInstance => {
            let Some(attributes) = reader.attributes(&obj)? else {
                return Ok(None);
            };
            let wanted: Vec<&str> = match attribute {
                Some(name) => vec![name],
                None => ENVIRON_ATTRIBUTES.to_vec(),
            };
            let (found, _) = reader.lookup(attributes, &wanted)?;
            for value in found.into_iter().flatten() {
                if reader.object(value)?.kind == Kind::Dict {
                    return environ(reader, Mapping::Dict(value), addr, redactor);
                }
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Read a WSGI environ. `None` unless it looks like one: `REQUEST_METHOD`
/// present, or a dict too big to search whole (said so in `truncated`).
fn environ<P: ProcessMemory>(
    reader: &Reader<'_, P>,
    mapping: Mapping,
    identity: usize,
    redactor: &Redactor,
) -> Read<Option<RequestInfo>> {
    let (found, scan) = reader.lookup(mapping, &KEYS)?;
    let mut truncated = Vec::new();
    if !scan.complete {
        let size = scan
            .used
            .map_or_else(|| "more than".to_string(), |used| used.to_string());
        truncated.push(format!(
            "environ: {size} entries, only the first {} searched",
            scan.examined
        ));
    }
    // A dict too big to search whole is reported with what was found (maybe
    // nothing), so that the output says why the request is incomplete.
    if found[METHOD].is_none() {
        if scan.complete {
            return Ok(None);
        }
        truncated.push("REQUEST_METHOD not found in the part searched".to_string());
    }
    let strings = reader.limits.string_bytes;
    let mut values: Vec<Option<Text>> = Vec::with_capacity(KEYS.len());
    for (index, value) in found.iter().enumerate() {
        let text = match value {
            Some(addr) => match value_text(reader, *addr, field_limit(index, strings)) {
                Ok(text) => text,
                Err(ReadError::Budget) => return Err(ReadError::Budget),
                Err(err) => {
                    truncated.push(format!("{}: {err}", KEYS[index]));
                    None
                }
            },
            None => None,
        };
        if let Some(text) = &text
            && text.truncated
        {
            truncated.push(format!(
                "{}: {} long, only the first {} read",
                KEYS[index],
                text.length,
                text.value.chars().count()
            ));
        }
        values.push(text);
    }
    let take = |index: usize| -> Option<String> {
        values
            .get(index)
            .and_then(Option::as_ref)
            .map(|t| t.value.clone())
    };
    let path = match (take(SCRIPT_NAME), take(PATH_INFO)) {
        (Some(script), Some(path)) => Some(script + &path),
        (script, path) => path.or(script).filter(|p| !p.is_empty()),
    };
    let host = take(HTTP_HOST).filter(|h| !h.is_empty()).or_else(|| {
        take(SERVER_NAME).map(|name| match take(SERVER_PORT) {
            Some(port) if !port.is_empty() => format!("{name}:{port}"),
            _ => name,
        })
    });
    let client = take(FORWARDED_FOR)
        .and_then(|hops| {
            hops.split(',')
                .next()
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_string)
        })
        .or_else(|| take(REMOTE_ADDR));
    // Path parameters (`/cart;jsessionid=…`) are name=value pairs too.
    let path = path.map(|p| {
        if p.contains('=') {
            redactor.query(&p)
        } else {
            p
        }
    });
    Ok(Some(RequestInfo {
        method: take(METHOD),
        path,
        query: take(QUERY_STRING)
            .filter(|q| !q.is_empty())
            .map(|q| redactor.query(&q)),
        host: host.map(|h| crate::redact::host(&h)),
        user_agent: take(USER_AGENT),
        client,
        identity: Some(identity as u64),
        truncated,
    }))
}

/// A string (or int) value as text; `None` for any other type.
fn value_text<P: ProcessMemory>(
    reader: &Reader<'_, P>,
    addr: usize,
    max: usize,
) -> Read<Option<Text>> {
    let obj = reader.object(addr)?;
    match obj.kind {
        Kind::Str | Kind::Bytes => reader.text(&obj, max).map(Some),
        Kind::Int => Ok(reader.int(&obj)?.map(|value| Text {
            value: value.to_string(),
            length: 0,
            truncated: false,
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::Layout;
    use super::super::objects::Limits;
    use super::super::objects::fake::Builder;
    use super::*;

    fn environ_dict(b: &Builder, pairs: &[(&str, &str)]) -> usize {
        let entries: Vec<(usize, usize)> =
            pairs.iter().map(|(k, v)| (b.str(k), b.str(v))).collect();
        b.dict(&entries)
    }

    #[test]
    fn reads_an_environ_and_redacts_the_query() {
        for (major, minor) in [(2, 7), (3, 8), (3, 12), (3, 13)] {
            let b = Builder::new(Layout::for_version(major, minor).expect("layout"));
            let r = Reader::new(&b.memory, &b.layout, Limits::default());
            let env = environ_dict(
                &b,
                &[
                    ("REQUEST_METHOD", "POST"),
                    ("SCRIPT_NAME", "/site"),
                    ("PATH_INFO", "/edit"),
                    ("QUERY_STRING", "user=bob&password=hunter2&q=x"),
                    ("HTTP_HOST", "example.org"),
                    ("HTTP_USER_AGENT", "curl/8"),
                    ("REMOTE_ADDR", "10.0.0.2"),
                    ("HTTP_X_FORWARDED_FOR", "192.0.2.7, 10.0.0.1"),
                    ("HTTP_COOKIE", "__ac=secret"),
                ],
            );
            let info = read(&r, env, None, &Redactor::default())
                .expect("read")
                .expect("an environ");
            assert_eq!(
                info,
                RequestInfo {
                    method: Some("POST".into()),
                    path: Some("/site/edit".into()),
                    query: Some("user=bob&password=***&q=x".into()),
                    host: Some("example.org".into()),
                    user_agent: Some("curl/8".into()),
                    client: Some("192.0.2.7".into()),
                    identity: Some(env as u64),
                    truncated: vec![],
                },
                "{major}.{minor}"
            );
        }
    }

    /// Regression (found by trying zhw with nasty inputs): secrets in path
    /// parameters and credentials in the Host header were shown.
    #[test]
    fn path_parameters_and_host_credentials_are_masked() {
        let b = Builder::new(Layout::for_version(3, 12).expect("layout"));
        let r = Reader::new(&b.memory, &b.layout, Limits::default());
        let env = environ_dict(
            &b,
            &[
                ("REQUEST_METHOD", "GET"),
                ("PATH_INFO", "/cart;jsessionid=JSESS/x"),
                ("HTTP_HOST", "user:HOSTPW@example.org"),
            ],
        );
        let info = read(&r, env, None, &Redactor::default())
            .expect("read")
            .expect("an environ");
        assert_eq!(info.path.as_deref(), Some("/cart;jsessionid=***"));
        assert_eq!(info.host.as_deref(), Some("***@example.org"));
    }

    #[test]
    fn a_request_object_leads_to_its_environ() {
        for (major, minor) in [(2, 7), (3, 11), (3, 12)] {
            let b = Builder::new(Layout::for_version(major, minor).expect("layout"));
            let r = Reader::new(&b.memory, &b.layout, Limits::default());
            let env = environ_dict(&b, &[("REQUEST_METHOD", "GET"), ("PATH_INFO", "/")]);
            let request = b.instance("HTTPRequest", &[(b.str("environ"), env)]);
            let info = read(&r, request, None, &Redactor::default())
                .expect("read")
                .expect("found");
            assert_eq!(info.method.as_deref(), Some("GET"));
            assert_eq!(info.identity, Some(request as u64));
            let gateway = b.instance("Gateway_10", &[(b.str("env"), env)]);
            assert!(
                read(&r, gateway, Some("env"), &Redactor::default()).is_ok_and(|i| i.is_some())
            );
            // Not a request: a dict without REQUEST_METHOD, an int.
            let other = environ_dict(&b, &[("x", "y")]);
            assert_eq!(read(&r, other, None, &Redactor::default()), Ok(None));
            assert_eq!(read(&r, b.int(3), None, &Redactor::default()), Ok(None));
        }
    }

    #[test]
    fn huge_values_and_huge_environs_are_cut_and_said_so() {
        let b = Builder::new(Layout::for_version(3, 12).expect("3.12"));
        let limits = Limits {
            dict_entries: 100,
            ..Limits::default()
        };
        let r = Reader::new(&b.memory, &b.layout, limits);
        let long_path = format!("/{}", "a".repeat(10_000));
        let mut pairs = vec![
            ("REQUEST_METHOD".to_string(), "GET".to_string()),
            ("PATH_INFO".to_string(), long_path),
        ];
        for i in 0..1000 {
            pairs.push((format!("k{i}"), "v".to_string()));
        }
        let entries: Vec<(usize, usize)> =
            pairs.iter().map(|(k, v)| (b.str(k), b.str(v))).collect();
        let env = b.dict(&entries);
        let info = read(&r, env, None, &Redactor::default())
            .expect("read")
            .expect("found");
        assert_eq!(info.path.as_ref().map(String::len), Some(2048));
        assert_eq!(
            info.truncated,
            [
                "environ: 1002 entries, only the first 100 searched",
                "PATH_INFO: 10001 long, only the first 2048 read",
            ]
        );
    }
}
