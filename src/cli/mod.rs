//! The headless command line: QA publishing without a browser, login, setup, `dev`.

pub mod auth;
pub mod dev;
pub mod netem;
pub mod publish;
pub mod watch;
mod watch_load;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use streamit_session::{AudioSourceSpec, ErrorKind, UserError, VideoSourceSpec};

#[derive(Debug, Parser)]
#[command(
    name = "streamit-studio",
    version,
    about = "StreamIt Studio: go live from your desktop",
    long_about = "StreamIt Studio: go live from your desktop.\n\n\
        Exit codes: 0 ok, 1 other error, 2 usage, 3 authentication, 4 network, \
        5 device or media file, 6 server refused, 7 stream offline or unknown (watch)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<CliCommand>,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Log in and keep the session token in the OS keyring.
    Login(LoginArgs),
    /// Log out on the server and forget the stored token.
    Logout(AuthArgs),
    /// Set the stream's title, description and chat settings.
    Setup(SetupArgs),
    /// Go live, publish for a while, end the stream and print a report.
    Publish(PublishArgs),
    /// Watch a creator's stream as a viewer and report what arrived (frames, latency, audio, chat).
    Watch(watch::WatchArgs),
    /// List the video and audio sources.
    Devices,
    /// Run the whole system locally: the backend (streamit-server) + a LiveKit server + a local creator.
    Dev(dev::DevArgs),
    /// Run a command (e.g. publish) behind a bad network: delay, loss, a rate cap (Linux, root).
    Netem(netem::NetemArgs),
}

/// Where the backend is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// The StreamIt backend root URL.
    #[arg(
        long,
        env = "STREAMIT_API_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:8080"
    )]
    pub api: String,
    /// A session token (from `login`); default: the OS keyring entry written by `login`.
    #[arg(long, env = "STREAMIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Log in with this username instead of a stored token (QA convenience).
    #[arg(long, requires = "password")]
    pub username: Option<String>,
    /// Password for `--username`.
    #[arg(long, env = "STREAMIT_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The StreamIt backend root URL.
    #[arg(
        long,
        env = "STREAMIT_API_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:8080"
    )]
    pub api: String,
    #[arg(long)]
    pub username: String,
    /// Read from STREAMIT_PASSWORD, else from the first line of stdin.
    #[arg(long, env = "STREAMIT_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub fn as_bool(self) -> bool {
        self == OnOff::On
    }
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub auth: AuthArgs,
    #[arg(long)]
    pub title: String,
    #[arg(long)]
    pub description: Option<String>,
    /// Chat on or off.
    #[arg(long)]
    pub chat: Option<OnOff>,
    /// Slow mode.
    #[arg(long)]
    pub chat_delayed: Option<OnOff>,
    /// Only followers may chat.
    #[arg(long)]
    pub followers_only: Option<OnOff>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CodecArg {
    H264,
    Vp8,
}

/// `publish`/`watch --ice-transport`: which transports ICE may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IceTransportArg {
    /// UDP, and TCP to the server's ICE-TCP port when UDP is blocked; TURN relays
    /// (when the server offers them) when neither works.
    All,
    Udp,
    Tcp,
    /// Only through the server's TURN relay (TURN/UDP or TURN/TLS): for networks that
    /// block UDP and the server's TCP port.
    Relay,
}

/// `--turn-ca`: the PEM file's bytes, or an error naming the file.
pub fn read_turn_ca(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| {
        CliError::new(
            EXIT_OTHER,
            format!("cannot read --turn-ca {}: {e}", path.display()),
        )
    })
}

