//! Test support: a fresh database per test (SQLite file, or a new database on the PostgreSQL
//! server the test script started) and the real server booted in-process on `127.0.0.1:0`.
//!
//! Which database: `GATEHOUSE_TEST_DATABASE=sqlite` (default) or `postgres`, the latter with
//! `GATEHOUSE_TEST_DATABASE_URL` naming the server. A missing PostgreSQL URL fails the test
//! instead of skipping it, so a CI run can never pass by testing less.
//!
//! [`upstream`] holds stand-ins for the login services (Google, GitHub, Facebook) that the login
//! sources talk to.

pub mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use gatehouse::config::{LogFormat, OutpostSettings, Settings};
use gatehouse_web::bootstrap::BootstrapSettings;
use serde_json::Value;
use sqlx::Executor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The API token every test server is bootstrapped with.
pub const TOKEN: &str = "test-bootstrap-token-0123456789abcdef";

/// A database that exists for one test.
pub struct TestDb {
    /// Connection URL.
    pub url: String,
    /// Temporary directory (SQLite file, data dir), removed on drop.
    pub dir: tempfile::TempDir,
    drop_postgres: Option<(String, String)>,
}

impl TestDb {
    /// The secret key file servers on this database use (made by the first start).
    pub fn key_file(&self) -> std::path::PathBuf {
        self.dir.path().join("secret.key")
    }

    /// The store, opened directly with the servers' secret key (start a server first): for
    /// tests that look at or change rows behind the server's back.
    pub async fn store(&self) -> anyhow::Result<gatehouse_store::Store> {
        let text = std::fs::read_to_string(self.key_file())
            .context("reading the servers' secret key (start a server first)")?;
        let key = gatehouse_store::SecretKey::from_text(&text)?;
        Ok(gatehouse_store::Store::connect(&self.url, std::sync::Arc::new(key)).await?)
    }

    /// A fresh, empty database of the kind the environment selects.
    pub async fn new() -> anyhow::Result<TestDb> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        match std::env::var("GATEHOUSE_TEST_DATABASE")
            .unwrap_or_else(|_| "sqlite".into())
            .as_str()
        {
            "sqlite" => Ok(TestDb {
                url: format!("sqlite://{}", dir.path().join("gatehouse.db").display()),
                dir,
                drop_postgres: None,
            }),
            "postgres" => {
                let admin_url = std::env::var("GATEHOUSE_TEST_DATABASE_URL")
                    .context("GATEHOUSE_TEST_DATABASE=postgres needs GATEHOUSE_TEST_DATABASE_URL (scripts/test sets both)")?;
                let name = format!("gh_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
                    .await
                    .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
                conn.execute(format!("CREATE DATABASE {name}").as_str())
                    .await?;
                let (base, _) = admin_url
                    .rsplit_once('/')
                    .context("PostgreSQL URL without database name")?;
                Ok(TestDb {
                    url: format!("{base}/{name}"),
                    dir,
                    drop_postgres: Some((admin_url, name)),
                })
            }
            other => bail!("GATEHOUSE_TEST_DATABASE must be sqlite or postgres, not {other}"),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        if self.drop_postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }
}

/// A TCP link on loopback to `target` that a test can cut, as a network failure would: open
/// connections drop and new ones are refused; or overload, as an overwhelmed HTTP server
/// would: new connections get `503 Service Unavailable`.
pub struct Cuttable {
    /// Where to connect instead of the target.
    pub addr: std::net::SocketAddr,
    accept: JoinHandle<()>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    overloaded: Arc<std::sync::atomic::AtomicBool>,
}

impl Cuttable {
    /// Starts forwarding a loopback port to `target`.
    pub async fn start(target: std::net::SocketAddr) -> anyhow::Result<Cuttable> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let links: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let kept = links.clone();
        let overloaded: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let busy = overloaded.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let busy = busy.load(std::sync::atomic::Ordering::Acquire);
                let link = tokio::spawn(async move {
                    if busy {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 16 * 1024];
                        let _ = inbound.read(&mut buf).await;
                        let _ = inbound
                            .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut all) = kept.lock() {
                    all.push(link.abort_handle());
                }
            }
        });
        Ok(Cuttable {
            addr,
            accept,
            links,
            overloaded,
        })
    }

    /// Overloads the target: open connections drop, and every new one is answered `503`.
    pub fn overload(&self) {
        self.overloaded
            .store(true, std::sync::atomic::Ordering::Release);
        self.drop_connections();
    }

    /// Cuts the link: open connections drop, new ones are refused.
    pub fn cut(&self) {
        self.accept.abort();
        self.drop_connections();
    }

    /// Drops every open connection but keeps accepting new ones, as a restarted database
    /// would: clients see their connections (a `LISTEN` among them) end, and must reconnect.
    pub fn drop_connections(&self) {
        if let Ok(mut all) = self.links.lock() {
            for link in all.drain(..) {
                link.abort();
            }
        }
    }
}

