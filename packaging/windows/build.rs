//! Build script of the root package (`build = "packaging/windows/build.rs"` in Cargo.toml).
//!
//! Windows + MSVC: embeds `streamit-studio.exe.manifest` (DPI awareness, supported OS) into
//! `streamit-studio.exe` with the MSVC linker's own `/MANIFEST:EMBED /MANIFESTINPUT:` options,
//! so nothing is downloaded and no resource compiler or build-dependency is needed.
//! Every other target (Linux, macOS, windows-gnu) is a no-op: it only tells Cargo when to
//! rerun. windows-gnu would need `windres` and a .rc file; its binaries simply run without the
//! manifest (winit still asks for per-monitor DPI awareness at run time).

use std::env;
use std::path::Path;

fn main() {
    const MANIFEST: &str = "packaging/windows/streamit-studio.exe.manifest";
    println!("cargo:rerun-if-changed=packaging/windows/build.rs");
    println!("cargo:rerun-if-changed={MANIFEST}");

    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "windows" || target_env != "msvc" {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let manifest = Path::new(&dir).join(MANIFEST);
    println!("cargo:rustc-link-arg-bin=streamit-studio=/MANIFEST:EMBED");
    println!(
        "cargo:rustc-link-arg-bin=streamit-studio=/MANIFESTINPUT:{}",
        manifest.display()
    );
}
