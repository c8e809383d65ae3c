//! `gatehouse serve`: connect and migrate the database, seed it on first start, then serve HTTP
//! until SIGTERM/SIGINT, finishing in-flight requests.

use std::future::Future;
use std::path::Path;

use anyhow::Context;
use gatehouse_store::Store;
use gatehouse_web::bootstrap::{self, BootstrapSettings};
use gatehouse_web::AppState;
use tokio::net::TcpListener;

use crate::config::{LogFormat, Settings};

/// Installs the global tracing subscriber (once; later calls are no-ops).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Bootstrap settings from `GATEHOUSE_BOOTSTRAP_*`.
pub fn bootstrap_from_env() -> BootstrapSettings {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    BootstrapSettings {
        password: var("GATEHOUSE_BOOTSTRAP_PASSWORD"),
        token: var("GATEHOUSE_BOOTSTRAP_TOKEN"),
        email: var("GATEHOUSE_BOOTSTRAP_EMAIL"),
    }
}

/// Warns when the data directory lives on a RAM-backed filesystem, where a restart loses
/// every session and setting (SPEC T3).
fn warn_if_volatile(dir: &Path) {
    let Ok(dir) = dir.canonicalize() else { return };
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return;
    };
    let volatile = mounts
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (_, mount, kind) = (parts.next()?, parts.next()?, parts.next()?);
            Some((mount, kind))
        })
        .filter(|(mount, _)| dir.starts_with(mount))
        .max_by_key(|(mount, _)| mount.len())
        .is_some_and(|(_, kind)| kind == "tmpfs" || kind == "ramfs");
    if volatile {
        tracing::warn!(dir = %dir.display(), "the data directory is on tmpfs: the database is lost at every restart; point --data-dir at persistent storage or use --database");
    }
}

/// Connects to the database named in `settings` with the secret key `key`, creating the SQLite
/// directory if needed.
pub async fn open_store(
    settings: &Settings,
    key: std::sync::Arc<gatehouse_store::SecretKey>,
) -> anyhow::Result<Store> {
    if settings.database.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "cannot create data directory {}",
                settings.data_dir.display()
            )
        })?;
        warn_if_volatile(&settings.data_dir);
    }
    Ok(Store::connect(&settings.database, key).await?)
}

