//! The scaled-out system (`streamit_testkit::Cluster`, what `scripts/scale-out.sh` starts):
//! PostgreSQL, Redis, two LiveKit nodes on that Redis, two backend instances on that
//! PostgreSQL, haproxy in front of them. Every part is a real server.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{live_session, publish_succeeded, studio, wait_until_live};
use streamit_api::ViewerTokenRequest;
use streamit_api::client::Client;
use streamit_session::watch::measure::LatencyStats;
use streamit_session::{Command, StreamSetup, StreamState, SummaryDelivery};
use streamit_testkit::balancer::INSTANCE_HEADER;
use streamit_testkit::{
    Cluster, ClusterOptions, TEST_PASSWORD, Viewer, ViewerOptions, children_cpu_time,
    process_cpu_time,
};

/// One cluster at a time: each is seven server processes plus a publisher and viewers, and
/// two side by side on a 2-core machine starve the timings these tests measure.
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Which LiveKit node (0: A, 1: B) hosts the room of the participant `identity` (a user
/// id): the one whose log shows that participant active there (`"remote": false`).
fn room_node(cluster: &Cluster, identity: &str) -> Option<usize> {
    cluster.livekit.iter().position(|lk| {
        lk.log_tail(100_000).lines().any(|l| {
            l.contains("participant active")
                && l.contains(identity)
                && l.contains("\"remote\": false")
        })
    })
}

/// Requests the balancer's log shows for instance `server` (`be1`, `be2`), and webhooks
/// among them.
fn served(cluster: &Cluster, server: &str) -> (usize, usize) {
    let log = cluster.balancer.log_tail(1_000_000);
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("streamit/{server} ")))
        .collect();
    let webhooks = lines
        .iter()
        .filter(|l| l.contains("POST /api/livekit/webhook"))
        .count();
    (lines.len(), webhooks)
}

