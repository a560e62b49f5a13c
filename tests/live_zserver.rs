//! The check against Zope's real ZServer worker pool (ZServer 4.0.2 from
//! PyPI, Python 2.7): workers loop in `ZServerPublisher.__init__` and park in
//! `ZRendevous.accept`, exactly as in a Zope 2/4 client.

use crate::support::{Server, env_for, record, repo, zhw};

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
    server.command("hold lock");
    server.wait_line("HOLD lock");
    let run = zhw(&["check", &pid]);
    assert_eq!(run.line(1), "Idle: 2\tBusy: 2", "{}", run.stdout);
    assert_eq!(run.code, 0);

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