/// Runs the server on `listener` until `shutdown` resolves.
pub async fn run(
    settings: Settings,
    bootstrap: BootstrapSettings,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    bootstrap.check().map_err(anyhow::Error::msg)?;
    let secret_key = settings.secret_key.load()?;
    let store = open_store(&settings, secret_key.clone()).await?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    // Before anything reads a secret: a different key is refused here, with the fix, rather
    // than failing every login later; secrets still in plain text (from before sealing) are
    // sealed in the same transaction.
    let sealed = store.adopt_key().await?;
    if sealed > 0 {
        tracing::info!(
            sealed,
            key_id = secret_key.id(),
            "sealed secrets stored in plain text with the server's secret key"
        );
    }
    let outcome = bootstrap::run(&store, &bootstrap)
        .await
        .context("seeding the database")?;
    let state = AppState::new(
        store.clone(),
        gatehouse_web::Settings {
            external_url: settings.external_url.clone(),
            flow_state_age: settings.flow_state_age,
            outpost_grace: settings.outpost_grace.to_std().unwrap_or_default(),
            outpost_recheck: settings.outpost_recheck.to_std().unwrap_or_default(),
            outpost_cache_bytes: settings.outpost_cache_mb << 20,
            break_glass: settings.outpost_break_glass.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            break_glass_secret: secret_key.derive("outpost break-glass cookie").to_vec(),
            reauth_max_age: settings.reauth_max_age,
            passkey_counts_as_two_factors: settings.passkey_counts_as_two_factors,
            flow_cookie_secret: secret_key.derive("flow run cookie"),
        },
    )
    .context("setting up the login sources' HTTP client")?;
    // Signing keys load (and on first start, are made) in the background while the listener
    // already answers liveness; readiness waits for them, and a token request arriving first
    // waits for its key too. A failure (database briefly away) is retried: readiness stays
    // off meanwhile instead of for good.
    let keys = (state.keys.clone(), store.clone(), state.metrics.clone());
    tokio::spawn(async move {
        while let Err(e) = keys.0.prepare(&keys.1).await {
            tracing::error!(error = %e, "could not load or make the OIDC signing keys; retrying in {} s", KEYS_RETRY.as_secs());
            tokio::time::sleep(KEYS_RETRY).await;
        }
        // The rotation alert's gauge; `key list` and `key rotate` keep it current.
        match keys.1.conn().await {
            Ok(mut conn) => match gatehouse_store::oauth::all_keys(&mut conn, keys.1.key()).await {
                Ok(all) => keys.2.show_signing_keys(&all),
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the signing keys for the metrics")
                }
            },
            Err(e) => tracing::warn!(error = %e, "could not read the signing keys for the metrics"),
        }
    });
    let app = gatehouse_web::router(state.clone());
    let reaper = tokio::spawn(reap(state.clone()));
    let replicas = tokio::spawn(gatehouse_web::changes::follow(
        state.changes.clone(),
        state.outpost.clone(),
    ));
    let metrics_task = metrics_listener.map(|l| {
        let metrics = state.metrics.clone();
        gatehouse_web::metrics::spawn(l, move || metrics.render())
    });
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| settings.listen.clone());
    state.mark_started();
    tracing::info!(
        listen = %address,
        database = store.backend().as_str(),
        url = %gatehouse_store::redact_url(&settings.database),
        external_url = %settings.external_url,
        first_start = outcome == bootstrap::Outcome::Seeded,
        startup_ms = started.elapsed().as_millis() as u64,
        "gatehouse is listening on http://{address} (external URL {}, {} database)",
        settings.external_url,
        store.backend().as_str(),
    );
    if let Some(link) = bootstrap::setup_link(&store, &settings.external_url).await? {
        tracing::info!(
            "one-time admin set-up link (valid {} h): {link}",
            bootstrap::SETUP_VALIDITY_HOURS
        );
        println!(
            "\n  Gatehouse is running at {}\n  Set the admin password (one-time link): {link}\n",
            settings.external_url
        );
    }
    gatehouse_outpost::fast::serve(listener, state.outpost.clone(), app, {
        // Open event streams of standalone outposts end first, or they would hold the
        // graceful shutdown open forever.
        let changes = state.changes.clone();
        async move {
            shutdown.await;
            changes.close();
        }
    })
    .await
    .context("serving HTTP")?;
    reaper.abort();
    replicas.abort();
    if let Some(task) = metrics_task {
        task.abort();
    }
    store.close().await;
    tracing::info!("gatehouse stopped");
    Ok(())
}

/// How long to wait before trying again to load or make the signing keys.
const KEYS_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// How often expired sessions and flow states are deleted and idle throttle keys forgotten.
const REAP_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Deletes expired sessions and unfinished stored flow states (abandoned logins), every
/// [`REAP_EVERY`].
async fn reap(state: AppState) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    loop {
        tick.tick().await;
        state.engine.throttle.prune();
        let now = chrono::Utc::now();
        let result: gatehouse_store::Result<(u64, u64)> = async {
            let mut conn = state.store.conn().await?;
            let sessions = gatehouse_store::sessions::reap(&mut conn, now).await?;
            let flows = gatehouse_store::flow_states::reap(&mut conn, now).await?;
            let outpost = gatehouse_web::outpost::reap(&mut conn).await?;
            gatehouse_store::changes::prune(&mut conn).await?;
            Ok((sessions + outpost, flows))
        }
        .await;
        match result {
            Ok((0, 0)) => {}
            Ok((sessions, flows)) => {
                tracing::info!(sessions, flow_states = flows, "reaped expired rows")
            }
            Err(e) => tracing::warn!(error = %e, "reaping expired rows failed; will retry"),
        }
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
