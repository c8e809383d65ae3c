//! Starting, resuming and advancing a flow run, and what each kind of stage does.
//!
//! The run is plain data ([`FlowRun`]) that the web layer stores server-side between requests.
//! Stage-binding policies are evaluated when their stage is reached; a failing one skips the
//! stage and leaves its message behind, and the login stage refuses to start a session unless
//! an authentication stage succeeded for the pending user — so skipping a password stage can
//! never log anyone in.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, Duration, Utc};
use gatehouse_core::kinds::{FlowAuthentication, FlowDesignation, StageKind};
use gatehouse_core::secret;
use gatehouse_store::flows::{self, Flow};
use gatehouse_store::{devices, events, oauth, reputation, sessions, sql, users, Conn};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::policy::{self, Context, Verdict};
use crate::throttle::Throttle;
use crate::{Error, Result};

/// Facts about the HTTP request that policies and audit events use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestInfo {
    /// Client address.
    pub ip: String,
    /// Host the request was sent to.
    pub host: String,
    /// Path.
    pub path: String,
    /// Method.
    pub method: String,
    /// Browser.
    pub user_agent: String,
}

/// The application a flow runs for (authorization flows started by an OAuth2 authorize).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppContext {
    /// Application id.
    pub uuid: Uuid,
    /// Its display name.
    pub name: String,
    /// Scopes requested.
    pub scopes: Vec<String>,
}

/// One stage of the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedStage {
    /// The stage binding (policy-binding target).
    pub binding: Uuid,
    /// Stage name.
    pub name: String,
    /// What the stage does.
    pub kind: StageKind,
    /// Its settings.
    pub settings: Value,
}

/// A flow in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowRun {
    /// The flow.
    pub flow: Uuid,
    /// Its slug.
    pub slug: String,
    /// Its title.
    pub title: String,
    /// Its designation.
    pub designation: FlowDesignation,
    /// The stages, fixed at start.
    pub stages: Vec<PlannedStage>,
    /// The current stage.
    pub index: usize,
    /// Anti-forgery token every form post must carry.
    pub csrf: String,
    /// Where to go when the flow ends (a same-site path).
    pub next: String,
    /// The user being logged in, once identified.
    pub pending_user: Option<i64>,
    /// What the visitor typed to identify themselves.
    pub identifier: Option<String>,
    /// Whether a password or passkey stage succeeded for `pending_user`.
    pub authenticated: bool,
    /// Whether that was a passkey (user-verifying, so it also counts as the second factor).
    #[serde(default)]
    pub via_passkey: bool,
    /// The session that was active when the flow started.
    pub session: Option<Uuid>,
    /// The user of that session.
    pub session_user: Option<i64>,
    /// Messages of stage policies that skipped their stage.
    pub denials: Vec<String>,
    /// The application being authorised, for consent.
    #[serde(default)]
    pub application: Option<AppContext>,
    /// Whether the visitor ticked "remember me".
    #[serde(default)]
    pub remember_me: bool,
    /// Values entered at prompt stages (a password only as its argon2 hash, `password_hash`).
    #[serde(default)]
    pub prompt_data: serde_json::Map<String, Value>,
}

/// What the visitor is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Username or email.
    Identification {
        /// What was typed before (after an error).
        identifier: String,
    },
    /// Password for the identified user.
    Password {
        /// Shown as "Logging in as …".
        identifier: String,
        /// Offer a "remember me" box (the login stage has a remember-me offset).
        remember_me: bool,
    },
    /// Fields to fill in (enrollment, profile).
    Prompt {
        /// The fields, with what was entered before (passwords never).
        fields: Vec<PromptField>,
    },
    /// A TOTP code.
    Totp,
    /// Consent to share data with an application.
    Consent {
        /// The application's name.
        application: String,
        /// What it asks for.
        scopes: Vec<String>,
    },
}

