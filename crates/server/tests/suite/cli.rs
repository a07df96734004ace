//! The binary's own contract: config from the environment, defaults, admin
//! commands, secrets kept out of output, and the bench subcommand.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_streamit-server");

fn cmd(home: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("RUST_LOG", "info");
    c
}

#[test]
fn defaults_sqlite_in_the_data_dir_with_wal_and_warn_about_dev_keys() {
    let home = tempfile::tempdir().unwrap();
    let mut child = cmd(home.path())
        .env("STREAMIT_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("ready line");
    assert!(
        line.starts_with("STREAMIT_SERVER_LISTENING http://127.0.0.1:"),
        "{line}"
    );
    let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
    let db = home.path().join(".local/share/streamit-server/streamit.db");
    assert!(db.is_file(), "no database at {}", db.display());
    assert!(
        home.path()
            .join(".local/share/streamit-server/streamit.db-wal")
            .exists(),
        "not in WAL mode"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "graceful stop: {}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PUBLIC development key pair"), "{stderr}");
    assert!(
        !stderr.contains("\"secret\""),
        "the dev secret is printed: {stderr}"
    );
    assert!(rx.try_recv().is_err(), "more than one stdout line");
}

#[test]
fn config_errors_are_reported_without_secrets() {
    let home = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/x.db", home.path().display());
    let out = cmd(home.path())
        .env("DATABASE_URL", &db)
        .env("LIVEKIT_API_SECRET", "very-secret-value-1234567890")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LIVEKIT_API_KEY"), "{stderr}");
    assert!(!stderr.contains("very-secret-value"), "{stderr}");

    let out = cmd(home.path())
        .env("DATABASE_URL", "mysql://x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));

    let out = cmd(home.path())
        .env("DATABASE_URL", &db)
        .env("STREAMIT_TOKEN_TTL", "forever")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("STREAMIT_TOKEN_TTL"));

    let cfg = home.path().join("c.toml");
    std::fs::write(
        &cfg,
        "livekit_api_secret = \"file-secret-abcdef\"\nbogus = 1\n",
    )
    .unwrap();
    let out = cmd(home.path())
        .env("DATABASE_URL", &db)
        .env("STREAMIT_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid config file"), "{stderr}");
    assert!(!stderr.contains("file-secret"), "{stderr}");
}

