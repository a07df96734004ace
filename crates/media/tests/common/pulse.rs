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
