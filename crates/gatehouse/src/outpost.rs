//! `gatehouse outpost`: the forward-auth outpost on its own, for the edge. It is a client of
//! the server (its outpost token, `--server`): it holds no database credentials, learns its
//! providers from the server, has every session checked and stored there, and forgets its
//! caches whenever the server pushes a change. While the server is unreachable it keeps
//! serving the sessions it checked within the grace period, and nothing else (T1).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use gatehouse_core::client_address::TrustedProxies;
use gatehouse_outpost::metrics::OutpostMetrics;
use gatehouse_outpost::remote::{self, Remote};
use gatehouse_outpost::{Error, Outpost};
use tokio::net::TcpListener;

use crate::config::OutpostSettings;

/// Runs the outpost on `listener` until `shutdown` resolves. A wrong token or server URL stops
/// it at once with the fix; a server that is down only delays the first provider table.
pub async fn run(
    settings: OutpostSettings,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let remote = Arc::new(Remote::new(&settings.server, &settings.token)?);
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = OutpostMetrics::register(&mut registry);
    metrics.name_mode("standalone");
    let outpost = Arc::new(Outpost::new(
        remote.clone(),
        gatehouse_outpost::Settings {
            grace: settings.grace.to_std().unwrap_or_default(),
            break_glass: settings.break_glass.clone(),
            // Keyed from the token: the settings alone cannot mint a fallback cookie.
            break_glass_secret: Some(settings.token.as_bytes().to_vec()),
            recheck: settings.recheck.to_std().unwrap_or_default(),
            cache_bytes: settings.cache_mb << 20,
        },
        metrics.clone(),
    ));
    match outpost.snapshot().await {
        Ok(snap) => tracing::info!(
            providers = snap.providers.len(),
            server = %remote.server(),
            "the outpost serves {} proxy provider(s) of {}",
            snap.providers.len(),
            remote.server()
        ),
        Err(Error::Refused(why)) => anyhow::bail!(
            "the server refused the outpost: {why}\n(check --token: `gatehouse outpost token NAME` issues a new one; and --server)"
        ),
        Err(e @ (Error::Unreachable(_) | Error::Failed(_))) => {
            tracing::warn!(error = %e, server = %remote.server(), "the server is not reachable yet; the outpost starts anyway and answers 503 until it is")
        }
    }
    let follower = tokio::spawn(remote::follow(outpost.clone(), remote.clone()));
    let registry = Arc::new(registry);
    let metrics_task = metrics_listener.map(|l| {
        gatehouse_web::metrics::spawn(l, move || gatehouse_web::metrics::render(&registry))
    });
    let address = listener
        .local_addr()
        .context("reading the listen address")?;
    tracing::info!(listen = %address, "gatehouse outpost is listening on http://{address}");
    gatehouse_outpost::fast::serve(
        listener,
        outpost.clone(),
        router(outpost, metrics, settings.trusted_proxies),
        shutdown,
    )
    .await
    .context("serving HTTP")?;
    follower.abort();
    if let Some(task) = metrics_task {
        task.abort();
    }
    tracing::info!("gatehouse outpost stopped");
    Ok(())
}

/// The outpost's routes, proxy mode in front, health checks, and a page for anything else.
fn router(outpost: Arc<Outpost>, metrics: OutpostMetrics, trusted: TrustedProxies) -> Router {
    Router::new()
        .route("/-/health/live/", get(live))
        .route("/-/health/live", get(live))
        .route("/-/health/ready/", get(ready))
        .route("/-/health/ready", get(ready))
        .with_state((outpost.clone(), metrics))
        .merge(gatehouse_outpost::router().with_state(outpost.clone()))
        .fallback(not_here)
        .layer(axum::middleware::from_fn_with_state(
            outpost,
            gatehouse_outpost::proxy_mode,
        ))
        // As in the server: behind a trusted proxy, its forwarding headers name the client.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(trusted),
            gatehouse_outpost::request::client_address,
        ))
}

async fn live() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Ready once a provider table is at hand (fresh, or within the grace period while the server
/// is away): an outpost that has never reached its server cannot decide anything. The answer
/// names the mode and where sessions live, for `gatehouse doctor` (T3).
async fn ready(
    State((outpost, metrics)): State<(Arc<Outpost>, OutpostMetrics)>,
) -> (StatusCode, axum::Json<serde_json::Value>) {
    let names = metrics.names();
    let (status, word) = match outpost.snapshot().await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "no provider table yet"),
    };
    (
        status,
        axum::Json(
            serde_json::json!({"status": word, "mode": names.mode, "sessions": names.sessions}),
        ),
    )
}

async fn not_here() -> Response {
    gatehouse_html::error_page(
        StatusCode::NOT_FOUND,
        "Nothing here",
        "This is a Gatehouse outpost: it answers forward-auth requests under /outpost.goauthentik.io/ and the hosts of proxy-mode providers.",
        "Log in and manage Gatehouse on the server itself; point the proxy's auth URL at /outpost.goauthentik.io/auth/nginx (or traefik, caddy, envoy).",
    )
    .into_response()
}
