//! ALSA's own error messages into the log instead of the user's terminal.
//!
//! While cpal lists and opens audio devices, ALSA's library tries its plugins and prints
//! every expected failure ("Cannot get card index", "PulseAudio: Unable to connect") to
//! stderr. [`route_alsa_errors`] installs a handler (a C shim, `alsa_log.c`: the handler is
//! variadic) that logs them at debug level under the target `alsa`, so `RUST_LOG=alsa=debug`
//! shows them. JACK's client library, which ALSA's JACK plugin loads, prints through its
//! own handler and is not covered.

#[cfg(target_os = "linux")]
use std::ffi::{CStr, c_char, c_int};

/// Called by the C shim with one formatted message.
#[cfg(target_os = "linux")]
#[unsafe(no_mangle)]
extern "C" fn streamit_media_alsa_message(
    file: *const c_char,
    line: c_int,
    message: *const c_char,
) {
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: ALSA passes NUL-terminated strings (its __FILE__ and our buffer),
            // valid for the duration of the call.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    tracing::debug!(target: "alsa", "{}:{line}: {}", text(file), text(message));
}

#[cfg(target_os = "linux")]
unsafe extern "C" {
    fn streamit_media_route_alsa_errors() -> c_int;
}

/// Routes ALSA's error messages into the log, once per process (later calls do nothing).
/// Call it before the first audio device is touched.
pub fn route_alsa_errors() {
    #[cfg(target_os = "linux")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: installs a process-wide handler with the signature ALSA expects; the
            // shim and the Rust callback it calls live as long as the process.
            let rc = unsafe { streamit_media_route_alsa_errors() };
            if rc != 0 {
                tracing::debug!("ALSA error handler not installed ({rc})");
            }
        });
    }
}
