//! Runs each command: `serve` and `migrate` work on the database directly; the admin commands
//! are clients of a running server's API.

mod admin;
mod declarative;

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
            let listener = TcpListener::bind(&settings.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e} (is another server using the port? choose one with --listen)", settings.listen))?;
            let metrics = match &settings.metrics_listen {
                Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                    anyhow::anyhow!("cannot listen for metrics on {addr}: {e} (choose another with --metrics-listen, or `off`)")
                })?),
                None => None,
            };
            serve::run(
                settings,
                serve::bootstrap_from_env(),
                listener,
                metrics,
                serve::shutdown_signal(),
            )
            .await
        }
        Command::Migrate(args) => {
            let settings = config::resolve(&args.serve)?;
            serve::init_tracing(settings.log_format);
            let store = serve::open_store(&settings).await?;
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
        Command::Plan(args) => declarative::run(args, false).await,
        Command::Apply(args) => declarative::run(args, true).await,
        Command::User(c) => admin::user(c).await,
        Command::Group(c) => admin::group(c).await,
        Command::App(c) => admin::app(c).await,
        Command::Token(c) => admin::token(c).await,
        Command::Invite(c) => admin::invite(c).await,
        Command::Flow(c) => admin::flow(c).await,
        Command::Key(c) => admin::key(c).await,
        Command::BreakGlass(crate::cli::BreakGlassCommand::Hash { username }) => {
            break_glass_hash(&username)
        }
    }
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
