//! The sidecar's HTTP side: `/` (dashboard), `/status[/NAME]`, `/json`,
//! `/metrics`, each rendered from the latest [`Published`] round.
//!
//! An HTTP request never attaches to a process: handlers only read the
//! `Arc` the scheduler last published, so the scrape rate cannot set the
//! ptrace rate, and a slow sample cannot stall an answer. Each body is
//! rendered at most once per round (cached by round number), so a thousand
//! clients cost one render. Connections are capped, and a client that sends
//! its headers too slowly, or holds a connection too long, is dropped, so a
//! slow or hostile client cannot starve the others.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Notify, Semaphore, watch};

use super::journal::{self, Level};
use super::scheduler::Published;
use crate::policy::{CheckPolicy, Status, evaluate};
use crate::render;
use crate::report::Report;

/// Most connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 4096;
/// Time a client gets to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection (keep-alive included) may stay open.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Listen backlog asked of the kernel (capped by net.core.somaxconn).
const BACKLOG: u32 = 4096;

/// What the handlers need besides the latest round.
pub struct Site {
    /// The latest round; `None` until the first one finished.
    pub latest: watch::Receiver<Option<Arc<Published>>>,
    /// The policy statuses are judged with (for `/status/NAME`).
    pub policy: CheckPolicy,
    /// Dashboard reload period.
    pub refresh_seconds: u32,
    /// Dashboard title.
    pub title: String,
    cache: Mutex<HashMap<String, (u64, Rendered)>>,
}

#[derive(Clone)]
struct Rendered {
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
}

impl Site {
    /// A site serving what `latest` holds.
    pub fn new(
        latest: watch::Receiver<Option<Arc<Published>>>,
        policy: CheckPolicy,
        refresh_seconds: u32,
        title: String,
    ) -> Site {
        Site {
            latest,
            policy,
            refresh_seconds,
            title,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

/// Bind the listening socket (before READY, so a taken port is a start-up error).
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// Serve until `shutdown` is notified.
pub async fn serve(listener: TcpListener, site: Arc<Site>, shutdown: Arc<Notify>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            () = shutdown.notified() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                journal::log(Level::Warning, &format!("accept failed: {err}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let site = Arc::clone(&site);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let site = Arc::clone(&site);
                async move { Ok::<_, Infallible>(answer(&site, &request)) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

fn answer(site: &Site, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let path = request.uri().path().to_string();
    let Some(published) = site.latest.borrow().clone() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNKNOWN - no sample taken yet\n",
        );
    };
    let cached = site
        .cache
        .lock()
        .ok()
        .and_then(|cache| cache.get(&path).cloned())
        .filter(|(round, _)| *round == published.round)
        .map(|(_, rendered)| rendered);
    let rendered = match cached {
        Some(rendered) => rendered,
        None => {
            let Some(rendered) = render(site, &published, &path) else {
                return plain(
                    StatusCode::NOT_FOUND,
                    "not found: try /, /status, /json or /metrics\n",
                );
            };
            if let Ok(mut cache) = site.cache.lock() {
                // Only known paths reach here, and bodies of earlier rounds
                // are dropped, so the cache holds one round's pages at most.
                cache.retain(|_, (round, _)| *round == published.round);
                cache.insert(path, (published.round, rendered.clone()));
            }
            rendered
        }
    };
    let mut response = Response::new(Full::new(rendered.body));
    *response.status_mut() = rendered.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(rendered.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// Render one endpoint for one round; `None` for an unknown path.
fn render(site: &Site, published: &Published, path: &str) -> Option<Rendered> {
    let mut body = Vec::with_capacity(4096);
    let report = &published.report;
    let evaluation = &published.evaluation;
    let (status, content_type) = match path {
        "/" | "/index.html" => {
            let options = render::html::PageOptions {
                refresh_seconds: Some(site.refresh_seconds),
                history: &published.history,
                title: &site.title,
            };
            render::html::page(&mut body, report, evaluation, &options).ok()?;
            (StatusCode::OK, "text/html; charset=utf-8")
        }
        "/status" => {
            status_text(&mut body, report, evaluation)?;
            (http_status(evaluation.verdict.status), TEXT)
        }
        "/json" => {
            render::json::write_sidecar(
                &mut body,
                report,
                evaluation,
                evaluation.verdict.exit_code,
                &render::json::Sidecar {
                    round: published.round,
                    sampled_at: chrono::DateTime::<chrono::Utc>::from(published.sampled_at)
                        .to_rfc3339(),
                    round_seconds: published.round_seconds,
                },
            )
            .ok()?;
            (StatusCode::OK, "application/json")
        }
        "/metrics" => {
            render::prometheus::write(&mut body, report, evaluation, &published.counters).ok()?;
            (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8")
        }
        other => {
            let name = percent_decode(other.strip_prefix("/status/")?)?;
            let index = report.targets.iter().position(|t| t.name == name)?;
            let single = Report {
                system: report.system.clone(),
                warnings: report.warnings.clone(),
                targets: vec![report.targets[index].clone()],
            };
            let judged = evaluate(&single, &site.policy);
            status_text(&mut body, &single, &judged)?;
            (http_status(judged.verdict.status), TEXT)
        }
    };
    Some(Rendered {
        status,
        content_type,
        body: Bytes::from(body),
    })
}

const TEXT: &str = "text/plain; charset=utf-8";

/// The page's own policy, plus what only a header can say: no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn status_text(
    body: &mut Vec<u8>,
    report: &Report,
    evaluation: &crate::policy::Evaluation,
) -> Option<()> {
    let options = render::text::CheckText {
        layout: render::text::Layout::Nagios,
        verbose: false,
    };
    render::text::check(body, report, evaluation, options).ok()
}

/// 200 while a worker is free (OK, WARNING), 503 when none is or the target
/// cannot be read, so a load balancer or `check_http` can route around it.
pub fn http_status(status: Status) -> StatusCode {
    match status {
        Status::Ok | Status::Warning => StatusCode::OK,
        Status::Critical | Status::Failure => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT));
    response
}

/// `%XX` decoding of a path segment (target names may hold spaces);
/// `None` for malformed escapes or non-UTF-8 results.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = segment.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_policy_extends_the_page_policy() {
        assert_eq!(
            CONTENT_SECURITY_POLICY,
            format!(
                "{}; frame-ancestors 'none'",
                render::html::CONTENT_SECURITY_POLICY
            )
        );
    }

    #[test]
    fn status_codes_follow_free_workers() {
        assert_eq!(http_status(Status::Ok), StatusCode::OK);
        assert_eq!(http_status(Status::Warning), StatusCode::OK);
        assert_eq!(
            http_status(Status::Critical),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            http_status(Status::Failure),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn target_names_are_percent_decoded() {
        assert_eq!(percent_decode("pid%201234").as_deref(), Some("pid 1234"));
        assert_eq!(percent_decode("client1").as_deref(), Some("client1"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
