//! Where a flow run waits between requests (#13 L5): an anonymous run is carried by the
//! browser, sealed in its flow cookie, so a flood of anonymous page views and failed attempts
//! writes no row and holds no server memory; a run that holds something the server must be able
//! to take back or use once is stored as a `flow_states` row under an opaque cookie value.
//!
//! A run is carried while it is *anonymous*: no session it started from, no authenticated user,
//! no accepted invitation, no login-source state (state, nonce, PKCE verifier, taken out in
//! their own transaction before the upstream is called so a replayed callback finds nothing),
//! no source identity, no passkey sign-up, no account being linked. Everything a carried run
//! holds, the visitor could produce again by typing it, so replaying an old cookie (until its
//! expiry) only returns to an earlier page of the same login: it never skips a check, because
//! the first thing that proves anything (a right password, a passkey, a source's callback, an
//! invitation) moves the run into a row, which a finished login deletes. Throttles are per
//! account and address in the engine ([`crate::throttle`]), not in the run, so a replay does not
//! reset them.
//!
//! The carried form is `s1.` + [`gatehouse_sealing::CarriedKey`] sealing (AES-256-GCM under a subkey of the
//! server's secret key, so every replica opens it) of the run without its plan, with the run's
//! id, its expiry and a fingerprint of the plan. On the way back the plan is read again and must
//! match the fingerprint: a flow edited meanwhile starts again rather than mixing two plans. A
//! stored run's cookie value is a bare random token (no `.`), so the two never mix up.

use chrono::Utc;
use gatehouse_core::secret;
use gatehouse_store::{flow_states, Conn};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::run::Engine;
use crate::state::{FlowRun, PlannedStage};
use crate::{Error, Result};

/// How a carried run's cookie value starts.
pub const CARRIED_PREFIX: &str = "s1.";

/// The longest carried cookie value; a larger run is stored instead. Browsers keep cookies of
/// at least 4096 bytes including name and attributes; a `next` of the longest accepted length
/// (2048) still fits.
pub const MAX_CARRIED: usize = 3800;

/// Associated data of the sealing: what the value is, in which format.
const CONTEXT: &[u8] = b"gatehouse flow run v1";

/// A run between requests, with where it is kept.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The run.
    pub run: FlowRun,
    /// Its id: the row key once stored, and the key of in-process ceremonies (passkeys) that
    /// span two requests of the run.
    id: String,
    /// Whether it lives in a row (once stored, it stays stored until it ends).
    stored: bool,
}

impl Kept {
    /// A new run, carried until it holds something that must be stored.
    pub fn new(run: FlowRun) -> Kept {
        Kept {
            run,
            id: secret::new_token(),
            stored: false,
        }
    }

    /// The run's stable id (a random token), the same on every request of the run.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Why a flow cookie did not give back a run: the page says so and starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Expired, finished, unknown, or for another flow.
    Interrupted,
    /// Altered, cut, or sealed with another secret key.
    Damaged,
    /// The flow's stages changed since the run started.
    Changed,
}

impl Stale {
    /// What the visitor is told on the page that starts again.
    pub fn notice(self) -> &'static str {
        match self {
            Stale::Interrupted => "This login page expired or was interrupted, so it started again.",
            Stale::Damaged => "This login page's cookie could not be read (it was altered, or comes from another server), so the login started again.",
            Stale::Changed => "This login page changed since it was opened, so it started again.",
        }
    }
}

/// What a flow cookie gave back.
#[derive(Debug)]
pub enum Found {
    /// No flow cookie.
    Nothing,
    /// A cookie that gives no run.
    Stale(Stale),
    /// The run (boxed: a run is large beside the other answers).
    Run(Box<Kept>),
}

/// The sealed content of a carried run.
#[derive(Serialize, Deserialize)]
struct Carried {
    /// The run's id.
    id: String,
    /// Expiry, seconds since the epoch.
    exp: i64,
    /// Fingerprint of the plan the run started with.
    plan: String,
    /// The run, its plan left out.
    run: FlowRun,
}

