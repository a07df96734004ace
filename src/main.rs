//! StreamIt Studio: the desktop broadcasting studio and its headless QA command line.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "streamit-studio",
    version,
    about = "StreamIt Studio: go live from your desktop"
)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let _cli = Cli::parse();
    println!(
        "streamit-studio {}: the studio GUI and CLI arrive with their issues",
        env!("CARGO_PKG_VERSION")
    );
    Ok(())
}