/// A creator publishes with `streamit-studio publish` through the balancer (token for node
/// A); the official Python SDK viewer and our `watch --livekit-url` join through the URL of
/// the node that does *not* host the room (LiveKit routes them through Redis) and decode the
/// pattern; both nodes' webhooks reach the backends through the balancer, so the backend
/// shows the stream live, counts both viewers and the session's peak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_on_the_other_livekit_node_watches_a_creator_through_the_balancer() -> Result<()> {
    let _one = ONE_CLUSTER.lock().await;
    let cluster = Cluster::start()?;
    let s = &cluster.startup;
    println!(
        "cluster up in {:.2} s: postgres {:.2} s, redis {:.2} s, 2 livekit nodes {:.2} s, 2 backends {:.2} s, haproxy {:.2} s",
        s.total.as_secs_f64(),
        s.postgres.as_secs_f64(),
        s.redis.as_secs_f64(),
        s.livekit.as_secs_f64(),
        s.backends.as_secs_f64(),
        s.balancer.as_secs_f64()
    );
    let url = cluster.url();
    let creator_id = cluster.creator("crossnode").await?.user.id;
    let report_dir = tempfile::tempdir()?;
    let report_path = report_dir.path().join("report.json");
    let publish = studio()
        .args(["publish", "--api", &url, "--username", "crossnode"])
        .args(["--password", TEST_PASSWORD, "--title", "Across nodes"])
        .args(["--source", "synthetic", "--audio", "tone"])
        .args(["--codec", "vp8", "--simulcast", "--duration", "20s"])
        .arg("--report-json")
        .arg(&report_path)
        .spawn()?;
    let public = Client::new(&url);
    wait_until_live(&public, "crossnode", Duration::from_secs(15)).await?;

    // A guest token through the balancer; the backend hands out node A's URL…
    let grant = public
        .viewer_token(&ViewerTokenRequest {
            host_id: creator_id.clone(),
            guest_name: Some("Node B viewer".into()),
        })
        .await?;
    let node_a = cluster.livekit[0].ws_url();
    ensure!(
        grant.ws_url == node_a,
        "token for {} not node A",
        grant.ws_url
    );
    // Where LiveKit put the room (its allocator picks a node; the creator signals via A).
    let start = Instant::now();
    let host = loop {
        if let Some(host) = room_node(&cluster, &creator_id) {
            break host;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "no node shows the creator active\n{}",
            cluster.logs(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let other = 1 - host;
    println!(
        "room on node {}; the viewer signals through node {}",
        ["A", "B"][host],
        ["A", "B"][other]
    );
    // The viewer signals through the other node, which routes it through Redis.
    let mut opts = ViewerOptions::new(cluster.livekit[other].ws_url(), grant.token);
    opts.duration = Duration::from_secs(14);
    opts.until_frames = Some(300);
    opts.read_pattern = true;
    let viewer = Viewer::spawn(opts)?;
    // And our own viewer, `watch`, told to join through the same other node.
    let other_url = cluster.livekit[other].ws_url();
    let watch = studio()
        .args([
            "watch",
            "crossnode",
            "--api",
            &url,
            "--livekit-url",
            &other_url,
        ])
        .args(["--name", "Node B watch", "--duration", "14s", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;

    // The backend (through either instance) counts both viewers: the join webhooks came
    // from the node hosting the room, through the balancer.
    let start = Instant::now();
    let mut counted = None;
    while start.elapsed() < Duration::from_secs(15) {
        let s = public.stream_by_username("crossnode").await?;
        if s.viewer_count == 2 {
            counted = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        counted.is_some(),
        "the backend never counted both viewers\n{}",
        cluster.logs(30)
    );
    let viewer = viewer.report().await?;
    let watched = watch.wait_with_output().await?;
    let watched: serde_json::Value =
        serde_json::from_slice(&watched.stdout).with_context(|| {
            format!(
                "watch --json ({}): {}",
                watched.status,
                String::from_utf8_lossy(&watched.stdout)
            )
        })?;
    publish_succeeded(publish, Duration::from_secs(40), &cluster.logs(30)).await?;
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path)?).context("the publish report")?;

    println!(
        "publisher: captured {} sent {} dropped {} (skipped for the network {}, cpu adaptations {}), \
         estimate kbit/s per second {}, send-queue ms per second {}",
        report["framesCaptured"],
        report["framesSent"],
        report["framesDropped"],
        report["framesSkippedForNetwork"],
        report["cpuAdaptations"],
        report["targetBitrateKbpsPerSecond"],
        report["sendQueueDelayMsPerSecond"]
    );
    let pattern = &viewer.pattern;
    println!(
        "viewer via the other node: joined={} frames={} resolutions={:?} first frame {:?} ms; \
         pattern read {} distinct {} missing {} decoded {:.1} %; backend counted the viewer after {:?}",
        viewer.joined,
        viewer.video.frames,
        viewer.video.resolutions,
        viewer.video.first_frame_ms,
        pattern.read,
        pattern.distinct,
        pattern.missing_in_span,
        pattern.decoded_share() * 100.0,
        counted
    );
    ensure!(viewer.joined, "viewer did not join: {:?}", viewer.error);
    ensure!(
        viewer.participants_seen.contains(&creator_id),
        "the viewer on the other node never saw the creator: {:?}",
        viewer.participants_seen
    );
    ensure!(
        viewer.video.frames >= 150,
        "decoded {} frames",
        viewer.video.frames
    );
    let adaptations = report["cpuAdaptations"].as_u64().unwrap_or(0);
    if adaptations == 0 {
        ensure!(
            pattern.decoded_share() >= 0.95,
            "decoded {:.1} % of the frames in span ({pattern:?})",
            pattern.decoded_share() * 100.0
        );
    } else {
        // The publisher stepped its frame rate down for the CPU (a busy 2-core machine): the
        // frames it skipped never left it, one in every few. The viewer must still show every
        // frame that was sent: no run of more than 2 missing frames, and no freeze.
        let longest_run = pattern
            .samples
            .windows(2)
            .map(|w| w[1].0.saturating_sub(w[0].0 + 1))
            .max()
            .unwrap_or(0);
        println!(
            "the publisher adapted {adaptations}× for the CPU ({}); longest run of missing frames {longest_run}",
            report["cpuLimited"]
        );
        ensure!(
            longest_run <= 2 && pattern.freezes_ms.is_empty(),
            "beyond the publisher's frame-rate step: longest run {longest_run}, freezes {:?}",
            pattern.freezes_ms
        );
    }
    ensure!(pattern.out_of_order == 0, "{pattern:?}");

    // `watch` through the other node: the same bars from its own pattern reader, and its
    // loss counter (stalls: frames left undecodable) for the frames the publisher did send.
    let v = &watched["video"];
    let (first, last) = (v["firstCode"].as_u64(), v["lastCode"].as_u64());
    let span = match (first, last) {
        (Some(a), Some(b)) if b >= a => b - a + 1,
        _ => 0,
    };
    let missing = v["missingFrames"].as_u64().unwrap_or(u64::MAX);
    let decoded = 1.0 - missing.min(span) as f64 / span.max(1) as f64;
    println!(
        "watch via {}: {} frames decoded, {:.1} % of its span of {span}, {} stalls, delivered {} %, first frame {} ms",
        watched["livekitUrl"],
        v["framesDecoded"],
        decoded * 100.0,
        v["stalls"],
        v["deliveredPct"],
        watched["firstFrameMs"]
    );
    ensure!(watched["outcome"] == "completed", "{watched}");
    ensure!(
        watched["livekitUrl"] == other_url.as_str(),
        "watch joined {}, not {other_url}",
        watched["livekitUrl"]
    );
    ensure!(v["framesDecoded"].as_u64().unwrap_or(0) >= 150, "{v}");
    if adaptations == 0 {
        ensure!(
            decoded >= 0.95,
            "watch decoded {:.1} %: {v}",
            decoded * 100.0
        );
    } else {
        ensure!(v["stalls"] == 0 && v["outOfOrder"] == 0, "{v}");
    }

    // The studio's count and the backend's session peak both saw the two viewers.
    ensure!(
        report["peakViewers"] == 2,
        "studio peak {}",
        report["peakViewers"]
    );
    let summary = &report["summary"];
    ensure!(
        summary["peakViewers"] == 2,
        "backend peak {}\n{}",
        summary["peakViewers"],
        cluster.logs(30)
    );
    ensure!(summary["endReason"] == "end-stream", "{summary}");
    ensure!(
        !public.stream_by_username("crossnode").await?.is_live,
        "still live after the end"
    );
    // Both instances served requests, webhooks included: the balancer spread them.
    let (be1, be2) = (served(&cluster, "be1"), served(&cluster, "be2"));
    println!("requests (webhooks) through haproxy: be1 {be1:?}, be2 {be2:?}");
    ensure!(be1.0 > 0 && be2.0 > 0, "one instance served nothing");
    ensure!(
        be1.1 + be2.1 >= 3,
        "the balancer passed only {} webhooks",
        be1.1 + be2.1
    );
    Ok(())
}

/// Which instance served a request through the balancer.
async fn served_by(http: &reqwest::Client, url: &str) -> Result<String> {
    let resp = http.get(format!("{url}/api/health")).send().await?;
    ensure!(resp.status().is_success(), "health {}", resp.status());
    Ok(resp
        .headers()
        .get(INSTANCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string())
}

/// kill -9 of one backend instance while a creator is live: the balancer routes every call
/// to the other instance, the studio's title edit, chat and end-stream succeed, and the
/// session summary is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_backend_instance_while_live_keeps_the_creator_s_calls_working() -> Result<()> {
    let _one = ONE_CLUSTER.lock().await;
    let mut cluster = Cluster::start()?;
    let url = cluster.url();
    let http = reqwest::Client::new();
    // Round robin: both instances answer through the balancer.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        seen.insert(served_by(&http, &url).await?);
    }
    ensure!(
        seen.len() == 2,
        "the balancer used {seen:?}, not both instances"
    );
    let creator = cluster.creator("failover").await?;

    let session = live_session(
        &url,
        "failover",
        StreamSetup {
            title: "Before the crash".into(),
            ..Default::default()
        },
    )
    .await?;
    let public = Client::new(&url);
    wait_until_live(&public, "failover", Duration::from_secs(10)).await?;

    // A viewer, so the summary has a peak to keep.
    let grant = public
        .viewer_token(&ViewerTokenRequest {
            host_id: creator.user.id.clone(),
            guest_name: Some("Witness".into()),
        })
        .await?;
    let mut opts = ViewerOptions::new(cluster.livekit[1].ws_url(), grant.token);
    opts.duration = Duration::from_secs(25);
    opts.until_chat = Some(1);
    opts.until_frames = Some(60);
    let viewer = Viewer::spawn(opts)?;
    let start = Instant::now();
    while public.stream_by_username("failover").await?.viewer_count != 1 {
        ensure!(
            start.elapsed() < Duration::from_secs(15),
            "viewer never counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // kill -9 instance 1.
    let killed_at = Instant::now();
    cluster.backends[0].kill();
    // Calls right after the kill: the balancer's retry sends each to instance 2.
    let mut first_ok = None;
    let mut errors = 0;
    for _ in 0..20 {
        match served_by(&http, &url).await {
            Ok(name) => {
                ensure!(name == "be2", "served by {name} after be1 died");
                first_ok.get_or_insert(killed_at.elapsed());
            }
            Err(_) => errors += 1,
        }
    }
    let down_wait = tokio::task::block_in_place(|| {
        cluster
            .balancer
            .wait_for_status("be1", "DOWN", Duration::from_secs(10))
    })?;
    println!(
        "after kill -9 of be1: first answer through the balancer {first_ok:?} after the kill \
         ({errors} failed of 20 health calls); haproxy's health check marked be1 DOWN {:?} after \
         the kill (waited {down_wait:?} after the 20 calls)",
        killed_at.elapsed()
    );
    ensure!(errors == 0, "{errors} calls failed through the balancer");

    // The creator's calls go on: title edit (saved, not pending), chat, end.
    let edited = Instant::now();
    session
        .request(Command::EditTitle {
            title: "After the crash".into(),
            description: None,
        })
        .await?;
    while public.stream_by_username("failover").await?.title != "After the crash" {
        ensure!(
            edited.elapsed() < Duration::from_secs(10),
            "the title edit never reached the backend (pending {:?})",
            session.subscribe().borrow().backend.pending_title
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("title edit saved {:?} after asking", edited.elapsed());
    ensure!(
        session
            .subscribe()
            .borrow()
            .backend
            .unreachable_since
            .is_none(),
        "the studio thinks the backend is unreachable"
    );
    session
        .request(Command::SendChat("still here".into()))
        .await?;
    let viewer = viewer.report().await?;
    ensure!(
        viewer.chat_received.iter().any(|c| c.text == "still here"),
        "the viewer did not get the creator's chat: {:?}",
        viewer.chat_received
    );
    ensure!(
        viewer.video.frames >= 60,
        "viewer frames {}",
        viewer.video.frames
    );

    let ended = Instant::now();
    session.request(Command::EndStream).await?;
    let mut state = session.subscribe();
    loop {
        let s = state.borrow_and_update().clone();
        if s.stream_state == StreamState::Ended
            && s.summary
                .as_ref()
                .is_some_and(|x| x.delivery == SummaryDelivery::Delivered)
        {
            break;
        }
        ensure!(
            ended.elapsed() < Duration::from_secs(20),
            "not ended with the summary delivered: {:?} {:?}",
            s.stream_state,
            s.summary.map(|x| x.delivery)
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), state.changed()).await;
    }
    println!("end-stream done {:?} after asking", ended.elapsed());
    let summary = state
        .borrow()
        .summary
        .clone()
        .context("no summary after the end")?;
    let backend = summary
        .backend
        .context("no backend record in the summary")?;
    println!("summary after failover: {backend:?}");
    ensure!(backend.ended_at.is_some(), "{backend:?}");
    ensure!(backend.duration_secs >= 1, "{backend:?}");
    ensure!(backend.peak_viewers == 1, "backend peak {backend:?}");
    ensure!(
        backend.frames_sent == Some(i64::try_from(summary.frames_sent)?) && summary.frames_sent > 0,
        "frames sent {backend:?} vs the studio's {}",
        summary.frames_sent
    );
    ensure!(
        backend.average_bitrate_bps.is_some_and(|b| b > 0),
        "{backend:?}"
    );
    ensure!(
        !public.stream_by_username("failover").await?.is_live,
        "still live after end-stream"
    );
    let _ = session.request(Command::Shutdown).await;

    // Instance 1 comes back and the balancer takes it again.
    tokio::task::block_in_place(|| -> Result<()> {
        cluster.backends[0].restart()?;
        let up = cluster
            .balancer
            .wait_for_status("be1", "UP", Duration::from_secs(10))?;
        println!("be1 UP again {up:?} after its restart");
        Ok(())
    })?;
    Ok(())
}

/// Login throttling is one policy across instances: failures counted on instance 1, on
/// instance 2 and through the balancer (which passes the client's address in
/// X-Forwarded-For) add up to the same streak, and the per-address limit is one count too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_throttling_trips_after_the_same_failures_whichever_instance_serves() -> Result<()> {
    let _one = ONE_CLUSTER.lock().await;
    const IP_PER_MINUTE: usize = 9;
    let cluster = Cluster::start_with(ClusterOptions {
        backend_env: vec![(
            "STREAMIT_LOGIN_IP_PER_MINUTE".into(),
            IP_PER_MINUTE.to_string(),
        )],
        ..Default::default()
    })?;
    cluster.viewer("target").await?;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
    };
    let urls = [
        cluster.backends[0].url().to_string(),
        cluster.backends[1].url().to_string(),
        cluster.url(),
    ];
    let login = |http: &reqwest::Client, url: &str, username: &str, password: &str| {
        let req = http
            .post(format!("{url}/api/auth/login"))
            .json(&serde_json::json!({"username": username, "password": password}));
        async move { Ok::<_, anyhow::Error>(req.send().await?.status().as_u16()) }
    };

    // Per (account, address): 5 free failures; the 6th starts a back-off (1 s, doubling), in
    // which every instance answers 429 without checking the password.
    let attacker = from([127, 0, 0, 2])?;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let url = &urls[i % urls.len()];
        statuses.push(login(&attacker, url, "target", "wrong-password").await?);
    }
    let sixth = Instant::now();
    // the next attempt goes to the instance after the one that took the 6th failure, then
    // the right password to the one after that
    statuses.push(login(&attacker, &urls[0], "target", "wrong-password").await?);
    let right = login(&attacker, &urls[1], "target", TEST_PASSWORD).await?;
    let within = sixth.elapsed();
    println!(
        "from 127.0.0.2, instance 1, 2, balancer, 1, 2, balancer, 1: {statuses:?}; \
         the right password on instance 2: {right} ({within:?} after the 6th failure)"
    );
    ensure!(
        statuses[..6] == [401; 6],
        "the 5 free failures and the 6th should be plain 401s: {statuses:?}"
    );
    ensure!(
        within < Duration::from_secs(1),
        "the machine took {within:?} for two requests: the 1 s back-off ran out"
    );
    ensure!(
        statuses[6] == 429 && right == 429,
        "the back-off must hold on every instance: {statuses:?}, right password {right}"
    );
    // The owner's own address logs in (no account lock), directly and balanced.
    let owner = from([127, 0, 0, 3])?;
    for url in &urls {
        ensure!(
            login(&owner, url, "target", TEST_PASSWORD).await? == 200,
            "the owner could not log in at {url}"
        );
    }

    // Per address, all accounts: IP_PER_MINUTE attempts a minute in all, whichever instance.
    let sprayer = from([127, 0, 0, 4])?;
    let mut statuses = Vec::new();
    for i in 0..IP_PER_MINUTE + urls.len() {
        let url = &urls[i % urls.len()];
        statuses.push(login(&sprayer, url, &format!("nobody{i}"), "wrong-password").await?);
    }
    println!("from 127.0.0.4 over instance 1, 2, balancer, …: {statuses:?}");
    ensure!(
        statuses[..IP_PER_MINUTE].iter().all(|&s| s == 401),
        "{statuses:?}"
    );
    ensure!(
        statuses[IP_PER_MINUTE..].iter().all(|&s| s == 429),
        "attempt {} on must be refused by every instance: {statuses:?}",
        IP_PER_MINUTE + 1
    );
    Ok(())
}

/// Kill -9 of the LiveKit node hosting a live room. LiveKit OSS keeps a room's state in the
/// memory of its node, so the room does not move; this measures what happens instead (does
/// the studio's rejoin land on the surviving node, how long until the backend says the
/// truth) and asserts what our system guarantees: once things settle, the backend's "live"
/// agrees with the studio, and a studio that is live again is watchable through the surviving
/// node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_livekit_node_that_hosts_the_room() -> Result<()> {
    let _one = ONE_CLUSTER.lock().await;
    lose_a_livekit_node(NodeToKill::RoomHost, "nodeloss").await
}

/// The same with node A, the one whose URL the backend hands out (the studio signals through
/// it): its rejoin has nowhere to go, so the stream must end, truthfully on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_livekit_node_the_studio_signals_through() -> Result<()> {
    let _one = ONE_CLUSTER.lock().await;
    lose_a_livekit_node(NodeToKill::SignalNode, "signalloss").await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeToKill {
    RoomHost,
    SignalNode,
}

async fn lose_a_livekit_node(which: NodeToKill, username: &str) -> Result<()> {
    let mut cluster = Cluster::start()?;
    let url = cluster.url();
    let creator = cluster.creator(username).await?;
    let session = live_session(
        &url,
        username,
        StreamSetup {
            title: "Node loss".into(),
            ..Default::default()
        },
    )
    .await?;
    let public = Client::new(&url);
    wait_until_live(&public, username, Duration::from_secs(10)).await?;
    let start = Instant::now();
    let host = loop {
        if let Some(host) = room_node(&cluster, &creator.user.id) {
            break host;
        }
        ensure!(start.elapsed() < Duration::from_secs(10), "no host node");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let victim = match which {
        NodeToKill::RoomHost => host,
        NodeToKill::SignalNode => 0,
    };
    let survivor = 1 - victim;
    let names = ["A", "B"];
    println!(
        "room on node {}, the studio signals through node A; killing node {}",
        names[host], names[victim]
    );
    // What the survivor's log held before, to tell a rejoin there from old lines.
    let survivor_lines_before = cluster.livekit[survivor]
        .log_tail(1_000_000)
        .lines()
        .count();

    let killed = Instant::now();
    cluster.livekit[victim].kill();
    let mut timeline: Vec<(Duration, String)> = Vec::new();
    let mut last = String::new();
    let settled = loop {
        let studio = format!("{:?}", session.subscribe().borrow().stream_state);
        let backend_live = public.stream_by_username(username).await?.is_live;
        let now = format!("studio {studio}, backend live {backend_live}");
        if now != last {
            timeline.push((killed.elapsed(), now.clone()));
            last = now;
        }
        let studio_live = studio == "Live";
        let rejoined = cluster.livekit[survivor]
            .log_tail(1_000_000)
            .lines()
            .skip(survivor_lines_before)
            .any(|l| l.contains("participant active") && l.contains(&creator.user.id));
        // Settled: live again on the survivor and the backend agrees, or both say not live.
        if (studio_live && rejoined && backend_live) || (!studio_live && !backend_live) {
            // hold for 3 s to be sure it is not a passing state
            tokio::time::sleep(Duration::from_secs(3)).await;
            let studio_again = format!("{:?}", session.subscribe().borrow().stream_state);
            let backend_again = public.stream_by_username(username).await?.is_live;
            if (studio_again == "Live") == studio_live && backend_again == backend_live {
                break Some((studio_live, killed.elapsed()));
            }
        }
        if killed.elapsed() > Duration::from_secs(100) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for (at, what) in &timeline {
        println!("  +{:>6.1} s  {what}", at.as_secs_f64());
    }
    let (live_again, after) = settled.with_context(|| {
        format!(
            "the studio and the backend did not agree within 100 s of the node's death\n{}",
            cluster.logs(30)
        )
    })?;
    println!(
        "settled {after:?} after the kill: {}",
        if live_again {
            "the studio is live again, rejoined on the surviving node"
        } else {
            "the stream is over on both sides"
        }
    );
    if live_again {
        let grant = public
            .viewer_token(&ViewerTokenRequest {
                host_id: creator.user.id.clone(),
                guest_name: Some("After the node loss".into()),
            })
            .await?;
        let mut opts = ViewerOptions::new(cluster.livekit[survivor].ws_url(), grant.token);
        opts.duration = Duration::from_secs(10);
        opts.until_frames = Some(60);
        let viewer = Viewer::run(opts).await?;
        println!("viewer on the survivor: {} frames", viewer.video.frames);
        ensure!(
            viewer.video.frames >= 60,
            "live again but not watchable: {} frames ({:?})",
            viewer.video.frames,
            viewer.error
        );
        session.request(Command::EndStream).await?;
    }
    if which == NodeToKill::SignalNode {
        ensure!(
            !live_again,
            "the studio cannot be live again: its only LiveKit URL is the dead node"
        );
    }
    let _ = session.request(Command::Shutdown).await;
    Ok(())
}

/// `watch --viewers N`: N viewers in one process through the balancer, one JSON report with
/// every viewer and the aggregate: the first decodes every frame, the others key frames
/// only, and all of them count delivery and bitrate; the studio and the backend count them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_with_several_viewers_reports_each_and_the_aggregate() -> Result<()> {
    let _one = ONE_CLUSTER.lock().await;
    const N: usize = 3;
    let cluster = Cluster::start()?;
    let url = cluster.url();
    cluster.creator("loadtest").await?;
    let report_dir = tempfile::tempdir()?;
    let report_path = report_dir.path().join("report.json");
    let publish = studio()
        .args(["publish", "--api", &url, "--username", "loadtest"])
        .args(["--password", TEST_PASSWORD, "--source", "synthetic"])
        .args(["--codec", "vp8", "--simulcast", "--duration", "20s"])
        .arg("--report-json")
        .arg(&report_path)
        .spawn()?;
    let public = Client::new(&url);
    wait_until_live(&public, "loadtest", Duration::from_secs(15)).await?;
    let out = studio()
        .args([
            "watch",
            "loadtest",
            "--api",
            &url,
            "--viewers",
            &N.to_string(),
        ])
        .args(["--duration", "8s", "--quality", "low"])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "watch --viewers failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let load: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&out.stdout)))?;
    println!("load report aggregate: {}", load["aggregate"]);
    let viewers = load["perViewer"].as_array().context("perViewer")?;
    ensure!(viewers.len() == N, "{} viewer lines", viewers.len());
    for (i, v) in viewers.iter().enumerate() {
        println!("viewer {}: {v}", i + 1);
        ensure!(v["outcome"] == "completed", "{v}");
        // Viewer 1 is the sample that decodes every frame; the others decode key frames
        // and count the rest.
        let light = i > 0;
        ensure!(
            v["decode"] == if light { "key-frames" } else { "every-frame" },
            "{v}"
        );
        ensure!(v["framesDecodable"].as_u64().unwrap_or(0) >= 60, "{v}");
        ensure!(v["firstFrameMs"].as_u64().is_some(), "{v}");
        ensure!(v["deliveredPct"].as_f64().unwrap_or(0.0) >= 90.0, "{v}");
        ensure!(v["bitrateKbps"].as_f64().unwrap_or(0.0) > 10.0, "{v}");
        let decoded = v["framesDecoded"].as_u64().unwrap_or(0);
        if light {
            // Key frames only: the first one and the 10 s cadence, and what losses asked for.
            ensure!((1..=10).contains(&decoded), "{v}");
        } else {
            ensure!(decoded >= 60, "{v}");
            // The sample checks the count of frames sent from the timestamps against the
            // pattern's own frame numbers.
            let (by_stamps, by_codes) = (
                v["deliveredPct"].as_f64().unwrap_or(0.0),
                v["decodedPct"].as_f64().unwrap_or(0.0),
            );
            ensure!(
                (by_stamps - by_codes).abs() <= 5.0,
                "timestamps say {by_stamps:.1} %, codes {by_codes:.1} %"
            );
        }
    }
    ensure!(load["aggregate"]["connected"] == N, "{}", load["aggregate"]);
    ensure!(
        load["aggregate"]["fullDecode"] == 1,
        "{}",
        load["aggregate"]
    );
    let pct = load["aggregate"]["deliveredPct"].as_f64().unwrap_or(0.0);
    ensure!((90.0..=100.0).contains(&pct), "delivered {pct} %");
    publish_succeeded(publish, Duration::from_secs(40), &cluster.logs(20)).await?;
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path)?)?;
    ensure!(
        report["peakViewers"] == N && report["summary"]["peakViewers"] == N,
        "studio peak {}, backend peak {}",
        report["peakViewers"],
        report["summary"]["peakViewers"]
    );
    Ok(())
}