impl Drop for Cuttable {
    fn drop(&mut self) {
        self.cut();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.drop_postgres.take() {
            // Drop runs outside async code: use a short-lived runtime on its own thread.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(mut conn) =
                        <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await
                    {
                        let _ = conn
                            .execute(
                                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                            )
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A running server on a loopback port.
pub struct TestServer {
    /// Base URL for HTTP clients, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The same server as browsers reach it: `http://localhost:41234` (WebAuthn refuses IP
    /// addresses as relying-party ids). Also the server's external URL.
    pub external_url: String,
    /// The metrics listener, e.g. `http://127.0.0.1:41235/metrics`.
    pub metrics_url: String,
    /// HTTP client.
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts the server on `db` with the bootstrap token [`TOKEN`].
    pub async fn start(db: &TestDb) -> anyhow::Result<TestServer> {
        Self::start_with(
            db,
            BootstrapSettings {
                token: Some(TOKEN.into()),
                ..Default::default()
            },
        )
        .await
    }

    /// Starts the server on `db` with explicit bootstrap settings.
    pub async fn start_with(
        db: &TestDb,
        bootstrap: BootstrapSettings,
    ) -> anyhow::Result<TestServer> {
        Self::start_on(db, &db.url, bootstrap, |_| {}).await
    }

    /// Starts the server on `db` reached through `database_url` (e.g. via a [`Cuttable`] link),
    /// with `configure` adjusting its settings.
    pub async fn start_on(
        db: &TestDb,
        database_url: &str,
        bootstrap: BootstrapSettings,
        configure: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<TestServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start_listening(db, database_url, bootstrap, configure, listener).await
    }

    /// Starts the server on `db` again on a port an earlier one used (a restart, as clients
    /// that know the server's URL see it).
    pub async fn restart_at(db: &TestDb, port: u16) -> anyhow::Result<TestServer> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let bootstrap = BootstrapSettings {
            token: Some(TOKEN.into()),
            ..Default::default()
        };
        Self::start_listening(db, &db.url, bootstrap, |_| {}, listener).await
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_default()
    }

    async fn start_listening(
        db: &TestDb,
        database_url: &str,
        bootstrap: BootstrapSettings,
        configure: impl FnOnce(&mut Settings),
        listener: TcpListener,
    ) -> anyhow::Result<TestServer> {
        // Server logs go to the test's captured output: shown only when the test fails.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,sqlx=warn"))
            .try_init();
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let external_url = format!("http://localhost:{}", addr.port());
        let mut settings = Settings {
            listen: addr.to_string(),
            database: database_url.to_owned(),
            data_dir: db.dir.path().to_path_buf(),
            external_url: external_url.clone(),
            log_format: LogFormat::Text,
            flow_state_age: chrono::Duration::hours(2),
            outpost_grace: chrono::Duration::minutes(5),
            outpost_recheck: chrono::Duration::minutes(1),
            outpost_cache_mb: 256,
            outpost_break_glass: Vec::new(),
            metrics_listen: None,
            trusted_proxies: Default::default(),
            secret_key: gatehouse::config::SecretKeySource::File(db.key_file()),
            reauth_max_age: chrono::Duration::minutes(5),
            passkey_counts_as_two_factors: false,
        };
        configure(&mut settings);
        let metrics = TcpListener::bind("127.0.0.1:0").await?;
        let metrics_url = format!("http://{}/metrics", metrics.local_addr()?);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gatehouse::serve::run(
            settings,
            bootstrap,
            listener,
            Some(metrics),
            async move {
                let _ = rx.await;
            },
        ));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let server = TestServer {
            url,
            external_url,
            metrics_url,
            http,
            shutdown: Some(tx),
            task: Some(task),
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        for _ in 0..400 {
            if let Ok(r) = self
                .http
                .get(format!("{}/-/health/ready/", self.url))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("server at {} did not become ready within 10 s", self.url)
    }

    /// Stops the server and waits until it has finished.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_inner().await
    }

    async fn stop_inner(&mut self) -> anyhow::Result<()> {
        stop_task(&mut self.shutdown, &mut self.task, "server").await
    }

    /// A request to `/api/v3{path}` with the bootstrap token.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v3{path}", self.url))
            .bearer_auth(TOKEN)
    }

    /// GET `/api/v3{path}` → (status, JSON).
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        send(self.api(reqwest::Method::GET, path)).await
    }

    /// POST JSON to `/api/v3{path}` → (status, JSON).
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        send(self.api(reqwest::Method::POST, path).json(&body)).await
    }

