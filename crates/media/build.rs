//! Builds the small C shim that routes ALSA's error messages into the log (src/alsa_log.c;
//! Linux only, where cpal uses ALSA).

fn main() {
    println!("cargo:rerun-if-changed=src/alsa_log.c");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        cc::Build::new()
            .file("src/alsa_log.c")
            .compile("streamit_alsa_log");
        println!("cargo:rustc-link-lib=asound");
    }
}
