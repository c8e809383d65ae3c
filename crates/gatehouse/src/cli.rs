//! The command line, as clap types. Parsing only; [`crate::commands`] runs them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Gatehouse: identity provider and forward-auth gateway.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (API, login pages, embedded outpost).
    Serve(ServeArgs),
    /// Run a standalone forward-auth outpost at the edge (`--server`, `--token`), or manage
    /// outposts (`create`, `token`, `list`).
    Outpost(OutpostArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Manage applications.
    #[command(subcommand)]
    App(AppCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage invitations.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Inspect flows.
    #[command(subcommand)]
    Flow(FlowCommand),
    /// Manage the OIDC signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Break-glass access for outages of the database.
    #[command(subcommand)]
    BreakGlass(BreakGlassCommand),
    /// The server's secret key, which seals the secrets stored in the database.
    #[command(subcommand)]
    SecretKey(SecretKeyCommand),
    /// Show what applying a declarative config file would change.
    Plan(DeclarativeArgs),
    /// Apply a declarative config file in one transaction.
    Apply(DeclarativeArgs),
    /// Carry another identity provider's configuration over: writes a declarative file, an
    /// environment file with its secrets (mode 0600) and a report.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Server configuration file commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Apply database migrations (or check that none are pending).
    Migrate(MigrateArgs),
    /// Check a deployment after an upgrade: outpost endpoints and selector, outpost modes and
    /// session store, session expiry, the edge's redirect, plan-to-zero. Exits 1 on a failure.
    Doctor(DoctorArgs),
    /// Exit 0 when a health URL answers 2xx: the container image's HEALTHCHECK (the image has
    /// no curl).
    Health {
        /// The URL to ask.
        #[arg(long, default_value = "http://127.0.0.1:9000/-/health/live/")]
        url: String,
    },
    /// Kubernetes: generate the forward-auth ingress wiring, lint existing manifests.
    #[command(subcommand)]
    K8s(K8sCommand),
}

/// Arguments of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// How to reach the server (its embedded outpost is checked too).
    #[command(flatten)]
    pub client: ClientArgs,
    /// Namespace of the outpost Service.
    #[arg(long, default_value = "gatehouse")]
    pub namespace: String,
    /// Name of the outpost Service.
    #[arg(long, default_value = "gatehouse-outpost")]
    pub outpost_service: String,
    /// Skip the Kubernetes checks (Gatehouse on VMs or Docker).
    #[arg(long)]
    pub no_kubernetes: bool,
    /// A standalone outpost's URL whose mode and session store to check (repeatable).
    #[arg(long = "outpost")]
    pub outposts: Vec<String>,
    /// A protected app URL: an anonymous request must get 302 to the login, not 401.
    #[arg(long)]
    pub app_url: Option<String>,
    /// Sessions must expire this long after they start (the login stage's duration).
    #[arg(long, default_value = "weeks=4")]
    pub session_validity: String,
    /// The declarative config file that must plan to zero.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
}

/// `gatehouse k8s …`
#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// Print the forward-auth objects for one app (no snippets): ExternalName alias of the
    /// outpost, outpost-path Ingress on the app host, auth annotations and headers ConfigMap
    /// (nginx-ingress), or Middleware and IngressRoute (Traefik).
    Ingress(IngressArgs),
    /// Flag the forward-auth traps in manifest files (YAML, several documents each), with
    /// the fix. Exits 1 when any is found.
    Lint {
        /// Manifest files (`-` for standard input).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `k8s ingress`.
#[derive(Debug, Args)]
pub struct IngressArgs {
    /// The app's host, e.g. app.example.com.
    #[arg(long)]
    pub host: String,
    /// The app's namespace (every object goes there).
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// nginx (ingress-nginx) or traefik.
    #[arg(long, default_value = "nginx")]
    pub controller: String,
    /// The app's Service in that namespace.
    #[arg(
        long,
        conflicts_with = "backend_ip",
        required_unless_present = "backend_ip"
    )]
    pub service: Option<String>,
    /// The app's address outside the cluster (makes a headless Service + Endpoints).
    #[arg(long)]
    pub backend_ip: Option<std::net::IpAddr>,
    /// The app's port.
    #[arg(long)]
    pub port: u16,
    /// The outpost Service's DNS name.
    #[arg(long, default_value = "gatehouse-outpost.gatehouse.svc.cluster.local")]
    pub outpost: String,
    /// The outpost's port.
    #[arg(long, default_value_t = 9000)]
    pub outpost_port: u16,
    /// The TLS secret in the app's namespace [default: <first host label>-tls].
    #[arg(long)]
    pub tls_secret: Option<String>,
    /// The IngressClass (nginx only).
    #[arg(long, default_value = "nginx")]
    pub class: String,
}