    /// PATCH JSON to `/api/v3{path}` → (status, JSON).
    pub async fn patch(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        send(self.api(reqwest::Method::PATCH, path).json(&body)).await
    }

    /// DELETE `/api/v3{path}` → (status, JSON or null).
    pub async fn delete(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        send(self.api(reqwest::Method::DELETE, path)).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A standalone outpost (`gatehouse outpost`) in-process on a loopback port, a client of a
/// [`TestServer`] with an outpost token.
pub struct TestOutpost {
    /// Base URL, e.g. `http://127.0.0.1:41236`.
    pub url: String,
    /// Its port.
    pub port: u16,
    /// Its metrics listener, e.g. `http://127.0.0.1:41237/metrics`.
    pub metrics_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestOutpost {
    /// Starts an outpost of the server at `server_url` with `token`, `configure` adjusting its
    /// settings; waits until it has its provider table.
    pub async fn start(
        server_url: &str,
        token: &str,
        configure: impl FnOnce(&mut OutpostSettings),
    ) -> anyhow::Result<TestOutpost> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let metrics = TcpListener::bind("127.0.0.1:0").await?;
        let metrics_url = format!("http://{}/metrics", metrics.local_addr()?);
        let mut settings = OutpostSettings {
            server: server_url.to_owned(),
            token: token.to_owned(),
            listen: format!("127.0.0.1:{port}"),
            metrics_listen: None,
            log_format: LogFormat::Text,
            grace: chrono::Duration::minutes(5),
            recheck: chrono::Duration::minutes(1),
            cache_mb: 256,
            break_glass: Vec::new(),
            trusted_proxies: Default::default(),
        };
        configure(&mut settings);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gatehouse::outpost::run(
            settings,
            listener,
            Some(metrics),
            async move {
                let _ = rx.await;
            },
        ));
        let outpost = TestOutpost {
            url: format!("http://127.0.0.1:{port}"),
            port,
            metrics_url,
            shutdown: Some(tx),
            task: Some(task),
        };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http
                .get(format!("{}/-/health/ready/", outpost.url))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Ok(outpost);
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!(
            "outpost at {} did not become ready within 10 s",
            outpost.url
        )
    }

    /// Stops the outpost and waits until it has finished.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        stop_task(&mut self.shutdown, &mut self.task, "outpost").await
    }
}

impl Drop for TestOutpost {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Signals a process started in-process to shut down and waits (10 s at most) until it has.
async fn stop_task(
    shutdown: &mut Option<oneshot::Sender<()>>,
    task: &mut Option<JoinHandle<anyhow::Result<()>>>,
    what: &str,
) -> anyhow::Result<()> {
    if let Some(tx) = shutdown.take() {
        let _ = tx.send(());
    }
    if let Some(task) = task.take() {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .with_context(|| format!("{what} did not stop within 10 s"))???;
    }
    Ok(())
}

/// Sends a request and returns its status and JSON body (`Null` when empty or not JSON).
pub async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Runs `body` with a started server on a fresh database; the database lives until `body` is
/// done, and the server stops when `body` stops it or drops it.
pub async fn with_server<F, Fut>(body: F) -> anyhow::Result<()>
where
    F: FnOnce(TestServer) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let result = body(server).await;
    drop(db);
    result
}

/// A headless Chromium driven through chromedriver (WebDriver), each with its own profile, so
/// two browsers have separate cookie jars. Both processes end when the browser is closed or
/// dropped.
pub struct Browser {
    /// The WebDriver client.
    pub client: fantoccini::Client,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Browser {
    /// Starts chromedriver and a fresh headless Chromium. Fails (never skips) when either is
    /// missing: `scripts/test` installs them.
    pub async fn start() -> anyhow::Result<Browser> {
        let port = free_port()?;
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context(
                "starting chromedriver (Debian package chromium-driver; scripts/test installs it)",
            )?;
        let mut ready = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !ready {
            bail!("chromedriver did not listen on port {port} within 5 s");
        }
        let profile = tempfile::tempdir()?;
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1200,900",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            bail!("capabilities must be an object")
        };
        let mut builder = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        );
        builder.capabilities(caps);
        let client = builder
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("starting headless Chromium through chromedriver (Debian package chromium)")?;
        Ok(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    /// Saves a screenshot as `target/test-screenshots/<database>-<name>.png` for a person to
    /// look at.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<()> {
        let png = self.client.screenshot().await?;
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-screenshots");
        std::fs::create_dir_all(&dir)?;
        let backend = std::env::var("GATEHOUSE_TEST_DATABASE").unwrap_or_else(|_| "sqlite".into());
        std::fs::write(dir.join(format!("{backend}-{name}.png")), png)?;
        Ok(())
    }

