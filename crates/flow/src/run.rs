//! The engine loop: starting a flow run, evaluating each stage binding's policies when the run
//! reaches it, handing the stage to its implementation ([`crate::stages`]), moving the index, and
//! assembling the [`Outcome`] the web layer acts on.
//!
//! A failing stage policy skips its stage and leaves its message behind; the login stage refuses
//! to start a session unless an authentication stage succeeded for the pending user — so skipping
//! a password stage can never log anyone in.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use gatehouse_core::kinds::{FlowAuthentication, StageKind};
use gatehouse_core::secret;
use gatehouse_sealing::CarriedKey;
use gatehouse_store::flows::{self, Flow};
use gatehouse_store::{sessions, sql, users, Conn, SecretKey};

use crate::policy::{self, Context, Verdict};
use crate::stages::{self, identification, invitation, Entry, Step, Visit};
use crate::state::{
    AppContext, FlowRun, Outcome, PlannedStage, RequestInfo, Response, SourceIdentity,
};
use crate::throttle::Throttle;
use crate::Result;

/// The engine: process-wide throttles and settings.
pub struct Engine {
    /// Attempt limits.
    pub throttle: Throttle,
    /// How long an unfinished flow run is kept (in its row, or in its carried cookie).
    pub state_age: Duration,
    /// Whether a passkey login (user-verified) also passes TOTP stages. Off by default, as in
    /// Authelia: a passkey is one factor, and a stage asking for a second one still asks.
    pub passkey_counts_as_two_factors: bool,
    /// The store's secret key: stages open sealed secrets (TOTP seeds, sources' secrets).
    pub sealing: Arc<SecretKey>,
    /// Seals anonymous runs into their cookie ([`crate::keep`]).
    pub(crate) carried: CarriedKey,
}

impl Engine {
    /// An engine keeping unfinished runs for `state_age`, opening stored secrets with
    /// `sealing` and sealing anonymous runs with `carried_subkey` (a subkey of the server's
    /// secret key, the same on every replica). A passkey counts as one factor until the caller
    /// sets [`Engine::passkey_counts_as_two_factors`].
    pub fn new(sealing: Arc<SecretKey>, state_age: Duration, carried_subkey: &[u8; 32]) -> Engine {
        Engine {
            throttle: Throttle::default(),
            state_age,
            passkey_counts_as_two_factors: false,
            sealing,
            carried: CarriedKey::new(carried_subkey),
        }
    }
}

/// Accepts `next` only as a same-site path; anything else becomes `fallback`.
pub fn safe_next(next: Option<&str>, fallback: &str) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace())
                && n.len() <= 2048 =>
        {
            n.to_owned()
        }
        _ => fallback.to_owned(),
    }
}

impl Engine {
    /// Starts `flow`: checks who may run it and its flow-level policies, then fixes the plan.
    pub async fn start(
        &self,
        conn: &mut Conn,
        flow: &Flow,
        next: String,
        session: Option<&sessions::Session>,
        application: Option<AppContext>,
        req: &RequestInfo,
    ) -> Result<std::result::Result<FlowRun, String>> {
        let session_user = match session {
            Some(s) => Some(users::get(conn, s.user).await?),
            None => None,
        };
        match flow.fields.authentication {
            FlowAuthentication::RequireAuthenticated if session_user.is_none() => {
                return Ok(Err("Log in first to use this page.".into()))
            }
            FlowAuthentication::RequireUnauthenticated if session_user.is_some() => {
                return Ok(Err("You are already logged in; log out first.".into()))
            }
            FlowAuthentication::RequireSuperuser => {
                let is_super = match &session_user {
                    Some(u) => users::is_superuser(conn, u.id).await?,
                    None => false,
                };
                if !is_super {
                    return Ok(Err("Only administrators may use this page.".into()));
                }
            }
            _ => {}
        }
        let ctx = Context {
            user: session_user.as_ref(),
            identifier: None,
            request: req,
            flow: Some(&flow.fields.slug),
            invitation: None,
        };
        if let (Verdict::Fail(message), _) =
            policy::evaluate_target(conn, flow.uuid, flow.fields.policy_engine_mode, ctx).await?
        {
            return Ok(Err(message));
        }
        let stages = self.plan(conn, flow.uuid).await?;
        Ok(Ok(FlowRun {
            flow: flow.uuid,
            slug: flow.fields.slug.clone(),
            title: flow.fields.title.clone(),
            designation: flow.fields.designation,
            stages,
            index: 0,
            csrf: secret::new_token(),
            next,
            pending_user: None,
            identifier: None,
            authenticated: false,
            via_passkey: false,
            session: session.map(|s| s.uuid),
            session_user: session_user.map(|u| u.id),
            denials: Vec::new(),
            application,
            remember_me: false,
            prompt_data: serde_json::Map::new(),
            itoken: None,
            invitation: None,
            source: None,
            source_login: None,
            link_for: None,
            passkey_enrollment: None,
        }))
    }

