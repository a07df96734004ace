//! Headless Chromium as a viewer: tests/browser/driver.mjs (playwright-core driving Debian's
//! chromium with fake media devices and autoplay allowed), spawned like the Python viewer and
//! spoken to in JSON lines. It measures what the page does (WebRTC `getStats` of the page's
//! peer connections, and the page as rendered); the Rust test decides.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::Mutex;

use crate::paths::{browser_node_modules, chromium_bin, repo_root, web_node_modules};
use crate::process::tie_to_test_tokio;

/// Video figures of the page: the sum over its peer connections' inbound-rtp video.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoStats {
    pub frames_decoded: u64,
    pub frames_dropped: u64,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub packets_lost: i64,
    pub bytes: u64,
    /// e.g. `video/H264`, `video/VP8`.
    pub codec: Option<String>,
}

/// Audio figures: inbound-rtp audio.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioStats {
    /// `totalSamplesReceived`.
    pub samples: u64,
    pub packets: u64,
    pub bytes: u64,
    pub level: f64,
}

/// The `<video>` element.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElementStats {
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    pub paused: bool,
    pub client_width: u32,
    pub client_height: u32,
    /// The element or one of its ancestors is `hidden`.
    #[serde(default)]
    pub hidden: bool,
}

/// One chat line as the page renders it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatLine {
    pub id: Option<String>,
    pub identity: Option<String>,
    pub role: Option<String>,
    /// "Creator", "Guest" or none.
    pub badge: Option<String>,
    pub name: Option<String>,
    pub text: Option<String>,
}

/// What a person sees on the page.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomState {
    pub path: String,
    /// The watch page's state: loading, offline, connecting, live, notfound, removed, error.
    pub state: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub viewer_count: Option<u32>,
    pub viewer_text: Option<String>,
    pub chat: Vec<ChatLine>,
    /// The chat input is shown and enabled.
    pub chat_open: bool,
    pub chat_input_visible: bool,
    /// The rule shown in the chat box, if any ("Chat is for followers only.").
    pub chat_rule: Option<String>,
    /// Usernames of the stream cards (live list, following).
    pub streams: Vec<String>,
    pub resolution: Option<String>,
}

/// Media figures at one moment (`t`: Unix ms).
#[derive(Debug, Clone, Deserialize)]
pub struct MediaSample {
    pub t: u64,
    pub video: VideoStats,
    pub audio: AudioStats,
    pub element: Option<ElementStats>,
    /// Every `<video>` by its `data-testid` (`video`: the player; `video-inset`: the camera
    /// in the corner while a screen share fills the player).
    #[serde(default)]
    pub elements: HashMap<String, ElementStats>,
}

/// Media figures and the rendered page at one moment.
#[derive(Debug, Clone, Deserialize)]
pub struct PageSample {
    pub t: u64,
    pub video: VideoStats,
    pub audio: AudioStats,
    pub element: Option<ElementStats>,
    /// Every `<video>` by its `data-testid` (`video`: the player; `video-inset`: the camera
    /// in the corner while a screen share fills the player).
    #[serde(default)]
    pub elements: HashMap<String, ElementStats>,
    pub dom: DomState,
}

/// First decoded frame after the page's last navigation or click.
#[derive(Debug, Clone, Deserialize)]
pub struct FirstFrame {
    pub ms: u64,
    pub width: u32,
    pub height: u32,
}

type Io = (ChildStdin, Lines<BufReader<ChildStdout>>);

/// One headless Chromium (one driver process); pages are separate browser contexts, so
/// each is its own viewer (own storage, own LiveKit participant). Killed on drop, and dies
/// with the test process (its chromium exits when the driver's pipe closes).
pub struct Browser {
    _child: Child,
    io: Mutex<Io>,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
    /// Chromium's version, e.g. `156.0.8078.114`.
    pub version: String,
}

/// A page (tab) of a [`Browser`].
pub struct Page<'a> {
    browser: &'a Browser,
    id: u64,
}