/// One field of a prompt stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptField {
    /// Form name and key in the prompt data, e.g. `username`.
    pub field_key: String,
    /// Label shown.
    pub label: String,
    /// `text`, `email`, `password` or `username`.
    #[serde(rename = "type", default = "text_type")]
    pub kind: String,
    /// Must be filled in.
    #[serde(default)]
    pub required: bool,
    /// Value to show (filled in by the engine, never from settings for passwords).
    #[serde(default)]
    pub value: String,
}

fn text_type() -> String {
    "text".into()
}

/// A form post.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Form fields by name.
    pub fields: HashMap<String, String>,
}

impl Response {
    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// What the web layer should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Show a stage, with errors from the last attempt.
    Show {
        /// The stage's question.
        challenge: Challenge,
        /// What went wrong last time.
        errors: Vec<String>,
    },
    /// A field was unacceptable as sent (too long, malformed): HTTP 400 naming it.
    Invalid {
        /// The field.
        field: String,
        /// Why.
        message: String,
    },
    /// A session started: set the cookie, then redirect.
    LoggedIn {
        /// Cookie value.
        session_key: String,
        /// Cookie Max-Age in seconds; `None` for a browser-session cookie.
        max_age: Option<i64>,
        /// Where to go.
        redirect: String,
    },
    /// The session ended: clear the cookie, then redirect.
    LoggedOut {
        /// Where to go.
        redirect: String,
    },
    /// The flow ended without a new session.
    Finished {
        /// Where to go.
        redirect: String,
    },
    /// The flow refuses to continue.
    Denied {
        /// Why, for the visitor.
        message: String,
    },
}

/// Longest accepted identifier (username or email).
pub const MAX_IDENTIFIER: usize = 254;
/// Longest accepted password.
pub const MAX_PASSWORD: usize = 1024;
/// Server-side lifetime of a session whose cookie lasts until the browser closes.
pub const BROWSER_SESSION_HOURS: i64 = 24;

/// The same message for unknown users and wrong passwords.
pub const BAD_CREDENTIALS: &str = "Invalid username or password.";
/// The message for a wrong TOTP or recovery code.
pub const BAD_CODE: &str = "Invalid code.";

/// The engine: process-wide throttles and settings.
pub struct Engine {
    /// Attempt limits.
    pub throttle: Throttle,
    /// How long an unfinished flow run is kept.
    pub state_age: Duration,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            throttle: Throttle::default(),
            state_age: Duration::hours(2),
        }
    }
}