    /// The plan of `flow` as it stands: its stages in binding order.
    pub(crate) async fn plan(
        &self,
        conn: &mut Conn,
        flow: uuid::Uuid,
    ) -> Result<Vec<PlannedStage>> {
        let mut stages = Vec::new();
        for binding in flows::stage_bindings(conn, flow).await? {
            let stage = sql::get::<flows::Stage>(conn, binding.stage).await?;
            stages.push(PlannedStage {
                binding: binding.uuid,
                name: stage.fields.name,
                kind: stage.fields.kind,
                settings: stage.fields.settings,
                policy_engine_mode: binding.policy_engine_mode,
            });
        }
        Ok(stages)
    }

    /// Moves past stages that need no input and returns what to show or do next.
    pub async fn advance(
        &self,
        conn: &mut Conn,
        run: &mut FlowRun,
        req: &RequestInfo,
    ) -> Result<Outcome> {
        let mut logged_in: Option<(String, Option<i64>)> = None;
        let mut logged_out = false;
        while let Some(stage) = run.stages.get(run.index).cloned() {
            if let Err(message) = invitation::recheck(conn, run).await? {
                return Ok(Outcome::Denied { message });
            }
            let pending = match run.pending_user {
                Some(id) => Some(users::get(conn, id).await?),
                None => None,
            };
            let invitation = run
                .invitation
                .as_ref()
                .map(|i| serde_json::json!({"name": i.name, "fixed_data": i.fixed_data}));
            let ctx = Context {
                user: pending.as_ref(),
                identifier: run.identifier.as_deref(),
                request: req,
                flow: Some(&run.slug),
                invitation: invitation.as_ref(),
            };
            let (verdict, _) =
                policy::evaluate_target(conn, stage.binding, stage.policy_engine_mode, ctx).await?;
            if let Verdict::Fail(message) = verdict {
                run.denials.push(message);
                run.index += 1;
                continue;
            }
            let visit = Visit {
                engine: self,
                conn,
                run,
                stage: &stage,
                req,
            };
            match stages::for_kind(stage.kind).enter(visit).await? {
                Entry::Ask(challenge) => return Ok(show(challenge, Vec::new())),
                Entry::Pass => {}
                Entry::LoggedIn {
                    session_key,
                    max_age,
                } => logged_in = Some((session_key, max_age)),
                Entry::LoggedOut => logged_out = true,
                Entry::Back {
                    index,
                    challenge,
                    errors,
                } => {
                    run.index = index;
                    return Ok(show(challenge, errors));
                }
                Entry::Deny(message) => return Ok(Outcome::Denied { message }),
            }
            run.index += 1;
        }
        Ok(match (logged_in, logged_out) {
            (Some((session_key, max_age)), _) => Outcome::LoggedIn {
                session_key,
                max_age,
                redirect: run.next.clone(),
            },
            (None, true) => Outcome::LoggedOut {
                redirect: run.next.clone(),
            },
            (None, false) => Outcome::Finished {
                redirect: run.next.clone(),
            },
        })
    }

    /// Handles a form post to the current stage.
    pub async fn submit(
        &self,
        conn: &mut Conn,
        run: &mut FlowRun,
        response: &Response,
        req: &RequestInfo,
    ) -> Result<Outcome> {
        let Some(stage) = run.stages.get(run.index).cloned() else {
            return self.advance(conn, run, req).await;
        };
        if let Err(message) = invitation::recheck(conn, run).await? {
            return Ok(Outcome::Denied { message });
        }
        let visit = Visit {
            engine: self,
            conn,
            run,
            stage: &stage,
            req,
        };
        let step = stages::for_kind(stage.kind)
            .respond(visit, response)
            .await?;
        self.take(conn, run, req, step).await
    }