impl Browser {
    /// Starts chromium (after making sure the watch pages are built).
    pub async fn launch() -> Result<Browser> {
        ensure_web_built()?;
        let modules = browser_node_modules()?;
        let chromium = chromium_bin()?;
        let log_dir = tempfile::tempdir()?;
        let log = log_dir.path().join("driver.log");
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(repo_root().join("tests/browser/driver.mjs"))
            .env("STREAMIT_BROWSER_NODE_MODULES", &modules)
            .env("STREAMIT_CHROMIUM", &chromium)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?);
        tie_to_test_tokio(&mut cmd);
        let mut child = cmd
            .spawn()
            .context("starting node for the browser driver")?;
        let stdin = child.stdin.take().context("driver stdin")?;
        let stdout = child.stdout.take().context("driver stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        let line = match ready {
            Ok(Ok(Some(line))) => line,
            _ => bail!(
                "the browser driver did not start: {}",
                tail(&log, 30).unwrap_or_default()
            ),
        };
        let hello: Value = serde_json::from_str(&line).context("driver greeting")?;
        ensure!(hello["ready"] == true, "driver said {line}");
        Ok(Browser {
            _child: child,
            io: Mutex::new((stdin, lines)),
            version: hello["version"].as_str().unwrap_or_default().to_string(),
            log,
            _log_dir: log_dir,
        })
    }

    /// Opens a new page (its own browser context) at `url`.
    pub async fn open(&self, url: &str) -> Result<Page<'_>> {
        let r = self.call(json!({"cmd": "open", "url": url})).await?;
        let id = r["page"].as_u64().context("page id")?;
        Ok(Page { browser: self, id })
    }

    /// The last lines the driver and the pages logged (console errors and warnings).
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines).unwrap_or_default()
    }

    async fn call(&self, cmd: Value) -> Result<Value> {
        self.call_within(cmd, Duration::from_secs(60)).await
    }

    async fn call_within(&self, cmd: Value, limit: Duration) -> Result<Value> {
        let mut io = self.io.lock().await;
        let (stdin, lines) = &mut *io;
        let mut text = serde_json::to_string(&cmd)?;
        text.push('\n');
        stdin
            .write_all(text.as_bytes())
            .await
            .context("the browser driver is gone")?;
        stdin.flush().await?;
        let line = match tokio::time::timeout(limit, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => bail!("the browser driver exited: {}", self.log_tail(30)),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => bail!(
                "the browser driver did not answer {} within {limit:?}",
                cmd["cmd"]
            ),
        };
        let v: Value =
            serde_json::from_str(&line).with_context(|| format!("driver answer: {line}"))?;
        if v["ok"] != true {
            bail!(
                "browser {}: {}\n{}",
                cmd["cmd"],
                v["error"].as_str().unwrap_or("failed"),
                self.log_tail(20)
            );
        }
        Ok(v)
    }
}

