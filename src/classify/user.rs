//! User-defined server profiles from a TOML file, so an in-house server can
//! be classified without changing zhw.
//!
//! ```toml
//! [[profile]]
//! name = "inhouse"
//! description = "ACME's job server"
//! task_loops = [{ function = "worker_loop", file = "acme/pool.py" }]
//! # and/or: threads named like this are workers too (`*` = anything)
//! thread_names = ["acme-worker-*"]
//! idle_waits = [{ function = "wait_for_job", file = "acme/pool.py" },
//!               { file = "threading.py" }, { file = "queue.py" }]
//! # Where a busy worker's request lives (optional): a local variable holding
//! # the WSGI environ dict, or a request object whose `attribute` holds it.
//! requests = [{ function = "handle", file = "acme/pool.py", local = "job", attribute = "environ" },
//!             { local = "env" }]
//! # optional: the profile applies only if one of these is on some thread
//! markers = [{ file = "acme/server.py" }]
//! ```
//!
//! A profile is loaded once per run and lives as long as the process (it is
//! leaked into `'static`, like the built-in ones). Error messages name the
//! file and line but never quote the file's content: under sudo the file
//! may be one the caller cannot read.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::profiles::{self, FrameMatcher, NamePattern, Profile, RequestLocation, WorkerRule};

/// Where zhw looks for profiles when `--profiles` is not given.
pub const SYSTEM_PROFILES: &str = "/etc/zhw/profiles.toml";
/// Profile files larger than this are refused.
const MAX_PROFILES_BYTES: u64 = 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    #[serde(default)]
    profile: Vec<UserProfile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserProfile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    task_loops: Vec<UserMatcher>,
    #[serde(default)]
    thread_names: Vec<String>,
    #[serde(default)]
    idle_waits: Vec<UserMatcher>,
    #[serde(default)]
    requests: Vec<UserRequest>,
    #[serde(default)]
    markers: Vec<UserMatcher>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    function: Option<String>,
    file: Option<String>,
    local: String,
    attribute: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserMatcher {
    function: Option<String>,
    file: String,
}

/// Load `path` (or the system file if `path` is `None` and it exists).
pub fn load(path: Option<&Path>) -> Result<Vec<&'static Profile>, String> {
    let (path, required) = match path {
        Some(path) => (path, true),
        None => (Path::new(SYSTEM_PROFILES), false),
    };
    let shown = path.display().to_string();
    // O_NONBLOCK: a FIFO where the file should be must not hang the check
    // (the type is checked on the open file below).
    let opened = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
    };
    let mut file: File = match opened {
        Ok(file) => file,
        Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new());
        }
        Err(err) => return Err(format!("cannot read profiles file {shown}: {err}")),
    };
    let metadata = file
        .metadata()
        .map_err(|e| format!("cannot read profiles file {shown}: {e}"))?;
    if !metadata.is_file() || metadata.len() > MAX_PROFILES_BYTES {
        return Err(format!(
            "profiles file {shown} is not a regular file of at most 1 MiB"
        ));
    }
    if let Some(caller) = crate::privilege::elevated_caller()
        && !crate::privilege::caller_may_use(&metadata, caller)
    {
        return Err(crate::privilege::refusal(
            "profiles file",
            &shown,
            &metadata,
            caller,
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| format!("cannot read profiles file {shown}: {e}"))?;
    parse(&text, &shown)
}

/// Parse profiles from TOML text; `shown` names the file in errors.
pub fn parse(text: &str, shown: &str) -> Result<Vec<&'static Profile>, String> {
    let parsed: ProfilesFile = toml::from_str(text).map_err(|err| {
        let line = err
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(line) => format!(
                "invalid profiles file {shown}, line {line}: {}",
                err.message()
            ),
            None => format!("invalid profiles file {shown}: {}", err.message()),
        }
    })?;
    let mut loaded: Vec<&'static Profile> = Vec::new();
    for user in parsed.profile {
        let problem = |what: &str| {
            format!(
                "invalid profiles file {shown}: profile {:?}: {what}",
                user.name
            )
        };
        if user.name.is_empty()
            || user
                .name
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(problem("the name must be one word"));
        }
        if profiles::by_name(&user.name).is_some() || loaded.iter().any(|p| p.name == user.name) {
            return Err(problem("this name is already taken"));
        }
        if user.task_loops.is_empty() && user.thread_names.is_empty() {
            return Err(problem(
                "task_loops must name at least one frame, or thread_names one name pattern",
            ));
        }
        if user
            .thread_names
            .iter()
            .any(|p| p.is_empty() || p.chars().all(|c| c == '*') || p.chars().any(char::is_control))
        {
            return Err(problem(
                "a thread_names pattern needs a character other than * (and no control characters)",
            ));
        }
        if user
            .task_loops
            .iter()
            .chain(&user.idle_waits)
            .chain(&user.markers)
            .any(|m| m.file.is_empty())
        {
            return Err(problem("every frame needs a file"));
        }
        if user
            .requests
            .iter()
            .any(|r| r.function.is_some() && r.file.is_none())
        {
            return Err(problem(
                "a request location that names a function needs its file",
            ));
        }
        if user.requests.iter().any(|r| {
            !is_identifier(&r.local) || r.attribute.as_deref().is_some_and(|a| !is_identifier(a))
        }) {
            return Err(problem(
                "a request location's local and attribute must be Python identifiers",
            ));
        }
        let profile = Profile {
            name: user.name.leak(),
            description: user.description.leak(),
            rule: WorkerRule::PoolLoop {
                task_loops: leak_matchers(user.task_loops),
                thread_names: user
                    .thread_names
                    .into_iter()
                    .map(|p| NamePattern(p.leak()))
                    .collect::<Vec<_>>()
                    .leak(),
                idle_waits: leak_matchers(user.idle_waits),
                markers: leak_matchers(user.markers),
            },
            requests: leak_requests(user.requests),
        };
        loaded.push(Box::leak(Box::new(profile)));
    }
    Ok(loaded)
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

