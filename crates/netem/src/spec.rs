//! One direction of a bad link, written the way people talk about networks.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use str0m_netem::{
    Bitrate, DataSize, GilbertElliot, LossModel, NetemConfig, Probability, RandomLoss,
};

/// How packets going one way are treated. The default is a perfect link.
///
/// Written as comma-separated `key=value` pairs, e.g.
/// `delay=75ms,jitter=10ms,loss=5%,rate=300kbit`:
/// - `delay`, `jitter`: one-way delay and its spread (`ms`, `us`, `s`);
/// - `loss`: share of packets lost; with `burst=N` the losses come in bursts of N packets on
///   average (Gilbert–Elliott), with the same long-run share;
/// - `reorder`: share of packets sent ahead of the one before them;
/// - `rate`: a bottleneck (`kbit`, `mbit`, `bit`), with `queue` (default 250 ms at that
///   rate) of buffer before it drops from the tail, as a home router does;
/// - `seed`: the random sequence, so a run can be repeated exactly.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Impairment {
    pub delay: Duration,
    pub jitter: Duration,
    /// Long-run share of packets lost, 0.0..=1.0.
    pub loss: f32,
    /// Mean burst length in packets; `None` for independent losses.
    pub burst: Option<f32>,
    /// Share of packets reordered, 0.0..=1.0.
    pub reorder: f32,
    /// Bottleneck rate in bits per second.
    pub rate_bps: Option<u64>,
    /// Buffer in front of the bottleneck, as time at its rate.
    pub queue: Option<Duration>,
    pub seed: u64,
}

const DEFAULT_QUEUE: Duration = Duration::from_millis(250);

impl Impairment {
    /// A perfect link.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn is_none(&self) -> bool {
        *self
            == Self {
                seed: self.seed,
                ..Self::default()
            }
    }

    /// The same link, another random sequence.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The same settings for the other direction of a link, with its own random sequence.
    pub fn other_direction(self) -> Self {
        self.with_seed(self.seed.wrapping_add(1))
    }

    /// The model `str0m-netem` runs.
    pub fn to_netem(&self) -> NetemConfig {
        let mut config = NetemConfig::new()
            .latency(self.delay)
            .jitter(self.jitter)
            .seed(self.seed);
        if self.loss > 0.0 {
            config = config.loss(self.loss_model());
        }
        if self.reorder > 0.0 {
            config = config.reorder_gap((1.0 / self.reorder).round().max(2.0) as u32);
        }
        if let Some(bps) = self.rate_bps {
            let queue = self.queue.unwrap_or(DEFAULT_QUEUE);
            // At least two full-size packets, or nothing gets through a very slow link.
            let bytes = ((bps as f64 / 8.0) * queue.as_secs_f64()).max(3000.0);
            config = config.link(Bitrate::bps(bps), DataSize::bytes(bytes as i64));
        }
        config
    }

    fn loss_model(&self) -> LossModel {
        match self.burst {
            Some(burst) if burst > 1.0 => {
                // Gilbert–Elliott with certain loss in BAD: the long-run loss is
                // p / (p + r) with r = 1 / burst, so p = loss * r / (1 - loss).
                let r = 1.0 / burst;
                let loss = self.loss.min(0.99);
                let p = loss * r / (1.0 - loss);
                GilbertElliot::new()
                    .good_duration(1.0 / p)
                    .bad_duration(burst)
                    .into()
            }
            _ => RandomLoss::new(Probability::new(self.loss)).into(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("`{0}` is not key=value (try delay=75ms,loss=5%,rate=300kbit)")]
    NotKeyValue(String),
    #[error(
        "unknown setting `{0}` (known: delay, jitter, loss, burst, reorder, rate, queue, seed)"
    )]
    UnknownKey(String),
    #[error("{key}: `{value}` is not {expected}")]
    BadValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl FromStr for Impairment {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut out = Impairment::none();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "none" {
                continue;
            }
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| ParseError::NotKeyValue(part.to_string()))?;
            let value = value.trim();
            match key.trim() {
                "delay" => out.delay = duration("delay", value)?,
                "jitter" => out.jitter = duration("jitter", value)?,
                "loss" => out.loss = share("loss", value)?,
                "burst" => {
                    out.burst = Some(
                        value
                            .parse::<f32>()
                            .ok()
                            .filter(|b| *b >= 1.0 && b.is_finite())
                            .ok_or_else(|| bad("burst", value, "a packet count >= 1"))?,
                    )
                }
                "reorder" => out.reorder = share("reorder", value)?,
                "rate" => out.rate_bps = Some(rate(value)?),
                "queue" => out.queue = Some(duration("queue", value)?),
                "seed" => {
                    out.seed = value
                        .parse()
                        .map_err(|_| bad("seed", value, "a whole number"))?
                }
                other => return Err(ParseError::UnknownKey(other.to_string())),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.delay.is_zero() {
            parts.push(format!("delay={}ms", self.delay.as_millis()));
        }
        if !self.jitter.is_zero() {
            parts.push(format!("jitter={}ms", self.jitter.as_millis()));
        }
        if self.loss > 0.0 {
            parts.push(format!("loss={}%", self.loss * 100.0));
        }
        if let Some(b) = self.burst {
            parts.push(format!("burst={b}"));
        }
        if self.reorder > 0.0 {
            parts.push(format!("reorder={}%", self.reorder * 100.0));
        }
        if let Some(bps) = self.rate_bps {
            parts.push(format!("rate={}kbit", bps as f64 / 1000.0));
        }
        if let Some(q) = self.queue {
            parts.push(format!("queue={}ms", q.as_millis()));
        }
        if parts.is_empty() {
            parts.push("none".into());
        }
        parts.push(format!("seed={}", self.seed));
        f.write_str(&parts.join(","))
    }
}