impl From<IceTransportArg> for streamit_session::IceTransport {
    fn from(a: IceTransportArg) -> Self {
        match a {
            IceTransportArg::All => streamit_session::IceTransport::All,
            IceTransportArg::Udp => streamit_session::IceTransport::UdpOnly,
            IceTransportArg::Tcp => streamit_session::IceTransport::TcpOnly,
            IceTransportArg::Relay => streamit_session::IceTransport::Relay,
        }
    }
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub auth: AuthArgs,
    /// `synthetic`, `synthetic:WxH@FPS`, `camera[:N]` or a .y4m file.
    #[arg(long, default_value = "synthetic", value_parser = parse_video_source)]
    pub source: VideoSourceSpec,
    /// `tone`, `mic[:N]`, `none`, or a 48 kHz .wav file.
    #[arg(long, default_value = "tone", value_parser = parse_audio_source)]
    pub audio: AudioSourceSpec,
    /// RNNoise on the audio: `auto` (for a microphone), `on` or `off`.
    #[arg(long, default_value = "auto")]
    pub noise_suppression: streamit_session::NoiseSuppression,
    /// Automatic gain (WebRTC's AGC, after the noise filter): `auto` (for a microphone),
    /// `on` or `off`.
    #[arg(long, default_value = "auto")]
    pub auto_gain: streamit_session::AutoGain,
    #[arg(long, value_enum, default_value = "h264")]
    pub codec: CodecArg,
    /// Publish three simulcast layers (q/h/f).
    #[arg(long)]
    pub simulcast: bool,
    /// Media transport: `all` (UDP, TCP when UDP is blocked, the server's TURN relay
    /// when neither works), `udp`, `tcp` or `relay` (only).
    #[arg(long, value_enum, default_value = "all")]
    pub ice_transport: IceTransportArg,
    /// A PEM file of CA certificates to trust for TURN/TLS beside the system's (a
    /// company's own CA).
    #[arg(long)]
    pub turn_ca: Option<std::path::PathBuf>,
    /// Record the stream locally while live: the highest layer and Opus as they go out,
    /// as fragmented MP4 (a crash costs at most about a second of it).
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
    /// Share a screen as a second video track beside the camera: `screen` (all of it),
    /// `monitor:N`, `window:TITLE` (the first window whose title contains it) or
    /// `window-id:ID` (see `devices`). X11 only for now.
    #[arg(long, value_name = "TARGET")]
    pub screen: Option<streamit_session::ScreenTarget>,
    /// The screen share's frame rate (screen content wants detail more than motion).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub screen_fps: u32,
    /// "Camera over screen": composite the camera into a corner of the shared screen, in
    /// one track (the camera's) for pages that show one video: `bottom-right`,
    /// `top-left:30` (corner, then the camera's width in percent, 10-50).
    #[arg(long, value_name = "CORNER[:PERCENT]", requires = "screen")]
    pub pip: Option<streamit_media::compose::PipLayout>,
    /// How long to stay live: `10s`, `1500ms`, `2m`, `1h`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Set up the stream with this title first (default: keep the current one; a new
    /// account gets "QA stream").
    #[arg(long)]
    pub title: Option<String>,
    /// Send this chat message once live (repeatable).
    #[arg(long = "chat")]
    pub chat: Vec<String>,
    /// Print one JSON report on stdout (and no status line).
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file (stdout keeps the plain-text report unless
    /// `--json`): for CI logs that want both.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a number with a unit, e.g. 10s"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => return Err(format!("`{s}`: unknown unit `{u}` (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 7.0 * 86400.0 {
        return Err(format!("`{s}`: out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn parse_video_source(s: &str) -> Result<VideoSourceSpec, String> {
    if s == "synthetic" {
        return Ok(VideoSourceSpec::default());
    }
    if let Some(rest) = s.strip_prefix("synthetic:") {
        let (size, fps) = rest.split_once('@').unwrap_or((rest, "30"));
        let (w, h) = size
            .split_once('x')
            .ok_or_else(|| format!("`{s}`: expected synthetic:WIDTHxHEIGHT[@FPS]"))?;
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("`{s}`: bad number `{v}`"))
        };
        return Ok(VideoSourceSpec::Synthetic {
            width: num(w)?,
            height: num(h)?,
            fps: num(fps)?,
        });
    }
    if let Some(rest) = s.strip_prefix("camera") {
        let index = match rest.strip_prefix(':') {
            None if rest.is_empty() => 0,
            Some(n) => n
                .parse()
                .map_err(|_| format!("`{s}`: expected camera or camera:N"))?,
            None => return Err(format!("`{s}`: expected camera or camera:N")),
        };
        return Ok(VideoSourceSpec::Camera {
            index,
            width: 1280,
            height: 720,
            fps: 30,
        });
    }
    if s.ends_with(".y4m") {
        return Ok(VideoSourceSpec::Y4m(PathBuf::from(s)));
    }
    Err(format!(
        "`{s}`: expected synthetic, synthetic:WxH@FPS, camera[:N] or a .y4m file"
    ))
}

pub fn parse_audio_source(s: &str) -> Result<AudioSourceSpec, String> {
    match s {
        "tone" => Ok(AudioSourceSpec::Tone),
        "none" => Ok(AudioSourceSpec::None),
        "mic" => Ok(AudioSourceSpec::Mic(None)),
        _ if s.starts_with("mic:") => s[4..]
            .parse()
            .map(|n| AudioSourceSpec::Mic(Some(n)))
            .map_err(|_| format!("`{s}`: expected mic or mic:N")),
        _ if s.ends_with(".wav") => Ok(AudioSourceSpec::Wav(PathBuf::from(s))),
        _ => Err(format!(
            "`{s}`: expected tone, mic[:N], none or a .wav file"
        )),
    }
}

/// An error that ends the program, with its exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }
}

