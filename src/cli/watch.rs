//! `watch`: a subscribe-only QA viewer; the work is [`streamit_session::watch`], this is
//! arguments, the status line and the report.

use std::io::IsTerminal;
use std::time::{Duration, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use streamit_session::watch::{self, WatchConfig, WatchProgress, WatchReport};

use super::{CliError, CliResult, EXIT_OFFLINE, IceTransportArg, auth, exit_code, parse_duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QualityArg {
    Low,
    Medium,
    High,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The creator whose stream to watch.
    pub username: String,
    /// The StreamIt backend root URL.
    #[arg(
        long,
        env = "STREAMIT_API_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:8080"
    )]
    pub api: String,
    /// Watch as the user of this session token (default: the token `login` stored, else a
    /// guest). A creator's own token watches as a guest.
    #[arg(long, env = "STREAMIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Watch as a guest even when logged in.
    #[arg(long)]
    pub guest: bool,
    /// The name a guest shows in the room.
    #[arg(long, default_value = "QA watcher")]
    pub name: String,
    /// How long to watch: `10s`, `1500ms`, `2m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Ask for this simulcast layer (no effect on a stream without simulcast).
    #[arg(long, value_enum)]
    pub quality: Option<QualityArg>,
    /// The publisher's media clock epoch (Unix µs, `mediaClockEpochUnixUs` of its report),
    /// for latency; default: what the live studio announces in the room (its participant
    /// attribute), else what a `publish` on this machine recorded.
    #[arg(long, value_name = "UNIX_US")]
    pub clock_epoch_us: Option<u64>,
    /// Media transport: `all` (UDP, TCP when UDP is blocked, the server's TURN relay
    /// when neither works), `udp`, `tcp` or `relay` (only).
    #[arg(long, value_enum, default_value = "all")]
    pub ice_transport: IceTransportArg,
    /// A PEM file of CA certificates to trust for TURN/TLS beside the system's (a
    /// company's own CA).
    #[arg(long)]
    pub turn_ca: Option<std::path::PathBuf>,
    /// Join through this LiveKit URL (`ws://…` or `wss://…`) instead of the one the backend
    /// hands out: to watch through a chosen node of a multi-node LiveKit.
    #[arg(long, value_name = "URL", value_parser = parse_livekit_url)]
    pub livekit_url: Option<String>,
    /// Print one JSON report on stdout (and no status line).
    #[arg(long)]
    pub json: bool,
    /// Load test: this many viewers at once in this process (guests named `<name> 1`, …);
    /// prints one JSON report with every viewer's figures and the aggregate.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub viewers: u16,
    /// With `--viewers`: how many of them decode every frame (the sample); the others decode
    /// key frames only and count every other frame for completeness without decoding it.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub full_decode: u16,
}

pub async fn run(a: WatchArgs) -> CliResult {
    let token = if a.guest {
        None
    } else {
        a.token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| auth::stored_token(&a.api))
    };
    let mut cfg = WatchConfig::new(a.api.clone(), a.username.clone());
    cfg.token = token;
    cfg.duration = a.duration;
    cfg.guest_name = a.name.clone();
    cfg.quality = a.quality.map(|q| match q {
        QualityArg::Low => streamit_session::watch::Quality::Low,
        QualityArg::Medium => streamit_session::watch::Quality::Medium,
        QualityArg::High => streamit_session::watch::Quality::High,
    });
    cfg.ice_transport = a.ice_transport.into();
    cfg.livekit_url = a.livekit_url.clone();
    if let Some(path) = &a.turn_ca {
        cfg.turn_extra_ca_pem = Some(super::read_turn_ca(path)?);
    }
    cfg.clock_epoch = a
        .clock_epoch_us
        .map(|us| UNIX_EPOCH + Duration::from_micros(us));

    if a.viewers > 1 {
        let full = usize::from(a.full_decode);
        return super::watch_load::run(cfg, usize::from(a.viewers), full).await;
    }

    let status = (!a.json && std::io::stdout().is_terminal()).then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(200));
        pb.set_message(format!("joining {}'s stream…", a.username));
        pb
    });
    let (tx, mut rx) = tokio::sync::watch::channel(WatchProgress::default());
    let total = a.duration;
    let status_task = status.clone().map(|pb| {
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let p = rx.borrow_and_update().clone();
                pb.set_message(status_line(&p, total));
            }
        })
    });
    let stop = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let result = watch::watch(cfg, Some(tx), stop).await;
    if let Some(t) = status_task {
        t.abort();
    }
    if let Some(pb) = &status {
        pb.finish_and_clear();
    }
    let report = result.map_err(|e| {
        let code = if e.is_offline() {
            EXIT_OFFLINE
        } else {
            exit_code(e.kind())
        };
        CliError::new(code, e.to_string())
    })?;
    if a.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::new(1, format!("encoding the report: {e}")))?;
        println!("{text}");
    } else {
        print_human(&report);
    }
    if report.outcome == "failed" {
        return Err(CliError::new(
            super::EXIT_NETWORK,
            report
                .error
                .clone()
                .unwrap_or_else(|| "the connection failed".into()),
        ));
    }
    Ok(())
}

