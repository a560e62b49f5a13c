//! The README's first command: `zhw demo` checks the bundled demo server.

use crate::support::zhw;

#[test]
fn demo_reports_two_of_four_workers_busy() {
    let run = zhw(&["demo"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("\nOK - Everything looks fine | busy=2;3;3;0;4 idle=2;;;0;4 workers=4;;;0;\nIdle: 2\tBusy: 2\n"), "{}", run.stdout);
    assert!(run.stdout.contains("profile threadpool"), "{}", run.stdout);
    assert!(run.stdout.contains("in slow_view"), "{}", run.stdout);
}
