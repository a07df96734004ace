//! The microphone list against a real PulseAudio daemon: a null source (PulseAudio's default
//! here) and a pipe source standing in for a USB microphone. The list shows the device by its
//! PulseAudio description, hides the null source, and the default is the real device.
//! Skips (with a printed reason) only when `pulseaudio` is not installed.

use streamit_media::mic::{default_microphone, list_microphones};

#[path = "common/pulse.rs"]
mod pulse;
use pulse::Pulse;

#[test]
fn the_default_microphone_is_the_real_pulseaudio_device_and_the_null_source_is_hidden() {
    if !pulse::installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("mic.fifo");
    let pulse = Pulse::start(
        dir.path(),
        &[
            // loaded first, so PulseAudio makes it the default source
            "module-null-source source_name=null_input".into(),
            format!(
                "module-pipe-source source_name=studio_mic file={} format=s16le rate=48000 \
                 channels=1 source_properties='device.description=\"Studio USB Mic\"'",
                fifo.display()
            ),
        ],
    );
    // The null source really is PulseAudio's default here: the studio must not follow it.
    assert!(pulse.pactl(&["set-default-source", "null_input"]));
    // SAFETY: this test binary has only this test; no other thread reads the environment now.
    unsafe {
        std::env::set_var("PULSE_SERVER", format!("unix:{}", pulse.socket));
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