/// Where the server keeps its data and how it is reached.
#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// Settings file (TOML or YAML); flags and environment variables override it.
    #[arg(long, env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on [default: 0.0.0.0:9000].
    #[arg(long, env = "GATEHOUSE_LISTEN")]
    pub listen: Option<String>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data dir].
    #[arg(long, env = "GATEHOUSE_DATABASE_URL")]
    pub database: Option<String>,
    /// Directory for the SQLite database and generated keys [default: ./data].
    #[arg(long, env = "GATEHOUSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// URL browsers use to reach Gatehouse [default: derived from --listen].
    #[arg(long, env = "GATEHOUSE_EXTERNAL_URL")]
    pub external_url: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "GATEHOUSE_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Address for the Prometheus /metrics listener, or `off` [default: 0.0.0.0:9300].
    #[arg(long, env = "GATEHOUSE_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Reverse proxies (CIDRs or addresses, comma- or space-separated) whose X-Forwarded-For /
    /// Forwarded headers name the client; from anyone else they are ignored [default: none].
    #[arg(long, env = "GATEHOUSE_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// How long unfinished logins (anonymous visitors, bots) are kept [default: hours=2].
    #[arg(long, env = "GATEHOUSE_FLOW_STATE_AGE")]
    pub flow_state_age: Option<String>,
    /// While the database is unreachable, how long the outpost keeps letting in sessions it
    /// has already checked; new logins wait for the database [default: minutes=5].
    #[arg(long, env = "GATEHOUSE_OUTPOST_GRACE")]
    pub outpost_grace: Option<String>,
    /// The outpost's safety bound: changes arrive by push, but a cached answer older than this
    /// is read again anyway [default: minutes=1].
    #[arg(long, env = "GATEHOUSE_OUTPOST_RECHECK")]
    pub outpost_recheck: Option<String>,
    /// Memory budget of the outpost's session cache in MiB; the least recently used sessions
    /// go first and are read again when next used [default: 256].
    #[arg(long, env = "GATEHOUSE_OUTPOST_CACHE_MB")]
    pub outpost_cache_mb: Option<u64>,
    /// Break-glass users the outpost lets in only while the database is unreachable:
    /// whitespace-separated `username:$argon2id$…` entries (see `gatehouse break-glass hash`).
    #[arg(long, env = "GATEHOUSE_OUTPOST_BREAK_GLASS")]
    pub outpost_break_glass: Option<String>,
    /// File holding the server's secret key (at least 32 characters); every replica needs the
    /// same key. GATEHOUSE_SECRET_KEY gives the key itself [default: <data-dir>/secret.key,
    /// generated on first start].
    #[arg(long, env = "GATEHOUSE_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// How recently a user must have logged in or confirmed a factor to add or remove a passkey
    /// or authenticator app on their page [default: minutes=5].
    #[arg(long, env = "GATEHOUSE_REAUTH_MAX_AGE")]
    pub reauth_max_age: Option<String>,
    /// Let a passkey login (always user-verified) pass TOTP stages too, counting the passkey as
    /// two factors [default: false: a passkey is one factor].
    #[arg(long, env = "GATEHOUSE_PASSKEY_COUNTS_AS_TWO_FACTORS")]
    pub passkey_counts_as_two_factors: Option<bool>,
}

/// How to reach a running server.
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// Server URL.
    #[arg(
        long,
        env = "GATEHOUSE_URL",
        default_value = "http://127.0.0.1:9000",
        global = true
    )]
    pub url: String,
    /// API token.
    #[arg(long, env = "GATEHOUSE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of human-readable output.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `gatehouse user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users.
    List {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Only users whose username, name or email contains this.
        #[arg(long)]
        search: Option<String>,
    },
    /// Show one user.
    Show {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Username.
        username: String,
    },
    /// Create a user.
    Create {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Username.
        username: String,
        /// Display name [default: the username].
        #[arg(long)]
        name: Option<String>,
        /// Email address.
        #[arg(long)]
        email: Option<String>,
        /// internal, external or service_account.
        #[arg(long = "type", default_value = "internal")]
        user_type: String,
        /// Group to add the user to (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Set a user's password, read from standard input.
    SetPassword {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Username.
        username: String,
    },
    /// Deactivate (or re-activate) a user.
    Deactivate {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Username.
        username: String,
        /// Re-activate instead.
        #[arg(long)]
        undo: bool,
    },
    /// Delete a user.
    Delete {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Username.
        username: String,
    },
}

