//! The impaired link with real sockets: a probe runs inside the namespace (this test binary
//! again, through `ip netns exec`) and talks to sockets on the host side.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

use streamit_netem::{Direction, ImpairedLink, Impairment};

/// The probe inside the namespace: `PROBE=udp-echo <addr> <count> <gap_ms>` sends numbered
/// datagrams and prints the round trips it saw; `PROBE=blast <addr> <secs> <kbit>` sends at a
/// steady rate; `PROBE=tcp <addr>` writes, reads the echo, prints it.
#[test]
#[ignore = "the probe this file runs inside the namespace"]
fn probe() {
    let Ok(mode) = std::env::var("PROBE") else {
        return;
    };
    let arg = |i: usize| std::env::var(format!("PROBE_{i}")).unwrap_or_default();
    match mode.as_str() {
        "udp-echo" => {
            let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(5)))
                .unwrap();
            let (count, gap): (u32, u64) = (arg(1).parse().unwrap(), arg(2).parse().unwrap());
            let mut sent_at = Vec::new();
            let mut rtts = Vec::new();
            let mut buf = [0u8; 1500];
            let start = Instant::now();
            let mut drain_until = None;
            loop {
                let now = Instant::now();
                if (sent_at.len() as u32) < count
                    && now >= start + Duration::from_millis(gap * sent_at.len() as u64)
                {
                    let n = sent_at.len() as u32;
                    sock.send_to(&n.to_be_bytes(), arg(0).as_str()).unwrap();
                    sent_at.push(now);
                    if sent_at.len() as u32 == count {
                        drain_until = Some(now + Duration::from_secs(2));
                    }
                }
                if let Ok((n, _)) = sock.recv_from(&mut buf)
                    && n == 4
                {
                    let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                    rtts.push(sent_at[seq].elapsed().as_secs_f64() * 1000.0);
                }
                if drain_until.is_some_and(|d| Instant::now() > d) {
                    break;
                }
            }
            let list: Vec<String> = rtts.iter().map(|r| format!("{r:.1}")).collect();
            println!("RTTS {}", list.join(" "));
        }
        "blast" => {
            let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
            let (secs, kbit): (u64, u64) = (arg(1).parse().unwrap(), arg(2).parse().unwrap());
            let payload = [7u8; 1000];
            let interval = Duration::from_secs_f64(8000.0 / (kbit as f64 * 1000.0));
            let start = Instant::now();
            let mut n = 0u32;
            while start.elapsed() < Duration::from_secs(secs) {
                let due = start + interval * n;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let _ = sock.send_to(&payload, arg(0).as_str());
                n += 1;
            }
            println!("SENT {n}");
        }
        "tcp" => {
            let mut s = TcpStream::connect(arg(0)).unwrap();
            s.write_all(b"hello through the link\n").unwrap();
            let mut back = vec![0u8; 23];
            s.read_exact(&mut back).unwrap();
            println!("ECHO {}", String::from_utf8_lossy(&back).trim());
        }
        other => panic!("unknown probe {other}"),
    }
}

