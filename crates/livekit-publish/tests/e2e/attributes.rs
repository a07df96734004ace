//! Participant attributes against a real livekit-server (v1.13.5): what one
//! participant sets with `set_attributes` reaches the others (Rust participants
//! already in the room and joining later, and the Python SDK viewer); a token
//! without `canUpdateOwnMetadata` is refused; they survive a full rejoin.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, spawn_viewer};
use streamit_livekit_publish::*;
use tokio::sync::mpsc::Receiver;

const KEY: &str = "streamit.mediaClockEpochUs";

/// Every event a participant emitted, collected by a background task.
#[derive(Clone, Default)]
struct EventLog(Arc<Mutex<Vec<(Instant, PublisherEvent)>>>);

impl EventLog {
    fn spawn(mut rx: Receiver<PublisherEvent>) -> Self {
        let log = EventLog::default();
        let l = log.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if let Ok(mut v) = l.0.lock() {
                    v.push((Instant::now(), e));
                }
            }
        });
        log
    }

    fn snapshot(&self) -> Vec<(Instant, PublisherEvent)> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits for an event after `since` that matches `f`; returns when it came.
    async fn wait(
        &self,
        since: Instant,
        what: &str,
        f: impl Fn(&PublisherEvent) -> bool,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.snapshot();
            if let Some((at, _)) = events.iter().find(|(at, e)| *at >= since && f(e)) {
                return Ok(*at);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "timed out waiting for {what}; saw {:?}",
                events.iter().map(|(_, e)| e).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The attributes of `identity` as the last join/update event announced them.
    fn attributes_of(&self, identity: &str) -> Option<HashMap<String, String>> {
        self.snapshot()
            .into_iter()
            .filter_map(|(_, e)| match e {
                PublisherEvent::ParticipantJoined(p) | PublisherEvent::ParticipantUpdated(p)
                    if p.identity.as_str() == identity =>
                {
                    Some(p.attributes)
                }
                _ => None,
            })
            .last()
    }
}

/// `identity`'s join or update event with `key` = `value` (`None`: key absent).
fn announces(identity: &str, key: &str, value: Option<&str>) -> impl Fn(&PublisherEvent) -> bool {
    let (identity, key, value) = (
        identity.to_string(),
        key.to_string(),
        value.map(String::from),
    );
    move |e| match e {
        PublisherEvent::ParticipantJoined(p) | PublisherEvent::ParticipantUpdated(p) => {
            p.identity.as_str() == identity && p.attributes.get(&key) == value.as_ref()
        }
        _ => false,
    }
}

async fn join(
    server: &Server,
    identity: &str,
    publish: bool,
) -> anyhow::Result<(PublisherHandle, EventLog)> {
    let token = server.token(identity, "room", publish)?;
    let (handle, events) =
        Publisher::connect(&server.ws_url(), &token, PublishOptions::default()).await?;
    let log = EventLog::spawn(events);
    log.wait(Instant::now() - Duration::from_secs(60), "Connected", |e| {
        matches!(e, PublisherEvent::StateChanged(ConnectionState::Connected))
    })
    .await?;
    Ok((handle, log))
}

fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_reach_present_and_late_participants_and_need_the_grant() -> anyhow::Result<()> {
    let server = Server::start()?;
    let (creator, creator_log) = join(&server, "creator", true).await?;
    let (early, early_log) = join(&server, "early", false).await?;

    // Set while the other is in the room: it gets a ParticipantUpdated.
    let t = Instant::now();
    creator.set_attributes(attrs(&[(KEY, "1764050000123456")]))?;
    let at = early_log
        .wait(
            t,
            "the attribute at the early participant",
            announces("creator", KEY, Some("1764050000123456")),
        )
        .await?;
    println!("attribute reached a present participant in {:?}", at - t);

    // A participant joining later has it from the start (join response).
    let (late, late_log) = join(&server, "late", false).await?;
    let joined = late_log
        .snapshot()
        .into_iter()
        .find_map(|(_, e)| match e {
            PublisherEvent::ParticipantJoined(p) if p.identity.as_str() == "creator" => Some(p),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("late participant never saw the creator join"))?;
    assert_eq!(
        joined.attributes.get(KEY).map(String::as_str),
        Some("1764050000123456")
    );

    // Updates merge: a new key is added, an empty value deletes one.
    let t = Instant::now();
    creator.set_attributes(attrs(&[(KEY, "7"), ("other", "x")]))?;
    early_log
        .wait(
            t,
            "the second update",
            announces("creator", "other", Some("x")),
        )
        .await?;
    let t = Instant::now();
    creator.set_attributes(attrs(&[("other", "")]))?;
    early_log
        .wait(t, "the deletion", announces("creator", "other", None))
        .await?;
    assert_eq!(
        early_log.attributes_of("creator"),
        Some(attrs(&[(KEY, "7")]))
    );
    late_log
        .wait(
            t,
            "the deletion (late)",
            announces("creator", "other", None),
        )
        .await?;
    assert_eq!(
        late_log.attributes_of("creator"),
        Some(attrs(&[(KEY, "7")]))
    );

    // The Python SDK sees the same attributes.
    let py_token = server.token("py", "room", false)?;
    let py = spawn_viewer(&server.ws_url(), &py_token, 2.0)?
        .report()
        .await?;
    let seen = py.participant_attributes.get("creator");
    assert_eq!(
        seen.and_then(|a| a.get(KEY)).map(String::as_str),
        Some("7"),
        "python viewer saw {:?}",
        py.participant_attributes
    );
    assert!(seen.is_some_and(|a| !a.contains_key("other")));

    // A viewer token has no canUpdateOwnMetadata: the server refuses, nobody sees it.
    let t = Instant::now();
    early.set_attributes(attrs(&[(KEY, "1")]))?;
    let refused = early_log
        .wait(t, "the refusal", |e| matches!(e, PublisherEvent::Error(_)))
        .await?;
    let message = early_log
        .snapshot()
        .into_iter()
        .find_map(|(at, e)| match e {
            PublisherEvent::Error(m) if at == refused => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    println!("refusal after {:?}: {message}", refused - t);
    assert!(
        message.contains("attributes") && message.contains("NOT_ALLOWED"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    for log in [&creator_log, &late_log] {
        let a = log.attributes_of("early").unwrap_or_default();
        assert!(a.is_empty(), "the refused attribute arrived: {a:?}");
    }
    // The creator's own update raised no error.
    let errors: Vec<_> = creator_log
        .snapshot()
        .into_iter()
        .filter(|(_, e)| matches!(e, PublisherEvent::Error(_)))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    for h in [creator, early, late] {
        h.leave().await?;
    }
    Ok(())
}

/// Waits for `log`'s participant to be `Connected` again after `since`.
async fn reconnected(log: &EventLog, since: Instant) -> anyhow::Result<Instant> {
    log.wait(since, "Reconnecting", |e| {
        matches!(
            e,
            PublisherEvent::StateChanged(ConnectionState::Reconnecting { .. })
        )
    })
    .await?;
    log.wait(since, "Connected again", |e| {
        matches!(e, PublisherEvent::StateChanged(ConnectionState::Connected))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_survive_a_full_rejoin_and_a_server_restart() -> anyhow::Result<()> {
    let mut server = Server::start()?;
    let (creator, creator_log) = join(&server, "creator", true).await?;
    let (observer, observer_log) = join(&server, "observer", false).await?;
    let t = Instant::now();
    creator.set_attributes(attrs(&[(KEY, "42")]))?;
    observer_log
        .wait(t, "the attribute", announces("creator", KEY, Some("42")))
        .await?;
    // The server keeps attributes in the participant's claims and sends the client a
    // refreshed token with them; a rejoin presents that token. Let the refresh arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Simulated node failure: the server refuses a resume and the creator rejoins in
    // full at once — with its attributes. (A rejoin that quick takes the old
    // participant's place in the room: the observer sees no leave and no join, so
    // a participant who joins afterwards checks what the new session carries.)
    let t = Instant::now();
    creator.simulate(livekit_protocol::simulate_scenario::Scenario::NodeFailure(
        true,
    ))?;
    let back = reconnected(&creator_log, t).await?;
    let rejoined = creator_log
        .wait(t, "the rejoin's recovery report", |e| {
            matches!(
                e,
                PublisherEvent::Recovery(r)
                    if r.outcome == RecoveryOutcome::Rejoined(RejoinReason::ResumeRefused)
            )
        })
        .await?;
    let (newcomer, newcomer_log) = join(&server, "newcomer", false).await?;
    newcomer_log
        .wait(
            t,
            "the creator with its attribute",
            announces("creator", KEY, Some("42")),
        )
        .await?;
    println!(
        "node failure: creator Connected after {:?} (rejoin reported after {:?}), a newcomer sees {:?}",
        back - t,
        rejoined - t,
        newcomer_log.attributes_of("creator")
    );
    assert_eq!(
        observer_log.attributes_of("creator"),
        Some(attrs(&[(KEY, "42")])),
        "the observer never saw the attribute go"
    );
    newcomer.leave().await?;

    // A server restart forgets every room; both rejoin a fresh one, the creator's
    // attributes come back with its refreshed token.
    let t = Instant::now();
    server.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart()?;
    let (a, b) = tokio::join!(reconnected(&creator_log, t), reconnected(&observer_log, t));
    let seen = observer_log
        .wait(t, "the creator in the new room", |e| {
            matches!(e, PublisherEvent::ParticipantJoined(p) if p.identity.as_str() == "creator")
        })
        .await?;
    println!(
        "server restart: creator back after {:?}, observer after {:?}, saw the creator after {:?} with {:?}",
        a? - t,
        b? - t,
        seen - t,
        observer_log.attributes_of("creator")
    );
    assert_eq!(
        observer_log.attributes_of("creator"),
        Some(attrs(&[(KEY, "42")]))
    );
    observer.leave().await?;
    creator.leave().await?;
    Ok(())
}