pub const EXIT_OTHER: u8 = 1;
pub const EXIT_AUTH: u8 = 3;
pub const EXIT_NETWORK: u8 = 4;
pub const EXIT_DEVICE: u8 = 5;
pub const EXIT_SERVER: u8 = 6;
/// `watch`: the creator is not live (or has no stream on this server).
pub const EXIT_OFFLINE: u8 = 7;

pub fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Auth => EXIT_AUTH,
        ErrorKind::Network => EXIT_NETWORK,
        ErrorKind::Device | ErrorKind::Media => EXIT_DEVICE,
        ErrorKind::Server => EXIT_SERVER,
        ErrorKind::Invalid => EXIT_OTHER,
    }
}

impl From<UserError> for CliError {
    fn from(e: UserError) -> Self {
        CliError::new(exit_code(e.kind), e.message)
    }
}

impl From<streamit_api::client::ApiError> for CliError {
    fn from(e: streamit_api::client::ApiError) -> Self {
        let code = match e.status() {
            Some(401 | 403) => EXIT_AUTH,
            Some(_) => EXIT_SERVER,
            None => EXIT_NETWORK,
        };
        CliError::new(code, e.to_string())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// Where viewers watch a creator's stream: the backend's `watchUrl` when it gives one, else
/// the creator's page on the backend's own origin (it serves the watch pages there).
pub fn watch_url(from_backend: &str, api_url: &str, username: &str) -> String {
    if !from_backend.trim().is_empty() {
        return from_backend.trim().to_string();
    }
    format!("{}/{username}", api_url.trim_end_matches('/'))
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        None => {
            println!(
                "streamit-studio {}: run without a subcommand to open the studio; see `streamit-studio --help` for the command line",
                env!("CARGO_PKG_VERSION")
            );
            Ok(())
        }
        Some(CliCommand::Login(a)) => auth::login(a).await,
        Some(CliCommand::Logout(a)) => auth::logout(a).await,
        Some(CliCommand::Setup(a)) => publish::setup(a).await,
        Some(CliCommand::Publish(a)) => publish::publish(a).await,
        Some(CliCommand::Watch(a)) => watch::run(a).await,
        Some(CliCommand::Devices) => {
            devices();
            Ok(())
        }
        Some(CliCommand::Dev(a)) => dev::run(a).await,
        Some(CliCommand::Netem(a)) => netem::run(a).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

fn devices() {
    println!("video sources:");
    println!(
        "  synthetic            moving test pattern with a frame-number/timestamp code (1280x720@30)"
    );
    println!("  synthetic:WxH@FPS    the same at another size");
    println!("  <file>.y4m           a YUV4MPEG2 4:2:0 file, looped");
    match streamit_media::camera::list_cameras() {
        Ok(cams) if cams.is_empty() => println!("  (no cameras found)"),
        Ok(cams) => {
            for c in cams {
                let modes = c.modes.iter().filter(|m| m.format.is_some()).count();
                println!(
                    "  camera:{:<14} {} ({}; {} usable modes)",
                    c.index, c.name, c.description, modes
                );
            }
        }
        Err(e) => println!("  (cameras could not be listed: {e})"),
    }
    println!("screen share (publish --screen):");
    match streamit_session::list_screen_sources() {
        Ok(sources) => {
            for s in sources {
                let target = s.target.to_string();
                if s.width == 0 {
                    println!("  {target:<20} {}", s.name);
                } else {
                    println!("  {target:<20} {} ({}x{})", s.name, s.width, s.height);
                }
            }
        }
        Err(e) => println!("  (screens could not be listed: {e})"),
    }
    println!("audio sources:");
    println!("  tone                 440 Hz with a 1 kHz beep in step with the pattern's flash");
    println!("  <file>.wav           a 48 kHz WAV file, looped");
    println!("  none                 no audio track");
    println!("  mic                  the default input device");
    match streamit_media::mic::list_microphones() {
        Ok(mics) if mics.is_empty() => println!("  (no microphones found)"),
        Ok(mics) => {
            for (i, m) in mics.iter().enumerate() {
                println!(
                    "  mic:{i:<16} {} ({} Hz, {} ch)",
                    m.name, m.sample_rate, m.channels
                );
            }
        }
        Err(e) => println!("  (microphones could not be listed: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_url_is_the_backends_else_the_creators_page_on_the_api_origin() {
        assert_eq!(
            watch_url(
                "https://watch.example/alice",
                "http://127.0.0.1:8080",
                "alice"
            ),
            "https://watch.example/alice"
        );
        assert_eq!(
            watch_url("", "http://127.0.0.1:8080/", "alice"),
            "http://127.0.0.1:8080/alice"
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn sources_parse() {
        assert_eq!(
            parse_video_source("synthetic:1280x720@25"),
            Ok(VideoSourceSpec::Synthetic {
                width: 1280,
                height: 720,
                fps: 25
            })
        );
        assert!(matches!(
            parse_video_source("clip.y4m"),
            Ok(VideoSourceSpec::Y4m(_))
        ));
        assert!(matches!(
            parse_video_source("camera:2"),
            Ok(VideoSourceSpec::Camera { index: 2, .. })
        ));
        assert!(parse_video_source("camera:x").is_err());
        assert_eq!(
            parse_audio_source("mic:1"),
            Ok(AudioSourceSpec::Mic(Some(1)))
        );
        assert_eq!(parse_audio_source("tone"), Ok(AudioSourceSpec::Tone));
        assert!(parse_audio_source("x.mp3").is_err());
    }

    /// `--help` never shows an environment variable's value: an unset one read
    /// `[env: STREAMIT_API_URL=]`, a set one would print a token or a password.
    #[test]
    fn help_shows_no_environment_values() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let mut commands = vec![&cli];
        commands.extend(cli.get_subcommands());
        for cmd in commands {
            for arg in cmd.get_arguments().filter(|a| a.get_env().is_some()) {
                assert!(
                    arg.is_hide_env_values_set(),
                    "{} --{}: env value shown in --help",
                    cmd.get_name(),
                    arg.get_id()
                );
            }
        }
    }

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
