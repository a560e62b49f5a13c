//! Thread names as Python's `threading` knows them, on every interpreter
//! present — including 2.7, where py-spy 0.4.3 finds none (shared case 11:
//! names live in `threading._active[ident]._Thread__name`): named threads, a
//! thread renamed after start (its current name), and a raw
//! `start_new_thread` thread (no name at all).

use zhw::attach::{SampleOptions, Sampler};

use crate::support::{Server, find_interpreter, record, repo, zhw};

fn names(label: &str) {
    let Some(python) = find_interpreter(label, "thread names") else {
        return;
    };
    record(&format!("EXERCISED thread names on {label}"));
    let mut server = Server::start(&python, &repo().join("tests/python/thread_names.py"), &[]);
    let pid = server.pid.to_string();
    let doc = zhw(&["dump", "--format", "json", &pid]).json();
    let threads = doc["targets"][0]["threads"].as_array().expect("threads");
    assert_eq!(threads.len(), 5, "{label}: {threads:?}");
    let mut named: Vec<&str> = threads.iter().filter_map(|t| t["name"].as_str()).collect();
    named.sort();
    assert_eq!(
        named,
        ["MainThread", "http-worker-0", "http-worker-1", "scheduler"],
        "{label}"
    );
    let unnamed: Vec<_> = threads.iter().filter(|t| t["name"].is_null()).collect();
    assert_eq!(unnamed.len(), 1, "{label}");
    assert!(
        unnamed[0]["frames"]
            .as_array()
            .expect("frames")
            .iter()
            .any(|f| f["function"] == "raw_helper"),
        "{label}: the unnamed thread is the raw one: {}",
        unnamed[0]
    );
    let main = threads
        .iter()
        .find(|t| t["name"] == "MainThread")
        .expect("main");
    assert_eq!(main["is_main"], true, "{label}");
    // Case 11: every thread waits on one Event: none is active, none busy.
    // Tolerance: 2.7's Event.wait(timeout) polls, sleeping up to 50 ms
    // between looks, so a sample may catch a thread on a CPU for a moment.
    for thread in threads {
        let polling = label == "pyenv-2.7.18" && thread["activity_detail"] == "on CPU";
        if !polling {
            assert_eq!(thread["activity"], "waiting", "{label}: {thread}");
            assert_eq!(thread["state"], "idle", "{label}: {thread}");
        }
    }
    assert_eq!(
        doc["targets"][0]["warnings"].as_array().map(Vec::len),
        Some(0),
        "{label}: {}",
        doc["targets"][0]["warnings"]
    );
    // The text dump shows the current name of the renamed thread.
    let text = zhw(&["dump", &pid]);
    assert!(text.stdout.contains("\"scheduler\""), "{}", text.stdout);
    assert!(!text.stdout.contains("boot-name"), "{}", text.stdout);

    // One long-lived sampler (as `zhw serve` keeps) sees a later rename.
    let mut sampler = Sampler::attach(server.pid, SampleOptions::default()).expect("attach");
    let has = |sampler: &mut Sampler, name: &str| {
        let snapshot = sampler.sample().expect("sample");
        snapshot
            .threads
            .iter()
            .any(|t| t.name.as_deref() == Some(name))
    };
    assert!(has(&mut sampler, "scheduler"), "{label}");
    server.command("rename night-shift");
    server.wait_line("RENAMED night-shift");
    assert!(has(&mut sampler, "night-shift"), "{label}: rename not seen");
    assert!(!has(&mut sampler, "scheduler"), "{label}");
}

macro_rules! interpreters {
    ($($name:ident => $label:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                names($label);
            }
        )*
    };
}

interpreters! {
    thread_names_on_pyenv_2_7 => "pyenv-2.7.18",
    thread_names_on_pyenv_3_6 => "pyenv-3.6.15",
    thread_names_on_pyenv_3_7 => "pyenv-3.7.16",
    thread_names_on_pyenv_3_8 => "pyenv-3.8.18",
    thread_names_on_pyenv_3_9 => "pyenv-3.9.18",
    thread_names_on_pyenv_3_10 => "pyenv-3.10.13",
    thread_names_on_pyenv_3_11 => "pyenv-3.11.7",
    thread_names_on_pyenv_3_12 => "pyenv-3.12.1",
    thread_names_on_pyenv_3_13 => "pyenv-3.13.0",
    thread_names_on_debian_3_11 => "debian-3.11",
    thread_names_on_sid_3_14 => "sid-3.14",
}