impl Page<'_> {
    async fn call(&self, cmd: &str, mut args: Value) -> Result<Value> {
        args["cmd"] = json!(cmd);
        args["page"] = json!(self.id);
        self.browser.call(args).await
    }

    /// Navigates (the first-frame clock starts here).
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.call("goto", json!({"url": url})).await.map(drop)
    }

    /// Clicks the element (the first-frame clock starts here).
    pub async fn click(&self, selector: &str) -> Result<()> {
        self.call("click", json!({"selector": selector}))
            .await
            .map(drop)
    }

    pub async fn fill(&self, selector: &str, text: &str) -> Result<()> {
        self.call("fill", json!({"selector": selector, "text": text}))
            .await
            .map(drop)
    }

    pub async fn wait_for(&self, selector: &str, within: Duration) -> Result<()> {
        self.call(
            "waitFor",
            json!({"selector": selector, "timeoutMs": within.as_millis() as u64}),
        )
        .await
        .map(drop)
    }

    /// Media figures and the page as rendered, now.
    pub async fn sample(&self) -> Result<PageSample> {
        let v = self.call("sample", json!({})).await?;
        serde_json::from_value(v).context("page sample")
    }

    /// Samples until `done` holds, every 200 ms, for at most `within`; the last sample
    /// goes into the error otherwise.
    pub async fn wait_until(
        &self,
        what: &str,
        within: Duration,
        mut done: impl FnMut(&PageSample) -> bool,
    ) -> Result<PageSample> {
        let start = Instant::now();
        loop {
            let s = self.sample().await?;
            if done(&s) {
                return Ok(s);
            }
            if start.elapsed() > within {
                bail!(
                    "the page never showed {what} within {within:?}; last: {:?} video {:?} elements {:?}\n{}",
                    s.dom,
                    s.video,
                    s.elements,
                    self.browser.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Media samples every `interval` for `span`.
    pub async fn record(&self, span: Duration, interval: Duration) -> Result<Vec<MediaSample>> {
        let v = self
            .browser
            .call_within(
                json!({"cmd": "record", "page": self.id, "ms": span.as_millis() as u64,
                       "intervalMs": interval.as_millis() as u64}),
                span + Duration::from_secs(30),
            )
            .await?;
        serde_json::from_value(v["samples"].clone()).context("media samples")
    }

    /// Waits for the first decoded video frame; the time counts from the last
    /// [`goto`](Self::goto) / [`click`](Self::click) (or the open).
    pub async fn first_frame(&self, within: Duration) -> Result<FirstFrame> {
        let v = self
            .browser
            .call_within(
                json!({"cmd": "firstFrame", "page": self.id, "timeoutMs": within.as_millis() as u64}),
                within + Duration::from_secs(10),
            )
            .await?;
        serde_json::from_value(v).context("first frame")
    }

    /// Types `text` into the chat box and sends it; returns when the page shows it.
    pub async fn send_chat(&self, text: &str) -> Result<()> {
        self.call("chat", json!({"text": text})).await.map(drop)
    }

    /// The quality menu: "auto", "high", "medium" or "low".
    pub async fn choose_quality(&self, quality: &str) -> Result<()> {
        self.call("quality", json!({"value": quality}))
            .await
            .map(drop)
    }

    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        self.call("screenshot", json!({"path": path}))
            .await
            .map(drop)
    }

    /// Leaves like a person closing the tab.
    pub async fn close(self) -> Result<()> {
        self.call("close", json!({})).await.map(drop)
    }
}

fn tail(path: &Path, lines: usize) -> Result<String> {
    let text = std::fs::read_to_string(path)?;
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..].join("\n"))
}

/// Builds crates/server/web into its `dist/` when dist is missing or older than a source
/// (as scripts/install.sh does), type-checking it first (`build.mjs --check`, a few
/// seconds). Once per test process.
pub fn ensure_web_built() -> Result<()> {
    static BUILT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_web().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_web() -> Result<()> {
    let web = repo_root().join("crates/server/web");
    let built = std::fs::metadata(web.join("dist/index.html"))
        .and_then(|m| m.modified())
        .ok();
    let newest_source = newest_mtime(&web.join("src"))?
        .max(std::fs::metadata(web.join("build.mjs"))?.modified()?)
        .max(std::fs::metadata(web.join("package-lock.json"))?.modified()?);
    if built.is_some_and(|b| b >= newest_source) {
        return Ok(());
    }
    let out = std::process::Command::new("node")
        .arg(web.join("build.mjs"))
        .arg("--check")
        .env("STREAMIT_WEB_NODE_MODULES", web_node_modules()?)
        .output()
        .context("running node crates/server/web/build.mjs")?;
    ensure!(
        out.status.success(),
        "building the watch pages failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn newest_mtime(dir: &Path) -> Result<SystemTime> {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let t = if meta.is_dir() {
            newest_mtime(&entry.path())?
        } else {
            meta.modified()?
        };
        newest = newest.max(t);
    }
    Ok(newest)
}
