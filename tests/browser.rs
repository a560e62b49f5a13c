//! The HTML report in a real browser (Debian's chromium, headless): the page
//! loads, shows the status and a busy thread's request, and markup read from
//! the target is shown as text, never run — checked on the DOM the browser
//! built, not on the bytes zhw wrote. Without chromium these tests print a
//! SKIP line (tests/support/browser.rs).

use crate::support::browser::{chromium, dump_dom, skip};
use crate::support::{record, repo, zhw};

/// A recording whose busy worker serves `/x<script>…</script>` and runs a
/// function named `hold_cond<img src=x onerror=…>` (waitress-3.12-two-busy
/// with request objects added).
const HOSTILE: &str = "tests/fixtures/waitress-3.12-hostile-request.json";

fn html_report(fixture: &str) -> String {
    let path = repo().join(fixture).to_string_lossy().into_owned();
    let run = zhw(&["check", "--format", "html", "--replay", &path]);
    assert_eq!(run.code, 0, "two busy of four is OK: {}", run.stderr);
    run.stdout
}

/// The text of the DOM's `<title>`.
fn title(dom: &str) -> &str {
    let start = dom.find("<title>").map(|i| i + "<title>".len());
    let end = dom.find("</title>");
    match (start, end) {
        (Some(start), Some(end)) if start <= end => &dom[start..end],
        _ => panic!("no <title> in the DOM:\n{dom}"),
    }
}

fn load(html: &str) -> Option<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("report.html");
    std::fs::write(&page, html).expect("write page");
    dump_dom(&page.to_string_lossy())
}

#[test]
fn html_report_shows_a_hostile_request_as_text() {
    let Some(dom) = load(&html_report(HOSTILE)) else {
        return skip("html_report_shows_a_hostile_request_as_text");
    };
    if let Some(browser) = chromium() {
        record(&format!("EXERCISED HTML report in {}", browser.display()));
    }
    assert_eq!(
        title(&dom),
        "zhw check — OK",
        "the page's own title, not PWNED"
    );
    assert!(
        dom.contains("<h1 class=\"status-line\">OK - Everything looks fine</h1>"),
        "{dom}"
    );
    assert!(dom.contains("<span class=\"badge st-ok\">OK</span>"));
    // The request line and the function name, as text nodes (a serialised DOM
    // escapes `<` and `>` in text, nothing else).
    assert!(
        dom.contains(
            "<code>GET /x&lt;script&gt;document.title='PWNED'&lt;/script&gt;?user=alice&amp;password=***</code>"
        ),
        "{dom}"
    );
    assert!(
        dom.contains("hold_cond&lt;img src=x onerror=\"document.title='PWNED'\"&gt;"),
        "{dom}"
    );
    assert!(dom.contains("<code>POST /site/edit?id=42</code>"));
    // The page has neither scripts nor images of its own: any would be injected.
    assert!(!dom.contains("<script"), "a script element in the DOM");
    assert!(!dom.contains("<img"), "an img element in the DOM");
}

/// Defence in depth: were escaping ever broken, the page's
/// Content-Security-Policy would still stop the script. The positive control
/// (the same page without the policy) shows this browser does run scripts
/// here, so the first result means something.
#[test]
fn content_security_policy_stops_a_script_that_got_in() {
    let page = html_report(HOSTILE);
    let csp_meta = format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
        zhw::render::html::CONTENT_SECURITY_POLICY
    );
    assert!(page.contains(&csp_meta), "the page declares the policy");
    let injected = page.replacen("<main>", "<main><script>document.title='RAN'</script>", 1);
    let Some(guarded) = load(&injected) else {
        return skip("content_security_policy_stops_a_script_that_got_in");
    };
    assert_eq!(
        title(&guarded),
        "zhw check — OK",
        "the policy blocked the script"
    );
    let unguarded = load(&injected.replacen(&csp_meta, "", 1)).expect("chromium ran a moment ago");
    assert_eq!(
        title(&unguarded),
        "RAN",
        "without the policy the script runs"
    );
}
