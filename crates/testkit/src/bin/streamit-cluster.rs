//! `streamit-cluster`: the scaled-out system on this machine until Ctrl-C (what
//! `scripts/scale-out.sh` runs). PostgreSQL, Redis, two LiveKit nodes on that Redis, two
//! `streamit-server` instances on that PostgreSQL and haproxy in front of them, every one a
//! child process that stops with this one. Prints where everything listens; an approved
//! creator is made (its password goes to a file readable only by you, never to the terminal).

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::PathBuf;
use streamit_testkit::{Cluster, ClusterOptions};

const USAGE: &str = "usage: streamit-cluster [--port BALANCER_PORT] [--creator USERNAME]";

struct Args {
    port: Option<u16>,
    creator: String,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        port: None,
        creator: "creator".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => {
                let v = it.next().context(USAGE)?;
                args.port = Some(v.parse().with_context(|| format!("--port {v}: {USAGE}"))?);
            }
            "--creator" => args.creator = it.next().context(USAGE)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(args)
}

/// `~/.local/share/streamit-scale-out` (created 0700).
fn state_dir() -> Result<PathBuf> {
    let dirs = directories::BaseDirs::new().context("no home directory")?;
    let dir = dirs.data_dir().join("streamit-scale-out");
    std::fs::create_dir_all(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

/// Writes `text` to `path`, readable only by the owner.
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    eprintln!("[scale-out] starting PostgreSQL, Redis, 2 LiveKit nodes, 2 backends, haproxy…");
    // On the main thread: every child gets PR_SET_PDEATHSIG, which fires when the *thread*
    // that forked it ends, so a short-lived thread would take the servers down with it.
    let cluster = Cluster::start_with(ClusterOptions {
        balancer_port: args.port,
        ..Default::default()
    })?;
    let files = announce(&cluster, &args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(wait_for_stop())?;
    eprintln!("[scale-out] stopping…");
    drop(cluster);
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    eprintln!("[scale-out] stopped");
    Ok(())
}

/// Ctrl-C (SIGINT) or SIGTERM.
async fn wait_for_stop() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// Makes the creator, writes the private files and prints where everything listens;
/// returns the files to remove at the end.
fn announce(cluster: &Cluster, args: &Args) -> Result<Vec<PathBuf>> {
    let t = &cluster.startup;

    // An approved creator, made by the server's own command (password on its stdin).
    let password = {
        use rand::distr::{Alphanumeric, SampleString};
        Alphanumeric.sample_string(&mut rand::rng(), 20)
    };
    cluster.backends[0]
        .cli_stdin(
            &["user", "ensure-creator", &args.creator],
            &format!("{password}\n"),
        )
        .context("making the creator")?;
    let dir = state_dir()?;
    let password_file = dir.join("creator.password");
    write_private(&password_file, &format!("{password}\n"))?;
    let (key, secret) = (
        cluster.livekit[0].api_key(),
        cluster.livekit[0].api_secret(),
    );
    let env_file = dir.join("livekit.env");
    write_private(
        &env_file,
        &format!(
            "LIVEKIT_URL_A={}\nLIVEKIT_URL_B={}\nLIVEKIT_API_KEY={key}\nLIVEKIT_API_SECRET={secret}\n",
            cluster.livekit[0].ws_url(),
            cluster.livekit[1].ws_url()
        ),
    )?;

    let url = cluster.url();
    println!(
        "StreamIt scale-out, up in {:.1} s (PostgreSQL {:.1} s, Redis {:.2} s, LiveKit nodes {:.1} s, backends {:.1} s, haproxy {:.1} s)",
        t.total.as_secs_f64(),
        t.postgres.as_secs_f64(),
        t.redis.as_secs_f64(),
        t.livekit.as_secs_f64(),
        t.backends.as_secs_f64(),
        t.balancer.as_secs_f64()
    );
    println!("  API + watch pages (haproxy): {url}");
    println!(
        "  haproxy statistics:          {}",
        cluster.balancer.stats_url()
    );
    for (i, b) in cluster.backends.iter().enumerate() {
        println!("  backend instance {}:          {}", i + 1, b.url());
    }
    for (name, lk) in ["A", "B"].iter().zip(&cluster.livekit) {
        println!(
            "  LiveKit node {name}:              {} (RTC TCP/UDP {:?})",
            lk.ws_url(),
            {
                let (_, tcp, udp) = lk.ports();
                (tcp, udp)
            }
        );
    }
    println!("  Redis:                       {}", cluster.redis.address());
    println!(
        "  PostgreSQL:                  {}",
        cluster.postgres.url("streamit")
    );
    println!(
        "  creator:                     {} (password in {})",
        args.creator,
        password_file.display()
    );
    println!("  LiveKit keys:                {}", env_file.display());
    println!();
    println!("  studio:  STREAMIT_API_URL={url} streamit-studio");
    println!(
        "  CLI:     streamit-studio login --api {url} --username {}",
        args.creator
    );
    println!("  watch:   {url}/{}", args.creator);
    println!("Ctrl-C stops everything.");

    Ok(vec![password_file, env_file])
}
