//! `--unit NAME`: the main PID of a systemd unit, asked of systemctl.
//!
//! A Zope client run by systemd has no pidfile to name, and its PID changes
//! on every restart; the unit name does not. systemctl is run with a fixed
//! argument list (never a shell) and a deadline, so a wedged D-Bus cannot
//! stall a sampling round for long.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::TargetError;

/// How long systemctl may take before the unit is reported unresolvable.
const SYSTEMCTL_DEADLINE: Duration = Duration::from_secs(5);
/// The most of systemctl's answer read (`MainPID=` plus a number).
const ANSWER_LIMIT: u64 = 256;

/// The unit's main PID, or why there is none.
pub fn main_pid(unit: &str) -> Result<u32, TargetError> {
    let failed = |reason: String| TargetError::UnitUnresolved {
        unit: unit.to_string(),
        reason,
    };
    let mut child = Command::new("systemctl")
        .args(["show", "--property=MainPID", "--value", "--", unit])
        // Not our notify socket: systemd accepts only zhw's own messages
        // (NotifyAccess=main) and would log each of systemctl's.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_PID")
        .env_remove("WATCHDOG_USEC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| failed(format!("cannot run systemctl: {err}")))?;
    let deadline = Instant::now() + SYSTEMCTL_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed("systemctl did not answer within 5 s".into()));
            }
            Err(err) => return Err(failed(format!("waiting for systemctl: {err}"))),
        }
    };
    let mut answer = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = stdout.take(ANSWER_LIMIT).read_to_string(&mut answer);
    }
    if !status.success() {
        return Err(failed(format!("systemctl show failed ({status})")));
    }
    parse_main_pid(unit, &answer)
}

/// Interpret `systemctl show --value` output: a PID, or 0 when the unit has
/// no running main process.
fn parse_main_pid(unit: &str, answer: &str) -> Result<u32, TargetError> {
    match answer.trim().parse::<u32>() {
        Ok(0) => Err(TargetError::UnitNotRunning {
            unit: unit.to_string(),
        }),
        Ok(pid) => Ok(pid),
        Err(_) => Err(TargetError::UnitUnresolved {
            unit: unit.to_string(),
            reason: "systemctl gave no main PID".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_pid_answers() {
        assert_eq!(parse_main_pid("zope", "1234\n"), Ok(1234));
        assert!(matches!(
            parse_main_pid("zope", "0\n"),
            Err(TargetError::UnitNotRunning { .. })
        ));
        assert!(matches!(
            parse_main_pid("zope", ""),
            Err(TargetError::UnitUnresolved { .. })
        ));
    }
}
