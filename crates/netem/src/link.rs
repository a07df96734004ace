//! The impaired path: a network namespace whose only way out is a TUN pair we pump by hand.
//!
//! The kernel's `netem` qdisc is not available everywhere (not on our CI machines), and a UDP
//! relay only works for clients that can be told to use it. Routing a namespace through two
//! TUN devices puts our own model on every IP packet instead: the program inside needs no
//! change, and UDP media, TCP signalling and ICE-TCP are impaired alike. Needs CAP_NET_ADMIN.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use str0m_netem::{Input, Netem, NetemConfig, Output};

use crate::Impairment;

/// The host side's address in every link is 10.222.N.1, the namespace's 10.222.N.2.
const SUBNET_FIRST: u8 = 10;
const SUBNET_SECOND: u8 = 222;
/// How long a pump sleeps at most before it looks at its stop flag and new settings.
const TICK: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("an impaired link needs CAP_NET_ADMIN (run as root): {0}")]
    NotPermitted(String),
    #[error("`{command}` failed: {stderr}")]
    Ip { command: String, stderr: String },
    #[error("could not run `ip` (Debian: apt install iproute2): {0}")]
    NoIp(std::io::Error),
    #[error("TUN device: {0}")]
    Tun(#[from] tun::Error),
    #[error("no free link slot: 250 impaired links already exist")]
    Exhausted,
}

/// Which way a packet travels. "Up" is the creator's uplink: from the namespace out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// Packet counts of one direction since the link was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Lost by the model or dropped at a full bottleneck queue.
    pub dropped: u64,
}

/// A network namespace joined to the host through a pair of impairment models. Dropping it
/// stops the pumps, which removes both TUN devices, and deletes the namespace.
pub struct ImpairedLink {
    netns: String,
    index: u8,
    up: Arc<Pump>,
    down: Arc<Pump>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl ImpairedLink {
    /// A fresh namespace with a perfect link; set impairments with [`Self::set`].
    pub fn new() -> Result<Self, LinkError> {
        let (index, host) = claim_slot()?;
        let netns = format!("streamit-netem-{index}");
        // A namespace of that name can only be a leftover of a killed process: the slot's
        // device is ours.
        let _ = ip(&["netns", "del", &netns]);
        ip(&["netns", "add", &netns])?;
        match Self::wire(&netns, index, host) {
            Ok(link) => Ok(link),
            Err(e) => {
                let _ = ip(&["netns", "del", &netns]);
                Err(e)
            }
        }
    }

    fn wire(netns: &str, index: u8, host: Arc<tun::Device>) -> Result<Self, LinkError> {
        let host_dev = format!("snh{index}");
        let ns_dev = format!("snn{index}");
        let inside = open_tun(&ns_dev)?;
        let link = |last: u8| format!("{SUBNET_FIRST}.{SUBNET_SECOND}.{index}.{last}/30");
        ip(&["link", "set", &ns_dev, "netns", netns])?;
        ip(&["-n", netns, "link", "set", "lo", "up"])?;
        ip(&["-n", netns, "addr", "add", &link(2), "dev", &ns_dev])?;
        ip(&["-n", netns, "link", "set", &ns_dev, "up"])?;
        ip(&["-n", netns, "route", "add", "default", "dev", &ns_dev])?;
        ip(&["addr", "add", &link(1), "dev", &host_dev])?;
        ip(&["link", "set", &host_dev, "up"])?;

        let stop = Arc::new(AtomicBool::new(false));
        let up = Arc::new(Pump::new(Impairment::none().to_netem()));
        let down = Arc::new(Pump::new(Impairment::none().to_netem()));
        let mut threads = Vec::new();
        for (pump, from, to, name) in [
            (up.clone(), inside.clone(), host.clone(), "netem-up"),
            (down.clone(), host.clone(), inside.clone(), "netem-down"),
        ] {
            let stop = stop.clone();
            let thread = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || pump.run(&from, &to, &stop))
                .map_err(|e| LinkError::Tun(tun::Error::Io(e)))?;
            threads.push(thread);
        }
        Ok(Self {
            netns: netns.to_string(),
            index,
            up,
            down,
            stop,
            threads,
        })
    }

    /// The host as the namespace reaches it: servers the program inside talks to listen here
    /// (or on 0.0.0.0) and advertise it.
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(SUBNET_FIRST, SUBNET_SECOND, self.index, 1)
    }

    /// The program inside, as the host sees it.
    pub fn namespace_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(SUBNET_FIRST, SUBNET_SECOND, self.index, 2)
    }

    pub fn namespace(&self) -> &str {
        &self.netns
    }

    /// Changes one direction from now on; packets already in flight keep their fate.
    pub fn set(&self, direction: Direction, impairment: Impairment) {
        self.pump(direction).set(impairment.to_netem());
    }

    /// Both directions alike, each with its own random sequence.
    pub fn set_both(&self, impairment: Impairment) {
        self.set(Direction::Up, impairment);
        self.set(Direction::Down, impairment.other_direction());
    }

    pub fn stats(&self, direction: Direction) -> LinkStats {
        self.pump(direction).stats()
    }

    /// `program` run inside the namespace (through `ip netns exec`), with
    /// `STREAMIT_NETEM_HOST` set to [`Self::host_addr`].
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns])
            .arg(program)
            .env("STREAMIT_NETEM_HOST", self.host_addr().to_string());
        cmd
    }

    fn pump(&self, direction: Direction) -> &Pump {
        match direction {
            Direction::Up => &self.up,
            Direction::Down => &self.down,
        }
    }
}

