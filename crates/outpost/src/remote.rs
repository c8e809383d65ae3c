//! The standalone outpost's backend: the server's outpost API (`/api/v3/outposts/proxy/…`),
//! called with the outpost's token. The outpost holds no database credentials and no client
//! secrets; the server checks and stores every session, so any number of outposts share them
//! and survive restarts.
//!
//! Changes are pushed: [`follow`] keeps the server's event stream open and applies each entry
//! of the server's change feed as it comes (a logout drops that user's entries, a provider
//! edit that provider's), reconnecting with back-off and jitter when the stream drops and
//! resuming from the last position applied (`?since=`). A gap in the sequence numbers, or a
//! server that can no longer replay what was missed, drops everything cached; while the
//! stream is down, cached answers stand only for the grace period.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use gatehouse_proto::outposts::{
    FeedChange, LoginBegin, LoginBegun, LoginComplete, LoginCompleted, OutpostHello,
    ProxyOutpostConfig, SessionAnswer, SessionCheck, SessionGrant, SignOut, SignedOut,
};
use gatehouse_proto::page::Paginated;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{Backend, BoxFuture, Error, Result};
use crate::Outpost;

/// Path of the provider list.
pub const PROVIDERS: &str = "/api/v3/outposts/proxy/";
/// Path of the event stream.
pub const EVENTS: &str = "/api/v3/outposts/proxy/events/";

/// How long the event stream may stay silent before it counts as dead (the server sends a
/// keep-alive comment every 15 s).
const SILENCE: Duration = Duration::from_secs(45);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The server's outpost API.
pub struct Remote {
    /// Server URL without a trailing slash.
    base: String,
    /// The outpost's API token.
    token: String,
    /// For API calls (bounded).
    http: reqwest::Client,
    /// For the event stream (no overall timeout: it stays open).
    stream: reqwest::Client,
}

impl Remote {
    /// A client of the server at `server` with the outpost token `token`.
    pub fn new(server: &str, token: &str) -> Result<Remote> {
        let base = server.trim_end_matches('/').to_owned();
        if url::Url::parse(&base).is_err() || !base.starts_with("http") {
            return Err(Error::Refused(format!(
                "`{server}` is not a server URL; pass --server http(s)://host:port"
            )));
        }
        let build = |timeout: Option<Duration>| {
            let b = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .redirect(reqwest::redirect::Policy::none());
            match timeout {
                Some(t) => b.timeout(t),
                None => b,
            }
            .build()
            .map_err(|e| Error::Refused(format!("cannot build an HTTP client: {e}")))
        };
        Ok(Remote {
            base,
            token: token.to_owned(),
            http: build(Some(Duration::from_secs(10)))?,
            stream: build(None)?,
        })
    }

    /// The server URL.
    pub fn server(&self) -> &str {
        &self.base
    }

    async fn call<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| Error::Unreachable(format!("the server at {}: {e}", self.base)))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(Error::Failed(format!(
                "the server at {} answered {status}",
                self.base
            )));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(Error::Refused(format!(
                "the server at {} answered {status}: {body}",
                self.base
            )));
        }
        response
            .json()
            .await
            .map_err(|e| Error::Failed(format!("unreadable answer from the server: {e}")))
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.call(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// Every page of the provider list.
    async fn all_providers(&self) -> Result<Vec<ProxyOutpostConfig>> {
        let mut all = Vec::new();
        for page in 1..=100 {
            let url = format!("{}{PROVIDERS}?page={page}&page_size=500", self.base);
            let listed: Paginated<ProxyOutpostConfig> = self.call(self.http.get(url)).await?;
            all.extend(listed.results);
            if listed.pagination.next == 0 {
                break;
            }
        }
        Ok(all)
    }

    /// Reads the event stream until it ends or falls silent, forgetting `outpost`'s caches at
    /// every change. Returns `Ok` when the server's hello arrived (the connection worked).
    async fn stream_into(&self, outpost: &Outpost, hello_seen: &mut bool) -> Result<()> {
        let since = outpost
            .feed_position()
            .map(|at| format!("?since={at}"))
            .unwrap_or_default();
        let response = self
            .stream
            .get(format!("{}{EVENTS}{since}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| Error::Unreachable(format!("the server at {}: {e}", self.base)))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(if status.is_server_error() {
                Error::Failed(format!("event stream: {status}"))
            } else {
                Error::Refused(format!("event stream: {status}: {body}"))
            });
        }
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        let mut event = Event::default();
        loop {
            let chunk = match tokio::time::timeout(SILENCE, body.next()).await {
                Err(_) => return Err(Error::Unreachable("the event stream fell silent".into())),
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => return Err(Error::Unreachable(format!("event stream: {e}"))),
                Ok(Some(Ok(chunk))) => chunk,
            };
            // Anything after the hello (a change or a keep-alive) is the server in touch:
            // the contact the safety bound counts from.
            if *hello_seen {
                outpost.feed_live();
            }
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    std::mem::take(&mut event).dispatch(outpost, hello_seen);
                } else if let Some(name) = line.strip_prefix("event:") {
                    event.name = name.trim().to_owned();
                } else if let Some(data) = line.strip_prefix("data:") {
                    event.data.push_str(data.trim());
                }
            }
        }
    }
}