/// Whether `run` holds nothing that must be stored (see the module doc).
fn may_carry(run: &FlowRun) -> bool {
    run.session.is_none()
        && run.session_user.is_none()
        && run.link_for.is_none()
        && !run.authenticated
        && run.source_login.is_none()
        && run.invitation.is_none()
        && run.source.is_none()
        && run.passkey_enrollment.is_none()
}

/// A short fingerprint of a plan (SHA-256 of its JSON).
fn fingerprint(stages: &[PlannedStage]) -> Result<String> {
    let text = serde_json::to_string(stages).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(secret::token_hash(&text)[..32].to_owned())
}

impl Engine {
    /// The run the flow cookie `cookie` names, for `flow` (or, with `None`, whichever flow it
    /// belongs to: a login source's callback continues the run that sent the browser away).
    pub async fn find(
        &self,
        conn: &mut Conn,
        cookie: Option<&str>,
        flow: Option<Uuid>,
    ) -> Result<Found> {
        let Some(cookie) = cookie else {
            return Ok(Found::Nothing);
        };
        let now = Utc::now();
        if let Some(sealed) = cookie.strip_prefix(CARRIED_PREFIX) {
            return self.open(conn, sealed, flow, now.timestamp()).await;
        }
        let data = match flow {
            Some(flow) => flow_states::get(conn, cookie, flow, now).await?,
            None => flow_states::get_current(conn, cookie, now)
                .await?
                .map(|(_, data)| data),
        };
        Ok(match data.and_then(|d| serde_json::from_value(d).ok()) {
            Some(run) => Found::Run(Box::new(Kept {
                run,
                id: cookie.to_owned(),
                stored: true,
            })),
            None => Found::Stale(Stale::Interrupted),
        })
    }

    async fn open(
        &self,
        conn: &mut Conn,
        sealed: &str,
        flow: Option<Uuid>,
        now: i64,
    ) -> Result<Found> {
        let carried: Option<Carried> = self
            .carried
            .open(CONTEXT, sealed)
            .ok()
            .and_then(|plain| serde_json::from_slice(&plain).ok());
        let Some(Carried {
            id,
            exp,
            plan,
            mut run,
        }) = carried
        else {
            return Ok(Found::Stale(Stale::Damaged));
        };
        if exp <= now || flow.is_some_and(|f| f != run.flow) {
            return Ok(Found::Stale(Stale::Interrupted));
        }
        let stages = self.plan(conn, run.flow).await?;
        if fingerprint(&stages)? != plan {
            return Ok(Found::Stale(Stale::Changed));
        }
        run.stages = stages;
        Ok(Found::Run(Box::new(Kept {
            run,
            id,
            stored: false,
        })))
    }

    /// Keeps `kept` for the next request; returns the flow cookie's value. An anonymous run is
    /// sealed into the value; any other (or one too large for a cookie) is written to its row.
    pub async fn keep(&self, conn: &mut Conn, kept: &mut Kept) -> Result<String> {
        if !kept.stored && may_carry(&kept.run) {
            let mut run = kept.run.clone();
            let plan = fingerprint(&std::mem::take(&mut run.stages))?;
            let carried = Carried {
                id: kept.id.clone(),
                exp: (Utc::now() + self.state_age).timestamp(),
                plan,
                run,
            };
            let plain = serde_json::to_vec(&carried).map_err(|e| Error::Internal(e.to_string()))?;
            let sealed = self
                .carried
                .seal(CONTEXT, &plain)
                .map_err(|e| Error::Internal(e.to_string()))?;
            let value = format!("{CARRIED_PREFIX}{sealed}");
            if value.len() <= MAX_CARRIED {
                return Ok(value);
            }
        }
        kept.stored = true;
        let data = serde_json::to_value(&kept.run).map_err(|e| Error::Internal(e.to_string()))?;
        flow_states::put(
            conn,
            &kept.id,
            kept.run.flow,
            &data,
            crate::run::expiry(self),
        )
        .await?;
        Ok(kept.id.clone())
    }

    /// The run ended: its row, if it has one, is deleted (a carried run holds nothing a replay
    /// could use, see the module doc).
    pub async fn forget(&self, conn: &mut Conn, kept: &Kept) -> Result<()> {
        if kept.stored {
            flow_states::delete(conn, &kept.id).await?;
        }
        Ok(())
    }
}
