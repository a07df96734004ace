//! `streamit-studio netem`: rehearse a bad network. Runs a command (usually `publish`) inside
//! a network namespace whose only way out is a seeded model of delay, loss and a rate cap,
//! on every packet it sends and receives, UDP and TCP alike.

use std::ffi::OsString;

use clap::Args;
use streamit_netem::Impairment;

use super::{CliError, CliResult, EXIT_OTHER};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  streamit-studio netem --both delay=75ms,loss=5% -- streamit-studio publish --api http://10.222.1.1:8080 ...
  streamit-studio netem --up rate=300kbit -- sh -c 'streamit-studio publish --api http://$STREAMIT_NETEM_HOST:8080 ...'

The command runs as root in its own network namespace (Linux; needs CAP_NET_ADMIN and iproute2).
From there the host is $STREAMIT_NETEM_HOST (10.222.N.1, printed at the start), and only
servers listening on that address or on 0.0.0.0 are reachable: start the local stack with
`streamit-studio dev --bind 0.0.0.0:8080`, or point at a server on another address of this
machine. Delay is one way: 150 ms of round trip is delay=75ms in both directions.")]
pub struct NetemArgs {
    /// The uplink, from the command out: e.g. `delay=75ms,jitter=10ms,loss=5%,burst=3,rate=300kbit,queue=200ms,seed=7`.
    #[arg(long, value_name = "SPEC")]
    pub up: Option<Impairment>,
    /// The downlink, into the command; same settings.
    #[arg(long, value_name = "SPEC")]
    pub down: Option<Impairment>,
    /// Both directions alike (each with its own random sequence); `--up`/`--down` override it.
    #[arg(long, value_name = "SPEC")]
    pub both: Option<Impairment>,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[cfg(target_os = "linux")]
pub async fn run(a: NetemArgs) -> CliResult {
    use streamit_netem::{Direction, ImpairedLink};

    let link = ImpairedLink::new().map_err(|e| CliError::new(EXIT_OTHER, e.to_string()))?;
    let both = a.both.unwrap_or_default();
    let up = a.up.unwrap_or(both);
    let down = a.down.unwrap_or(both.other_direction());
    link.set(Direction::Up, up);
    link.set(Direction::Down, down);
    eprintln!(
        "netem: up {up}; down {down}; the host is {} (STREAMIT_NETEM_HOST)",
        link.host_addr()
    );
    let (program, args) = a
        .command
        .split_first()
        .ok_or_else(|| CliError::new(EXIT_OTHER, "no command to run"))?;
    let mut cmd: tokio::process::Command = link.command(program).into();
    cmd.args(args);
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::new(EXIT_OTHER, format!("could not start the command: {e}")))?;
    // Ctrl-C reaches the command too (same process group): wait for it to finish its own
    // ending (publish ends the stream) before the link goes.
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = tokio::signal::ctrl_c() => continue,
        }
    }
    .map_err(|e| CliError::new(EXIT_OTHER, format!("waiting for the command: {e}")))?;
    let (up_stats, down_stats) = (link.stats(Direction::Up), link.stats(Direction::Down));
    eprintln!(
        "netem: up {} packets, {} dropped; down {} packets, {} dropped",
        up_stats.packets_in, up_stats.dropped, down_stats.packets_in, down_stats.dropped
    );
    drop(link);
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(CliError::new(
            u8::try_from(code).unwrap_or(EXIT_OTHER),
            format!("the command exited with {code}"),
        )),
        None => Err(CliError::new(
            EXIT_OTHER,
            format!("the command ended by {status}"),
        )),
    }
}

#[cfg(not(target_os = "linux"))]
pub async fn run(_a: NetemArgs) -> CliResult {
    Err(CliError::new(
        EXIT_OTHER,
        "netem needs Linux network namespaces; on this system use a network link conditioner",
    ))
}
