//! The change feed behind the outposts' caches: a consumer that misses a change (a gap in the
//! sequence numbers, a dropped event stream, a feed that no longer covers its position) drops
//! what it cached and never serves a revoked session; the safety bound re-reads answers when
//! the feed has been silent for longer than it, and costs nothing while the feed is live;
//! unknown cookies are cheap misses that cache and write nothing, and
//! the session cache keeps to its memory budget. Each test writes to the database behind the
//! server's back (as another process would), through the store or plain SQL.

use std::time::{Duration, Instant};

use gatehouse_store::{sql, Store};
use gatehouse_testkit::{cookie_client, TestDb, TestOutpost, TestServer, TOKEN};
use serde_json::json;

use crate::outpost::{outpost_login, protect, user};
use crate::standalone::{assign_app, edge, login_through};

/// The embedded outpost's answer for `http`'s session at `base`.
async fn decision(http: &reqwest::Client, base: &str, host: &str) -> anyhow::Result<u16> {
    Ok(http
        .get(format!("{base}/outpost.goauthentik.io/auth/nginx"))
        .header("Host", host)
        .header("X-Original-URI", "/home")
        .send()
        .await?
        .status()
        .as_u16())
}

/// Asks for `http`'s decision every 50 ms for up to 5 s until it is no longer 200.
async fn until_refused(http: &reqwest::Client, base: &str, host: &str) -> anyhow::Result<u16> {
    let started = Instant::now();
    let mut status = decision(http, base, host).await?;
    while status == 200 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = decision(http, base, host).await?;
    }
    Ok(status)
}

/// Deletes every outpost session without telling the feed (a change lost without a trace).
async fn delete_sessions_silently(store: &Store) -> anyhow::Result<()> {
    let mut conn = store.conn().await?;
    sql::execute(&mut conn, "DELETE FROM proxy_sessions", vec![]).await?;
    Ok(())
}

/// The embedded outpost's answers for each `Cookie` header value in `cookies`, 32 at a time.
async fn statuses(base: &str, host: &str, cookies: Vec<String>) -> anyhow::Result<Vec<u16>> {
    let http = reqwest::Client::new();
    let mut answers = Vec::with_capacity(cookies.len());
    for chunk in cookies.chunks(32) {
        let mut set = tokio::task::JoinSet::new();
        for cookie in chunk {
            let request = http
                .get(format!("{base}/outpost.goauthentik.io/auth/nginx"))
                .header("Host", host)
                .header("X-Original-URI", "/home")
                .header("Cookie", cookie);
            set.spawn(async move { anyhow::Ok(request.send().await?.status().as_u16()) });
        }
        while let Some(answer) = set.join_next().await {
            answers.push(answer??);
        }
    }
    Ok(answers)
}

/// A metric's value from the Prometheus text at `metrics_url`.
async fn metric(metrics_url: &str, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(metrics_url).await?.text().await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_default())
}

/// A server on a fresh database with `configure` applied, alice logged in through the
/// embedded outpost, and a store of its own on the same database.
async fn logged_in(
    db: &TestDb,
    configure: impl FnOnce(&mut gatehouse::config::Settings),
) -> anyhow::Result<(TestServer, reqwest::Client, Store)> {
    let bootstrap = gatehouse_web::bootstrap::BootstrapSettings {
        token: Some(TOKEN.into()),
        ..Default::default()
    };
    let server = TestServer::start_on(db, &db.url, bootstrap, configure).await?;
    let family = protect(&server, &server.url).await?;
    user(&server, "alice@example.com", json!([family["pk"]])).await?;
    keys_ready(&server).await?;
    let http = cookie_client()?;
    outpost_login(&server, &http).await?;
    let store = db.store().await?;
    Ok((server, http, store))
}

/// Waits (up to 20 s) until the server has its signing keys: on a fresh database they are
/// made in the background, and a login completing before would wait for them beyond the
/// outpost's patience on a loaded machine.
async fn keys_ready(server: &TestServer) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let jwks = reqwest::get(format!("{}/application/o/app/jwks/", server.url)).await?;
        if jwks.status().is_success() && jwks.text().await?.contains("kid") {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the server made no signing keys within 20 s")
}