/// `gatehouse group …`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List groups.
    List {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create a group.
    Create {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Group name.
        name: String,
        /// Parent group (repeatable).
        #[arg(long = "parent")]
        parents: Vec<String>,
        /// Members are superusers.
        #[arg(long)]
        superuser: bool,
    },
    /// Delete a group.
    Delete {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Group name.
        name: String,
    },
    /// Add a user to a group.
    AddUser {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Username.
        user: String,
        /// Group name.
        group: String,
    },
    /// Remove a user from a group.
    RemoveUser {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Username.
        user: String,
        /// Group name.
        group: String,
    },
}

/// `gatehouse app …`
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// List applications.
    List {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create an application (providers are easiest to set up with `apply`).
    Create {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Slug.
        slug: String,
        /// Display name [default: the slug].
        #[arg(long)]
        name: Option<String>,
        /// Launch URL.
        #[arg(long)]
        launch_url: Option<String>,
    },
    /// Delete an application.
    Delete {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Slug.
        slug: String,
    },
}

/// `gatehouse token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// List tokens.
    List {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create an API token (or an app password); prints its key once.
    Create {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Unique identifier.
        identifier: String,
        /// `api` for the REST API, `app_password` for `Authorization: Basic` at the outpost.
        #[arg(long, default_value = "api")]
        intent: String,
        /// Owner [default: the caller].
        #[arg(long)]
        user: Option<String>,
        /// Days until it expires; without it the token does not expire.
        #[arg(long)]
        days: Option<u32>,
        /// Note.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Revoke a token.
    Revoke {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Identifier.
        identifier: String,
    },
}

/// `gatehouse invite …`
#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Create an invitation into a group; prints the link.
    Create {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Group the invited user joins.
        group: String,
        /// Days until the link expires; without it, it does not expire.
        #[arg(long)]
        days: Option<u32>,
        /// Enrollment flow slug [default: none, so any enrollment flow with an invitation stage accepts it].
        #[arg(long)]
        flow: Option<String>,
        /// Allow several people to use the link.
        #[arg(long)]
        multi_use: bool,
        /// Name [default: derived from the group and date].
        #[arg(long)]
        name: Option<String>,
    },
    /// List invitations: pending, used (by whom, when), expired and revoked.
    List {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke an invitation by name or UUID.
    Revoke {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Name or UUID.
        invitation: String,
    },
}

/// `gatehouse flow …`
#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Show what each binding of a flow decides, and why, without running it.
    Explain {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Flow slug.
        slug: String,
        /// Evaluate for this user [default: an anonymous visitor].
        #[arg(long)]
        user: Option<String>,
        /// Evaluate for a visitor from this address.
        #[arg(long, default_value = "127.0.0.1")]
        ip: String,
    },
}

/// `gatehouse outpost`: run one, or manage them.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct OutpostArgs {
    /// Manage outposts instead of running one.
    #[command(subcommand)]
    pub command: Option<OutpostCommand>,
    /// How to run the outpost.
    #[command(flatten)]
    pub run: OutpostRunArgs,
}

/// How a standalone outpost reaches its server and serves the edge.
#[derive(Debug, Args, Clone, Default)]
pub struct OutpostRunArgs {
    /// The server's URL.
    #[arg(
        long,
        visible_alias = "url",
        env = "GATEHOUSE_URL",
        default_value = "http://127.0.0.1:9000"
    )]
    pub server: String,
    /// The outpost's API token (`gatehouse outpost token NAME` issues one).
    #[arg(long, env = "GATEHOUSE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Address and port to listen on [default: 0.0.0.0:9000].
    #[arg(long, env = "GATEHOUSE_LISTEN")]
    pub listen: Option<String>,
    /// Address for the Prometheus /metrics listener, or `off` [default: 0.0.0.0:9300].
    #[arg(long, env = "GATEHOUSE_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// While the server is unreachable, how long sessions already checked keep passing
    /// [default: minutes=5].
    #[arg(long, env = "GATEHOUSE_OUTPOST_GRACE")]
    pub grace: Option<String>,
    /// The safety bound: changes arrive by push, but a cached answer older than this is read
    /// again anyway [default: minutes=1].
    #[arg(long, env = "GATEHOUSE_OUTPOST_RECHECK")]
    pub recheck: Option<String>,
    /// Memory budget of the session cache in MiB [default: 256].
    #[arg(long, env = "GATEHOUSE_OUTPOST_CACHE_MB")]
    pub cache_mb: Option<u64>,
    /// Break-glass users let in only while the server is unreachable: whitespace-separated
    /// `username:$argon2id$…` entries (see `gatehouse break-glass hash`).
    #[arg(long, env = "GATEHOUSE_OUTPOST_BREAK_GLASS")]
    pub break_glass: Option<String>,
    /// Reverse proxies in front of the outpost (CIDRs or addresses, comma-separated) whose
    /// X-Forwarded-For/Forwarded name the client, for break-glass throttling and the client
    /// address sent to the server [default: none, the TCP peer is the client].
    #[arg(long, env = "GATEHOUSE_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "GATEHOUSE_LOG_FORMAT")]
    pub log_format: Option<String>,
}