/// The viewer counts a benchmark runs, from `var` ("10,25,50") or `default`.
fn counts(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// CPU seconds each LiveKit node used per second of `wall` since `before`.
fn node_cpu(cluster: &Cluster, before: &[Option<Duration>], wall: Duration) -> Vec<String> {
    cluster
        .livekit
        .iter()
        .zip(before)
        .map(|(lk, b)| cpu_per_second(*b, lk.cpu_time(), wall))
        .collect()
}

/// CPU seconds used per second of `wall` between two readings, for the table; `?` when
/// either is missing.
fn cpu_per_second(before: Option<Duration>, after: Option<Duration>, wall: Duration) -> String {
    match (before, after) {
        (Some(b), Some(a)) => format!(
            "{:.2}",
            a.saturating_sub(b).as_secs_f64() / wall.as_secs_f64()
        ),
        _ => "?".into(),
    }
}

/// Busy and total jiffies of the whole machine so far (`/proc/stat`'s first line): the
/// round's share of the machine that was busy says whether anything was left to give.
fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let total: u64 = cpu.iter().take(8).sum();
    let idle = cpu.get(3)? + cpu.get(4)?;
    Some((total - idle, total))
}

/// Share of the machine busy between two [`machine_jiffies`] readings, %.
fn machine_busy(before: Option<(u64, u64)>) -> String {
    match (before, machine_jiffies()) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
            format!("{:.0}", 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64)
        }
        _ => "?".into(),
    }
}