    /// The element `locator` finds, waiting up to 10 s for it to appear.
    pub async fn element(
        &self,
        locator: fantoccini::Locator<'_>,
    ) -> anyhow::Result<fantoccini::elements::Element> {
        Ok(self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(locator)
            .await?)
    }

    /// Replaces the values of inputs by id.
    pub async fn fill(&self, fields: &[(&str, &str)]) -> anyhow::Result<()> {
        for (id, value) in fields {
            let input = self.element(fantoccini::Locator::Id(id)).await?;
            input.clear().await?;
            input.send_keys(value).await?;
        }
        Ok(())
    }

    /// Clicks the page's `#submit` button and waits until the next page has replaced it.
    pub async fn submit(&self) -> anyhow::Result<()> {
        let button = self.element(fantoccini::Locator::Id("submit")).await?;
        button.click().await?;
        for _ in 0..200 {
            if button.is_displayed().await.is_err() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "the page did not change after submitting, at {}",
            self.client.current_url().await?
        )
    }

    /// On an identification page: types the username, then the password, submitting each.
    pub async fn log_in(&self, username: &str, password: &str) -> anyhow::Result<()> {
        self.fill(&[("uid_field", username)]).await?;
        self.submit().await?;
        self.fill(&[("password", password)]).await?;
        self.submit().await
    }

    /// Adds a virtual passkey authenticator (CTAP2, resident keys, user verification) to the
    /// current tab through the W3C WebAuthn WebDriver extension; returns its id.
    pub async fn add_virtual_authenticator(&self) -> anyhow::Result<String> {
        let answer = self
            .client
            .issue_cmd(WebAuthnCommand::AddAuthenticator(serde_json::json!({
                "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
                "hasUserVerification": true, "isUserVerified": true, "isUserConsenting": true,
            })))
            .await?;
        answer
            .as_str()
            .map(str::to_owned)
            .context("chromedriver returned no authenticator id")
    }

    /// The credentials stored in a virtual authenticator.
    pub async fn virtual_credentials(&self, authenticator: &str) -> anyhow::Result<Value> {
        Ok(self
            .client
            .issue_cmd(WebAuthnCommand::Credentials(authenticator.to_owned()))
            .await?)
    }

    /// Ends the browser session and chromedriver.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        Ok(())
    }
}

pub use fantoccini;
pub use gatehouse::client::url_encode;
pub use url;

/// The W3C WebAuthn WebDriver extension commands the tests need.
#[derive(Debug)]
enum WebAuthnCommand {
    AddAuthenticator(Value),
    Credentials(String),
}

impl fantoccini::wd::WebDriverCompatibleCommand for WebAuthnCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let base = base_url.join(&format!(
            "session/{}/webauthn/",
            session_id.unwrap_or_default()
        ))?;
        match self {
            WebAuthnCommand::AddAuthenticator(_) => base.join("authenticator"),
            WebAuthnCommand::Credentials(id) => {
                base.join(&format!("authenticator/{id}/credentials"))
            }
        }
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        match self {
            WebAuthnCommand::AddAuthenticator(options) => {
                (http::Method::POST, Some(options.to_string()))
            }
            WebAuthnCommand::Credentials(_) => (http::Method::GET, None),
        }
    }
}