/// `gatehouse outpost …` management commands.
#[derive(Debug, Subcommand)]
pub enum OutpostCommand {
    /// List outposts and the providers they serve.
    List {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create a standalone outpost serving the named proxy providers.
    Create {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// Unique name.
        name: String,
        /// A proxy provider it serves, by name (repeat for several).
        #[arg(long = "provider")]
        providers: Vec<String>,
    },
    /// Issue the outpost's token (replacing an earlier one); prints it once.
    Token {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// The outpost's name.
        name: String,
    },
}

/// `gatehouse break-glass …`
#[derive(Debug, Subcommand)]
pub enum BreakGlassCommand {
    /// Reads a password from standard input and prints the `username:hash` entry for
    /// `--outpost-break-glass` (or `outpost_break_glass` in the settings file).
    Hash {
        /// The username the outpost will pass on (X-authentik-username).
        username: String,
    },
}

/// `gatehouse key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the signing keys: which sign now, which are retired and until when they are published.
    List {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Retire the active key of an algorithm and make its successor. The old key stays in the
    /// JWKS until every token it signed has expired, so relying parties notice nothing.
    Rotate {
        /// How to reach the server.
        #[command(flatten)]
        client: ClientArgs,
        /// RS256 or ES256.
        #[arg(long, default_value = "RS256")]
        algorithm: String,
    },
}

/// Arguments of `plan` and `apply`.
#[derive(Debug, Args)]
pub struct DeclarativeArgs {
    /// How to reach the server.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The config file (YAML or JSON).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Delete objects of the kinds in the file that the file does not mention.
    #[arg(long)]
    pub prune: bool,
}

/// `gatehouse import …`
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Read a running Authentik through its API (a superuser's API token). Apply the result
    /// with `set -a; . ./<out>.env; set +a; gatehouse apply -f <out>`.
    Authentik(ImportAuthentikArgs),
}

/// Arguments of `import authentik`.
#[derive(Debug, Args)]
pub struct ImportAuthentikArgs {
    /// Authentik's URL, e.g. https://auth.example.com.
    #[arg(long)]
    pub url: String,
    /// An API token of an Authentik superuser.
    #[arg(long, env = "AUTHENTIK_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Authentik's PostgreSQL (postgres://USER:PASSWORD@HOST/DB), read only, to also carry what
    /// the API never gives: password hashes, TOTP devices and the providers' signing keys.
    #[arg(long, env = "AUTHENTIK_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// Where to write the declarative file; the environment file goes beside it (`<out>.env`).
    #[arg(long, default_value = "authentik-import.yaml")]
    pub out: PathBuf,
    /// Also show what applying the file to the Gatehouse at --gatehouse-url would change
    /// (nothing is applied).
    #[arg(long)]
    pub dry_run: bool,
    /// The Gatehouse to plan against with --dry-run.
    #[arg(long, env = "GATEHOUSE_URL", default_value = "http://127.0.0.1:9000")]
    pub gatehouse_url: String,
    /// Its API token.
    #[arg(long, env = "GATEHOUSE_TOKEN", hide_env_values = true)]
    pub gatehouse_token: Option<String>,
}

/// `gatehouse config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a server settings file without starting the server.
    Validate {
        /// The file (TOML or YAML) [default: $GATEHOUSE_CONFIG].
        #[arg(env = "GATEHOUSE_CONFIG")]
        file: PathBuf,
    },
}

/// `gatehouse secret-key …`.
#[derive(Debug, Subcommand)]
pub enum SecretKeyCommand {
    /// Re-seal every stored secret with a new key, offline: stop every server first. Reads the
    /// current key as `serve` does (GATEHOUSE_SECRET_KEY or the key file). The new key comes
    /// from GATEHOUSE_NEW_SECRET_KEY or --new-key-file (a missing file is created with a fresh
    /// key); with neither, and a key file in use, a fresh key replaces the file and the old one
    /// is kept beside it as `<file>.old`. All in one transaction: a failure changes nothing.
    Rotate(RotateArgs),
}

/// Arguments of `secret-key rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Which database and current key.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// File holding the new key; created with a fresh key when missing.
    #[arg(long)]
    pub new_key_file: Option<PathBuf>,
}

/// Arguments of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Which database.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Only report pending migrations; exit 1 if there are any.
    #[arg(long)]
    pub check: bool,
}