    /// A passkey proved `user` at the identification stage: the password (and second-factor)
    /// stages are passed, and the flow moves on.
    pub async fn passkey_login(
        &self,
        conn: &mut Conn,
        run: &mut FlowRun,
        user: &users::User,
        req: &RequestInfo,
    ) -> Result<Outcome> {
        let Some(stage) = run
            .stages
            .get(run.index)
            .filter(|s| s.kind == StageKind::Identification)
            .cloned()
        else {
            return Ok(Outcome::Denied {
                message: "A passkey can only be used on the first page of the login.".into(),
            });
        };
        let visit = Visit {
            engine: self,
            conn,
            run,
            stage: &stage,
            req,
        };
        let step = identification::passkey(visit, user).await?;
        self.take(conn, run, req, step).await
    }

    /// A login source's callback identified the visitor (see
    /// [`identification::source`]): the run moves past its identification stage, or, when the
    /// run was started for the callback, reaches it and passes it.
    pub async fn source_identified(
        &self,
        conn: &mut Conn,
        run: &mut FlowRun,
        identity: SourceIdentity,
        user: Option<&users::User>,
        req: &RequestInfo,
    ) -> Result<Outcome> {
        let at = run
            .stages
            .iter()
            .skip(run.index)
            .position(|s| s.kind == StageKind::Identification)
            .map(|offset| run.index + offset);
        let Some(index) = at else {
            return Ok(Outcome::Denied {
                message: "This page does not take a sign-in through a login source.".into(),
            });
        };
        if index != run.index
            && !run.stages[run.index..index]
                .iter()
                .all(|s| s.kind == StageKind::Invitation)
        {
            return Ok(Outcome::Denied {
                message: "A login source can only be used on the first page of the login.".into(),
            });
        }
        // The stages before it (an invitation) run first, as for any visitor.
        if index != run.index {
            if let Outcome::Denied { message } = self.advance(conn, run, req).await? {
                return Ok(Outcome::Denied { message });
            }
        }
        let stage = run.stages[index].clone();
        let visit = Visit {
            engine: self,
            conn,
            run,
            stage: &stage,
            req,
        };
        let step = identification::source(visit, identity, user).await?;
        run.index = index;
        self.take(conn, run, req, step).await
    }

    /// The browser made the passkey of a passkey-only sign-up: the run keeps it, and the
    /// user_write stage stores it with the new account.
    pub async fn passkey_enrolled(
        &self,
        conn: &mut Conn,
        run: &mut FlowRun,
        credential_id: String,
        credential: String,
        req: &RequestInfo,
    ) -> Result<Outcome> {
        match &mut run.passkey_enrollment {
            Some(enrollment) => {
                enrollment.credential_id = Some(credential_id);
                enrollment.credential = Some(credential);
                self.advance(conn, run, req).await
            }
            None => Ok(Outcome::Denied {
                message: "This sign-up did not ask for a passkey; start again.".into(),
            }),
        }
    }

    /// Acts on a stage's answer to a response: on to the next stage, or what to show.
    async fn take(
        &self,
        conn: &mut Conn,
        run: &mut FlowRun,
        req: &RequestInfo,
        step: Step,
    ) -> Result<Outcome> {
        match step {
            Step::Next => {
                run.index += 1;
                self.advance(conn, run, req).await
            }
            Step::Stay => self.advance(conn, run, req).await,
            Step::Retry { challenge, errors } => Ok(show(challenge, errors)),
            Step::Invalid { field, message } => Ok(Outcome::Invalid { field, message }),
            Step::Deny(message) => Ok(Outcome::Denied { message }),
        }
    }
}

fn show(challenge: crate::state::Challenge, errors: Vec<String>) -> Outcome {
    Outcome::Show { challenge, errors }
}

/// When a stored run expires, from now.
pub fn expiry(engine: &Engine) -> DateTime<Utc> {
    Utc::now() + engine.state_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_accepts_only_same_site_paths() {
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "/ok\r\nSet-Cookie: x",
            "",
        ] {
            assert_eq!(safe_next(Some(bad), "/if/user/"), "/if/user/", "{bad:?}");
        }
        assert_eq!(
            safe_next(Some("/application/o/authorize/?x=1"), "/"),
            "/application/o/authorize/?x=1"
        );
        assert_eq!(safe_next(None, "/if/user/"), "/if/user/");
    }
}