/// A real nginx on a loopback port, configured by the test, stopped when dropped.
pub struct Nginx {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    child: tokio::process::Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with `server` (the body of an `http {}` block's `server {}`), where
    /// `{port}` is replaced by the port it listens on. Fails (never skips) without nginx.
    pub async fn start(server: &str) -> anyhow::Result<Nginx> {
        Nginx::start_with_http("", server).await
    }

    /// Like [`Nginx::start`], with `http` added to the `http {}` block (e.g. an `upstream`).
    pub async fn start_with_http(http: &str, server: &str) -> anyhow::Result<Nginx> {
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let d = dir.path().display();
        let config = format!(
            "user root;\nworker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{ worker_connections 128; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n {http}\n server {{\n listen 127.0.0.1:{port};\n{}\n }}\n}}\n",
            server.replace("{port}", &port.to_string())
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config)?;
        let child = tokio::process::Command::new("nginx")
            .args([
                "-p",
                &d.to_string(),
                "-c",
                &path.display().to_string(),
                "-g",
                "daemon off;",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting nginx (Debian package nginx; scripts/test installs it)")?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Nginx { port, child, dir });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
        bail!("nginx did not listen on {port} within 5 s: {log}")
    }

    /// nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Stops nginx. The master is asked to stop (`nginx -s stop`) rather than killed: a killed
    /// master leaves its worker processes running.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.signal_stop();
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            bail!("nginx did not stop within 5 s: {}", self.error_log());
        }
        Ok(())
    }

    fn signal_stop(&self) {
        let _ = std::process::Command::new("nginx")
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(self.dir.path().join("nginx.conf"))
            .args(["-s", "stop"])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl Drop for Nginx {
    /// A test that fails before `stop` still stops nginx, workers included.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal_stop();
        }
    }
}

/// A stand-in application on a loopback port that answers every request with the identity
/// headers it received, one `name: value` line each.
pub struct EchoApp {
    /// Its port.
    pub port: u16,
    task: JoinHandle<()>,
}

impl EchoApp {
    /// Starts the echo application.
    pub async fn start() -> anyhow::Result<EchoApp> {
        Self::start_echoing(&["x-authentik-"]).await
    }

    /// Starts an echo application that answers with the headers whose lowercase names start
    /// with one of `prefixes` (e.g. `cookie:` to see what reached the application).
    pub async fn start_echoing(prefixes: &'static [&'static str]) -> anyhow::Result<EchoApp> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 16 * 1024];
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    let request = String::from_utf8_lossy(&buf[..n]);
                    let lines: Vec<&str> = request
                        .lines()
                        .filter(|l| {
                            let l = l.to_ascii_lowercase();
                            prefixes.iter().any(|p| l.starts_with(p))
                        })
                        .collect();
                    let body = format!(
                        "<!doctype html><title>app</title><pre id=headers>{}</pre>",
                        lines.join("\n")
                    );
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Ok(EchoApp { port, task })
    }
}

impl Drop for EchoApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A real Caddy on a loopback port, configured by the test, stopped when dropped.
pub struct Caddy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Caddy {
    /// Starts Caddy with a Caddyfile; `{port}` in it is replaced by the port to listen on.
    /// Fails (never skips) without Caddy.
    pub async fn start(caddyfile: &str) -> anyhow::Result<Caddy> {
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("Caddyfile");
        let config = format!(
            "{{\n admin off\n auto_https off\n}}\n{}",
            caddyfile.replace("{port}", &port.to_string())
        );
        std::fs::write(&path, config)?;
        let child = tokio::process::Command::new("caddy")
            .args([
                "run",
                "--adapter",
                "caddyfile",
                "--config",
                &path.display().to_string(),
            ])
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .env("HOME", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting caddy (Debian package caddy; scripts/test installs it)")?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Caddy {
                    port,
                    child,
                    _dir: dir,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("caddy did not listen on {port} within 5 s")
    }

    /// Stops Caddy.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.child.kill().await;
        Ok(())
    }
}

/// A browser stand-in over plain HTTP: follows redirects from `start` by hand (sending requests
/// for the external URL to the address the server listens on), answers the identification and
/// password forms with `username` and `password`, and stops at the first redirect whose
/// `Location` satisfies `done`; returns that response. `http` must not follow redirects itself
/// and should keep cookies.
pub async fn browse_until(
    http: &reqwest::Client,
    server: &TestServer,
    start: &str,
    (username, password): (&str, &str),
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<reqwest::Response> {
    let local = |location: &str| {
        if location.starts_with('/') {
            format!("{}{location}", server.url)
        } else {
            location.replace(&server.external_url, &server.url)
        }
    };
    let mut url = local(start);
    let mut response = http.get(&url).send().await?;
    for _ in 0..30 {
        if let Some(location) = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        {
            if done(&location) {
                return Ok(response);
            }
            url = local(&location);
            response = http.get(&url).send().await?;
            continue;
        }
        let html = response.text().await?;
        let csrf = html
            .split("name=csrf value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let field = if html.contains("name=uid_field") {
            ("uid_field", username)
        } else if html.contains("name=password") {
            ("password", password)
        } else {
            bail!("unexpected page at {url}: {html}");
        };
        // Forms post to the flow's path, without the query that started it.
        let action = url.split('?').next().unwrap_or_default().to_owned();
        response = http
            .post(&action)
            .form(&[field, ("csrf", csrf.as_str())])
            .send()
            .await?;
    }
    bail!("no redirect that ends the journey after 30 steps from {start}")
}

/// A reqwest client that keeps cookies and does not follow redirects: a browser stand-in.
pub fn cookie_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}