fn run_probe(link: &ImpairedLink, mode: &str, args: &[String]) -> String {
    let mut cmd = link.command(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "probe",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env("PROBE", mode)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (i, a) in args.iter().enumerate() {
        cmd.env(format!("PROBE_{i}"), a);
    }
    let out = cmd.output().expect("ip netns exec");
    assert!(
        out.status.success(),
        "probe {mode} failed: {:?}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A UDP echo on the host side of the link; returns its address.
fn udp_echo(link: &ImpairedLink) -> String {
    let sock = UdpSocket::bind((link.host_addr(), 0)).unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    });
    addr
}

fn rtts(out: &str) -> Vec<f64> {
    out.lines()
        .find_map(|l| l.split_once("RTTS ").map(|(_, rtts)| rtts))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[test]
fn delay_and_loss_are_applied_both_ways_and_can_change() {
    let link = ImpairedLink::new().expect("an impaired link (root, iproute2)");
    let echo = udp_echo(&link);

    // A perfect link first: loopback speed, nothing lost.
    let mut clean = rtts(&run_probe(
        &link,
        "udp-echo",
        &[echo.clone(), "50".into(), "10".into()],
    ));
    assert_eq!(
        clean.len(),
        50,
        "a perfect link lost packets: up {:?}, down {:?}",
        link.stats(Direction::Up),
        link.stats(Direction::Down)
    );
    let clean_median = median(&mut clean);

    // 40 ms each way and 10 % loss each way: RTT >= 80 ms, about 81 % come back.
    link.set_both("delay=40ms,loss=10%,seed=3".parse().unwrap());
    let mut slow = rtts(&run_probe(
        &link,
        "udp-echo",
        &[echo.clone(), "400".into(), "5".into()],
    ));
    let back = slow.len() as f64 / 400.0;
    let slow_median = median(&mut slow);
    println!(
        "clean median RTT {clean_median:.1} ms; impaired median {slow_median:.1} ms, {:.1} % back",
        back * 100.0
    );
    assert!(
        slow.iter().all(|r| *r >= 80.0),
        "an RTT under 80 ms: {slow:?}"
    );
    assert!(
        slow_median < 80.0 + clean_median + 60.0,
        "median {slow_median}"
    );
    assert!(
        (0.72..0.90).contains(&back),
        "{:.1} % came back, want about 81 %",
        back * 100.0
    );
    let up = link.stats(Direction::Up);
    assert!(up.dropped >= 20, "the uplink dropped {up:?}");
}

#[test]
fn a_rate_cap_holds_the_throughput_and_tcp_still_works() {
    let link = ImpairedLink::new().expect("an impaired link (root, iproute2)");
    let sink = UdpSocket::bind((link.host_addr(), 0)).unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let sink_addr = sink.local_addr().unwrap().to_string();

    link.set(
        Direction::Up,
        Impairment {
            rate_bps: Some(500_000),
            ..Impairment::none()
        },
    );
    // Offer 1.5 Mbit/s for 3 s through a 500 kbit/s bottleneck.
    let counter = std::thread::spawn(move || {
        let mut buf = [0u8; 2000];
        let (mut bytes, mut first, mut last) = (0u64, None, None);
        while let Ok(n) = sink.recv(&mut buf) {
            let now = Instant::now();
            first.get_or_insert(now);
            last = Some(now);
            bytes += n as u64;
        }
        (bytes, first, last)
    });
    run_probe(&link, "blast", &[sink_addr, "3".into(), "1500".into()]);
    let (bytes, first, last) = counter.join().unwrap();
    let span = last.unwrap().duration_since(first.unwrap()).as_secs_f64();
    // IP + UDP headers ride on top of the 1000-byte payloads.
    let kbit = bytes as f64 * 8.0 * (1028.0 / 1000.0) / span / 1000.0;
    println!("through a 500 kbit/s cap: {kbit:.0} kbit/s over {span:.2} s");
    assert!((430.0..=520.0).contains(&kbit), "{kbit:.0} kbit/s");
    assert!(
        link.stats(Direction::Up).dropped > 100,
        "the full queue dropped nothing"
    );

    // TCP through the same link (signalling and ICE-TCP take this path).
    link.set(Direction::Up, "delay=20ms".parse().unwrap());
    let listener = TcpListener::bind((link.host_addr(), 0)).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 23];
            if s.read_exact(&mut buf).is_ok() {
                let _ = s.write_all(&buf);
            }
        }
    });
    let out = run_probe(&link, "tcp", &[addr]);
    assert!(out.contains("ECHO hello through the link"), "{out}");
}

#[test]
fn dropping_the_link_removes_the_namespace() {
    let link = ImpairedLink::new().expect("an impaired link (root, iproute2)");
    let name = link.namespace().to_string();
    drop(link);
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name.as_str())),
        "{list}"
    );
}