impl Drop for ImpairedLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // The pumps held the last references to the TUN devices: they are gone now.
        let _ = ip(&["netns", "del", &self.netns]);
    }
}

/// One direction: packets read from one TUN device, through the model, into the other.
struct Pump {
    pending: Mutex<Option<NetemConfig>>,
    /// Settings handed over / taken up by the pump, so `set` returns once they apply.
    asked: AtomicU64,
    applied: AtomicU64,
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    /// Packets in less packets out less those still in the model, as the pump sees them
    /// between two packets: derived by a reader from three separate loads instead, it
    /// stepped back by one when a packet arrived between them.
    dropped: AtomicU64,
}

impl Pump {
    fn new(config: NetemConfig) -> Self {
        Self {
            pending: Mutex::new(Some(config)),
            asked: AtomicU64::new(1),
            applied: AtomicU64::new(0),
            packets_in: AtomicU64::new(0),
            packets_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn set(&self, config: NetemConfig) {
        let asked = match self.pending.lock() {
            Ok(mut pending) => {
                *pending = Some(config);
                self.asked.fetch_add(1, Ordering::SeqCst) + 1
            }
            Err(_) => return,
        };
        // The pump looks at least every TICK; a test's next packet must see the new link.
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.applied.load(Ordering::SeqCst) < asked && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn stats(&self) -> LinkStats {
        LinkStats {
            packets_in: self.packets_in.load(Ordering::Relaxed),
            packets_out: self.packets_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    fn run(&self, from: &tun::Device, to: &tun::Device, stop: &AtomicBool) {
        let mut netem: Netem<Vec<u8>> = Netem::new(NetemConfig::new());
        let mut wake: Option<Instant> = None;
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            if let Ok(mut pending) = self.pending.lock()
                && let Some(config) = pending.take()
            {
                netem.set_config(config);
                self.applied
                    .store(self.asked.load(Ordering::SeqCst), Ordering::SeqCst);
            }
            let wait = wake
                .map(|w| w.saturating_duration_since(Instant::now()))
                .unwrap_or(TICK)
                .min(TICK);
            match from.recv_timeout(&mut buf, wait) {
                Ok(n) => {
                    self.packets_in.fetch_add(1, Ordering::Relaxed);
                    netem.handle_input(Input::Packet(Instant::now(), buf[..n].to_vec()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // The device went away under us (the link is being dropped).
                Err(_) => break,
            }
            netem.handle_input(Input::Timeout(Instant::now()));
            wake = None;
            while let Some(out) = netem.poll_output() {
                match out {
                    Output::Packet(packet) => {
                        // A full device queue is loss on a real link too.
                        if to.send(&packet).is_ok() {
                            self.packets_out.fetch_add(1, Ordering::Relaxed);
                            self.bytes_out
                                .fetch_add(packet.len() as u64, Ordering::Relaxed);
                        }
                    }
                    Output::Timeout(at) => wake = Some(at),
                }
            }
            // The pump is the only writer of both counters: these loads are exact.
            let gone = self.packets_out.load(Ordering::Relaxed) + netem.queue_len() as u64;
            self.dropped.store(
                self.packets_in.load(Ordering::Relaxed).saturating_sub(gone),
                Ordering::Relaxed,
            );
        }
    }
}

/// The first free slot N, claimed by creating its host device `snhN`: the kernel refuses a
/// second open of a TUN name in use, so parallel tests (and processes) never share a slot.
fn claim_slot() -> Result<(u8, Arc<tun::Device>), LinkError> {
    for index in 1..=250u8 {
        let name = format!("snh{index}");
        if std::path::Path::new("/sys/class/net").join(&name).exists() {
            continue;
        }
        match open_tun(&name) {
            Ok(device) => return Ok((index, device)),
            Err(LinkError::NotPermitted(e)) => return Err(LinkError::NotPermitted(e)),
            // Taken between the look and the open.
            Err(_) => continue,
        }
    }
    Err(LinkError::Exhausted)
}

fn open_tun(name: &str) -> Result<Arc<tun::Device>, LinkError> {
    let mut config = tun::Configuration::default();
    config.tun_name(name).mtu(1500);
    config.platform_config(|p| {
        p.ensure_root_privileges(false);
    });
    let device = tun::Device::new(&config).map_err(|e| match e {
        tun::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            LinkError::NotPermitted(io.to_string())
        }
        other => LinkError::Tun(other),
    })?;
    Ok(Arc::new(device))
}

fn ip(args: &[&str]) -> Result<(), LinkError> {
    ip_output(args).map(|_| ())
}

fn ip_output(args: &[&str]) -> Result<String, LinkError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(LinkError::NoIp)?;
    if !out.status.success() {
        return Err(LinkError::Ip {
            command: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