/// A hash of a random password, verified when the user does not exist so that the answer takes
/// as long as for a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| secret::hash_password(&secret::new_token()).unwrap_or_default())
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
        };
        if let (Verdict::Fail(message), _) =
            policy::evaluate_target(conn, flow.uuid, flow.fields.policy_engine_mode, ctx).await?
        {
            return Ok(Err(message));
        }
        let mut stages = Vec::new();
        for binding in flows::stage_bindings(conn, flow.uuid).await? {
            let stage = sql::get::<flows::Stage>(conn, binding.stage).await?;
            stages.push(PlannedStage {
                binding: binding.uuid,
                name: stage.fields.name,
                kind: stage.fields.kind,
                settings: stage.fields.settings,
            });
        }
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
        }))
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
            let pending = match run.pending_user {
                Some(id) => Some(users::get(conn, id).await?),
                None => None,
            };
            let ctx = Context {
                user: pending.as_ref(),
                identifier: run.identifier.as_deref(),
                request: req,
                flow: Some(&run.slug),
            };
            let (verdict, _) = policy::evaluate_target(
                conn,
                stage.binding,
                gatehouse_core::kinds::PolicyEngineMode::All,
                ctx,
            )
            .await?;
            if let Verdict::Fail(message) = verdict {
                run.denials.push(message);
                run.index += 1;
                continue;
            }
            match stage.kind {
                StageKind::Identification => {
                    return Ok(show(Challenge::Identification {
                        identifier: run.identifier.clone().unwrap_or_default(),
                    }))
                }
                StageKind::Password if run.authenticated => {
                    run.index += 1;
                    continue;
                }
                StageKind::Password => {
                    if run.identifier.is_none() {
                        return Err(Error::Config {
                            what: format!("flow {}", run.slug),
                            message: "a password stage needs an identification stage before it".into(),
                        });
                    }
                    return Ok(show(Challenge::Password {
                        identifier: run.identifier.clone().unwrap_or_default(),
                        remember_me: remember_me_offset(run) > 0,
                    }));
                }
                StageKind::Totp if run.via_passkey => {
                    run.index += 1;
                    continue;
                }
                StageKind::Totp => {
                    let has_device = match run.pending_user {
                        Some(id) => !devices::totp_of(conn, id).await?.is_empty(),
                        None => false,
                    };
                    if !has_device {
                        run.index += 1;
                        continue;
                    }
                    return Ok(show(Challenge::Totp));
                }
                StageKind::UserLogin => {
                    let (Some(user), true) = (pending.as_ref(), run.authenticated) else {
                        let message = run.denials.first().cloned().unwrap_or_else(|| "You could not be logged in.".into());
                        return Ok(Outcome::Denied { message });
                    };
                    logged_in = Some(self.login(conn, run, user, &stage, req).await?);
                    run.index += 1;
                }
                StageKind::UserLogout => {
                    if let Some(session) = run.session {
                        sessions::revoke(conn, session).await?;
                        let who = match run.session_user {
                            Some(id) => users::get(conn, id).await.ok(),
                            None => None,
                        };
                        audit(conn, "logout", who.as_ref(), json!({}), req).await?;
                    }
                    logged_out = true;
                    run.index += 1;
                }
                StageKind::Prompt => {
                    let fields = prompt_fields(&stage, run);
                    if fields.is_empty() {
                        run.index += 1;
                        continue;
                    }
                    return Ok(show(Challenge::Prompt { fields }));
                }
                StageKind::UserWrite => {
                    if let Some(outcome) = self.write_user(conn, run, &stage, req).await? {
                        return Ok(outcome);
                    }
                    run.index += 1;
                }
                StageKind::Consent => {
                    let (Some(app), Some(user)) = (&run.application, run.session_user) else {
                        run.index += 1;
                        continue;
                    };
                    let granted = oauth::consented_scopes(conn, user, app.uuid).await?.unwrap_or_default();
                    if app.scopes.iter().all(|s| granted.contains(s)) {
                        run.index += 1;
                        continue;
                    }
                    return Ok(show(Challenge::Consent {
                        application: app.name.clone(),
                        scopes: app.scopes.clone(),
                    }));
                }
                StageKind::Deny => {
                    let message = stage.settings.get("message").and_then(Value::as_str).unwrap_or("Access denied.");
                    return Ok(Outcome::Denied { message: message.to_owned() });
                }
                other => {
                    return Ok(Outcome::Denied {
                        message: format!(
                            "This flow uses a {other} stage, which this version of Gatehouse cannot run yet. Ask your administrator."
                        ),
                    })
                }
            }
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

    async fn login(
        &self,
        conn: &mut Conn,
        run: &FlowRun,
        user: &users::User,
        stage: &PlannedStage,
        req: &RequestInfo,
    ) -> Result<(String, Option<i64>)> {
        let duration = stage
            .settings
            .get("session_duration")
            .and_then(Value::as_str)
            .and_then(|d| d.parse::<gatehouse_core::Duration>().ok())
            .map(|d| d.seconds())
            .unwrap_or(0);
        let duration = if run.remember_me {
            duration + remember_me_offset(run)
        } else {
            duration
        };
        let (expires, max_age) = if duration > 0 {
            (Utc::now() + Duration::seconds(duration), Some(duration))
        } else {
            (Utc::now() + Duration::hours(BROWSER_SESSION_HOURS), None)
        };
        if let Some(previous) = run.session {
            sessions::revoke(conn, previous).await?;
        }
        let key = secret::new_token();
        sessions::create(conn, &key, user.id, expires, &req.ip, &req.user_agent).await?;
        users::touch_login(conn, user.id).await?;
        audit(conn, "login", Some(user), json!({"flow": run.slug}), req).await?;
        Ok((key, max_age))
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
        if !matches!(
            run.stages.get(run.index).map(|s| s.kind),
            Some(StageKind::Identification)
        ) {
            return Ok(Outcome::Denied {
                message: "A passkey can only be used on the first page of the login.".into(),
            });
        }
        if !user.fields.is_active {
            return Ok(Outcome::Denied {
                message: "This account is deactivated.".into(),
            });
        }
        run.pending_user = Some(user.id);
        run.identifier = Some(user.fields.username.clone());
        run.authenticated = true;
        run.via_passkey = true;
        run.index += 1;
        reputation::record_success(conn, &user.fields.username, &req.ip).await?;
        self.advance(conn, run, req).await
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
        match stage.kind {
            StageKind::Identification => {
                let identifier = response.field("uid_field").trim().to_owned();
                if identifier.chars().count() > MAX_IDENTIFIER {
                    return Ok(invalid(
                        "uid_field",
                        format!("Ensure this field has no more than {MAX_IDENTIFIER} characters."),
                    ));
                }
                if identifier.is_empty() || identifier.chars().any(char::is_control) {
                    return Ok(Outcome::Show {
                        challenge: Challenge::Identification { identifier },
                        errors: vec!["Enter your username or email.".into()],
                    });
                }
                let user = users::find_for_login(conn, &identifier).await?;
                run.pending_user = user.filter(|u| u.fields.is_active).map(|u| u.id);
                run.identifier = Some(identifier);
                run.authenticated = false;
                run.index += 1;
                self.advance(conn, run, req).await
            }
            StageKind::Password => self.check_password(conn, run, response, req).await,
            StageKind::Totp => self.check_totp(conn, run, response, req).await,
            StageKind::Prompt => self.check_prompt(conn, run, &stage, response, req).await,
            StageKind::Consent => {
                if response.field("action") != "allow" {
                    return Ok(Outcome::Denied {
                        message: "You did not allow the application to use your account.".into(),
                    });
                }
                if let (Some(app), Some(user)) = (&run.application, run.session_user) {
                    let mut scopes = oauth::consented_scopes(conn, user, app.uuid)
                        .await?
                        .unwrap_or_default();
                    scopes.extend(
                        app.scopes
                            .iter()
                            .filter(|s| !scopes.contains(s))
                            .cloned()
                            .collect::<Vec<_>>(),
                    );
                    oauth::remember_consent(conn, user, app.uuid, &scopes).await?;
                    let who = users::get(conn, user).await.ok();
                    audit(
                        conn,
                        "authorize_application",
                        who.as_ref(),
                        json!({"application": app.name, "scopes": app.scopes}),
                        req,
                    )
                    .await?;
                }
                run.index += 1;
                self.advance(conn, run, req).await
            }
            _ => self.advance(conn, run, req).await,
        }
    }

    async fn check_prompt(
        &self,
        conn: &mut Conn,
        run: &mut FlowRun,
        stage: &PlannedStage,
        response: &Response,
        req: &RequestInfo,
    ) -> Result<Outcome> {
        let mut fields = prompt_fields(stage, run);
        let mut errors = Vec::new();
        let mut password: Option<String> = None;
        for field in &mut fields {
            let raw = response.field(&field.field_key);
            if raw.chars().count() > MAX_PASSWORD {
                return Ok(invalid(
                    &field.field_key,
                    format!("Ensure this field has no more than {MAX_PASSWORD} characters."),
                ));
            }
            let value = if field.kind == "password" {
                raw.to_owned()
            } else {
                raw.trim().to_owned()
            };
            if value.is_empty() {
                if field.required {
                    errors.push(format!("{} is required.", field.label));
                }
                continue;
            }
            let check = match field.kind.as_str() {
                "email" => gatehouse_core::validate::email(&value),
                "username" => gatehouse_core::validate::username(&value),
                "password" => Ok(()),
                _ => gatehouse_core::validate::text(&value),
            };
            if let Err(message) = check {
                errors.push(format!("{}: {message}", field.label));
            }
            match field.field_key.as_str() {
                "password" => password = Some(value),
                "password_repeat" => {}
                _ => field.value = value,
            }
        }
        let repeat = response.field("password_repeat");
        if fields.iter().any(|f| f.field_key == "password_repeat")
            && password.as_deref().unwrap_or_default() != repeat
        {
            errors.push("The two passwords differ.".into());
        }
        if !errors.is_empty() {
            return Ok(Outcome::Show {
                challenge: Challenge::Prompt { fields },
                errors,
            });
        }
        for field in &fields {
            if field.kind != "password" && !field.value.is_empty() {
                run.prompt_data
                    .insert(field.field_key.clone(), Value::String(field.value.clone()));
            }
        }
        if let Some(password) = password {
            let hash = tokio::task::spawn_blocking(move || secret::hash_password(&password))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?
                .map_err(|e| Error::Internal(e.to_string()))?;
            run.prompt_data
                .insert("password_hash".into(), Value::String(hash));
        }
        run.index += 1;
        self.advance(conn, run, req).await
    }

    /// Creates (or updates) the pending user from the prompt data. `Some(outcome)` stops the
    /// flow there (a taken username sends the visitor back to the prompt).
    async fn write_user(
        &self,
        conn: &mut Conn,
        run: &mut FlowRun,
        stage: &PlannedStage,
        req: &RequestInfo,
    ) -> Result<Option<Outcome>> {
        let setting = |k: &str| {
            stage
                .settings
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let data = |k: &str| {
            run.prompt_data
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let mode = setting("user_creation_mode").unwrap_or_else(|| "always_create".into());
        let back_to_prompt = |run: &mut FlowRun, message: String| {
            let prompt = run.stages[..run.index]
                .iter()
                .rposition(|s| s.kind == StageKind::Prompt);
            let fields = match prompt {
                Some(i) => {
                    run.index = i;
                    prompt_fields(&run.stages[i], run)
                }
                None => Vec::new(),
            };
            if fields.is_empty() {
                Outcome::Denied { message }
            } else {
                Outcome::Show {
                    challenge: Challenge::Prompt { fields },
                    errors: vec![message],
                }
            }
        };
        if let (Some(id), false) = (
            run.pending_user.or(run.session_user),
            mode == "always_create",
        ) {
            let mut user = users::get(conn, id).await?;
            if let Some(name) = data("name") {
                user.fields.name = name;
            }
            if let Some(email) = data("email") {
                user.fields.email = email;
            }
            users::update(conn, id, &user.fields).await?;
            if let Some(hash) = data("password_hash") {
                users::set_password_hash(conn, id, Some(&hash)).await?;
            }
            return Ok(None);
        }
        if mode == "never_create" {
            return Ok(Some(Outcome::Denied {
                message: "This flow does not create accounts.".into(),
            }));
        }
        let Some(username) = data("username") else {
            return Err(Error::Config {
                what: format!("stage {}", stage.name),
                message: "a user_write stage that creates users needs a prompt field `username` before it".into(),
            });
        };
        if users::find_by_username(conn, &username).await?.is_some() {
            return Ok(Some(back_to_prompt(
                run,
                format!("The username `{username}` is already taken; choose another."),
            )));
        }
        let user_type = setting("user_type")
            .and_then(|t| t.parse().ok())
            .unwrap_or(gatehouse_core::kinds::UserType::Internal);
        let user = users::create(
            conn,
            &users::UserFields {
                name: data("name").unwrap_or_else(|| username.clone()),
                email: data("email").unwrap_or_default(),
                username: username.clone(),
                user_type,
                path: "users".into(),
                is_active: setting("create_users_as_inactive").is_none_or(|v| v != "true"),
                attributes: json!({}),
            },
        )
        .await?;
        if let Some(hash) = data("password_hash") {
            users::set_password_hash(conn, user.id, Some(&hash)).await?;
        }
        if let Some(group) = setting("create_users_group") {
            match gatehouse_store::groups::find_by_name(conn, &group).await? {
                Some(g) => gatehouse_store::groups::add_member(conn, g.id, user.id).await?,
                None => {
                    return Err(Error::Config {
                        what: format!("stage {}", stage.name),
                        message: format!("create_users_group `{group}` does not exist"),
                    })
                }
            }
        }
        run.prompt_data.remove("password_hash");
        run.pending_user = Some(user.id);
        run.identifier = Some(username);
        // Enrollment created the account just now: that is the authentication for the login.
        run.authenticated = true;
        audit(
            conn,
            "model_created",
            Some(&user),
            json!({"flow": run.slug, "stage": stage.name}),
            req,
        )
        .await?;
        Ok(None)
    }

    async fn check_password(
        &self,
        conn: &mut Conn,
        run: &mut FlowRun,
        response: &Response,
        req: &RequestInfo,
    ) -> Result<Outcome> {
        let identifier = run.identifier.clone().unwrap_or_default();
        let password = response.field("password").to_owned();
        let remember_me = remember_me_offset(run) > 0;
        let again = |errors: Vec<String>| Outcome::Show {
            challenge: Challenge::Password {
                identifier: identifier.clone(),
                remember_me,
            },
            errors,
        };
        if password.len() > MAX_PASSWORD {
            return Ok(invalid(
                "password",
                format!("Ensure this field has no more than {MAX_PASSWORD} characters."),
            ));
        }
        if password.is_empty() {
            return Ok(again(vec!["Enter your password.".into()]));
        }
        if let Err(wait) = self.throttle.attempt(&identifier, &req.ip) {
            return Ok(again(vec![format!(
                "Too many attempts. Try again in {} seconds.",
                wait.as_secs().max(1)
            )]));
        }
        let user = match run.pending_user {
            Some(id) => Some(users::get(conn, id).await?),
            None => None,
        };
        let stored = match &user {
            Some(u) => users::password_hash(conn, u.id).await?,
            None => None,
        };
        let hash = stored.clone().unwrap_or_else(|| dummy_hash().to_owned());
        let candidate = password.clone();
        let verified = tokio::task::spawn_blocking(move || {
            secret::verify_password(&candidate, &hash).unwrap_or(false)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        let ok = verified && stored.is_some() && user.as_ref().is_some_and(|u| u.fields.is_active);
        if !ok {
            reputation::record_failure(conn, &identifier, &req.ip, Utc::now()).await?;
            audit(
                conn,
                "login_failed",
                user.as_ref(),
                json!({"username": identifier, "stage": "password"}),
                req,
            )
            .await?;
            return Ok(again(vec![BAD_CREDENTIALS.into()]));
        }
        if let (Some(u), Some(old)) = (&user, &stored) {
            if secret::needs_rehash(old) {
                let rehashed =
                    tokio::task::spawn_blocking(move || secret::hash_password(&password))
                        .await
                        .map_err(|e| Error::Internal(e.to_string()))?
                        .map_err(|e| Error::Internal(e.to_string()))?;
                users::set_password_hash(conn, u.id, Some(&rehashed)).await?;
            }
        }
        reputation::record_success(conn, &identifier, &req.ip).await?;
        run.authenticated = true;
        run.remember_me = remember_me && response.field("remember_me") == "on";
        run.index += 1;
        self.advance(conn, run, req).await
    }

    async fn check_totp(
        &self,
        conn: &mut Conn,
        run: &mut FlowRun,
        response: &Response,
        req: &RequestInfo,
    ) -> Result<Outcome> {
        let code: String = response
            .field("code")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let retry = |message: &str| Outcome::Show {
            challenge: Challenge::Totp,
            errors: vec![message.to_owned()],
        };
        if code.len() > 16 {
            return Ok(invalid(
                "code",
                "Ensure this field has no more than 16 characters.",
            ));
        }
        let Some(user_id) = run.pending_user else {
            return Ok(Outcome::Denied {
                message: "No user to check a code for; start again.".into(),
            });
        };
        if let Err(wait) = self.throttle.attempt(&format!("totp:{user_id}"), &req.ip) {
            return Ok(retry(&format!(
                "Too many attempts. Try again in {} seconds.",
                wait.as_secs().max(1)
            )));
        }
        if code.contains('-')
            && devices::use_recovery_code(conn, user_id, &secret::token_hash(&code.to_lowercase()))
                .await?
        {
            let user = users::get(conn, user_id).await?;
            audit(conn, "recovery_code_used", Some(&user), json!({}), req).await?;
            run.index += 1;
            return self.advance(conn, run, req).await;
        }
        for device in devices::totp_of(conn, user_id).await? {
            let Ok(totp) = totp_for(&device.secret) else {
                continue;
            };
            if let Some(step) = totp.check_current(&code) {
                let step = i64::try_from(step).unwrap_or(i64::MAX);
                if devices::use_totp_step(conn, device.uuid, step).await? {
                    run.index += 1;
                    return self.advance(conn, run, req).await;
                }
            }
        }
        let user = users::get(conn, user_id).await.ok();
        reputation::record_failure(
            conn,
            run.identifier.as_deref().unwrap_or_default(),
            &req.ip,
            Utc::now(),
        )
        .await?;
        audit(
            conn,
            "login_failed",
            user.as_ref(),
            json!({"stage": "totp"}),
            req,
        )
        .await?;
        Ok(retry(BAD_CODE))
    }
}

/// The fields of a prompt stage with what was entered so far (passwords never shown again).
fn prompt_fields(stage: &PlannedStage, run: &FlowRun) -> Vec<PromptField> {
    let mut fields: Vec<PromptField> = stage
        .settings
        .get("fields")
        .and_then(|f| serde_json::from_value(f.clone()).ok())
        .unwrap_or_default();
    for field in &mut fields {
        if field.kind == "password" {
            field.value.clear();
        } else if let Some(v) = run
            .prompt_data
            .get(&field.field_key)
            .and_then(Value::as_str)
        {
            field.value = v.to_owned();
        }
    }
    fields
}

/// The remember-me offset of the flow's login stage, in seconds (0: no remember-me box).
fn remember_me_offset(run: &FlowRun) -> i64 {
    run.stages
        .iter()
        .filter(|s| s.kind == StageKind::UserLogin)
        .filter_map(|s| s.settings.get("remember_me_offset").and_then(Value::as_str))
        .filter_map(|d| d.parse::<gatehouse_core::Duration>().ok())
        .map(|d| d.seconds())
        .next()
        .unwrap_or(0)
}

/// A TOTP checker for a base32 secret (SHA1, 6 digits, 30 s, one step of skew).
pub fn totp_for(secret_b32: &str) -> std::result::Result<totp_rs::Totp, String> {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).map_err(|e| format!("{e:?}"))?;
    totp_rs::Builder::new()
        .with_secret(secret)
        .build()
        .map_err(|e| format!("{e:?}"))
}

fn show(challenge: Challenge) -> Outcome {
    Outcome::Show {
        challenge,
        errors: Vec::new(),
    }
}

fn invalid(field: &str, message: impl Into<String>) -> Outcome {
    Outcome::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

async fn audit(
    conn: &mut Conn,
    action: &str,
    user: Option<&users::User>,
    context: Value,
    req: &RequestInfo,
) -> Result<()> {
    let who = user
        .map(|u| json!({"pk": u.id, "username": u.fields.username, "email": u.fields.email}))
        .unwrap_or_else(|| json!({}));
    events::record(
        conn,
        action,
        "gatehouse.flow",
        who,
        context,
        Some(req.ip.clone()),
    )
    .await?;
    Ok(())
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
