//! The check against Zope's real ZServer worker pool (ZServer 4.0.2 from
//! PyPI, Python 2.7): workers loop in `ZServerPublisher.__init__` and park in
//! `ZRendevous.accept`, exactly as in a Zope 2/4 client. Busy workers'
//! requests are read from the publisher loop: the WSGI environ
//! (`Zope2WSGI`) and the classic ZPublisher `HTTPRequest` (`Zope2`).

use crate::live_waitress::assert_no_secrets;
use crate::support::{REDACTED_QUERY, Server, env_for, record, repo, zhw};

#[test]
fn zserver_pool_on_python_2_7() {
    if std::env::var_os("ZHW_SKIP_ZSERVER").is_some() {
        record("SKIP zserver on pyenv-2.7.18: ZHW_SKIP_ZSERVER is set");
        return;
    }
    let Some(env) = env_for("pyenv-2.7.18", "zserver-2.7", "zserver") else {
        return;
    };
    record(&format!(
        "EXERCISED ZServer {} on pyenv-2.7.18 ({})",
        env.package_version,
        env.python.display()
    ));
    let mut server = Server::start(
        &env.python,
        &repo().join("tests/python/zserver_app.py"),
        &["--threads", "4"],
    );
    let pid = server.pid.to_string();

    let run = zhw(&["check", &pid]);
    assert_eq!(
        run.first_line().split(" | ").next(),
        Some("OK - Everything looks fine"),
        "{}",
        run.stdout
    );
    assert_eq!(run.line(1), "Idle: 4\tBusy: 0");
    let json = zhw(&["check", "--format", "json", &pid]).json();
    assert_eq!(json["targets"][0]["profile"], "zserver");

    server.command("hold sleep");
    server.wait_line("HOLD sleep");
    server.command("hold lock zope2");
    server.wait_line("HOLD lock");
    let run = zhw(&["check", &pid]);
    assert_eq!(run.line(1), "Idle: 2\tBusy: 2", "{}", run.stdout);
    assert_eq!(run.code, 0);

    // Both requests, whichever way they were published.
    let run = zhw(&["check", "--format", "json", &pid]);
    assert_no_secrets(&run.stdout, "zserver");
    let json = run.json();
    let mut paths = Vec::new();
    for thread in json["targets"][0]["threads"].as_array().expect("threads") {
        if thread["state"] != "busy" || thread["role"] != "worker" {
            continue;
        }
        let request = &thread["request"];
        assert_eq!(request["method"], "GET", "{thread}");
        assert_eq!(request["query"], REDACTED_QUERY, "{request}");
        assert_eq!(request["host"], "zope.test", "{request}");
        assert_eq!(request["client"], "192.0.2.7", "{request}");
        assert_eq!(request["user_agent"], "zhw-test/1", "{request}");
        let functions: Vec<&str> = thread["frames"]
            .as_array()
            .expect("frames")
            .iter()
            .filter_map(|f| f["function"].as_str())
            .collect();
        // The classic path runs through ZServer's real publish_module_standard.
        if request["path"] == "/hold/lock" {
            assert!(
                functions.contains(&"publish_module_standard"),
                "{functions:?}"
            );
        }
        paths.push(request["path"].as_str().unwrap_or("").to_string());
    }
    paths.sort();
    assert_eq!(paths, ["/hold/lock", "/hold/sleep"]);
    let text = zhw(&["dump", "--locals", &pid]);
    assert_no_secrets(&text.stdout, "zserver");
    assert!(
        text.stdout.contains(&format!(
            "\tRequest: GET /hold/lock?{REDACTED_QUERY} (zope.test, 192.0.2.7, zhw-test/1)\n"
        )),
        "{}",
        text.stdout
    );

    server.command("hold cond");
    server.wait_line("HOLD cond");
    server.command("hold spin");
    server.wait_line("HOLD spin");
    let run = zhw(&["check", &pid]);
    assert_eq!(
        run.first_line().split(" | ").next(),
        Some("CRITICAL - No more Zeo client available"),
        "{}",
        run.stdout
    );
    assert_eq!(run.line(1), "Idle: 0\tBusy: 4");
    assert_eq!(run.code, 3);
    // The busy stacks run through the real ZServer publisher loop.
    assert!(
        run.stdout.contains("ZServer/PubCore/ZServerPublisher.py"),
        "{}",
        run.stdout
    );

    let classic = zhw(&["check", "--layout", "classic", &pid]);
    assert!(
        classic
            .stdout
            .ends_with("Idle: 0\tBusy: 4\nCRITICAL - No more Zeo client available\n"),
        "{}",
        classic.stdout
    );
}
