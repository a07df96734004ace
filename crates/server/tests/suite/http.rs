//! The backend's HTTP contract, end to end: the real `streamit-server` binary on
//! loopback with a real database. Every scenario runs on SQLite and on PostgreSQL.

use crate::common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Database, LK_KEY, LK_SECRET, Server, error_message, raw, status};
use livekit_api::access_token::{Claims, TokenVerifier};
use reqwest::Method;
use serde_json::json;
use streamit_api::*;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn verify(token: &str) -> Claims {
    TokenVerifier::with_api_key(LK_KEY, LK_SECRET)
        .verify(token)
        .expect("token verifies with the LiveKit key")
}

// --- scenarios ----------------------------------------------------------------------

async fn accounts(db: Database) {
    let srv = Server::start(db);
    let api = srv.client();
    let http = srv.http();
    let url = |p: &str| format!("{}{p}", srv.url);

    // health
    let (st, body) = raw(&http, Method::GET, &url("/api/health"), None, None, None).await;
    assert_eq!(
        (st, body),
        (200, json!({"success": true, "data": {"status": "ok"}}))
    );

    // register: viewer (default role), approved; names normalised
    let reg = api
        .register(&RegisterRequest {
            username: "  Vera_1 ".into(),
            password: "vera-password".into(),
            display_name: None,
            role: None,
        })
        .await
        .unwrap();
    assert_eq!(reg.user.username, "vera_1");
    assert_eq!(reg.user.display_name, "vera_1");
    assert_eq!(reg.user.role, Role::Viewer);
    assert!(reg.user.is_approved);
    assert_eq!(reg.token.len(), 43);
    let ttl_ms = reg.expires_at - reg.user.created_at;
    assert!(
        (30 * 86_400_000 - 5_000..=30 * 86_400_000 + 5_000).contains(&ttl_ms),
        "{ttl_ms}"
    );

    // duplicate (case-insensitive) → 409
    let dup = api
        .register(&RegisterRequest {
            username: "VERA_1".into(),
            password: "another-pass".into(),
            display_name: None,
            role: None,
        })
        .await;
    assert_eq!(status(dup), 409);

    // validation → 422, admin self-registration → 403
    for (body, code) in [
        (json!({"username": "ab", "password": "long-enough"}), 422),
        (
            json!({"username": "bad name", "password": "long-enough"}),
            422,
        ),
        (json!({"username": "okname", "password": "short"}), 422),
        (
            json!({"username": "okname", "password": "long-enough", "displayName": "n".repeat(65)}),
            422,
        ),
        (
            json!({"username": "okname", "password": "long-enough", "displayName": "   "}),
            422,
        ),
        (
            json!({"username": "okname", "password": "long-enough", "role": "admin"}),
            403,
        ),
        (
            json!({"username": "okname", "password": "long-enough", "role": "superuser"}),
            422,
        ),
        (
            json!({"username": "okname", "password": "long-enough", "isAdmin": true}),
            422,
        ),
        (json!({"username": "okname", "password": 12345678}), 422),
        (json!({"username": "okname"}), 422),
    ] {
        let (st, v) = raw(
            &http,
            Method::POST,
            &url("/api/auth/register"),
            None,
            Some("application/json"),
            Some(body.to_string().into_bytes()),
        )
        .await;
        assert_eq!(st, code, "{body} → {v}");
        let msg = error_message(&v);
        assert!(
            !msg.contains("12345678") && !msg.contains("long-enough"),
            "error echoes the password: {msg}"
        );
    }
    // none of those wrote anything
    assert_eq!(
        status(
            api.login(&LoginRequest {
                username: "okname".into(),
                password: "long-enough".into()
            })
            .await
        ),
        401
    );

    // malformed JSON 400, not JSON 415, too large 413
    let (st, v) = raw(
        &http,
        Method::POST,
        &url("/api/auth/register"),
        None,
        Some("application/json"),
        Some(b"{\"username\":".to_vec()),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    error_message(&v);
    let (st, v) = raw(
        &http,
        Method::POST,
        &url("/api/auth/register"),
        None,
        Some("text/plain"),
        Some(b"{}".to_vec()),
    )
    .await;
    assert_eq!(st, 415, "{v}");
    error_message(&v);
    let big = json!({"username": "bigbody", "password": "x".repeat(100 * 1024)}).to_string();
    let (st, v) = raw(
        &http,
        Method::POST,
        &url("/api/auth/register"),
        None,
        Some("application/json"),
        Some(big.into_bytes()),
    )
    .await;
    assert_eq!(st, 413, "{v}");
    error_message(&v);
    let (st, v) = raw(
        &http,
        Method::POST,
        &url("/api/auth/register"),
        None,
        Some("application/json"),
        Some(br#"["arrayname","array-password"]"#.to_vec()),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    assert!(error_message(&v).contains("object"), "{v}");

    // Token-bearing responses (and every API response) are never cached or sniffed.
    for (path, body) in [
        (
            "/api/auth/login",
            json!({"username": "vera_1", "password": "vera-password"}),
        ),
        (
            "/api/auth/register",
            json!({"username": "hdrs", "password": "hdrs-password"}),
        ),
        (
            "/api/auth/login",
            json!({"username": "nobody_here", "password": "wrong-password"}),
        ),
    ] {
        let resp = http.post(url(path)).json(&body).send().await.unwrap();
        let h = resp.headers();
        assert_eq!(
            h.get("cache-control").map(|v| v.as_bytes()),
            Some(&b"no-store"[..]),
            "{path}"
        );
        assert_eq!(
            h.get("x-content-type-options").map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{path}"
        );
        // Log these sessions out again (the stored-hash check below counts sessions).
        let v: serde_json::Value = resp.json().await.unwrap();
        if let Some(token) = v["data"]["token"].as_str() {
            api.clone()
                .with_token(token.to_string())
                .logout()
                .await
                .unwrap();
        }
    }

    // login: good, wrong password and unknown user give the same 401
    let login = api
        .login(&LoginRequest {
            username: "VERA_1".into(),
            password: "vera-password".into(),
        })
        .await
        .unwrap();
    assert_ne!(login.token, reg.token);
    let (st1, v1) = raw(
        &http,
        Method::POST,
        &url("/api/auth/login"),
        None,
        Some("application/json"),
        Some(
            json!({"username": "vera_1", "password": "wrong-password"})
                .to_string()
                .into_bytes(),
        ),
    )
    .await;
    let (st2, v2) = raw(
        &http,
        Method::POST,
        &url("/api/auth/login"),
        None,
        Some("application/json"),
        Some(
            json!({"username": "nobody_here", "password": "wrong-password"})
                .to_string()
                .into_bytes(),
        ),
    )
    .await;
    assert_eq!((st1, st2), (401, 401));
    assert_eq!(error_message(&v1), error_message(&v2));

    // me with either session, logout revokes only that one
    let a = srv.client().with_token(reg.token.clone());
    let b = srv.client().with_token(login.token.clone());
    assert_eq!(a.me().await.unwrap().id, reg.user.id);
    assert_eq!(b.me().await.unwrap().username, "vera_1");
    assert_eq!(a.logout().await.unwrap().message, "Logged out");
    assert_eq!(status(a.me().await), 401);
    assert_eq!(status(a.logout().await), 401);
    assert_eq!(b.me().await.unwrap().id, reg.user.id);

    // missing, malformed, unknown bearer → 401 envelope with WWW-Authenticate
    assert_eq!(status(srv.client().me().await), 401);
    assert_eq!(
        status(srv.client().with_token("not-a-token").me().await),
        401
    );
    let resp = http
        .get(url("/api/auth/me"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );

    // only the SHA-256 of a session token is stored
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&srv.database_url).await.unwrap();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM auth_sessions")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the logged-out session is deleted");
    assert_ne!(rows[0].0, login.token);
    assert_eq!(rows[0].0.len(), 64);
    let hashes: Vec<(String,)> = sqlx::query_as("SELECT password_hash FROM users")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        hashes.iter().all(|(h,)| h.starts_with("$argon2id$")),
        "{hashes:?}"
    );
    pool.close().await;

    // unknown path and method → envelopes
    let (st, v) = raw(&http, Method::GET, &url("/api/nope"), None, None, None).await;
    assert_eq!(st, 404);
    error_message(&v);
    let (st, v) = raw(&http, Method::DELETE, &url("/api/health"), None, None, None).await;
    assert_eq!(st, 405);
    error_message(&v);

    // the stdout contract: nothing after the ready line
    let rest = srv.stop();
    assert!(rest.is_empty(), "stdout after the ready line: {rest:?}");
}

async fn roles_and_approval(db: Database) {
    let srv = Server::start(db);
    let (viewer, _) = srv.account("viewer1", Role::Viewer, false).await;
    let (creator, c_auth) = srv.account("creator1", Role::Creator, false).await;
    assert!(!c_auth.user.is_approved);
    let setup = SetupStreamRequest {
        title: "First".into(),
        ..Default::default()
    };

    // a viewer may not stream; an unapproved creator neither
    assert_eq!(status(viewer.setup_stream(&setup).await), 403);
    assert_eq!(status(viewer.go_live().await), 403);
    let e = creator.setup_stream(&setup).await.unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert!(e.to_string().contains("not approved"), "{e}");
    assert_eq!(status(creator.go_live().await), 403);
    assert_eq!(status(creator.stream_info().await), 403);
    assert_eq!(status(srv.client().setup_stream(&setup).await), 401);

    // admin endpoint: only admins
    assert_eq!(status(viewer.approve_user("creator1").await), 403);
    let out = srv.cli_ok(&["user", "set-role", "viewer1", "admin"]);
    let u: User = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(u.role, Role::Admin);
    let approved = viewer.approve_user("CREATOR1").await.unwrap();
    assert!(approved.is_approved);
    assert_eq!(status(viewer.approve_user("ghost").await), 404);
    assert_eq!(creator.setup_stream(&setup).await.unwrap().title, "First");

    // CLI: revoke, approve, unknown user, bad role
    srv.cli_ok(&["user", "revoke", "creator1"]);
    assert_eq!(status(creator.go_live().await), 403);
    let out = srv.cli_ok(&["user", "approve", "creator1"]);
    assert!(out.contains("\"isApproved\":true"), "{out}");
    assert!(creator.go_live().await.is_ok());
    assert!(!srv.cli(&["user", "approve", "ghost"]).status.success());
    assert!(
        !srv.cli(&["user", "set-role", "creator1", "emperor"])
            .status
            .success()
    );
    // HTTP revoke of a live creator: the stream ends (`revoked`), and the owner
    // can still end it and read the summary; only admins may revoke.
    assert!(creator.stream_info().await.unwrap().is_live);
    assert_eq!(status(creator.revoke_user("creator1").await), 403);
    assert_eq!(status(viewer.revoke_user("ghost").await), 404);
    let revoked = viewer.revoke_user("creator1").await.unwrap();
    assert!(!revoked.is_approved);
    assert!(srv.client().live_streams().await.unwrap().is_empty());
    let s = creator.latest_session().await.unwrap();
    assert_eq!(s.end_reason.as_deref(), Some("revoked"), "{s:?}");
    assert_eq!(creator.end_stream().await.unwrap().id, s.id);
    assert_eq!(status(creator.go_live().await), 403);

    let list = srv.cli_ok(&["user", "list"]);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(!list.contains("argon2"), "user list leaks hashes: {list}");
}

async fn streams(db: Database) {
    let srv = Server::start_with(db, &[("LIVEKIT_WS_URL", "ws://lk.test:7880")]);
    let (alice, a_auth) = srv.account("alice", Role::Creator, true).await;
    let (bob, b_auth) = srv.account("bob", Role::Viewer, false).await;
    let http = srv.http();
    let url = |p: &str| format!("{}{p}", srv.url);
    let alice_id = a_auth.user.id.clone();

    assert_eq!(status(alice.stream_info().await), 404);
    assert_eq!(status(alice.go_live().await), 404);
    assert_eq!(status(alice.end_stream().await), 404);
    assert_eq!(
        status(
            alice
                .update_stream_info(&UpdateStreamInfoRequest {
                    title: Some("x".into()),
                    ..Default::default()
                })
                .await
        ),
        404
    );

    // setup: 201 on create with defaults, 200 on update keeping omitted settings
    let (st, v) = raw(
        &http,
        Method::POST,
        &url("/api/stream/setup"),
        Some(&a_auth.token),
        Some("application/json"),
        Some(
            json!({"title": "  My first stream ", "description": "hello", "isChatDelayed": true})
                .to_string()
                .into_bytes(),
        ),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["success"], true);
    let d = &v["data"];
    assert_eq!(d["title"], "My first stream");
    assert_eq!(d["description"], "hello");
    assert_eq!(
        (
            d["isLive"].clone(),
            d["isChatEnabled"].clone(),
            d["isChatDelayed"].clone(),
            d["isChatFollowersOnly"].clone()
        ),
        (json!(false), json!(true), json!(true), json!(false))
    );
    assert_eq!(d["userId"], alice_id.as_str());
    assert_eq!(d["user"]["username"], "alice");
    let s = alice
        .setup_stream(&SetupStreamRequest {
            title: "Renamed".into(),
            is_chat_followers_only: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (
            s.title.as_str(),
            s.description.as_deref(),
            s.is_chat_delayed,
            s.is_chat_followers_only
        ),
        ("Renamed", Some("hello"), true, true)
    );

    // validation: nothing written on a bad body
    for body in [
        json!({"title": ""}),
        json!({"title": "t".repeat(141)}),
        json!({"title": "ok", "description": "d".repeat(5001)}),
        json!({"title": "ok", "isChatEnabled": "yes"}),
        json!({"title": "ok", "streamKey": "x"}),
        json!({"title": "line\nbreak"}),
    ] {
        let (st, v) = raw(
            &http,
            Method::POST,
            &url("/api/stream/setup"),
            Some(&a_auth.token),
            Some("application/json"),
            Some(body.to_string().into_bytes()),
        )
        .await;
        assert_eq!(st, 422, "{body} → {v}");
        error_message(&v);
    }
    let title140 = "é".repeat(140);
    assert_eq!(
        alice
            .setup_stream(&SetupStreamRequest {
                title: title140.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .title,
        title140
    );
    let info = alice.stream_info().await.unwrap();
    assert_eq!(
        (
            info.title.as_str(),
            info.description.as_deref(),
            info.is_chat_followers_only
        ),
        (title140.as_str(), Some("hello"), true)
    );

    // go live: the publish token
    let before = now_secs();
    let live = alice.go_live().await.unwrap();
    assert_eq!(live.ws_url, "ws://lk.test:7880");
    assert_eq!(live.room_id, alice_id);
    assert!(live.stream.is_live);
    let c = verify(&live.token);
    assert_eq!(c.sub, alice_id);
    assert_eq!(c.name, "alice display");
    assert_eq!(c.iss, LK_KEY);
    assert!(c.video.room_join);
    assert_eq!(c.video.room, alice_id);
    assert_eq!(
        (
            c.video.can_publish,
            c.video.can_publish_data,
            c.video.can_subscribe,
            c.video.can_update_own_metadata
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    assert!(
        !c.video.room_admin
            && !c.video.room_create
            && !c.video.room_list
            && !c.video.room_record
            && !c.video.hidden
    );
    let ttl = c.exp as i64 - before;
    assert!((86_400 - 5..=86_400 + 5).contains(&ttl), "TTL {ttl}s");
    // go-live again keeps the open session
    let again = alice.go_live().await.unwrap();
    assert_eq!(again.session_id, live.session_id);
    assert_ne!(again.token, "");

    // edits while live
    let s = alice
        .update_stream_info(&UpdateStreamInfoRequest {
            title: Some("Live now".into()),
            description: Some("".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        (s.title.as_str(), s.description.as_deref(), s.is_live),
        ("Live now", None, true)
    );
    assert_eq!(
        status(
            alice
                .update_stream_info(&UpdateStreamInfoRequest::default())
                .await
        ),
        422
    );
    assert_eq!(
        status(
            alice
                .update_stream_info(&UpdateStreamInfoRequest {
                    title: Some("t".repeat(141)),
                    description: Some("kept?".into())
                })
                .await
        ),
        422
    );
    assert_eq!(
        alice.stream_info().await.unwrap().description,
        None,
        "a rejected edit wrote nothing"
    );
    let s = alice
        .update_chat_settings(&ChatSettingsRequest {
            is_chat_enabled: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (
            s.is_chat_enabled,
            s.is_chat_delayed,
            s.is_chat_followers_only
        ),
        (false, true, true)
    );
    let (st, _) = raw(
        &http,
        Method::PUT,
        &url("/api/stream/chat-settings"),
        Some(&a_auth.token),
        Some("application/json"),
        Some(br#"{"isChatEnabled":1}"#.to_vec()),
    )
    .await;
    assert_eq!(st, 422);
    // An array is not an object, even if serde could read the fields in order.
    let (st, v) = raw(
        &http,
        Method::PUT,
        &url("/api/stream/chat-settings"),
        Some(&a_auth.token),
        Some("application/json"),
        Some(b" [true,false,false]".to_vec()),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    assert!(error_message(&v).contains("object"), "{v}");
    let s = alice.stream_info().await.unwrap();
    assert_eq!(
        (
            s.is_chat_enabled,
            s.is_chat_delayed,
            s.is_chat_followers_only
        ),
        (false, true, true),
        "the array changed the settings"
    );

    // viewer endpoints
    let public = srv.client();
    let s = public.stream_by_username("ALICE").await.unwrap();
    assert_eq!(
        (s.user_id.as_str(), s.is_live, s.title.as_str()),
        (alice_id.as_str(), true, "Live now")
    );
    assert_eq!(status(public.stream_by_username("bob").await), 404);
    assert_eq!(status(public.stream_by_username("nobody").await), 404);
    let (st, v) = raw(
        &http,
        Method::GET,
        &url("/api/viewer/stream/%FF%FE"),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(st, 400, "{v}");
    error_message(&v);
    let live_list = public.live_streams().await.unwrap();
    assert_eq!(live_list.len(), 1);
    assert_eq!(live_list[0].user.username, "alice");

    // guest token
    let g = public
        .viewer_token(&ViewerTokenRequest {
            host_id: alice_id.clone(),
            guest_name: Some(" Guesty ".into()),
        })
        .await
        .unwrap();
    assert!(g.identity.starts_with("guest-"), "{}", g.identity);
    assert_eq!(g.name, "Guesty");
    assert_eq!(g.ws_url, "ws://lk.test:7880");
    let c = verify(&g.token);
    assert_eq!(
        (c.sub.as_str(), c.name.as_str(), c.video.room.as_str()),
        (g.identity.as_str(), "Guesty", alice_id.as_str())
    );
    assert!(c.video.room_join);
    assert_eq!(
        (
            c.video.can_publish,
            c.video.can_publish_data,
            c.video.can_subscribe,
            c.video.can_update_own_metadata
        ),
        // chat is off (set above): no viewer may publish data
        (Some(false), Some(false), Some(true), None)
    );
    assert_eq!(
        c.attributes.get(room::ATTR_ROLE).map(String::as_str),
        Some("guest")
    );
    assert_eq!(g.role, "guest");
    assert_eq!(
        (
            g.chat.can_send,
            g.chat.reason.as_deref(),
            g.chat.slow_mode_secs
        ),
        (false, Some("Chat is off"), Some(limits::SLOW_MODE_SECS))
    );
    let ttl = c.exp as i64 - now_secs();
    assert!((86_400 - 10..=86_400 + 5).contains(&ttl), "TTL {ttl}s");
    let g2 = public
        .viewer_token(&ViewerTokenRequest {
            host_id: alice_id.clone(),
            guest_name: None,
        })
        .await
        .unwrap();
    assert_eq!(g2.name, "Guest");
    assert_ne!(g2.identity, g.identity);
    // authenticated viewer token
    let v = bob
        .viewer_token(&ViewerTokenRequest {
            host_id: alice_id.clone(),
            guest_name: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (v.identity.as_str(), v.name.as_str()),
        (b_auth.user.id.as_str(), "bob display")
    );
    let c = verify(&v.token);
    assert_eq!(c.sub, b_auth.user.id);
    assert_eq!(
        (
            c.video.can_publish,
            c.video.can_publish_data,
            c.video.can_subscribe,
            c.video.can_update_own_metadata
        ),
        (Some(false), Some(false), Some(true), None)
    );
    assert_eq!(
        c.attributes.get(room::ATTR_ROLE).map(String::as_str),
        Some("viewer")
    );
    assert_eq!(v.role, "viewer");
    // failures (a guestName with a session token conflicts with who is asking: 409)
    assert_eq!(
        status(
            bob.viewer_token(&ViewerTokenRequest {
                host_id: alice_id.clone(),
                guest_name: Some("x".into())
            })
            .await
        ),
        409
    );
    assert_eq!(
        status(
            alice
                .viewer_token(&ViewerTokenRequest {
                    host_id: alice_id.clone(),
                    guest_name: None
                })
                .await
        ),
        409
    );
    assert_eq!(
        status(
            public
                .viewer_token(&ViewerTokenRequest {
                    host_id: "no-such-host".into(),
                    guest_name: None
                })
                .await
        ),
        404
    );
    assert_eq!(
        status(
            public
                .viewer_token(&ViewerTokenRequest {
                    host_id: b_auth.user.id.clone(),
                    guest_name: None
                })
                .await
        ),
        404
    );
    assert_eq!(
        status(
            public
                .viewer_token(&ViewerTokenRequest {
                    host_id: alice_id.clone(),
                    guest_name: Some("n".repeat(65))
                })
                .await
        ),
        422
    );
    assert_eq!(
        status(
            public
                .viewer_token(&ViewerTokenRequest {
                    host_id: "".into(),
                    guest_name: None
                })
                .await
        ),
        422
    );
    assert_eq!(
        status(
            srv.client()
                .with_token("forged")
                .viewer_token(&ViewerTokenRequest {
                    host_id: alice_id.clone(),
                    guest_name: None
                })
                .await
        ),
        401
    );
    let (st, _) = raw(
        &http,
        Method::POST,
        &url("/api/viewer/token"),
        None,
        Some("application/json"),
        Some(br#"{"guestName":"x"}"#.to_vec()),
    )
    .await;
    assert_eq!(st, 422);

    // the studio's chat count: monotonic, own sessions only
    let chat = |n: i64| SessionStatsReport {
        chat_messages: n,
        ..Default::default()
    };
    let s = alice
        .report_session_stats(&live.session_id, &chat(7))
        .await
        .unwrap();
    assert_eq!(s.chat_messages, 7);
    // a report with only chatMessages (an older studio) leaves the media figures unset
    assert_eq!(
        (
            s.frames_sent,
            s.frames_dropped,
            s.average_bitrate_bps,
            s.reconnects
        ),
        (None, None, None, None)
    );
    let s = alice
        .report_session_stats(&live.session_id, &chat(3))
        .await
        .unwrap();
    assert_eq!(s.chat_messages, 7);
    assert_eq!(
        status(
            alice
                .report_session_stats(&live.session_id, &chat(-1))
                .await
        ),
        422
    );
    assert_eq!(
        status(alice.report_session_stats("nope", &chat(1)).await),
        404
    );

    // the studio's media figures: stored, returned, monotonic
    let media = SessionStatsReport {
        chat_messages: 7,
        frames_sent: Some(1500),
        frames_dropped: Some(12),
        average_bitrate_bps: Some(1_250_000),
        reconnects: Some(1),
    };
    let s = alice
        .report_session_stats(&live.session_id, &media)
        .await
        .unwrap();
    assert_eq!(
        (
            s.frames_sent,
            s.frames_dropped,
            s.average_bitrate_bps,
            s.reconnects
        ),
        (Some(1500), Some(12), Some(1_250_000), Some(1))
    );
    // a repeated, stale report never lowers them; left-out figures stay
    let s = alice
        .report_session_stats(
            &live.session_id,
            &SessionStatsReport {
                chat_messages: 7,
                frames_sent: Some(900),
                frames_dropped: None,
                average_bitrate_bps: Some(1_000_000),
                reconnects: Some(0),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            s.frames_sent,
            s.frames_dropped,
            s.average_bitrate_bps,
            s.reconnects
        ),
        (Some(1500), Some(12), Some(1_250_000), Some(1))
    );
    // bad values → 422 and nothing written (not even the valid figures beside them)
    for bad in [
        SessionStatsReport {
            frames_sent: Some(-1),
            ..media.clone()
        },
        SessionStatsReport {
            frames_dropped: Some(-5),
            ..media.clone()
        },
        SessionStatsReport {
            average_bitrate_bps: Some(-1),
            ..media.clone()
        },
        SessionStatsReport {
            average_bitrate_bps: Some(10_000_000_001),
            ..media.clone()
        },
        SessionStatsReport {
            frames_sent: Some(1_000_000_000_001),
            ..media.clone()
        },
        SessionStatsReport {
            reconnects: Some(1_000_001),
            ..media.clone()
        },
        SessionStatsReport {
            chat_messages: 9,
            frames_sent: Some(2000),
            reconnects: Some(-1),
            ..media.clone()
        },
    ] {
        assert_eq!(
            status(alice.report_session_stats(&live.session_id, &bad).await),
            422,
            "{bad:?}"
        );
    }
    // a value of the wrong JSON type is refused too
    let (st, _) = raw(
        &http,
        Method::POST,
        &url(&format!("/api/stream/sessions/{}/stats", live.session_id)),
        Some(&a_auth.token),
        Some("application/json"),
        Some(br#"{"chatMessages":8,"framesSent":"lots"}"#.to_vec()),
    )
    .await;
    assert_eq!(st, 422);
    let s = alice.session(&live.session_id).await.unwrap();
    assert_eq!(
        (
            s.chat_messages,
            s.frames_sent,
            s.frames_dropped,
            s.average_bitrate_bps,
            s.reconnects
        ),
        (7, Some(1500), Some(12), Some(1_250_000), Some(1))
    );

    // end stream → summary
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let sum = alice.end_stream().await.unwrap();
    assert_eq!(sum.id, live.session_id);
    assert!(sum.ended_at.is_some());
    assert_eq!(sum.end_reason.as_deref(), Some("end-stream"));
    assert!(sum.duration_secs >= 1, "{sum:?}");
    assert_eq!(
        (sum.peak_viewers, sum.current_viewers, sum.chat_messages),
        (0, 0, 7)
    );
    // the summary carries the studio's media figures
    assert_eq!(
        (
            sum.frames_sent,
            sum.frames_dropped,
            sum.average_bitrate_bps,
            sum.reconnects
        ),
        (Some(1500), Some(12), Some(1_250_000), Some(1))
    );
    assert!(!alice.stream_info().await.unwrap().is_live);
    assert!(public.live_streams().await.unwrap().is_empty());
    assert_eq!(alice.latest_session().await.unwrap(), sum);
    assert_eq!(alice.session(&sum.id).await.unwrap(), sum);
    // ending again is idempotent: same summary
    assert_eq!(alice.end_stream().await.unwrap(), sum);
    // a second broadcast is a new session
    let live2 = alice.go_live().await.unwrap();
    assert_ne!(live2.session_id, live.session_id);
    let sessions = alice.sessions().await.unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0].id, live2.session_id);
    assert!(sessions[0].ended_at.is_none());

    // another creator cannot see alice's sessions
    let (carol, _) = srv.account("carol", Role::Creator, true).await;
    carol
        .setup_stream(&SetupStreamRequest {
            title: "Carol".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(status(carol.session(&live.session_id).await), 404);
    assert_eq!(status(carol.latest_session().await), 404);
    assert_eq!(status(carol.end_stream().await), 404);
}

async fn follows(db: Database) {
    let srv = Server::start(db);
    let (alice, a) = srv.account("alice", Role::Creator, true).await;
    let (carol, _) = srv.account("carol", Role::Creator, true).await;
    let (bob, _) = srv.account("bob", Role::Viewer, false).await;
    alice
        .setup_stream(&SetupStreamRequest {
            title: "A".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    carol
        .setup_stream(&SetupStreamRequest {
            title: "C".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    assert_eq!(status(srv.client().follow("alice").await), 401);
    assert_eq!(status(srv.client().following_live().await), 401);
    assert_eq!(status(bob.follow("ghost").await), 404);
    // Well-formed, but refused for who the user is: 409 (422 is for bodies
    // and parameters that break the documented schema).
    assert_eq!(
        status(alice.follow("bob").await),
        409,
        "viewers cannot be followed"
    );
    assert_eq!(status(alice.follow("alice").await), 409);

    let f = bob.follow("Alice").await.unwrap();
    assert_eq!((f.username.as_str(), f.following), ("alice", true));
    assert!(
        bob.follow("alice").await.unwrap().following,
        "follow is idempotent"
    );
    assert!(
        bob.following_live().await.unwrap().is_empty(),
        "alice is offline"
    );
    alice.go_live().await.unwrap();
    carol.go_live().await.unwrap();
    let list = bob.following_live().await.unwrap();
    assert_eq!(list.len(), 1, "only followed creators: {list:?}");
    assert_eq!(list[0].user_id, a.user.id);
    assert_eq!(srv.client().live_streams().await.unwrap().len(), 2);
    let f = bob.unfollow("alice").await.unwrap();
    assert!(!f.following);
    assert!(bob.following_live().await.unwrap().is_empty());
    assert!(!bob.unfollow("alice").await.unwrap().following);
    assert_eq!(status(bob.unfollow("ghost").await), 404);
}

async fn openapi(db: Database) {
    let srv = Server::start(db);
    let (st, v) = raw(
        &srv.http(),
        Method::GET,
        &format!("{}/api/openapi.json", srv.url),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert!(v["openapi"].as_str().unwrap_or("").starts_with("3."), "{v}");
    let schemas = &v["components"]["schemas"];
    for name in [
        "Stream",
        "GoLiveResponse",
        "ViewerTokenRequest",
        "StreamSession",
        "RegisterRequest",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    assert!(schemas["Stream"]["properties"]["isLive"].is_object());
    for field in [
        "framesSent",
        "framesDropped",
        "averageBitrateBps",
        "reconnects",
    ] {
        assert!(
            schemas["StreamSession"]["properties"][field].is_object(),
            "StreamSession.{field} missing"
        );
        assert!(
            schemas["SessionStatsReport"]["properties"][field].is_object(),
            "SessionStatsReport.{field} missing"
        );
    }
    let paths = v["paths"].as_object().expect("paths");
    for p in [
        "/api/stream/go-live",
        "/api/viewer/token",
        "/api/viewer/live",
        "/api/livekit/webhook",
        "/api/auth/login",
        "/api/stream/moderation",
        "/api/stream/moderation/ban",
        "/api/stream/moderation/timeout",
        "/api/stream/moderation/{identity}",
    ] {
        assert!(paths.contains_key(p), "path {p} missing");
    }
    for name in [
        "ChatAccess",
        "RoomMetadata",
        "ModerationEntry",
        "BanRequest",
        "TimeoutRequest",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    assert!(v["paths"]["/api/viewer/token"]["post"]["responses"]["409"].is_object());
    // The limits the server enforces are in the document (the same constants).
    let title = &schemas["SetupStreamRequest"]["properties"]["title"];
    assert_eq!(title["maxLength"], limits::TITLE_MAX, "{title}");
    assert_eq!(title["pattern"], limits::pattern::line(), "{title}");
    assert_eq!(
        schemas["TimeoutRequest"]["properties"]["durationSecs"]["maximum"],
        limits::TIMEOUT_SECS_MAX
    );
    // Served as JSON, like every API response.
    let resp = srv
        .http()
        .get(format!("{}/api/openapi.json", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
}

fn webhook_event(
    event: &str,
    room: &str,
    room_sid: &str,
    participant: Option<(&str, &str)>,
) -> String {
    webhook_event_at(event, room, room_sid, participant, now_secs())
}

/// A webhook event created at `created_at` (Unix seconds).
fn webhook_event_at(
    event: &str,
    room: &str,
    room_sid: &str,
    participant: Option<(&str, &str)>,
    created_at: i64,
) -> String {
    use livekit_protocol as lk;
    let ev = lk::WebhookEvent {
        event: event.into(),
        room: Some(lk::Room {
            name: room.into(),
            sid: room_sid.into(),
            creation_time: now_secs(),
            ..Default::default()
        }),
        participant: participant.map(|(sid, identity)| lk::ParticipantInfo {
            sid: sid.into(),
            identity: identity.into(),
            ..Default::default()
        }),
        id: format!("EV_{}", rand_suffix()),
        created_at,
        ..Default::default()
    };
    serde_json::to_string(&ev).unwrap()
}

fn rand_suffix() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// What LiveKit sends in `Authorization`: a JWT whose `sha256` claim is the body's hash.
fn sign(body: &str, key: &str, secret: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let hash =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body.as_bytes()));
    livekit_api::access_token::AccessToken::with_api_key(key, secret)
        .with_sha256(&hash)
        .to_jwt()
        .unwrap()
}

async fn post_webhook(srv: &Server, body: &str, auth: Option<&str>) -> u16 {
    let mut req = srv
        .http()
        .post(format!("{}/api/livekit/webhook", srv.url))
        .header("content-type", "application/webhook+json")
        .body(body.to_string());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn webhooks(db: Database) {
    let srv = Server::start(db);
    let (alice, a_auth) = srv.account("alice", Role::Creator, true).await;
    let room = a_auth.user.id.clone();
    alice
        .setup_stream(&SetupStreamRequest {
            title: "Hooks".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let live = alice.go_live().await.unwrap();
    let counts = || async {
        let s = alice.latest_session().await.unwrap();
        (s.current_viewers, s.peak_viewers)
    };

    // forged, unsigned, tampered, other key: 401 and nothing changes
    let join1 = webhook_event(
        "participant_joined",
        &room,
        "RM_1",
        Some(("PA_1", "viewer-1")),
    );
    let other = webhook_event(
        "participant_joined",
        &room,
        "RM_1",
        Some(("PA_9", "viewer-9")),
    );
    assert_eq!(post_webhook(&srv, &join1, None).await, 401);
    assert_eq!(post_webhook(&srv, &join1, Some("not-a-jwt")).await, 401);
    assert_eq!(
        post_webhook(
            &srv,
            &join1,
            Some(&sign(&join1, LK_KEY, "some-other-secret-some-other-secret"))
        )
        .await,
        401
    );
    assert_eq!(
        post_webhook(&srv, &join1, Some(&sign(&join1, "other-key", LK_SECRET))).await,
        401
    );
    assert_eq!(
        post_webhook(&srv, &join1, Some(&sign(&other, LK_KEY, LK_SECRET))).await,
        401,
        "body does not match its signature"
    );
    let resp = srv
        .http()
        .post(format!("{}/api/livekit/webhook", srv.url))
        .body(join1.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    error_message(&resp.json().await.unwrap());
    // oversized: 413 with the JSON envelope, nothing changes
    let huge = "x".repeat(200 * 1024);
    let resp = srv
        .http()
        .post(format!("{}/api/livekit/webhook", srv.url))
        .header("authorization", sign(&huge, LK_KEY, LK_SECRET))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    assert!(error_message(&resp.json().await.unwrap()).contains("too large"));
    assert_eq!(counts().await, (0, 0));

    // signed: counts move; duplicates and the creator do not count
    let ok = |body: &str| sign(body, LK_KEY, LK_SECRET);
    assert_eq!(post_webhook(&srv, &join1, Some(&ok(&join1))).await, 200);
    assert_eq!(counts().await, (1, 1));
    assert_eq!(post_webhook(&srv, &join1, Some(&ok(&join1))).await, 200);
    assert_eq!(
        counts().await,
        (1, 1),
        "a redelivered webhook counted twice"
    );
    let creator_join = webhook_event("participant_joined", &room, "RM_1", Some(("PA_C", &room)));
    assert_eq!(
        post_webhook(&srv, &creator_join, Some(&ok(&creator_join))).await,
        200
    );
    assert_eq!(
        counts().await,
        (1, 1),
        "the creator was counted as a viewer"
    );
    let join2 = webhook_event(
        "participant_joined",
        &room,
        "RM_1",
        Some(("PA_2", "guest-2")),
    );
    assert_eq!(post_webhook(&srv, &join2, Some(&ok(&join2))).await, 200);
    assert_eq!(counts().await, (2, 2));
    assert_eq!(
        srv.client()
            .stream_by_username("alice")
            .await
            .unwrap()
            .viewer_count,
        2
    );
    let left1 = webhook_event(
        "participant_left",
        &room,
        "RM_1",
        Some(("PA_1", "viewer-1")),
    );
    assert_eq!(post_webhook(&srv, &left1, Some(&ok(&left1))).await, 200);
    assert_eq!(post_webhook(&srv, &left1, Some(&ok(&left1))).await, 200);
    assert_eq!(counts().await, (1, 2));
    // a `left` that overtakes its `joined`
    let left3 = webhook_event(
        "participant_connection_aborted",
        &room,
        "RM_1",
        Some(("PA_3", "viewer-3")),
    );
    let join3 = webhook_event(
        "participant_joined",
        &room,
        "RM_1",
        Some(("PA_3", "viewer-3")),
    );
    assert_eq!(post_webhook(&srv, &left3, Some(&ok(&left3))).await, 200);
    assert_eq!(post_webhook(&srv, &join3, Some(&ok(&join3))).await, 200);
    assert_eq!(counts().await, (1, 2));
    // unknown rooms and events are accepted and ignored
    let stray = webhook_event(
        "participant_joined",
        "no-such-room",
        "RM_X",
        Some(("PA_X", "x")),
    );
    assert_eq!(post_webhook(&srv, &stray, Some(&ok(&stray))).await, 200);
    let track = webhook_event("track_published", &room, "RM_1", None);
    assert_eq!(post_webhook(&srv, &track, Some(&ok(&track))).await, 200);
    assert_eq!(counts().await, (1, 2));

    // room_finished of another (older) room changes nothing; of this room ends the session
    let old = webhook_event("room_finished", &room, "RM_0", None);
    assert_eq!(post_webhook(&srv, &old, Some(&ok(&old))).await, 200);
    assert!(alice.stream_info().await.unwrap().is_live);
    let forged_fin = webhook_event("room_finished", &room, "RM_1", None);
    assert_eq!(
        post_webhook(
            &srv,
            &forged_fin,
            Some(&sign(
                &forged_fin,
                LK_KEY,
                "wrong-secret-wrong-secret-wrong"
            ))
        )
        .await,
        401
    );
    assert!(
        alice.stream_info().await.unwrap().is_live,
        "a forged room_finished ended the stream"
    );
    let fin = webhook_event("room_finished", &room, "RM_1", None);
    assert_eq!(post_webhook(&srv, &fin, Some(&ok(&fin))).await, 200);
    assert!(!alice.stream_info().await.unwrap().is_live);
    let s = alice.latest_session().await.unwrap();
    assert_eq!(s.id, live.session_id);
    assert_eq!(
        (s.end_reason.as_deref(), s.peak_viewers, s.current_viewers),
        (Some("room-finished"), 2, 0)
    );
    // events after the session closed do not touch it
    let late = webhook_event(
        "participant_joined",
        &room,
        "RM_1",
        Some(("PA_4", "viewer-4")),
    );
    assert_eq!(post_webhook(&srv, &late, Some(&ok(&late))).await, 200);
    assert_eq!(alice.latest_session().await.unwrap(), s);

    // Replays: the next session starts with viewer-4 in the room (joined while offline);
    // an old event delivered again (same id) and a fresh-signed event created an hour
    // ago change nothing.
    let live2 = alice.go_live().await.unwrap();
    assert_ne!(live2.session_id, live.session_id);
    assert_eq!(
        counts().await,
        (1, 1),
        "the viewer who joined while offline"
    );
    assert_eq!(post_webhook(&srv, &join1, Some(&ok(&join1))).await, 200);
    assert_eq!(post_webhook(&srv, &join2, Some(&ok(&join2))).await, 200);
    assert_eq!(counts().await, (1, 1), "a replayed webhook counted");
    let stale = webhook_event_at(
        "participant_joined",
        &room,
        "RM_2",
        Some(("PA_5", "viewer-5")),
        now_secs() - 3600,
    );
    assert_eq!(post_webhook(&srv, &stale, Some(&ok(&stale))).await, 200);
    assert_eq!(counts().await, (1, 1), "an hour-old webhook counted");
    // The same identity on a second participant sid (a rejoin whose old sid
    // never left) is one viewer.
    let again4 = webhook_event(
        "participant_joined",
        &room,
        "RM_2",
        Some(("PA_4b", "viewer-4")),
    );
    assert_eq!(post_webhook(&srv, &again4, Some(&ok(&again4))).await, 200);
    assert_eq!(counts().await, (1, 1), "one identity counted twice");
    alice.end_stream().await.unwrap();
    let log = srv.log();
    assert!(!log.contains(LK_SECRET), "the LiveKit secret is in the log");
}

/// A client whose requests come from `ip` (a loopback address: 127.0.0.x).
fn http_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .build()
        .unwrap()
}

async fn login_status(http: &reqwest::Client, srv: &Server, user: &str, pass: &str) -> (u16, bool) {
    let resp = http
        .post(format!("{}/api/auth/login", srv.url))
        .json(&json!({"username": user, "password": pass}))
        .send()
        .await
        .unwrap();
    let st = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").is_some();
    let v: serde_json::Value = resp.json().await.unwrap();
    if st != 200 {
        error_message(&v);
    }
    (st, retry)
}

/// Login protection (`auth::LoginThrottle`): back-off per (account, address), a
/// limit per address, counted in the database, never a lock of the account itself.
async fn login_rate_limits(db: Database) {
    let srv = Server::start_with(
        db,
        &[
            ("STREAMIT_LOGIN_IP_PER_MINUTE", "25"),
            ("STREAMIT_REGISTER_IP_PER_MINUTE", "4"),
        ],
    );
    srv.account("alice", Role::Viewer, false).await;
    let (a, b) = (http_from([127, 0, 0, 1]), http_from([127, 0, 0, 2]));

    // 20 wrong passwords from A: the first 5 are plain 401s, then back-off (429)
    let mut seen = Vec::new();
    for _ in 0..20 {
        let (st, retry) = login_status(&a, &srv, "alice", "wrong-password").await;
        assert!(st == 401 || (st == 429 && retry), "{st}");
        seen.push(st);
    }
    assert_eq!(&seen[..5], &[401; 5], "{seen:?}");
    assert!(seen.contains(&429), "no back-off: {seen:?}");
    // A is throttled even with the right password…
    assert_eq!(
        login_status(&a, &srv, "alice", "alice-password").await,
        (429, true)
    );
    // …on every instance (the counters are in the database)…
    let other = srv.another();
    assert_eq!(
        login_status(&a, &other, "alice", "alice-password").await,
        (429, true)
    );
    // …while the owner logs in from B.
    assert_eq!(
        login_status(&b, &srv, "alice", "alice-password").await.0,
        200
    );
    // Other accounts from A are not held back by alice's streak.
    srv.account("bob", Role::Viewer, false).await;
    assert_eq!(login_status(&a, &srv, "bob", "bob-password").await.0, 200);

    // Per address: 25 attempts a minute over all accounts (C has made none).
    let c = http_from([127, 0, 0, 3]);
    for i in 0..25 {
        let (st, _) = login_status(&c, &other, &format!("nobody{i}"), "wrong-password").await;
        assert_eq!(st, 401, "attempt {i}");
    }
    assert_eq!(
        login_status(&c, &srv, "bob", "bob-password").await,
        (429, true)
    );
    assert_eq!(
        login_status(&http_from([127, 0, 0, 4]), &srv, "bob", "bob-password")
            .await
            .0,
        200
    );

    // registrations per IP: 4 a minute here, counted in the database, so the other
    // instance's count the same window (2 so far on `srv`, the next 2 on `other`)
    other.account("carol", Role::Viewer, false).await;
    other.account("dave", Role::Viewer, false).await;
    let extra = RegisterRequest {
        username: "erin".into(),
        password: "erin-password".into(),
        display_name: None,
        role: None,
    };
    assert_eq!(status(srv.client().register(&extra).await), 429);
    assert_eq!(status(other.client().register(&extra).await), 429);
    drop(other);
}

/// Two instances on one database agree on everything: sessions, streams,
/// viewer counts, login and registration limits (no per-process state).
async fn two_instances(db: Database) {
    let a = Server::start(db);
    let b = a.another();
    assert_ne!(a.url, b.url);
    let (alice_a, auth) = a.account("alice", Role::Creator, true).await;
    // the session token from instance A works on B
    let alice_b = b.client().with_token(auth.token.clone());
    assert_eq!(alice_b.me().await.unwrap().id, auth.user.id);
    alice_a
        .setup_stream(&SetupStreamRequest {
            title: "Shared".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let live = alice_b.go_live().await.unwrap();
    // go-live on A again keeps B's session
    assert_eq!(alice_a.go_live().await.unwrap().session_id, live.session_id);
    assert_eq!(a.client().live_streams().await.unwrap().len(), 1);
    // webhooks may reach either instance
    let room = auth.user.id.clone();
    let j1 = webhook_event("participant_joined", &room, "RM_1", Some(("PA_1", "v1")));
    let j2 = webhook_event("participant_joined", &room, "RM_1", Some(("PA_2", "v2")));
    assert_eq!(
        post_webhook(&a, &j1, Some(&sign(&j1, LK_KEY, LK_SECRET))).await,
        200
    );
    assert_eq!(
        post_webhook(&b, &j2, Some(&sign(&j2, LK_KEY, LK_SECRET))).await,
        200
    );
    assert_eq!(
        a.client()
            .stream_by_username("alice")
            .await
            .unwrap()
            .viewer_count,
        2
    );
    assert_eq!(
        b.client()
            .stream_by_username("alice")
            .await
            .unwrap()
            .viewer_count,
        2
    );
    // logout on B revokes on A
    let second = a
        .client()
        .login(&LoginRequest {
            username: "alice".into(),
            password: "alice-password".into(),
        })
        .await
        .unwrap();
    let s_b = b.client().with_token(second.token.clone());
    s_b.logout().await.unwrap();
    assert_eq!(status(a.client().with_token(second.token).me().await), 401);
    let sum = alice_a.end_stream().await.unwrap();
    assert_eq!(
        (sum.id.as_str(), sum.peak_viewers),
        (live.session_id.as_str(), 2)
    );
    assert!(b.client().live_streams().await.unwrap().is_empty());
    drop(b);
}

// --- SQLite -------------------------------------------------------------------------

/// Chat rules, moderation, guest names and watch URLs without LiveKit (the
/// RoomService calls fail fast and must not fail a request): the tokens'
/// grants, the status codes and the stored state.
async fn chat_rules(db: Database) {
    let srv = Server::start_with(db, &[("STREAMIT_PUBLIC_WEB_URL", "https://watch.test/")]);
    let (alice, a_auth) = srv.account("alice", Role::Creator, true).await;
    let (bob, b_auth) = srv.account("bob", Role::Viewer, false).await;
    let (dora, d_auth) = srv.account("dora", Role::Viewer, false).await;
    let public = srv.client();
    let host = a_auth.user.id.clone();
    let tok = |c: &streamit_api::client::Client, guest: Option<&str>| {
        let c = c.clone();
        let req = ViewerTokenRequest {
            host_id: host.clone(),
            guest_name: guest.map(str::to_string),
        };
        async move { c.viewer_token(&req).await }
    };

    // watch URLs everywhere a stream is returned
    let s = alice
        .setup_stream(&SetupStreamRequest {
            title: "Rules".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(s.watch_url, "https://watch.test/alice");
    assert_eq!(
        alice.stream_info().await.unwrap().watch_url,
        "https://watch.test/alice"
    );
    assert_eq!(
        public.stream_by_username("alice").await.unwrap().watch_url,
        "https://watch.test/alice"
    );

    // offline → 409 for guests and viewers alike
    for r in [tok(&public, None).await, tok(&bob, None).await] {
        match r {
            Err(e) => {
                assert_eq!(e.status(), Some(409), "{e}");
                assert!(e.to_string().contains("Stream is offline"), "{e}");
            }
            Ok(t) => panic!("token for an offline stream: {t:?}"),
        }
    }
    let live = alice.go_live().await.unwrap();
    assert_eq!(live.stream.watch_url, "https://watch.test/alice");
    assert_eq!(
        public.live_streams().await.unwrap()[0].watch_url,
        "https://watch.test/alice"
    );
    bob.follow("alice").await.unwrap();
    assert_eq!(
        bob.following_live().await.unwrap()[0].watch_url,
        "https://watch.test/alice"
    );
    let put = alice
        .update_stream_info(&UpdateStreamInfoRequest {
            title: Some("Rules, live".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(put.watch_url, "https://watch.test/alice");
    // the creator's token: role creator, publishes
    let c = verify(&live.token);
    assert_eq!(
        c.attributes.get(room::ATTR_ROLE).map(String::as_str),
        Some("creator")
    );
    assert_eq!(
        (c.video.can_publish, c.video.can_publish_data),
        (Some(true), Some(true))
    );

    // guest names that equal or imitate a registered user's name → 422
    for name in [
        "Alice",
        "alice",
        "ＡＬＩＣＥ",
        "al\u{200b}ice",
        "\u{202e}alice",
        "alice display",
        "ALICE\u{2066} DISPLAY",
        "\u{0430}lice",
        "Dora Display",
        "BOB",
    ] {
        match tok(&public, Some(name)).await {
            Err(e) => {
                assert_eq!(e.status(), Some(422), "{name:?}: {e}");
                assert!(e.to_string().contains("registered user"), "{name:?}: {e}");
            }
            Ok(t) => panic!("{name:?} was accepted as {:?}", t.name),
        }
    }
    for name in ["\u{200b}\u{200d}", "\u{202e}\u{2069}", "  \u{feff} "] {
        assert_eq!(status(tok(&public, Some(name)).await), 422, "{name:?}");
    }
    let zed = tok(&public, Some("Zed")).await.unwrap();
    assert_eq!((zed.name.as_str(), zed.role.as_str()), ("Zed", "guest"));
    // invisible characters are removed from the name handed out
    assert_eq!(
        tok(&public, Some("Gi\u{200b}na\u{202e}"))
            .await
            .unwrap()
            .name,
        "Gina"
    );
    assert_eq!(tok(&public, None).await.unwrap().name, "Guest");

    // the keys of users stored before them are computed at start-up
    {
        use sqlx::any::AnyPoolOptions;
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&srv.database_url)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE users SET username_key = NULL, display_name_key = NULL, name_key_version = 0",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    assert!(
        tok(&public, Some("ALICE")).await.is_ok(),
        "keys were cleared"
    );
    let srv2 = srv.another();
    assert_eq!(status(tok(&srv2.client(), Some("ALICE")).await), 422);
    drop(srv2);

    // grants follow the chat settings: followers-only
    alice
        .update_chat_settings(&ChatSettingsRequest {
            is_chat_followers_only: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let follower = tok(&bob, None).await.unwrap();
    let other = tok(&dora, None).await.unwrap();
    let guest = tok(&public, Some("Zed")).await.unwrap();
    assert_eq!(verify(&follower.token).video.can_publish_data, Some(true));
    assert_eq!(verify(&other.token).video.can_publish_data, Some(false));
    assert_eq!(verify(&guest.token).video.can_publish_data, Some(false));
    assert_eq!(
        other.chat.reason.as_deref(),
        Some("Chat is for followers only")
    );
    assert_eq!(
        guest.chat.reason.as_deref(),
        Some("Chat is for followers only")
    );
    alice
        .update_chat_settings(&ChatSettingsRequest {
            is_chat_followers_only: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();

    // moderation: validation and permissions
    let http = srv.http();
    let url = |p: &str| format!("{}{p}", srv.url);
    for (path, body) in [
        ("/api/stream/moderation/ban", json!({"identity": ""})),
        (
            "/api/stream/moderation/ban",
            json!({"identity": "x".repeat(65)}),
        ),
        ("/api/stream/moderation/ban", json!({"identity": "a b"})),
        (
            "/api/stream/moderation/ban",
            json!({"identity": b_auth.user.id, "reason": "r".repeat(201)}),
        ),
        (
            "/api/stream/moderation/timeout",
            json!({"identity": b_auth.user.id, "durationSecs": 0}),
        ),
        (
            "/api/stream/moderation/timeout",
            json!({"identity": b_auth.user.id, "durationSecs": limits::TIMEOUT_SECS_MAX + 1}),
        ),
        (
            "/api/stream/moderation/timeout",
            json!({"identity": b_auth.user.id, "durationSecs": -1}),
        ),
        (
            "/api/stream/moderation/ban",
            json!({"identity": "x", "extra": 1}),
        ),
    ] {
        let (st, v) = raw(
            &http,
            Method::POST,
            &url(path),
            Some(&a_auth.token),
            Some("application/json"),
            Some(body.to_string().into_bytes()),
        )
        .await;
        assert_eq!(st, 422, "{path} {body} → {v}");
        error_message(&v);
    }
    let ban = |identity: &str| BanRequest {
        identity: identity.into(),
        reason: None,
    };
    assert_eq!(status(alice.ban(&ban("no-such-user")).await), 404);
    // The creator themself: well-formed, refused for who it is (409).
    assert_eq!(status(alice.ban(&ban(&host)).await), 409);
    assert_eq!(
        status(
            alice
                .timeout_viewer(&TimeoutRequest {
                    identity: host.clone(),
                    duration_secs: 60,
                    reason: None
                })
                .await
        ),
        409
    );
    assert_eq!(status(bob.ban(&ban(&d_auth.user.id)).await), 403);
    assert_eq!(status(public.ban(&ban(&d_auth.user.id)).await), 401);
    assert_eq!(status(public.moderation().await), 401);
    assert_eq!(status(alice.lift_moderation(&d_auth.user.id).await), 404);

    // ban: no token; a timeout cannot replace it; lift
    let e = alice
        .ban(&BanRequest {
            identity: b_auth.user.id.clone(),
            reason: Some("  spam  ".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        (
            e.kind.as_str(),
            e.name.as_deref(),
            e.reason.as_deref(),
            e.until
        ),
        ("ban", Some("bob display"), Some("spam"), None)
    );
    assert_eq!(status(tok(&bob, None).await), 403);
    let timeout = |identity: &str, secs: u64| TimeoutRequest {
        identity: identity.into(),
        duration_secs: secs,
        reason: None,
    };
    assert_eq!(
        status(alice.timeout_viewer(&timeout(&b_auth.user.id, 60)).await),
        409
    );
    assert_eq!(alice.moderation().await.unwrap().len(), 1);
    alice.lift_moderation(&b_auth.user.id).await.unwrap();
    assert!(tok(&bob, None).await.unwrap().chat.can_send);

    // timeout: tokens meanwhile have no canPublishData
    let before = now_secs() * 1000;
    let e = alice
        .timeout_viewer(&timeout(&d_auth.user.id, 600))
        .await
        .unwrap();
    let until = e.until.unwrap();
    assert!(
        (before + 599_000..=before + 602_000).contains(&until),
        "{until}"
    );
    let t = tok(&dora, None).await.unwrap();
    assert_eq!(verify(&t.token).video.can_publish_data, Some(false));
    assert_eq!(
        (t.chat.can_send, t.chat.timed_out_until),
        (false, Some(until))
    );
    assert!(
        t.chat
            .reason
            .unwrap()
            .starts_with("You are timed out until ")
    );
    let list = alice.moderation().await.unwrap();
    assert_eq!(
        (list.len(), list[0].kind.as_str(), list[0].until),
        (1, "timeout", Some(until))
    );
    alice.lift_moderation(&d_auth.user.id).await.unwrap();
    assert!(tok(&dora, None).await.unwrap().chat.can_send);

    // a guest ban holds the guest's address (here loopback) for guest tokens only
    let g = tok(&public, Some("Gina")).await.unwrap();
    let e = alice.ban(&ban(&g.identity)).await.unwrap();
    assert_eq!(e.name.as_deref(), Some("Gina"));
    assert_eq!(status(tok(&public, Some("Other")).await), 403);
    assert!(tok(&bob, None).await.is_ok());
    alice.lift_moderation(&g.identity).await.unwrap();
    assert!(tok(&public, Some("Other")).await.is_ok());

    // offline again → 409
    alice.end_stream().await.unwrap();
    assert_eq!(status(tok(&public, None).await), 409);
}

#[tokio::test]
async fn accounts_sqlite() {
    accounts(Database::sqlite()).await;
}

#[tokio::test]
async fn roles_and_approval_sqlite() {
    roles_and_approval(Database::sqlite()).await;
}

#[tokio::test]
async fn streams_sqlite() {
    streams(Database::sqlite()).await;
}

#[tokio::test]
async fn follows_sqlite() {
    follows(Database::sqlite()).await;
}

#[tokio::test]
async fn webhooks_sqlite() {
    webhooks(Database::sqlite()).await;
}

#[tokio::test]
async fn login_rate_limits_sqlite() {
    login_rate_limits(Database::sqlite()).await;
}

#[tokio::test]
async fn two_instances_sqlite() {
    two_instances(Database::sqlite()).await;
}

#[tokio::test]
async fn chat_rules_sqlite() {
    chat_rules(Database::sqlite()).await;
}

#[tokio::test]
async fn openapi_sqlite() {
    openapi(Database::sqlite()).await;
}

// --- PostgreSQL (a throwaway cluster per test; Debian's `postgresql` package) -------

fn postgres() -> Database {
    let pg = streamit_testkit::postgres::Postgres::start()
        .expect("start a throwaway PostgreSQL (apt-get install postgresql)");
    let url = pg.create_database("streamit").expect("createdb");
    Database::Url(url, Box::new(pg))
}

#[tokio::test]
async fn accounts_postgres() {
    accounts(postgres()).await;
}

#[tokio::test]
async fn roles_and_approval_postgres() {
    roles_and_approval(postgres()).await;
}

#[tokio::test]
async fn streams_postgres() {
    streams(postgres()).await;
}

#[tokio::test]
async fn follows_postgres() {
    follows(postgres()).await;
}

#[tokio::test]
async fn webhooks_postgres() {
    webhooks(postgres()).await;
}

#[tokio::test]
async fn login_rate_limits_postgres() {
    login_rate_limits(postgres()).await;
}

#[tokio::test]
async fn two_instances_postgres() {
    two_instances(postgres()).await;
}

#[tokio::test]
async fn chat_rules_postgres() {
    chat_rules(postgres()).await;
}

#[tokio::test]
async fn openapi_postgres() {
    openapi(postgres()).await;
}