fn status_line(p: &WatchProgress, total: Duration) -> String {
    let res = p
        .resolution
        .map(|(w, h)| format!("{w}x{h}"))
        .unwrap_or_else(|| "–".into());
    let lat = p
        .last_latency_ms
        .map(|l| format!("{l:.0} ms"))
        .unwrap_or_else(|| "–".into());
    // Short enough for an 80-column terminal with the spinner.
    format!(
        "{} {:.0}/{:.0}s | {} frames {res} | {lat} | audio {} | chat {} | viewers {}",
        if p.connected { "watching" } else { "joining" },
        p.elapsed.as_secs_f64(),
        total.as_secs_f64(),
        p.frames_decoded,
        p.audio_packets,
        p.chat_messages,
        p.viewers.map_or_else(|| "–".into(), |v| v.to_string())
    )
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v} ms"))
}

fn print_human(r: &WatchReport) {
    let v = &r.video;
    println!("outcome:        {}", r.outcome);
    if let Some(e) = &r.error {
        println!("error:          {e}");
    }
    println!(
        "stream:         {} — \"{}\" (as {})",
        r.username, r.title, r.identity
    );
    println!(
        "watched:        {:.1} s; connect {}, first frame {}, {} reconnects, via {}",
        r.duration_ms as f64 / 1000.0,
        ms(r.connect_time_ms),
        ms(r.first_frame_ms),
        r.reconnects,
        r.transport.as_deref().unwrap_or("-")
    );
    for o in &r.outages {
        let lost = o.lost_ms as f64 / 1000.0;
        match o.recovered_ms {
            Some(back) => println!(
                "outage:         lost at {lost:.1} s, back at {:.1} s ({:.1} s)",
                back as f64 / 1000.0,
                back.saturating_sub(o.lost_ms) as f64 / 1000.0
            ),
            None => println!("outage:         lost at {lost:.1} s, never back"),
        }
    }
    let resolutions: Vec<String> = v
        .resolutions
        .iter()
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect();
    println!(
        "video:          {} {} decoded of {} received, {} fps; {}",
        v.codecs.join("+"),
        v.frames_decoded,
        v.frames_received,
        v.fps.map_or_else(|| "–".into(), |f| format!("{f:.1}")),
        if resolutions.is_empty() {
            "no resolution".to_string()
        } else {
            resolutions.join(", ")
        }
    );
    println!(
        "losses:         {} skipped to a key frame, {} queue drops, {} receiver drops, {} decode errors",
        v.frames_skipped, v.queue_drops, v.receiver_drops, v.decode_errors
    );
    println!(
        "pattern codes:  {} readable ({}..{}), {} missing in {} gaps, {} out of order",
        v.readable_codes,
        v.first_code.map_or_else(|| "–".into(), |c| c.to_string()),
        v.last_code.map_or_else(|| "–".into(), |c| c.to_string()),
        v.missing_frames,
        v.gap_runs,
        v.out_of_order
    );
    match &r.latency {
        Some(l) => println!(
            "latency:        p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms over {} frames (capture → decoded{}; clock epoch: {})",
            l.p50_ms,
            l.p95_ms,
            l.max_ms,
            l.samples,
            r.network_latency
                .map(|n| format!("; network p50 {:.1} ms", n.p50_ms))
                .unwrap_or_default(),
            r.clock_epoch_source.as_deref().unwrap_or("–")
        ),
        None if r.clock_epoch_source.is_none() => println!(
            "latency:        unknown: the creator announced no media clock epoch (pass --clock-epoch-us)"
        ),
        None => println!("latency:        unknown: no frame with a readable pattern code"),
    }
    let a = &r.audio;
    println!(
        "audio:          {} packets ({} decoded, {:.1} s, {} errors), level {} RMS, {} peak",
        a.packets_received,
        a.packets_decoded,
        a.seconds,
        a.decode_errors,
        a.rms_dbfs
            .map_or_else(|| "–".into(), |d| format!("{d:.1} dBFS")),
        a.peak_dbfs
            .map_or_else(|| "–".into(), |d| format!("{d:.1} dBFS"))
    );
    println!(
        "viewers:        {} at start, {} at end, peak {}",
        r.viewers.at_start,
        r.viewers
            .at_end
            .map_or_else(|| "–".into(), |v| v.to_string()),
        r.viewers.peak
    );
    println!("chat:           {} messages", r.chat_messages);
    for c in &r.chat {
        println!("  {}: {}", c.from, c.text);
    }
}

/// A LiveKit URL is a WebSocket URL; anything else is a mistake to say at once.
fn parse_livekit_url(s: &str) -> Result<String, String> {
    match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "ws" | "wss") && u.host().is_some() => Ok(s.to_string()),
        Ok(u) => Err(format!(
            "a LiveKit URL starts with ws:// or wss:// and names a host, not {}://",
            u.scheme()
        )),
        Err(e) => Err(format!("not a URL: {e}")),
    }
}