#[test]
fn admin_commands() {
    let home = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/admin.db", home.path().display());
    let run = |args: &[&str], password: Option<&str>| {
        let mut c = cmd(home.path());
        c.env("DATABASE_URL", &db).args(args);
        if let Some(p) = password {
            c.env("STREAMIT_USER_PASSWORD", p);
        }
        c.output().unwrap()
    };
    let out = run(&["migrate"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &["user", "create", "Root", "--role", "admin"],
        Some("root-password"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let u: streamit_api::User = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (u.username.as_str(), u.role, u.is_approved),
        ("root", streamit_api::Role::Admin, true)
    );
    assert!(
        !run(&["user", "create", "root"], Some("root-password"))
            .status
            .success(),
        "duplicate"
    );
    assert!(
        !run(&["user", "create", "shorty"], Some("short"))
            .status
            .success(),
        "short password"
    );
    assert!(
        !run(&["user", "create", "x"], Some("long-enough-pw"))
            .status
            .success(),
        "bad username"
    );
    let out = run(&["user", "set-role", "root", "creator"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"role\":\"creator\""));
    let list = run(&["user", "list"], None);
    assert_eq!(String::from_utf8_lossy(&list.stdout).lines().count(), 1);
    assert!(!run(&["user", "approve", "ghost"], None).status.success());
    assert!(!run(&["no-such-command"], None).status.success());
}

#[test]
fn bench_subcommand_prints_figures() {
    let home = tempfile::tempdir().unwrap();
    let out = cmd(home.path())
        .args(["bench", "--duration", "1s", "--concurrency", "4"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for endpoint in ["POST /api/viewer/token", "GET /api/viewer/live"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(endpoint))
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(
            line.contains("req/s") && line.contains("p50") && line.contains("p99"),
            "{line}"
        );
        assert!(line.contains(" 0 errors"), "{line}");
    }
}

#[test]
fn set_password_replaces_the_hash_and_logs_the_user_out() {
    let home = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/pw.db", home.path().display());
    let run = |args: &[&str], password: &str| {
        cmd(home.path())
            .env("DATABASE_URL", &url)
            .env("STREAMIT_USER_PASSWORD", password)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(
        &["user", "create", "dana", "--role", "creator"],
        "first-password",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(streamit_server::db::Db::connect(&url)).unwrap();
    let user = rt.block_on(db.user_by_username("dana")).unwrap().unwrap();
    let now = streamit_server::db::now_ms();
    rt.block_on(db.insert_auth_session("tokenhash", &user.id, now, now + 60_000))
        .unwrap();

    let out = run(&["user", "set-password", "Dana"], "second-password");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("second-password")
            && !String::from_utf8_lossy(&out.stderr).contains("second-password"),
        "the password is echoed"
    );
    assert_password_changed(&rt, &db, "dana", "second-password", "first-password", now);
    assert!(
        !run(&["user", "set-password", "dana"], "short")
            .status
            .success()
    );
    assert!(
        !run(&["user", "set-password", "ghost"], "long-enough-pw")
            .status
            .success()
    );
    rt.block_on(db.close());
}

#[test]
fn ensure_creator_creates_approves_and_sets_the_password_only_when_it_differs() {
    let home = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ensure.db", home.path().display());
    // The password on stdin, as `streamit-studio dev` passes it.
    let ensure = |username: &str, password: &str| {
        use std::io::Write;
        let mut child = cmd(home.path())
            .env("DATABASE_URL", &url)
            .args(["user", "ensure-creator", username])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{password}").unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !String::from_utf8_lossy(text).contains(password),
                "the password is echoed"
            );
        }
        out
    };
    let user = |out: &std::process::Output| -> streamit_api::User {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // Missing: created as an approved creator.
    let first = user(&ensure("Local_Dev", "first-password"));
    assert_eq!(
        (first.username.as_str(), first.role, first.is_approved),
        ("local_dev", streamit_api::Role::Creator, true)
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(streamit_server::db::Db::connect(&url)).unwrap();
    let row = rt
        .block_on(db.user_by_username("local_dev"))
        .unwrap()
        .unwrap();
    let now = streamit_server::db::now_ms();
    rt.block_on(db.insert_auth_session("tokenhash", &row.id, now, now + 60_000))
        .unwrap();

    // Same password, approval withdrawn meanwhile: approved again, hash and sessions kept.
    let out = cmd(home.path())
        .env("DATABASE_URL", &url)
        .args(["user", "revoke", "local_dev"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let again = user(&ensure("local_dev", "first-password"));
    assert_eq!(
        (again.id.as_str(), again.is_approved),
        (first.id.as_str(), true)
    );
    let after = rt
        .block_on(db.user_by_username("local_dev"))
        .unwrap()
        .unwrap();
    assert_eq!(after.password_hash, row.password_hash, "hash rewritten");
    assert!(
        rt.block_on(db.user_by_session("tokenhash", now))
            .unwrap()
            .is_some(),
        "sessions ended although the password did not change"
    );

    // Another password: it replaces the old one and ends the sessions.
    user(&ensure("local_dev", "second-password"));
    assert_password_changed(
        &rt,
        &db,
        "local_dev",
        "second-password",
        "first-password",
        now,
    );

    // An existing viewer is approved but keeps their role.
    let out = cmd(home.path())
        .env("DATABASE_URL", &url)
        .env("STREAMIT_USER_PASSWORD", "viewer-password")
        .args(["user", "create", "vic"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let vic = user(&ensure("vic", "viewer-password"));
    assert_eq!(vic.role, streamit_api::Role::Viewer);

    assert!(!ensure("local_dev", "short").status.success(), "short");
    assert!(!ensure("x", "long-enough-pw").status.success(), "bad name");
    rt.block_on(db.close());
}

/// `username`'s password is now `new`, no longer `old`, and the session `tokenhash` (valid at
/// `now` before the change) ended with it.
fn assert_password_changed(
    rt: &tokio::runtime::Runtime,
    db: &streamit_server::db::Db,
    username: &str,
    new: &str,
    old: &str,
    now: i64,
) {
    let after = rt.block_on(db.user_by_username(username)).unwrap().unwrap();
    assert!(streamit_server::auth::verify_password(
        new,
        &after.password_hash
    ));
    assert!(!streamit_server::auth::verify_password(
        old,
        &after.password_hash
    ));
    assert!(
        rt.block_on(db.user_by_session("tokenhash", now))
            .unwrap()
            .is_none(),
        "the old session survived a password change"
    );
}
