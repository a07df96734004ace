//! A private PulseAudio daemon for the microphone tests: its own runtime directory, home
//! and socket, never the user's or the system's sound server. Included with `#[path]`.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon; killed by PID (and reaped) on drop, also when the test panics.
pub struct Pulse {
    child: Child,
    /// The native-protocol socket (`PULSE_SERVER=unix:<socket>`).
    pub socket: String,
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// False (with the reason printed) when `pulseaudio` is not installed: the caller skips.
pub fn installed() -> bool {
    let ok = Command::new("pulseaudio").arg("--version").output().is_ok();
    if !ok {
        println!(
            "SKIPPED: pulseaudio is not installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)"
        );
    }
    ok
}

impl Pulse {
    /// Starts a daemon in `dir` with `modules` loaded (in order: the first source loaded is
    /// PulseAudio's default) and waits until `pactl info` answers.
    pub fn start(dir: &Path, modules: &[String]) -> Pulse {
        let (run, home) = (dir.join("run"), dir.join("home"));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let socket = run.join("pulse.sock").display().to_string();
        let log = std::fs::File::create(dir.join("pulseaudio.log")).unwrap();
        let child = Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disable-shm=yes",
                "--use-pid-file=no",
                "--log-target=stderr",
                // A test daemon on a busy machine: PulseAudio's CPU limiter ends a daemon
                // that took too much CPU time, and realtime scheduling brings an RT time
                // limit the kernel enforces with a kill. A daemon gone drops its clients with
                // "Connection terminated", as the mic check saw once in CI (which of the two,
                // if either, is not known: the daemon's log went with the test's directory).
                "--no-cpu-limit",
                "--realtime=no",
                "--high-priority=no",
            ])
            .args(modules.iter().map(|m| format!("--load={m}")))
            .arg(format!(
                "--load=module-native-protocol-unix auth-anonymous=1 socket={socket}"
            ))
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &run)
            .env("PULSE_RUNTIME_PATH", run.join("pulse"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let pulse = Pulse { child, socket };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !pulse.pactl(&["info"]) {
            assert!(
                Instant::now() < deadline,
                "pulseaudio did not come up: {}",
                std::fs::read_to_string(dir.join("pulseaudio.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pulse
    }

    /// Runs `pactl` against this daemon; true when it succeeded.
    pub fn pactl(&self, args: &[&str]) -> bool {
        Command::new("pactl")
            .args(args)
            .env("PULSE_SERVER", format!("unix:{}", self.socket))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Pulse {
    /// Points ALSA's default PCM at this daemon's `device` (a sink to play into, or a
    /// source to capture from) through `home/.asoundrc`; the caller sets `HOME` to `home`.
    pub fn route_alsa_default(&self, home: &Path, device: &str) {
        std::fs::write(
            home.join(".asoundrc"),
            format!(
                "pcm.!default {{\n  type pulse\n  server \"unix:{s}\"\n  device \"{device}\"\n}}\n\
                 ctl.!default {{\n  type pulse\n  server \"unix:{s}\"\n}}\n",
                s = self.socket
            ),
        )
        .unwrap();
    }

    /// Records `source` (e.g. a sink's monitor) as 48 kHz mono f32 with `parec`, into a
    /// file: a pipe nobody reads fills in 0.3 s and parec stops taking samples.
    pub fn record(&self, source: &str, to: &Path) -> Recording {
        let child = Command::new("parec")
            .args([
                "-d",
                source,
                "--raw",
                "--format=float32le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=20",
            ])
            .env("PULSE_SERVER", format!("unix:{}", self.socket))
            .stdout(Stdio::from(std::fs::File::create(to).unwrap()))
            .spawn()
            .unwrap();
        Recording {
            child,
            path: to.to_path_buf(),
        }
    }
}

/// A `parec` recording under way.
pub struct Recording {
    child: Child,
    path: std::path::PathBuf,
}

impl Recording {
    /// Stops it (SIGINT: parec writes out what it holds; a kill would lose it) and returns
    /// the samples.
    pub fn stop(mut self) -> Vec<f32> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read(&self.path)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

/// The 10 ms windows of `pcm` (48 kHz) whose RMS is above `rms`: where a tone sounds.
pub fn loud_windows(pcm: &[f32], rms: f32) -> Vec<usize> {
    pcm.chunks(480)
        .enumerate()
        .filter(|(_, c)| {
            (c.iter().map(|v| v * v).sum::<f32>() / c.len().max(1) as f32).sqrt() > rms
        })
        .map(|(i, _)| i)
        .collect()
}
