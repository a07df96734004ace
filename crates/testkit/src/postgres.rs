//! A throwaway PostgreSQL server for tests: Debian's server binaries
//! (`postgresql` package, `/usr/lib/postgresql/<v>/bin`), a fresh cluster in a
//! temporary directory, trust authentication, listening on a free loopback
//! port (and a Unix socket inside the directory).
//!
//! PostgreSQL refuses to run as root, so when the test runs as root the
//! cluster belongs to `nobody` (the directory is chowned to it and the
//! processes switch uid/gid before exec). The server dies with the test:
//! it is stopped on drop (also on panic), and `PR_SET_PDEATHSIG` — set after
//! the uid switch, which would otherwise clear it — kills it if the test
//! process dies first.
//!
//! ```no_run
//! let pg = streamit_testkit::postgres::Postgres::start()?;
//! let url = pg.create_database("suite_a")?; // postgres://postgres@127.0.0.1:<port>/suite_a
//! # Ok::<(), anyhow::Error>(())
//! ```

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set this to a directory holding `initdb`, `postgres`, `pg_isready`, `createdb`
/// to use other binaries than Debian's.
pub const BIN_DIR_ENV: &str = "STREAMIT_PG_BIN";

/// A running PostgreSQL cluster; stopped and deleted on drop.
pub struct Postgres {
    child: Option<Child>,
    bin_dir: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
}

/// The directory with PostgreSQL's server binaries, if installed.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").is_file().then_some(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, dir)| dir)
}

/// Whether [`Postgres::start`] can work here.
pub fn available() -> bool {
    bin_dir().is_some()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// uid/gid of `nobody`, the unprivileged owner of clusters started as root.
fn nobody() -> Result<(u32, u32)> {
    let name = c"nobody";
    // SAFETY: getpwnam returns NULL or a pointer to static storage; we copy out at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!("no 'nobody' user to run PostgreSQL as (it refuses to run as root)");
    }
    // SAFETY: non-null pointer from getpwnam.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok((uid, gid))
}

fn command(bin: &Path, run_as: Option<(u32, u32)>, die_with_test: bool) -> Command {
    let mut cmd = Command::new(bin);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        if let Some((uid, gid)) = run_as {
            // std also drops root's supplementary groups (setgroups(0)) here.
            cmd.uid(uid).gid(gid);
        }
        cmd.process_group(0);
        if die_with_test {
            // SAFETY: prctl is async-signal-safe. std runs pre_exec closures after
            // the uid/gid switch, which would clear the parent-death signal.
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
    cmd
}

impl Postgres {
    /// initdb + start on a free loopback port; waits until it accepts connections.
    pub fn start() -> Result<Postgres> {
        let bin_dir = bin_dir().with_context(|| {
            format!("PostgreSQL server binaries not found (install Debian's `postgresql` package or set {BIN_DIR_ENV})")
        })?;
        let run_as = if is_root() { Some(nobody()?) } else { None };
        let dir = tempfile::Builder::new().prefix("streamit-pg-").tempdir()?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .context("chown of the cluster directory")?;
        }
        let data = dir.path().join("data");
        let out = command(&bin_dir.join("initdb"), run_as, true)
            .current_dir(dir.path())
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        // The port can be taken between probe and bind; retry a few times.
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = crate::free_tcp_port()?;
            let log_path = dir.path().join("postgres.log");
            let log = std::fs::File::create(&log_path)?;
            let mut child = command(&bin_dir.join("postgres"), run_as, true)
                .current_dir(dir.path())
                .arg("-D")
                .arg(&data)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
                .arg(dir.path())
                .args([
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "shared_buffers=16MB",
                ])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting postgres")?;
            match wait_ready(&bin_dir, &mut child, port, Duration::from_secs(30)) {
                Ok(()) => {
                    return Ok(Postgres {
                        child: Some(child),
                        bin_dir,
                        port,
                        dir,
                    });
                }
                Err(e) => {
                    stop_child(child);
                    last_err = format!("{e:#}\n{}", read_log(dir.path()));
                    if !last_err.contains("could not bind") && !last_err.contains("already in use")
                    {
                        break;
                    }
                }
            }
        }
        bail!("PostgreSQL did not start: {last_err}")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster directory (holds `postgres.log` and the Unix socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>` (trust auth, no password).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, database)
    }

    /// Creates an empty database and returns its URL. Names: `[a-z0-9_]`.
    pub fn create_database(&self, name: &str) -> Result<String> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            bail!("database name {name:?}: use a-z, 0-9 and _");
        }
        let out = command(&self.bin_dir.join("createdb"), None, true)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ])
            .stdin(Stdio::null())
            .output()
            .context("running createdb")?;
        if !out.status.success() {
            bail!(
                "createdb {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(self.url(name))
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// Fast shutdown (SIGINT), then SIGKILL to the group after 5 s.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child);
        }
    }
}

fn wait_ready(bin_dir: &Path, child: &mut Child, port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("postgres exited early ({status})");
        }
        let ok = command(&bin_dir.join("pg_isready"), None, true)
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not ready after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop_child(mut child: Child) {
    {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = child.id() as libc::pid_t;
        // SAFETY: plain syscalls on the group we created for this child.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                // Backends that outlived the postmaster, if any.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = child.wait();
    }
}

fn read_log(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        // TempDir removes the cluster; files are owned by `nobody`, which root may delete.
    }
}
