//! StreamIt Studio: the desktop broadcasting studio and its headless QA command line.

use clap::Parser;
use streamit_studio::{app, cli};

/// The log filter without `RUST_LOG`: our warnings, but not the graphics and audio
/// libraries' probing (wgpu trying Vulkan before GL, cpal/ALSA trying devices), which
/// reports expected failures as errors; `RUST_LOG=debug` shows them.
const DEFAULT_LOG_FILTER: &str = "warn,wgpu_hal=off,wgpu_core=error,wgpu=error,naga=error,\
    egui_wgpu=error,eframe=error,egui_glow=error,winit=error,cpal=error,alsa=error,zbus=error";

fn main() -> std::process::ExitCode {
    // Colour codes only for a terminal, not for a pipe or a log file, and never when the
    // user asks for none (https://no-color.org: NO_COLOR set and not empty).
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(!no_color && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // ALSA's device probing prints expected failures to stderr: into the log instead.
    streamit_media::alsa_log::route_alsa_errors();
    let cli = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    if cli.command.is_none() {
        // No subcommand: open the studio window.
        return app::main(&rt);
    }
    rt.block_on(cli::run(cli))
}
