//! Child processes that cannot outlive their test, and free loopback ports.

use anyhow::{Context, Result};
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1, picked at random below the kernel's ephemeral range.
///
/// It is released before returning, so another process could take it first. Ports the kernel
/// hands out (`bind(0)`, and the local end of every outgoing connection) come from the
/// ephemeral range, which a busy suite cycles through quickly: CI once lost a backend's
/// port to one between the pick and the bind. Below that range only another explicit pick
/// can collide, which the random choice makes unlikely; starters retry on a bind failure.
pub fn free_tcp_port() -> Result<u16> {
    free_port(|port| TcpListener::bind(("127.0.0.1", port)).is_ok()).map_or_else(
        || Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()),
        Ok,
    )
}

/// Like [`free_tcp_port`] for UDP.
pub fn free_udp_port() -> Result<u16> {
    free_port(|port| UdpSocket::bind(("127.0.0.1", port)).is_ok()).map_or_else(
        || Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port()),
        Ok,
    )
}

/// The lowest port of the range picks come from; below it are well-known and registered
/// services more likely to be in use.
const PICK_FLOOR: u16 = 10_000;

/// A random port between [`PICK_FLOOR`] and the ephemeral range that `is_free` accepts.
/// `None` when the ephemeral range leaves no room below it or nothing free was found.
fn free_port(is_free: impl Fn(u16) -> bool) -> Option<u16> {
    use rand::Rng;
    let ceiling = ephemeral_floor();
    if ceiling <= PICK_FLOOR + 1_000 {
        return None;
    }
    let mut rng = rand::rng();
    (0..200)
        .map(|_| rng.random_range(PICK_FLOOR..ceiling))
        .find(|port| is_free(*port))
}

/// The first port of the kernel's ephemeral range (Linux reads it; elsewhere the IANA
/// range's start, which Windows and macOS use).
fn ephemeral_floor() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(49_152)
}

/// CPU time (user + system) process `pid` has used so far, from `/proc/<pid>/stat` (Linux):
/// what benchmarks state a server cost. `None` when it is gone or elsewhere.
pub fn process_cpu_time(pid: u32) -> Option<Duration> {
    stat_cpu_time(&format!("/proc/{pid}/stat"), 11)
}

/// CPU time (user + system) of this process's children that have ended and been waited
/// for (Linux): what a batch of viewer processes cost.
pub fn children_cpu_time() -> Option<Duration> {
    stat_cpu_time("/proc/self/stat", 13)
}

/// Two adjacent tick counts of a `/proc/*/stat` line, `at` counted from the first field
/// after the command name (utime, stime at 11; cutime, cstime at 13).
fn stat_cpu_time(path: &str, at: usize) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(at)?.parse::<u64>().ok()? + fields.get(at + 1)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant of the system; no memory is involved.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|t| *t > 0)?;
    Some(Duration::from_micros(ticks * 1_000_000 / per_second))
}

/// Makes `cmd` die with the test process and lead its own process group.
pub fn tie_to_test(cmd: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// Same for tokio's Command.
pub(crate) fn tie_to_test_tokio(cmd: &mut tokio::process::Command) {
    #[cfg(unix)]
    {
        cmd.process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: as in `tie_to_test`.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.kill_on_drop(true);
}

/// A running child with its log file; terminated (TERM, then KILL) on drop.
pub(crate) struct Guarded {
    pub child: Child,
    pub log: PathBuf,
}

impl Guarded {
    pub fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Result<Self> {
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdout(out).stderr(err);
        tie_to_test(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Guarded { child, log })
    }

    /// `Some(status)` if the process already ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn stop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }

    /// Sends `sig` to the child's process group (it leads one, see [`tie_to_test`]).
    /// Returns whether it was delivered.
    pub fn signal_group(&self, sig: libc::c_int) -> bool {
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return false;
        };
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
        unsafe { libc::kill(-pid, sig) == 0 }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM to the child's process group, SIGKILL after `grace`, then reap.
pub(crate) fn terminate(child: &mut Child, grace: Duration) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    #[cfg(unix)]
    {
        let pgid = child.id() as libc::pid_t;
        // SAFETY: plain syscall; the group was created for this child by `tie_to_test`.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        // A stopped child (LiveKit::pause) only acts on the SIGTERM once continued.
        unsafe { libc::kill(-pgid, libc::SIGCONT) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                // Also reap anything left in the group.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Restarts `what` with `start` until it comes up or 10 s pass: a server restarted on the
/// same ports may find its old sockets still lingering for a moment.
pub(crate) fn restart_retrying<T>(
    what: &str,
    mut start: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match start() {
            Ok(v) => return Ok(v),
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("{what} restart retry: {e:#}");
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            Err(e) => return Err(e),
        }
    }
}