fn bad(key: &'static str, value: &str, expected: &'static str) -> ParseError {
    ParseError::BadValue {
        key,
        value: value.to_string(),
        expected,
    }
}

fn duration(key: &'static str, value: &str) -> Result<Duration, ParseError> {
    let expected = "a duration like 75ms, 500us or 1.5s";
    let (number, scale) = if let Some(n) = value.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = value.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(bad(key, value, expected));
    };
    let secs = number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| *n >= 0.0 && n.is_finite())
        .map(|n| n * scale)
        .filter(|s| *s < 3600.0)
        .ok_or_else(|| bad(key, value, expected))?;
    Ok(Duration::from_secs_f64(secs))
}

fn share(key: &'static str, value: &str) -> Result<f32, ParseError> {
    let expected = "a share like 5% or 0.05";
    let parsed = match value.strip_suffix('%') {
        Some(p) => p.trim().parse::<f32>().ok().map(|p| p / 100.0),
        None => value.parse::<f32>().ok(),
    };
    parsed
        .filter(|p| (0.0..=1.0).contains(p))
        .ok_or_else(|| bad(key, value, expected))
}

fn rate(value: &str) -> Result<u64, ParseError> {
    let expected = "a rate like 300kbit, 2.5mbit or 64000bit";
    let lower = value.to_ascii_lowercase();
    let lower = lower.trim_end_matches("/s").trim_end_matches("ps");
    let (number, scale) = if let Some(n) = lower.strip_suffix("gbit") {
        (n, 1e9)
    } else if let Some(n) = lower.strip_suffix("mbit") {
        (n, 1e6)
    } else if let Some(n) = lower.strip_suffix("kbit") {
        (n, 1e3)
    } else if let Some(n) = lower.strip_suffix("bit") {
        (n, 1.0)
    } else {
        return Err(bad("rate", value, expected));
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|bps| *bps >= 8000.0 && bps.is_finite() && *bps <= 1e11)
        .map(|bps| bps as u64)
        .ok_or_else(|| bad("rate", value, "a rate of at least 8kbit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_people_write() {
        let i: Impairment = "delay=75ms, jitter=5ms,loss=5%,rate=300kbit,seed=7"
            .parse()
            .unwrap();
        assert_eq!(i.delay, Duration::from_millis(75));
        assert_eq!(i.jitter, Duration::from_millis(5));
        assert!((i.loss - 0.05).abs() < 1e-6);
        assert_eq!(i.rate_bps, Some(300_000));
        assert_eq!(i.seed, 7);
        assert_eq!(
            "rate=1.5mbit".parse::<Impairment>().unwrap().rate_bps,
            Some(1_500_000)
        );
        assert_eq!(
            "loss=0.02,burst=4".parse::<Impairment>().unwrap().burst,
            Some(4.0)
        );
        assert!("none".parse::<Impairment>().unwrap().is_none());
        assert!("".parse::<Impairment>().unwrap().is_none());
    }

    #[test]
    fn round_trips_through_display() {
        let i: Impairment = "delay=75ms,loss=2%,burst=3,reorder=1%,rate=300kbit,queue=100ms,seed=9"
            .parse()
            .unwrap();
        assert_eq!(i.to_string().parse::<Impairment>().unwrap(), i);
    }

    #[test]
    fn refuses_nonsense_with_the_reason() {
        let err = |s: &str| s.parse::<Impairment>().unwrap_err().to_string();
        assert!(err("loss=150%").contains("loss"), "{}", err("loss=150%"));
        assert!(err("delay=75").contains("duration"));
        assert!(err("rate=300").contains("rate"));
        assert!(err("rate=1bit").contains("at least"));
        assert!(err("speed=3").contains("unknown setting `speed`"));
        assert!(err("loss").contains("key=value"));
        assert!(err("burst=0.5").contains("burst"));
    }

    /// The seeded model loses what it was asked to, in the long run and in bursts.
    #[test]
    fn loss_shares_hold_for_random_and_bursty_models() {
        use std::time::Instant;
        use str0m_netem::{Input, Netem, Output};
        for spec in ["loss=5%,seed=1", "loss=2%,burst=4,seed=2"] {
            let imp: Impairment = spec.parse().unwrap();
            let mut netem: Netem<Vec<u8>> = Netem::new(imp.to_netem());
            let now = Instant::now();
            let sent = 50_000;
            let (mut delivered, mut runs, mut in_run) = (0, 0, false);
            for _ in 0..sent {
                netem.handle_input(Input::Packet(now, vec![0u8; 100]));
                let mut got = false;
                while let Some(out) = netem.poll_output() {
                    if let Output::Packet(_) = out {
                        got = true;
                        delivered += 1;
                    }
                }
                if !got && !in_run {
                    runs += 1;
                }
                in_run = !got;
            }
            let lost = (sent - delivered) as f32 / sent as f32;
            assert!(
                (lost - imp.loss).abs() < imp.loss * 0.15,
                "{spec}: lost {lost}"
            );
            let mean_burst = (sent - delivered) as f32 / runs as f32;
            let want = imp.burst.unwrap_or(1.0);
            assert!(
                (mean_burst - want).abs() < want * 0.25 + 0.1,
                "{spec}: mean burst {mean_burst}"
            );
        }
    }
}