fn leak_requests(requests: Vec<UserRequest>) -> &'static [RequestLocation] {
    requests
        .into_iter()
        .map(|r| RequestLocation {
            frame: r.file.map(|file| FrameMatcher {
                function: r.function.map(|f| &*f.leak()),
                file_suffix: file.leak(),
            }),
            local: r.local.leak(),
            attribute: r.attribute.map(|a| &*a.leak()),
        })
        .collect::<Vec<_>>()
        .leak()
}

fn leak_matchers(matchers: Vec<UserMatcher>) -> &'static [FrameMatcher] {
    matchers
        .into_iter()
        .map(|m| FrameMatcher {
            function: m.function.map(|f| &*f.leak()),
            file_suffix: m.file.leak(),
        })
        .collect::<Vec<_>>()
        .leak()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[profile]]
name = "inhouse"
description = "ACME's job server"
task_loops = [{ function = "worker_loop", file = "acme/pool.py" }]
thread_names = ["acme-*"]
idle_waits = [{ function = "wait_for_job", file = "acme/pool.py" }, { file = "threading.py" }]
requests = [{ function = "handle", file = "acme/pool.py", local = "job", attribute = "environ" },
            { local = "env" }]
"#;

    #[test]
    fn parses_a_profile() {
        let loaded = parse(GOOD, "p.toml").expect("valid");
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].name, "inhouse");
        let WorkerRule::PoolLoop {
            task_loops,
            thread_names,
            idle_waits,
            markers,
        } = &loaded[0].rule
        else {
            panic!("a pool profile")
        };
        assert!(task_loops[0].matches("worker_loop", "/srv/acme/pool.py"));
        assert!(thread_names[0].matches("acme-7"));
        assert!(idle_waits[1].matches("Condition.wait", "/usr/lib/python3.11/threading.py"));
        let requests = loaded[0].requests;
        assert_eq!(requests.len(), 2);
        assert_eq!(
            (requests[0].local, requests[0].attribute),
            ("job", Some("environ"))
        );
        assert!(
            requests[0]
                .frame
                .as_ref()
                .is_some_and(|m| m.matches("handle", "/srv/acme/pool.py"))
        );
        assert_eq!(
            (requests[1].frame.as_ref(), requests[1].local),
            (None, "env")
        );
        // The fallback comes after the profile's own locations.
        let all: Vec<&str> = loaded[0].request_locations().map(|r| r.local).collect();
        assert_eq!(all, ["job", "env", "environ"]);
        assert!(markers.is_empty(), "markers are optional");
    }

    #[test]
    fn parses_markers() {
        let text =
            format!("{GOOD}markers = [{{ function = \"serve\", file = \"acme/server.py\" }}]\n");
        let loaded = parse(&text, "p.toml").expect("valid");
        let WorkerRule::PoolLoop { markers, .. } = &loaded[0].rule else {
            panic!("a pool profile")
        };
        assert_eq!(markers.len(), 1);
        assert!(markers[0].matches("Server.serve", "/srv/acme/server.py"));
        let empty_file = format!("{GOOD}markers = [{{ file = \"\" }}]\n");
        let err = parse(&empty_file, "p.toml").expect_err("empty marker file");
        assert!(err.contains("every frame needs a file"), "{err}");
    }

    #[test]
    fn errors_name_file_line_and_problem_without_content() {
        let rows = [
            (
                "[[profile]]\nname = \"x\"\ntask_loops = [{ function = \"f\" }]\n",
                "line 3",
                "missing field `file`",
            ),
            (
                "[[profile]]\nname = \"x\"\nsecret_key = \"hunter2\"\ntask_loops = []\n",
                "line 3",
                "unknown field `secret_key`",
            ),
            ("[[profile]\nname = 1\n", "line 1", ""),
            (
                "[[profile]]\nname = \"waitress\"\ntask_loops = [{ file = \"a.py\" }]\n",
                "profile \"waitress\"",
                "already taken",
            ),
            (
                "[[profile]]\nname = \"y\"\ntask_loops = []\n",
                "profile \"y\"",
                "at least one frame",
            ),
            (
                "[[profile]]\nname = \"n\"\nthread_names = [\"**\"]\n",
                "profile \"n\"",
                "other than *",
            ),
            (
                "[[profile]]\nname = \"z\"\ntask_loops = [{ file = \"a.py\" }]\nrequests = [{ function = \"f\", local = \"e\" }]\n",
                "profile \"z\"",
                "needs its file",
            ),
            (
                "[[profile]]\nname = \"z\"\ntask_loops = [{ file = \"a.py\" }]\nrequests = [{ local = \"a.b\" }]\n",
                "profile \"z\"",
                "identifiers",
            ),
        ];
        for (text, place, problem) in rows {
            let err = parse(text, "/etc/zhw/profiles.toml").expect_err(text);
            assert!(
                err.starts_with("invalid profiles file /etc/zhw/profiles.toml"),
                "{err}"
            );
            assert!(err.contains(place) && err.contains(problem), "{err}");
            assert!(!err.contains("hunter2"), "content leaked: {err}");
        }
    }

    #[test]
    fn a_missing_system_file_is_no_error() {
        assert!(load(None).is_ok_and(|p| p.is_empty()) || Path::new(SYSTEM_PROFILES).exists());
        assert!(load(Some(Path::new("/nonexistent/zhw.toml"))).is_err());
    }
}
