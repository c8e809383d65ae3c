//! Runs each command: `serve` and `migrate` work on the database directly; the admin commands
//! are clients of a running server's API.

mod admin;
mod declarative;
mod doctor;
mod import;
mod k8s;
mod secret_key;

use anyhow::bail;
use tokio::net::TcpListener;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::{config, serve};

/// Runs one parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = config::resolve(&args)?;
            serve::init_tracing(settings.log_format);
            let (listener, metrics) =
                bind(&settings.listen, settings.metrics_listen.as_deref()).await?;
            serve::run(
                settings,
                serve::bootstrap_from_env(),
                listener,
                metrics,
                serve::shutdown_signal(),
            )
            .await
        }
        Command::Outpost(crate::cli::OutpostArgs {
            command: Some(command),
            ..
        }) => admin::outpost(command).await,
        Command::Outpost(crate::cli::OutpostArgs { command: None, run }) => {
            let settings = config::resolve_outpost(&run)?;
            serve::init_tracing(settings.log_format);
            let (listener, metrics) =
                bind(&settings.listen, settings.metrics_listen.as_deref()).await?;
            crate::outpost::run(settings, listener, metrics, serve::shutdown_signal()).await
        }
        Command::Migrate(args) => {
            let settings = config::resolve(&args.serve)?;
            serve::init_tracing(settings.log_format);
            // Migrating reads no secret: a throwaway key, so `migrate` needs none configured.
            let key = std::sync::Arc::new(gatehouse_sealing::SecretKey::generate()?);
            let store = serve::open_store(&settings, key).await?;
            let pending = store.pending_migrations().await?;
            if args.check {
                if pending.is_empty() {
                    println!("database is up to date");
                    return Ok(());
                }
                bail!(
                    "{} migration(s) pending: {pending:?}; run `gatehouse migrate`",
                    pending.len()
                );
            }
            store.migrate().await?;
            println!(
                "applied {} migration(s); database is up to date",
                pending.len()
            );
            Ok(())
        }
        Command::Config(ConfigCommand::Validate { file }) => {
            let args = crate::cli::ServeArgs {
                config: Some(file.clone()),
                ..Default::default()
            };
            let settings = config::resolve(&args)?;
            println!(
                "{} is valid: listen {}, database {}, external URL {}",
                file.display(),
                settings.listen,
                gatehouse_store::redact_url(&settings.database),
                settings.external_url
            );
            Ok(())
        }
        Command::Import(crate::cli::ImportCommand::Authentik(args)) => {
            import::authentik(args).await
        }
        Command::Plan(args) => declarative::run(args, false).await,
        Command::Apply(args) => declarative::run(args, true).await,
        Command::User(c) => admin::user(c).await,
        Command::Group(c) => admin::group(c).await,
        Command::App(c) => admin::app(c).await,
        Command::Token(c) => admin::token(c).await,
        Command::Invite(c) => admin::invite(c).await,
        Command::Flow(c) => admin::flow(c).await,
        Command::Key(c) => admin::key(c).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::SecretKey(crate::cli::SecretKeyCommand::Rotate(args)) => {
            secret_key::rotate(args).await
        }
        Command::K8s(c) => k8s::run(c),
        Command::Health { url } => health(&url).await,
        Command::BreakGlass(crate::cli::BreakGlassCommand::Hash { username }) => {
            break_glass_hash(&username)
        }
    }
}

/// Binds the public listener and, unless off, the metrics listener; errors say what to change.
async fn bind(
    listen: &str,
    metrics: Option<&str>,
) -> anyhow::Result<(TcpListener, Option<TcpListener>)> {
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {listen}: {e} (is another process using the port? choose one with --listen)")
    })?;
    let metrics = match metrics {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen for metrics on {addr}: {e} (choose another with --metrics-listen, or `off`)")
        })?),
        None => None,
    };
    Ok((listener, metrics))
}

/// `gatehouse health --url URL`: fails unless the URL answers 2xx within 5 seconds.
async fn health(url: &str) -> anyhow::Result<()> {
    let status = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e} (is the server running on that port?)"))?
        .status();
    if !status.is_success() {
        bail!("{url} answered {status}");
    }
    println!("{url}: {status}");
    Ok(())
}

/// `gatehouse break-glass hash USERNAME`: the config entry for a password read from stdin.
fn break_glass_hash(username: &str) -> anyhow::Result<()> {
    use std::io::BufRead;
    if username.is_empty() || username.contains(':') || username.chars().any(char::is_whitespace) {
        anyhow::bail!("`{username}` cannot be a break-glass username: no spaces or colons");
    }
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.len() < 12 {
        anyhow::bail!("give a password of at least 12 characters on standard input");
    }
    let hash = gatehouse_core::secret::hash_password(password)?;
    println!("{username}:{hash}");
    Ok(())
}