#[tokio::test]
async fn a_gap_in_the_change_feed_drops_every_cached_answer_so_a_silently_deleted_session_stops_passing(
) -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let (server, http, store) = logged_in(&db, |_| {}).await?;
    let host = server.url.trim_start_matches("http://").to_owned();
    assert_eq!(decision(&http, &server.url, &host).await?, 200);
    delete_sessions_silently(&store).await?;
    assert_eq!(
        decision(&http, &server.url, &host).await?,
        200,
        "nothing told the outpost: the cached answer stands (changes are pushed, not polled)"
    );
    // A change whose number skips some: the feed reader cannot know what it missed.
    let mut conn = store.conn().await?;
    let latest = gatehouse_store::changes::latest(&mut conn).await?;
    sql::execute(
        &mut conn,
        "INSERT INTO changes (seq, kind, subject, created) VALUES ($1, 'user', 0, $2)",
        vec![(latest + 3).into(), sql::now().into()],
    )
    .await?;
    if db.backend() == "postgres" {
        sql::execute(
            &mut conn,
            "SELECT 1 FROM (SELECT pg_notify('gatehouse_changes', $1)) AS n",
            vec![(latest + 3).to_string().into()],
        )
        .await?;
    }
    assert_eq!(
        until_refused(&http, &server.url, &host).await?,
        401,
        "after the gap the outpost read the session again and found it gone"
    );
    server.stop().await
}

#[tokio::test]
async fn the_safety_bound_re_reads_a_cached_session_when_the_feed_is_silent() -> anyhow::Result<()>
{
    // A standalone outpost whose bound (1 s) is shorter than the server's keep-alive (15 s):
    // between keep-alives its feed says nothing for longer than the bound.
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let (instance, token) = edge(&server).await?;
    let outpost = TestOutpost::start(&server.url, &token, |s| {
        s.recheck = chrono::Duration::seconds(1);
    })
    .await?;
    let family = protect(&server, &outpost.url).await?;
    user(&server, "alice@example.com", json!([family["pk"]])).await?;
    assign_app(&server, &instance).await?;
    keys_ready(&server).await?;
    let host = outpost.url.trim_start_matches("http://").to_owned();
    let (http, _) = login_through(&server, &outpost.url, cookie_client()?).await?;
    assert_eq!(decision(&http, &outpost.url, &host).await?, 200);
    let store = db.store().await?;
    delete_sessions_silently(&store).await?;
    assert_eq!(
        until_refused(&http, &outpost.url, &host).await?,
        401,
        "with the feed silent past the safety bound, the answer is read again"
    );
    outpost.stop().await?;
    server.stop().await
}

#[tokio::test]
async fn a_live_feed_keeps_cached_answers_past_the_safety_bound_without_reading_them_again(
) -> anyhow::Result<()> {
    // The embedded outpost's reader confirms contact every 250 ms, well within a 1 s bound.
    let db = TestDb::new().await?;
    let (server, http, _store) = logged_in(&db, |s| {
        s.outpost_recheck = chrono::Duration::seconds(1);
    })
    .await?;
    let host = server.url.trim_start_matches("http://").to_owned();
    assert_eq!(decision(&http, &server.url, &host).await?, 200);
    let reads = || metric(&server.metrics_url, "gatehouse_outpost_backend_reads_total");
    let before = reads().await?;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(decision(&http, &server.url, &host).await?, 200);
    }
    assert_eq!(
        reads().await?,
        before,
        "three times the bound later the cached answer still stands unread: the feed vouched for it"
    );
    server.stop().await
}