/// One server-sent event being read.
#[derive(Default)]
struct Event {
    name: String,
    data: String,
}

impl Event {
    fn dispatch(self, outpost: &Outpost, hello_seen: &mut bool) {
        match self.name.as_str() {
            "hello" => {
                let Ok(hello) = serde_json::from_str::<OutpostHello>(&self.data) else {
                    // Unreadable: nothing is known about the position, so start afresh.
                    outpost.drop_all();
                    return;
                };
                {
                    outpost.feed_at(hello.position, hello.reset);
                    outpost.metrics.name_store(&hello.session_store);
                    if !*hello_seen {
                        tracing::info!(outpost = %hello.outpost, session_store = %hello.session_store,
                            "connected to the server; sessions live in its {} database", hello.session_store);
                    }
                }
                *hello_seen = true;
            }
            "change" => match serde_json::from_str::<FeedChange>(&self.data) {
                Ok(change) => outpost.apply(&change),
                Err(_) => outpost.drop_all(),
            },
            _ => {}
        }
    }
}

/// Keeps the server's event stream open for `outpost`, forever: reconnects after a drop with
/// exponential back-off (250 ms doubling to 30 s) and jitter, so a restarted server is not hit
/// by every outpost at once.
pub async fn follow(outpost: Arc<Outpost>, remote: Arc<Remote>) {
    let mut backoff = Duration::from_millis(250);
    let mut hello_seen = false;
    loop {
        let connected_before = hello_seen;
        let mut connected = false;
        let outcome = remote.stream_into(&outpost, &mut connected).await;
        outpost.feed_lost(match &outcome {
            Ok(()) => Error::Unreachable("the server closed the event stream".into()),
            Err(e) => e.clone(),
        });
        hello_seen |= connected;
        if connected {
            backoff = Duration::from_millis(250);
        }
        match outcome {
            Ok(()) => tracing::warn!("the server closed the event stream; reconnecting"),
            Err(e) if connected || !connected_before => {
                tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "the event stream from the server dropped; reconnecting")
            }
            Err(e) => tracing::debug!(error = %e, "the server's event stream is still unreachable"),
        }
        let jitter = rand::random::<f64>() * 0.5 + 0.75;
        tokio::time::sleep(backoff.mul_f64(jitter)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

impl Backend for Remote {
    fn providers(&self) -> BoxFuture<'_, Result<Vec<ProxyOutpostConfig>>> {
        Box::pin(self.all_providers())
    }

    fn check<'a>(&'a self, check: &'a SessionCheck) -> BoxFuture<'a, Result<Option<SessionGrant>>> {
        Box::pin(async move {
            let answer: SessionAnswer = self
                .post("/api/v3/outposts/proxy/sessions/check/", check)
                .await?;
            Ok(answer.session)
        })
    }

    fn begin<'a>(&'a self, begin: &'a LoginBegin) -> BoxFuture<'a, Result<LoginBegun>> {
        Box::pin(self.post("/api/v3/outposts/proxy/sessions/begin/", begin))
    }

    fn complete<'a>(
        &'a self,
        complete: &'a LoginComplete,
    ) -> BoxFuture<'a, Result<LoginCompleted>> {
        Box::pin(self.post("/api/v3/outposts/proxy/sessions/complete/", complete))
    }

    fn sign_out<'a>(&'a self, sign_out: &'a SignOut) -> BoxFuture<'a, Result<SignedOut>> {
        Box::pin(self.post("/api/v3/outposts/proxy/sessions/sign_out/", sign_out))
    }
}
