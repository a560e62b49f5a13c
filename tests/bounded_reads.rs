//! Target memory is untrusted: a request whose environ has 100,000 keys, a
//! 10 MB `PATH_INFO` and a reference to itself, and a local that contains
//! itself, must neither hang zhw nor blow its memory, and the output must say
//! what was cut. On every interpreter present (2.7's hash-table dicts, the
//! 3.6–3.10 and 3.11+ compact layouts).

use crate::live_waitress::assert_no_secrets;
use crate::support::{
    REDACTED_QUERY, SECRET_QUERY, Server, env_for, record, repo, zhw_with_peak_rss,
};

/// zhw's peak RSS on such a target. A debug build peaks at 13–17 MiB here
/// (the figure includes what the test binary had resident when it spawned
/// zhw, about 7 MiB, which Linux folds into a child's `ru_maxrss` at exec).
/// Reading the 10 MB path whole would add at least 20 MiB (bytes, then text).
const PEAK_RSS_KIB: u64 = 28 * 1024;

fn hostile_request(label: &str) {
    let Some(env) = env_for(label, label, "bounded reads") else {
        return;
    };
    record(&format!("EXERCISED bounded reads on {label}"));
    let mut server = Server::start(
        &env.python,
        &repo().join("tests/python/waitress_app.py"),
        &["--threads", "2"],
    );
    server.hold_http_query("huge", SECRET_QUERY);
    let pid = server.pid.to_string();
    let (run, peak_kib) = zhw_with_peak_rss(&["dump", "--locals", "--format", "json", &pid]);
    eprintln!("{label}: zhw peak RSS {peak_kib} KiB");
    assert_eq!(run.code, 0, "{label}: {}", run.stderr);
    assert!(peak_kib < PEAK_RSS_KIB, "{label}: zhw used {peak_kib} KiB");
    assert_no_secrets(&run.stdout, label);
    let doc = run.json();
    let busy: Vec<&serde_json::Value> = doc["targets"][0]["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .filter(|t| t["state"] == "busy" && t["role"] == "worker")
        .collect();
    assert_eq!(busy.len(), 1, "{label}");
    let request = &busy[0]["request"];
    assert_eq!(request["method"], "GET", "{label}: {request}");
    assert_eq!(request["query"], REDACTED_QUERY, "{label}: {request}");
    let path = request["path"].as_str().expect("path");
    assert!(
        path.starts_with("/huge/ppp") && path.len() == 2048,
        "{label}: {path:.80}"
    );
    let truncated: Vec<&str> = request["truncated"]
        .as_array()
        .expect("truncated notes")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(
        truncated.contains(&"PATH_INFO: 10485766 long, only the first 2048 read"),
        "{label}: {truncated:?}"
    );
    // 3.x dicts are searched in insertion order up to a limit (2.7's are
    // probed through their hash table, so nothing is cut there).
    if !label.contains("2.7") {
        assert!(
            truncated.iter().any(|n| n.starts_with("environ: 1000")
                && n.ends_with("entries, only the first 4096 searched")),
            "{label}: {truncated:?}"
        );
    }
    let app = busy[0]["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .find(|f| f["function"] == "wsgi_app")
        .expect("wsgi_app frame");
    let local = |name: &str| -> String {
        app["locals"]
            .as_array()
            .expect("locals")
            .iter()
            .find(|l| l["name"] == name)
            .and_then(|l| l["repr"].as_str())
            .unwrap_or_else(|| panic!("{label}: no local {name}: {app}"))
            .to_string()
    };
    assert_eq!(local("cycle"), "{'me': {...}}", "{label}");
    let environ = local("environ");
    assert!(environ.ends_with('…'), "{label}: {environ}");
    assert!(environ.chars().count() <= 201, "{label}: {environ}");

    // The text dump says the same, on one line each.
    let (text, _) = zhw_with_peak_rss(&["dump", &pid]);
    assert!(
        text.stdout.contains("\tRequest truncated: ")
            && text.stdout.contains("PATH_INFO: 10485766 long"),
        "{label}: {}",
        text.stdout
    );
}

macro_rules! interpreters {
    ($($name:ident => $label:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                hostile_request($label);
            }
        )*
    };
}

interpreters! {
    bounded_reads_on_pyenv_2_7 => "pyenv-2.7.18",
    bounded_reads_on_pyenv_3_6 => "pyenv-3.6.15",
    bounded_reads_on_pyenv_3_7 => "pyenv-3.7.16",
    bounded_reads_on_pyenv_3_8 => "pyenv-3.8.18",
    bounded_reads_on_pyenv_3_9 => "pyenv-3.9.18",
    bounded_reads_on_pyenv_3_10 => "pyenv-3.10.13",
    bounded_reads_on_pyenv_3_11 => "pyenv-3.11.7",
    bounded_reads_on_pyenv_3_12 => "pyenv-3.12.1",
    bounded_reads_on_pyenv_3_13 => "pyenv-3.13.0",
    bounded_reads_on_debian_3_11 => "debian-3.11",
    bounded_reads_on_sid_3_14 => "sid-3.14",
}
