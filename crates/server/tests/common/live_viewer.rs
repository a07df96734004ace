//! The Python SDK viewer (tests/viewer/viewer.py) driven live with `--commands`:
//! it stays in the room, sends chat when told and reports every event, so a
//! test can act between two of them (change a setting, ban) instead of
//! scripting the whole run up front.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use streamit_testkit::ViewerReport;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

/// One Python SDK participant in a room.
pub struct LiveViewer {
    pub identity: String,
    /// The room metadata when it joined.
    pub metadata: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Every event so far, in order.
    pub events: Vec<Value>,
    report: Option<Value>,
}

/// What `send` says about one chat message.
#[derive(Debug, Clone)]
pub struct Sent {
    /// `send_text` returned (the SDK handed it to the SFU) rather than raised.
    pub ok: bool,
    pub error: Option<String>,
    pub unix_ms: i64,
}

impl LiveViewer {
    /// Joins `url` with `token` and waits (≤ 30 s) until it is in the room.
    pub async fn join(url: &str, token: &str) -> Result<LiveViewer> {
        Self::join_with(url, token, &[]).await
    }

    /// [`LiveViewer::join`] with more `viewer.py` options, e.g. `--try-publish`
    /// (a creator token then publishes a video track) or a longer `--duration`
    /// (the last one given wins).
    pub async fn join_with(url: &str, token: &str, extra: &[&str]) -> Result<LiveViewer> {
        let python = streamit_testkit::viewer_python()?;
        let script = streamit_testkit::repo_root().join("tests/viewer/viewer.py");
        let mut std_cmd = std::process::Command::new(python);
        std_cmd
            .arg(script)
            .args([
                "--url",
                url,
                "--token",
                token,
                "--duration",
                "120",
                "--commands",
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        streamit_testkit::tie_to_test(&mut std_cmd);
        let mut cmd = tokio::process::Command::from(std_cmd);
        cmd.kill_on_drop(true);
        let mut child = cmd.spawn().context("starting the Python viewer")?;
        let stdout = child.stdout.take().context("viewer stdout")?;
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        let mut v = LiveViewer {
            identity: String::new(),
            metadata: String::new(),
            child,
            stdin,
            lines,
            events: Vec::new(),
            report: None,
        };
        let joined = v
            .wait_event("joined", Duration::from_secs(30), |_| true)
            .await
            .with_context(|| format!("the viewer did not join: {:?}", v.report))?;
        v.identity = joined["identity"].as_str().unwrap_or_default().to_string();
        v.metadata = joined["metadata"].as_str().unwrap_or_default().to_string();
        Ok(v)
    }

    /// Waits for the next event line; `None` once the viewer printed its report or exited.
    async fn next(&mut self, deadline: Instant) -> Option<Value> {
        if self.report.is_some() {
            return None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.lines.recv()).await {
            Ok(Some(v)) if v.get("event").is_some() => {
                self.events.push(v.clone());
                Some(v)
            }
            Ok(Some(report)) => {
                self.report = Some(report);
                None
            }
            Ok(None) | Err(_) => None,
        }
    }

    /// The first event of `kind` (seen before or arriving within `limit`) that `pred` accepts.
    pub async fn wait_event(
        &mut self,
        kind: &str,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(e) = self.events.iter().find(|e| e["event"] == kind && pred(e)) {
            return Some(e.clone());
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let e = self.next(deadline).await?;
            if e["event"] == kind && pred(&e) {
                return Some(e);
            }
        }
        None
    }

    /// Sends `text` on lk.chat and waits for the viewer's word on it.
    pub async fn send(&mut self, text: &str) -> Result<Sent> {
        let stdin = self.stdin.as_mut().context("viewer stdin closed")?;
        let line = format!("{}\n", json!({"cmd": "send", "text": text}));
        stdin.write_all(line.as_bytes()).await?;
        stdin.flush().await?;
        let e = self
            .wait_event("sent", Duration::from_secs(15), |e| e["text"] == text)
            .await;
        match e {
            Some(e) => Ok(Sent {
                ok: e["ok"].as_bool().unwrap_or(false),
                error: e["error"].as_str().map(str::to_string),
                unix_ms: e["unix_ms"].as_i64().unwrap_or(0),
            }),
            None => bail!("no answer to sending {text:?}: {:?}", self.report),
        }
    }

    /// The chat message `text` if it arrives within `limit`: (sender identity, unix ms).
    pub async fn wait_chat(&mut self, text: &str, limit: Duration) -> Option<(String, i64)> {
        self.wait_event("chat", limit, |e| e["text"] == text)
            .await
            .map(|e| {
                (
                    e["from"].as_str().unwrap_or_default().to_string(),
                    e["unix_ms"].as_i64().unwrap_or(0),
                )
            })
    }

    /// Every chat text received so far.
    pub fn chat_texts(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["event"] == "chat")
            .filter_map(|e| e["text"].as_str().map(str::to_string))
            .collect()
    }

    /// Waits for the viewer to be disconnected by the server; the reason.
    pub async fn wait_disconnected(&mut self, limit: Duration) -> Option<String> {
        self.wait_event("disconnected", limit, |_| true)
            .await
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
    }

    /// Kills the process with SIGKILL, as a crash would: no goodbye to LiveKit.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// Leaves the room and returns the viewer's final report.
    pub async fn quit(mut self) -> Result<ViewerReport> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin
                .write_all(format!("{}\n", json!({"cmd": "quit"})).as_bytes())
                .await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.report.is_none() && Instant::now() < deadline {
            if self.next(deadline).await.is_none() && self.report.is_none() {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let report = self.report.take().context("the viewer printed no report")?;
        Ok(serde_json::from_value(report)?)
    }
}
