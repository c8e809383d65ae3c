//! Server settings: an optional file (TOML or YAML), overridden by environment variables and
//! flags, resolved into [`Settings`] with every default filled in; and a standalone outpost's
//! flags, resolved into [`OutpostSettings`] by the same rules.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::cli::{OutpostRunArgs, ServeArgs};

/// The settings file. Unknown keys are refused so a typo never silently does nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    /// Address and port to listen on, e.g. `0.0.0.0:9000`.
    pub listen: Option<String>,
    /// Database URL (`sqlite://PATH` or `postgres://…`); default SQLite in `data_dir`.
    pub database: Option<String>,
    /// Directory for the SQLite database.
    pub data_dir: Option<PathBuf>,
    /// URL browsers use to reach Gatehouse.
    pub external_url: Option<String>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// How long unfinished logins are kept, e.g. `hours=2`.
    pub flow_state_age: Option<String>,
    /// How long the outpost keeps honouring cached sessions while the database is unreachable.
    pub outpost_grace: Option<String>,
    /// The outpost's safety bound: cached answers older than this are read again.
    pub outpost_recheck: Option<String>,
    /// The outpost's session cache budget in MiB.
    pub outpost_cache_mb: Option<u64>,
    /// Break-glass users for the outpost while degraded: `username:$argon2id$…` entries.
    pub outpost_break_glass: Option<Vec<String>>,
    /// Address of the /metrics listener, or `off`.
    pub metrics_listen: Option<String>,
    /// Reverse proxies (CIDRs or addresses) whose forwarding headers name the client.
    pub trusted_proxies: Option<Vec<String>>,
    /// How recently a user must have proved a factor to add or remove one, e.g. `minutes=5`.
    pub reauth_max_age: Option<String>,
    /// Whether a passkey login (always user-verified) also passes TOTP stages.
    pub passkey_counts_as_two_factors: Option<bool>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Fully resolved server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: String,
    /// Database URL.
    pub database: String,
    /// Data directory (created if missing when SQLite is used).
    pub data_dir: PathBuf,
    /// External URL without trailing slash.
    pub external_url: String,
    /// Log format.
    pub log_format: LogFormat,
    /// How long unfinished logins are kept.
    pub flow_state_age: chrono::Duration,
    /// How long the outpost keeps honouring cached sessions while the database is unreachable.
    pub outpost_grace: chrono::Duration,
    /// The embedded outpost's safety bound: changes arrive by push; a cached answer older than
    /// this is read again anyway.
    pub outpost_recheck: chrono::Duration,
    /// The embedded outpost's session cache budget in MiB.
    pub outpost_cache_mb: u64,
    /// Break-glass users (username, argon2id PHC hash), let in by the outpost only while the
    /// database is unreachable.
    pub outpost_break_glass: Vec<(String, String)>,
    /// Address of the /metrics listener; `None` when off.
    pub metrics_listen: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For`/`Forwarded` headers name the client.
    pub trusted_proxies: gatehouse_core::client_address::TrustedProxies,
    /// Where the server's secret key comes from.
    pub secret_key: SecretKeySource,
    /// How recently a user must have proved a factor (logged in or re-authenticated) to add or
    /// remove a passkey or authenticator app.
    pub reauth_max_age: chrono::Duration,
    /// Whether a passkey login, which always verifies the user (PIN or biometrics), also passes
    /// TOTP stages; off by default: a passkey is one factor.
    pub passkey_counts_as_two_factors: bool,
}

/// Where the server's secret key comes from: every replica must end up with the same key, so
/// an operator gives it (environment or file); a lone server may let it be generated.
#[derive(Clone)]
pub enum SecretKeySource {
    /// Given in `GATEHOUSE_SECRET_KEY` (already checked).
    Given(std::sync::Arc<gatehouse_sealing::SecretKey>),
    /// A file: read it, or when it does not exist yet, write a fresh key there (mode 0600).
    File(PathBuf),
}

impl std::fmt::Debug for SecretKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretKeySource::Given(key) => write!(f, "Given({})", key.id()),
            SecretKeySource::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

impl SecretKeySource {
    /// The key, generating the file on first start. Errors name the file or the variable and
    /// what to do.
    pub fn load(&self) -> anyhow::Result<std::sync::Arc<gatehouse_sealing::SecretKey>> {
        self.read(true)
    }

    /// The key, which must exist already (for `secret-key rotate`: a missing file there means
    /// the wrong data directory, not a first start).
    pub fn load_existing(&self) -> anyhow::Result<std::sync::Arc<gatehouse_sealing::SecretKey>> {
        self.read(false)
    }

    fn read(&self, generate: bool) -> anyhow::Result<std::sync::Arc<gatehouse_sealing::SecretKey>> {
        let path = match self {
            SecretKeySource::Given(key) => return Ok(key.clone()),
            SecretKeySource::File(path) => path,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !generate => {
                return Err(anyhow::anyhow!(
                    "the secret key file {} does not exist; point --data-dir or --secret-key-file at the key this database was used with, or set GATEHOUSE_SECRET_KEY",
                    path.display()
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = gatehouse_sealing::SecretKey::generate_text()?;
                write_private(path, &text).with_context(|| {
                    format!("cannot write a new secret key to {}", path.display())
                })?;
                tracing::info!(file = %path.display(), "generated the server's secret key; back it up with the database, and give every replica the same key (GATEHOUSE_SECRET_KEY)");
                text
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot read the secret key file {}: {e}; fix its permissions or point --secret-key-file elsewhere",
                    path.display()
                ))
            }
        };
        let key = gatehouse_sealing::SecretKey::from_text(&text).map_err(|e| {
            anyhow::anyhow!(
                "secret key file {}: {e}; put a key of at least 32 characters there (e.g. `openssl rand -base64 32`)",
                path.display()
            )
        })?;
        Ok(std::sync::Arc::new(key))
    }
}

/// Writes `text` to a new file only its owner can read.
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = options.open(path)?;
    writeln!(file, "{text}")?;
    file.sync_all()
}

/// Reads a settings file, naming the file, line and key of any error.
pub fn read_file(path: &Path) -> anyhow::Result<SettingsFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read settings file {}", path.display()))?;
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    if is_toml {
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text.get(..s.start).unwrap_or(&text).lines().count().max(1))
                .unwrap_or(0);
            anyhow::anyhow!("{}:{line}: {}", path.display(), e.message())
        })
    } else {
        serde_yaml::from_str(&text).map_err(|e| match e.location() {
            Some(loc) => anyhow::anyhow!("{}:{}: {e}", path.display(), loc.line()),
            None => anyhow::anyhow!("{}: {e}", path.display()),
        })
    }
}

/// Default external URL for a listen address: `localhost` for wildcard binds.
pub fn default_external_url(listen: &str) -> String {
    match listen.rsplit_once(':') {
        Some((host, port)) if host == "0.0.0.0" || host == "[::]" || host.is_empty() => {
            format!("http://localhost:{port}")
        }
        _ => format!("http://{listen}"),
    }
}

/// Resolves flags/environment (already merged by clap) over the file over defaults.
pub fn resolve(args: &ServeArgs) -> anyhow::Result<Settings> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => SettingsFile::default(),
    };
    let listen = listen_address(args.listen.clone().or(file.listen))?;
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("data"));
    let database = match args.database.clone().or(file.database) {
        Some(url) => url,
        None => format!("sqlite://{}", data_dir.join("gatehouse.db").display()),
    };
    let external_url = args
        .external_url
        .clone()
        .or(file.external_url)
        .unwrap_or_else(|| default_external_url(&listen))
        .trim_end_matches('/')
        .to_owned();
    if let Err(e) = gatehouse_core::validate::http_url(&external_url) {
        bail!("external URL: {e}");
    }
    let log_format = log_format(args.log_format.clone().or(file.log_format))?;
    let flow_state_age = duration(
        "flow state age",
        args.flow_state_age.clone().or(file.flow_state_age),
        "hours=2",
    )?;
    let outpost_grace = duration(
        "outpost grace period",
        args.outpost_grace.clone().or(file.outpost_grace),
        "minutes=5",
    )?;
    let outpost_recheck = duration(
        "outpost safety bound",
        args.outpost_recheck.clone().or(file.outpost_recheck),
        "minutes=1",
    )?;
    let reauth_max_age = duration(
        "re-authentication window",
        args.reauth_max_age.clone().or(file.reauth_max_age),
        "minutes=5",
    )?;
    let passkey_counts_as_two_factors = args
        .passkey_counts_as_two_factors
        .or(file.passkey_counts_as_two_factors)
        .unwrap_or(false);
    let outpost_cache_mb = cache_mb(args.outpost_cache_mb.or(file.outpost_cache_mb))?;
    let break_glass_entries: Vec<String> = match args.outpost_break_glass.clone() {
        Some(text) => text.split_whitespace().map(str::to_owned).collect(),
        None => file.outpost_break_glass.unwrap_or_default(),
    };
    let outpost_break_glass = break_glass(&break_glass_entries)?;
    let metrics_listen =
        metrics_address(args.metrics_listen.clone().or(file.metrics_listen), &listen)?;
    let trusted_proxies = trusted_proxies(args.trusted_proxies.clone(), file.trusted_proxies)?;
    let secret_key = match std::env::var("GATEHOUSE_SECRET_KEY") {
        Ok(text) if !text.is_empty() => {
            let key = gatehouse_sealing::SecretKey::from_text(&text).map_err(|e| {
                anyhow::anyhow!("GATEHOUSE_SECRET_KEY: {e}; give a key of at least 32 characters (e.g. `openssl rand -base64 32`)")
            })?;
            SecretKeySource::Given(std::sync::Arc::new(key))
        }
        _ => SecretKeySource::File(
            args.secret_key_file
                .clone()
                .unwrap_or_else(|| data_dir.join("secret.key")),
        ),
    };
    Ok(Settings {
        secret_key,
        listen,
        database,
        data_dir,
        external_url,
        log_format,
        flow_state_age,
        outpost_grace,
        outpost_recheck,
        outpost_cache_mb,
        outpost_break_glass,
        metrics_listen,
        trusted_proxies,
        reauth_max_age,
        passkey_counts_as_two_factors,
    })
}

/// A listen address (default `0.0.0.0:9000`), refused unless it is HOST:PORT.
fn listen_address(given: Option<String>) -> anyhow::Result<String> {
    let listen = given.unwrap_or_else(|| "0.0.0.0:9000".into());
    if listen.parse::<std::net::SocketAddr>().is_err() {
        bail!("listen address `{listen}` is not HOST:PORT, e.g. 0.0.0.0:9000 or 127.0.0.1:9000");
    }
    Ok(listen)
}

/// The trusted proxies from a flag or environment value (comma- or space-separated), else from
/// the settings file's list; errors name the setting and the entry.
fn trusted_proxies(
    given: Option<String>,
    file: Option<Vec<String>>,
) -> anyhow::Result<gatehouse_core::client_address::TrustedProxies> {
    let entries: Vec<String> = match given {
        Some(text) => text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
        None => file.unwrap_or_default(),
    };
    gatehouse_core::client_address::TrustedProxies::parse(&entries)
        .map_err(|e| anyhow::anyhow!("trusted proxies: {e}"))
}

/// `text` (the default) or `json`.
fn log_format(given: Option<String>) -> anyhow::Result<LogFormat> {
    match given.as_deref() {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => bail!("log format `{other}` is not text or json"),
    }
}

/// The session cache budget in MiB (default 256), refused outside 1..=65536.
fn cache_mb(given: Option<u64>) -> anyhow::Result<u64> {
    let mb = given.unwrap_or(256);
    if !(1..=65_536).contains(&mb) {
        bail!("outpost cache budget: {mb} MiB is out of range; give a size in MiB between 1 and 65536 (e.g. 256)");
    }
    Ok(mb)
}

/// A duration in Authentik's notation (`minutes=5`), `default` when not given; errors name
/// `what`.
fn duration(what: &str, given: Option<String>, default: &str) -> anyhow::Result<chrono::Duration> {
    let text = given.unwrap_or_else(|| default.to_owned());
    match text.parse::<gatehouse_core::Duration>() {
        Ok(d) => Ok(chrono::Duration::seconds(d.seconds())),
        Err(e) => Err(anyhow::anyhow!("{what} `{text}`: {e}")),
    }
}

/// Break-glass entries, each `username:$argon2id$…`; errors name the entry's position.
fn break_glass(entries: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            parse_break_glass(entry)
                .map_err(|e| anyhow::anyhow!("break-glass entry {}: {e}", i + 1))
        })
        .collect()
}

/// The metrics listener (default `0.0.0.0:9300`, `off` for none), never the public port.
fn metrics_address(given: Option<String>, listen: &str) -> anyhow::Result<Option<String>> {
    let address = match given.as_deref() {
        None => Some("0.0.0.0:9300".to_owned()),
        Some("off") | Some("") => None,
        Some(addr) if addr.parse::<std::net::SocketAddr>().is_ok() => Some(addr.to_owned()),
        Some(addr) => bail!("metrics listen address `{addr}` is not HOST:PORT or off"),
    };
    if address.as_deref() == Some(listen) {
        bail!("--metrics-listen must differ from --listen: metrics stay off the public port");
    }
    Ok(address)
}

/// Fully resolved settings of a standalone outpost (`gatehouse outpost`).
#[derive(Debug, Clone)]
pub struct OutpostSettings {
    /// The server's URL, without a trailing slash.
    pub server: String,
    /// The outpost's API token.
    pub token: String,
    /// Listen address.
    pub listen: String,
    /// Address of the /metrics listener; `None` when off.
    pub metrics_listen: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// How long sessions already checked keep passing while the server is unreachable.
    pub grace: chrono::Duration,
    /// The safety bound: a cached answer older than this is read again.
    pub recheck: chrono::Duration,
    /// The session cache budget in MiB.
    pub cache_mb: u64,
    /// Break-glass users (username, argon2id PHC hash), let in only while degraded.
    pub break_glass: Vec<(String, String)>,
    /// The reverse proxies in front of the outpost whose forwarding headers name the client.
    pub trusted_proxies: gatehouse_core::client_address::TrustedProxies,
}

/// Resolves a standalone outpost's flags and environment, naming what is wrong and the fix.
pub fn resolve_outpost(args: &OutpostRunArgs) -> anyhow::Result<OutpostSettings> {
    let server = args.server.trim_end_matches('/').to_owned();
    if let Err(e) = gatehouse_core::validate::http_url(&server) {
        bail!(
            "server URL `{}`: {e}; pass the server's URL with --server",
            args.server
        );
    }
    let Some(token) = args.token.clone().filter(|t| !t.trim().is_empty()) else {
        bail!("the outpost needs its token: run `gatehouse outpost token NAME` with an admin token to issue one, then pass it with --token or GATEHOUSE_TOKEN");
    };
    let listen = listen_address(args.listen.clone())?;
    let entries: Vec<String> = args
        .break_glass
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Ok(OutpostSettings {
        server,
        token,
        metrics_listen: metrics_address(args.metrics_listen.clone(), &listen)?,
        listen,
        log_format: log_format(args.log_format.clone())?,
        grace: duration("outpost grace period", args.grace.clone(), "minutes=5")?,
        recheck: duration("outpost safety bound", args.recheck.clone(), "minutes=1")?,
        cache_mb: cache_mb(args.cache_mb)?,
        break_glass: break_glass(&entries)?,
        trusted_proxies: trusted_proxies(args.trusted_proxies.clone(), None)?,
    })
}

/// One break-glass entry, `username:$argon2id$…` (make one with `gatehouse break-glass hash`).
fn parse_break_glass(entry: &str) -> Result<(String, String), String> {
    let Some((username, hash)) = entry.split_once(':') else {
        return Err(
            "expected USERNAME:HASH; make one with `gatehouse break-glass hash USERNAME`".into(),
        );
    };
    if username.is_empty() || username.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{username}` is not a username (empty or with spaces)"
        ));
    }
    gatehouse_core::secret::check_password_hash(hash).map_err(|_| {
        format!("the hash for `{username}` is not an argon2id PHC string; make one with `gatehouse break-glass hash {username}`")
    })?;
    Ok((username.to_owned(), hash.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_gives_localhost_url() {
        assert_eq!(
            default_external_url("0.0.0.0:9000"),
            "http://localhost:9000"
        );
        assert_eq!(
            default_external_url("127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
    }
}