#[tokio::test]
async fn unknown_cookies_are_cheap_misses_that_cache_and_write_nothing_and_the_cache_keeps_its_budget(
) -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let (server, http, store) = logged_in(&db, |s| s.outpost_cache_mb = 1).await?;
    let host = server.url.trim_start_matches("http://").to_owned();
    assert_eq!(decision(&http, &server.url, &host).await?, 200);
    let (_, providers) = server.get("/providers/proxy/?name=App").await?;
    let cookie_name = gatehouse_outpost::cookie_name(
        providers["results"][0]["client_id"]
            .as_str()
            .unwrap_or_default(),
    );
    let rows = |store: Store| async move {
        let mut conn = store.conn().await?;
        let row = sql::fetch_optional(
            &mut conn,
            "SELECT COUNT(*) AS n FROM proxy_sessions",
            vec![],
        )
        .await?;
        anyhow::Ok(
            row.map(|r| sql::RowExt::int(&r, "n"))
                .transpose()?
                .unwrap_or_default(),
        )
    };
    let before = rows(store.clone()).await?;
    let ask = |cookies: Vec<String>| statuses(&server.url, &host, cookies);
    let forged: Vec<String> = (0..2_000)
        .map(|_| format!("{cookie_name}={}", gatehouse_core::secret::new_token()))
        .collect();
    let answers = ask(forged).await?;
    assert!(answers.iter().all(|&s| s == 401), "no forged cookie passes");
    assert_eq!(
        rows(store.clone()).await?,
        before,
        "no row written for them"
    );
    assert_eq!(
        metric(&server.metrics_url, "gatehouse_outpost_cached_sessions").await?,
        1.0,
        "only alice's session is cached"
    );

    // More valid sessions than the 1 MiB budget holds: copies of alice's.
    let budget = (1u64 << 20) / gatehouse_outpost::cache::ENTRY_BYTES;
    let copies = usize::try_from(budget).unwrap_or_default() + 2_000;
    let mut tx = store.begin().await?;
    let row = sql::fetch_optional(
        &mut tx,
        "SELECT provider_id, user_id, session_data, expires FROM proxy_sessions LIMIT 1",
        vec![],
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("alice's session row is missing"))?;
    use gatehouse_store::sql::RowExt;
    let (provider, owner, data, expires) = (
        row.int("provider_id")?,
        row.int("user_id")?,
        row.text("session_data")?,
        row.text("expires")?,
    );
    let mut cookies = Vec::with_capacity(copies);
    for _ in 0..copies {
        let key = gatehouse_core::secret::new_token();
        sql::execute(
            &mut tx,
            "INSERT INTO proxy_sessions (uuid, key_hash, provider_id, user_id, session_data, created, expires) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                uuid::Uuid::new_v4().into(),
                gatehouse_core::secret::token_hash(&key).into(),
                provider.into(),
                owner.into(),
                data.as_str().into(),
                sql::now().into(),
                expires.as_str().into(),
            ],
        )
        .await?;
        cookies.push(format!("{cookie_name}={key}"));
    }
    gatehouse_store::commit(tx).await?;
    let answers = ask(cookies).await?;
    assert!(
        answers.iter().all(|&s| s == 200),
        "every copy is a valid session"
    );
    let cached = metric(&server.metrics_url, "gatehouse_outpost_cached_sessions").await?;
    println!("{cached} sessions cached within a budget of {budget}");
    assert!(
        cached <= budget as f64,
        "{cached} cached sessions exceed the budget of {budget}"
    );
    server.stop().await
}

#[tokio::test]
async fn a_standalone_outpost_resumes_the_feed_after_its_stream_drops_and_drops_its_cache_when_the_feed_cannot_replay(
) -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let port = server.port();
    let (instance, token) = edge(&server).await?;
    let outpost = TestOutpost::start(&server.url, &token, |_| {}).await?;
    let family = protect(&server, &outpost.url).await?;
    user(&server, "alice@example.com", json!([family["pk"]])).await?;
    assign_app(&server, &instance).await?;
    let host = outpost.url.trim_start_matches("http://").to_owned();
    let store = db.store().await?;
    let alice = |store: &Store| {
        let store = store.clone();
        async move {
            let mut conn = store.conn().await?;
            anyhow::Ok(
                gatehouse_store::users::find_by_username(&mut conn, "alice@example.com")
                    .await?
                    .map(|u| u.id)
                    .unwrap_or_default(),
            )
        }
    };

    keys_ready(&server).await?;
    // 1. The stream drops (server down); a logout written meanwhile (through the store, as
    // the CLI would) is replayed when the outpost resumes from its position.
    let (http, _) = login_through(&server, &outpost.url, cookie_client()?).await?;
    assert_eq!(decision(&http, &outpost.url, &host).await?, 200);
    server.stop().await?;
    let user_id = alice(&store).await?;
    let mut tx = store.begin().await?;
    gatehouse_store::proxy_sessions::end_all_of(&mut tx, user_id).await?;
    gatehouse_store::commit(tx).await?;
    let server = TestServer::restart_at(&db, port).await?;
    assert_eq!(
        until_refused(&http, &outpost.url, &host).await?,
        401,
        "the logout made while the stream was down was replayed"
    );

    // 2. Down again, and meanwhile the feed forgets what the outpost missed (pruned): the
    // server cannot replay it, so the outpost drops everything it cached.
    let (http, _) = login_through(&server, &outpost.url, cookie_client()?).await?;
    assert_eq!(decision(&http, &outpost.url, &host).await?, 200);
    server.stop().await?;
    delete_sessions_silently(&store).await?;
    let mut tx = store.begin().await?;
    gatehouse_store::changes::append(&mut tx, gatehouse_store::changes::ChangeKind::User(0))
        .await?;
    gatehouse_store::changes::append(&mut tx, gatehouse_store::changes::ChangeKind::User(0))
        .await?;
    let latest = gatehouse_store::changes::latest(&mut tx).await?;
    sql::execute(
        &mut tx,
        "DELETE FROM changes WHERE seq < $1",
        vec![latest.into()],
    )
    .await?;
    gatehouse_store::commit(tx).await?;
    let server = TestServer::restart_at(&db, port).await?;
    assert_eq!(
        until_refused(&http, &outpost.url, &host).await?,
        401,
        "the outpost dropped its cache and read the session again"
    );
    outpost.stop().await?;
    server.stop().await
}