/// The `watch --viewers` the benchmark runs: this build's studio, or the binary
/// `STREAMIT_BENCH_WATCH_BIN` names (an optimised build: `cargo build --release --bin
/// streamit-studio`), so the tool's figures need not come from the debug build.
fn load_tool() -> tokio::process::Command {
    match std::env::var_os("STREAMIT_BENCH_WATCH_BIN") {
        Some(bin) => common::clean_studio(tokio::process::Command::new(bin)),
        None => studio(),
    }
}

/// Benchmark, not a test (`cargo test --workspace --test scale_out bench_watch_load --
/// --ignored --nocapture`; `STREAMIT_BENCH_WATCH_BIN` runs the tool from another build): one 720p VP8 simulcast publisher on the two-node cluster, then
/// for each N in `STREAMIT_BENCH_VIEWERS` (default 10,25,50,100) `watch --viewers N
/// --quality high` for 20 s (one viewer decodes every frame, the rest key frames), and for
/// each N in `STREAMIT_BENCH_PY_VIEWERS` (default 5,10) as many official Python SDK viewers.
/// Prints delivered %, first-frame p95, glass-to-glass p95, and CPU per second of the round:
/// each LiveKit node, the viewers, the publisher, and how busy the whole machine was. For
/// the Python rows, "delivered" is libwebrtc's framesDecoded and "decoded" the codes the
/// viewer's own reader saw, both against the frames in each viewer's span of codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures, takes minutes"]
async fn bench_watch_load() -> Result<()> {
    const WATCH_SECS: u64 = 20;
    let _one = ONE_CLUSTER.lock().await;
    let ours = counts("STREAMIT_BENCH_VIEWERS", &[10, 25, 50, 100]);
    let python = counts("STREAMIT_BENCH_PY_VIEWERS", &[5, 10]);
    let cluster = Cluster::start()?;
    let url = cluster.url();
    let creator = cluster.creator("bench").await?;
    let rounds = (ours.len() + python.len()) as u64;
    let publish = studio()
        .args(["publish", "--api", &url, "--username", "bench"])
        .args([
            "--password",
            TEST_PASSWORD,
            "--source",
            "synthetic:1280x720@30",
        ])
        .args(["--codec", "vp8", "--simulcast", "--audio", "none", "--json"])
        .stdout(std::process::Stdio::piped())
        .args([
            "--duration",
            &format!("{}s", 20 + rounds * (WATCH_SECS + 40)),
        ])
        .spawn()?;
    let public = Client::new(&url);
    wait_until_live(&public, "bench", Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_secs(5)).await; // past the first bandwidth ramp
    let publisher_pid = publish.id().context("publish ended")?;
    println!(
        "load tool: {}",
        std::env::var("STREAMIT_BENCH_WATCH_BIN")
            .unwrap_or_else(|_| "this build's streamit-studio".into())
    );
    println!(
        "| viewers | tool | connected | delivered % | decoded % (sample) | stalls | first frame p95 ms | g2g p95 ms | node A CPU/s | node B CPU/s | viewers' CPU/s | publisher CPU/s | machine busy % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let publisher_cpu = |before: Option<Duration>, wall: Duration| {
        cpu_per_second(before, process_cpu_time(publisher_pid), wall)
    };

    for n in ours {
        let before: Vec<_> = cluster.livekit.iter().map(|l| l.cpu_time()).collect();
        let (machine, publisher) = (machine_jiffies(), process_cpu_time(publisher_pid));
        let started = Instant::now();
        let out = load_tool()
            .args(["watch", "bench", "--api", &url, "--viewers", &n.to_string()])
            .args(["--duration", &format!("{WATCH_SECS}s"), "--quality", "high"])
            .output()
            .await?;
        let wall = started.elapsed();
        let (busy, publisher) = (machine_busy(machine), publisher_cpu(publisher, wall));
        let nodes = node_cpu(&cluster, &before, wall);
        let load: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "watch --viewers {n}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        let a = &load["aggregate"];
        let viewers = load["perViewer"].as_array();
        for v in viewers.into_iter().flatten().take(2) {
            eprintln!("watch --viewers {n}, viewer {}: {v}", v["index"]);
        }
        let f = |v: &serde_json::Value| v.as_f64().map_or("-".into(), |x| format!("{x:.0}"));
        let f1 = |v: &serde_json::Value| v.as_f64().map_or("-".into(), |x| format!("{x:.1}"));
        println!(
            "| {n} | watch | {} | {} | {} | {} | {} | {} | {} | {} | {} | {publisher} | {busy} |",
            a["connected"],
            f1(&a["deliveredPct"]),
            f1(&a["decodedPct"]),
            a["stalls"],
            f(&a["firstFrameP95Ms"]),
            f(&a["latencyP95OfP95Ms"]),
            nodes[0],
            nodes[1],
            a["cpuPerSecond"]
                .as_f64()
                .map_or("-".into(), |x| format!("{x:.2}")),
        );
    }

    for n in python {
        let before: Vec<_> = cluster.livekit.iter().map(|l| l.cpu_time()).collect();
        let cpu_before = children_cpu_time().unwrap_or_default();
        let (machine, publisher) = (machine_jiffies(), process_cpu_time(publisher_pid));
        let started = Instant::now();
        let mut running = Vec::with_capacity(n);
        for i in 0..n {
            let grant = public
                .viewer_token(&ViewerTokenRequest {
                    host_id: creator.user.id.clone(),
                    guest_name: Some(format!("py {i}")),
                })
                .await?;
            let mut opts = ViewerOptions::new(grant.ws_url, grant.token);
            opts.duration = Duration::from_secs(WATCH_SECS);
            opts.quality = Some("high".into());
            opts.read_pattern = true;
            running.push(Viewer::spawn(opts)?);
        }
        let mut reports = Vec::with_capacity(n);
        for r in running {
            reports.push(r.report().await);
        }
        let wall = started.elapsed();
        let (busy, publisher) = (machine_busy(machine), publisher_cpu(publisher, wall));
        let nodes = node_cpu(&cluster, &before, wall);
        let viewers_cpu = children_cpu_time()
            .map_or(0.0, |c| c.saturating_sub(cpu_before).as_secs_f64())
            / wall.as_secs_f64();
        let joined: Vec<_> = reports.iter().flatten().filter(|r| r.joined).collect();
        // libwebrtc's framesDecoded, and the codes the viewer's own reader saw, against
        // the frames in each viewer's span of codes.
        let (decoded, read, span) = joined.iter().fold((0, 0, 0), |(d, c, s), r| {
            let (rd, rs, _) = common::receiver_decoded(r);
            (d + rd.min(rs), c + r.pattern.distinct, s + rs)
        });
        let pct = |x: u64| {
            if span > 0 {
                format!("{:.1}", 100.0 * x as f64 / span as f64)
            } else {
                "-".into()
            }
        };
        // Nearest-rank, as `watch` reports its own.
        let p95 = |v: &[f64]| LatencyStats::of(v).map(|s| s.p95_ms);
        let first = p95(&joined
            .iter()
            .filter_map(|r| r.video.first_frame_ms)
            .collect::<Vec<_>>());
        let g2g = p95(&joined
            .iter()
            .filter_map(|r| {
                let epoch = r
                    .participant_attributes
                    .get(&creator.user.id)?
                    .get("streamit.mediaClockEpochUs")?
                    .parse()
                    .ok()?;
                p95(&r.pattern.latencies_ms(epoch))
            })
            .collect::<Vec<_>>());
        println!(
            "| {n} | Python SDK | {} | {} | {} | - | {} | {} | {} | {} | {viewers_cpu:.2} | {publisher} | {busy} |",
            joined.len(),
            pct(decoded),
            pct(read),
            first.map_or("-".into(), |x| format!("{x:.0}")),
            g2g.map_or("-".into(), |x| format!("{x:.0}")),
            nodes[0],
            nodes[1],
        );
    }
    // The publisher's account over all rounds: frames its encoder skipped (CPU or the
    // uplink's estimate) never reach a viewer, and count as missing there too.
    let _ = std::process::Command::new("kill")
        .args(["-INT", &publisher_pid.to_string()])
        .status();
    let out = publish_succeeded(publish, Duration::from_secs(30), &cluster.logs(20)).await?;
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    println!(
        "publisher over all rounds: {} frames captured, {} sent, {} dropped; CPU step downs {} \
         ({}), network limited {}, packet loss {}, last target {} bit/s",
        r["framesCaptured"],
        r["framesSent"],
        r["framesDropped"],
        r["cpuAdaptations"],
        r["cpuLimited"],
        r["networkLimited"],
        r["packetLoss"],
        r["targetBitrateBps"]
    );
    Ok(())
}
