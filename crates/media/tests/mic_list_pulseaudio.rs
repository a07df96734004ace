//! The microphone list against a real PulseAudio daemon: a null source (PulseAudio's default
//! here) and a pipe source standing in for a USB microphone. The list shows the device by its
//! PulseAudio description, hides the null source, and the default is the real device.
//! Skips (with a printed reason) only when `pulseaudio` is not installed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streamit_media::mic::{default_microphone, list_microphones};

/// The daemon; killed by PID (and reaped) on drop, also when the test panics.
struct Pulse(Child);

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pactl(socket: &str, args: &[&str]) -> bool {
    Command::new("pactl")
        .args(args)
        .env("PULSE_SERVER", format!("unix:{socket}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_pulse(dir: &Path, socket: &str) -> Pulse {
    let (run, home) = (dir.join("run"), dir.join("home"));
    std::fs::create_dir_all(&run).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let fifo = dir.join("mic.fifo");
    let log = std::fs::File::create(dir.join("pulseaudio.log")).unwrap();
    let child = Command::new("pulseaudio")
        .args([
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disable-shm=yes",
            "--use-pid-file=no",
            "--log-target=stderr",
            // loaded first, so PulseAudio makes it the default source
            "--load=module-null-source source_name=null_input",
        ])
        .arg(format!(
            "--load=module-pipe-source source_name=studio_mic file={} format=s16le rate=48000 \
             channels=1 source_properties='device.description=\"Studio USB Mic\"'",
            fifo.display()
        ))
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
    let pulse = Pulse(child);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !pactl(socket, &["info"]) {
        assert!(
            Instant::now() < deadline,
            "pulseaudio did not come up: {}",
            std::fs::read_to_string(dir.join("pulseaudio.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    pulse
}

#[test]
fn the_default_microphone_is_the_real_pulseaudio_device_and_the_null_source_is_hidden() {
    if Command::new("pulseaudio")
        .arg("--version")
        .output()
        .is_err()
    {
        println!(
            "SKIPPED: pulseaudio is not installed (apt-get install pulseaudio pulseaudio-utils)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("pulse.sock").display().to_string();
    let _pulse = start_pulse(dir.path(), &socket);
    // The null source really is PulseAudio's default here: the studio must not follow it.
    assert!(pactl(&socket, &["set-default-source", "null_input"]));
    // SAFETY: this test binary has only this test; no other thread reads the environment now.
    unsafe {
        std::env::set_var("PULSE_SERVER", format!("unix:{socket}"));
    }

    let mics = list_microphones().unwrap();
    println!("microphones: {mics:?}");
    let names: Vec<&str> = mics.iter().map(|m| m.name.as_str()).collect();
    assert!(
        names.contains(&"Studio USB Mic"),
        "the pipe source is listed by its PulseAudio description: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.to_lowercase().contains("null")),
        "the null source is hidden: {names:?}"
    );
    let default = default_microphone(&mics).expect("a default microphone");
    assert_eq!(mics[default].name, "Studio USB Mic");
    assert!(
        mics[default].id.ends_with("studio_mic"),
        "{:?}",
        mics[default]
    );
}
