//! First start: an empty database gets the superuser group `Admins`, the user `admin`, the
//! default flows with Authentik's slugs, and the embedded outpost. Later starts only make sure an
//! admin who has neither password nor token can still get in, through a one-time set-up link.

use chrono::{Duration, Utc};
use gatehouse_core::kinds::{
    DeniedAction, FlowAuthentication, FlowDesignation, FlowLayout, OutpostType, PolicyEngineMode,
    StageKind, TokenIntent, UserType,
};
use gatehouse_core::secret;
use gatehouse_store::{flows, groups, outposts, sql, tokens, users, Conn, Store};
use serde_json::json;

/// Settings read from `GATEHOUSE_BOOTSTRAP_*`.
#[derive(Debug, Clone, Default)]
pub struct BootstrapSettings {
    /// Password for `admin`.
    pub password: Option<String>,
    /// API token value for `admin` (created with exactly this key).
    pub token: Option<String>,
    /// Email for `admin`.
    pub email: Option<String>,
}

/// The shortest `GATEHOUSE_BOOTSTRAP_TOKEN` accepted: it is an admin API key, so it must be at
/// least as hard to guess as the 32-byte keys Gatehouse makes itself.
pub const MIN_TOKEN_CHARS: usize = 32;

impl BootstrapSettings {
    /// Refuses a bootstrap token too short to be a secret, naming the fix.
    pub fn check(&self) -> Result<(), String> {
        match &self.token {
            Some(token) if token.chars().count() < MIN_TOKEN_CHARS => Err(format!(
                "GATEHOUSE_BOOTSTRAP_TOKEN has {} characters; it must have at least {MIN_TOKEN_CHARS}. \
                 Make one with `openssl rand -hex 32`.",
                token.chars().count()
            )),
            _ => Ok(()),
        }
    }
}

/// What start-up should tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The database was empty and has been seeded.
    Seeded,
    /// The database already had data.
    Existing,
}

/// Name of the superuser group.
pub const ADMINS: &str = "Admins";
/// Username of the first admin.
pub const ADMIN: &str = "admin";
/// Identifier of the one-time set-up token.
pub const SETUP_TOKEN: &str = "initial-setup";
/// How long a set-up link stays valid.
pub const SETUP_VALIDITY_HOURS: i64 = 24;

/// Seeds an empty database in one transaction; returns what happened.
pub async fn run(store: &Store, settings: &BootstrapSettings) -> gatehouse_store::Result<Outcome> {
    let mut tx = store.begin().await?;
    if users::count(&mut tx).await? > 0 {
        return Ok(Outcome::Existing);
    }
    let admins = groups::create(
        &mut tx,
        &groups::GroupFields {
            name: ADMINS.into(),
            is_superuser: true,
            attributes: json!({}),
        },
    )
    .await?;
    let admin = users::create(
        &mut tx,
        &users::UserFields {
            username: ADMIN.into(),
            name: "Default Admin".into(),
            email: settings.email.clone().unwrap_or_default(),
            user_type: UserType::Internal,
            path: "users".into(),
            is_active: true,
            attributes: json!({}),
        },
    )
    .await?;
    groups::add_member(&mut tx, admins.id, admin.id).await?;
    if let Some(password) = &settings.password {
        let hash = secret::hash_password(password)
            .map_err(|e| gatehouse_store::Error::Corrupt(e.to_string()))?;
        users::set_password_hash(&mut tx, admin.id, Some(&hash)).await?;
    }
    if let Some(token) = &settings.token {
        tokens::create(
            &mut tx,
            &tokens::TokenFields {
                identifier: "bootstrap-token".into(),
                intent: TokenIntent::Api,
                user: admin.id,
                description: "Created from GATEHOUSE_BOOTSTRAP_TOKEN".into(),
                expiring: false,
                expires: None,
                managed: Some("goauthentik.io/bootstrap-token".into()),
            },
            token,
        )
        .await?;
    }
    default_flows(&mut tx).await?;
    outposts::create(
        &mut tx,
        &outposts::OutpostFields {
            name: "gatehouse Embedded Outpost".into(),
            outpost_type: OutpostType::Proxy,
            config: json!({}),
            managed: Some(outposts::EMBEDDED.into()),
            providers: Vec::new(),
        },
    )
    .await?;
    gatehouse_store::commit(tx).await?;
    Ok(Outcome::Seeded)
}

/// A fresh one-time set-up link when `admin` can neither log in nor call the API; `None` when it
/// can. Older set-up links stop working.
pub async fn setup_link(
    store: &Store,
    external_url: &str,
) -> gatehouse_store::Result<Option<String>> {
    let mut tx = store.begin().await?;
    let Some(admin) = users::find_by_username(&mut tx, ADMIN).await? else {
        return Ok(None);
    };
    let has_api_token = !sql::fetch_all(
        &mut tx,
        "SELECT uuid FROM tokens WHERE user_id = $1 AND intent = $2",
        vec![admin.id.into(), TokenIntent::Api.as_str().into()],
    )
    .await?
    .is_empty();
    if admin.has_password || has_api_token {
        return Ok(None);
    }
    if let Some(old) = tokens::find_by_identifier(&mut tx, SETUP_TOKEN).await? {
        tokens::delete(&mut tx, old.uuid).await?;
    }
    let key = secret::new_token();
    tokens::create(
        &mut tx,
        &tokens::TokenFields {
            identifier: SETUP_TOKEN.into(),
            intent: TokenIntent::Recovery,
            user: admin.id,
            description: "One-time initial set-up link".into(),
            expiring: true,
            expires: Some(Utc::now() + Duration::hours(SETUP_VALIDITY_HOURS)),
            managed: Some("gatehouse/initial-setup".into()),
        },
        &key,
    )
    .await?;
    gatehouse_store::commit(tx).await?;
    Ok(Some(format!(
        "{external_url}/if/flow/initial-setup/?token={key}"
    )))
}

/// The stages of the default flows, as (name, kind, settings).
const STAGES: &[(&str, StageKind, &str)] = &[
    (
        "default-authentication-identification",
        StageKind::Identification,
        r#"{"user_fields": ["username", "email"]}"#,
    ),
    ("default-authentication-password", StageKind::Password, "{}"),
    (
        "default-authentication-mfa-validation",
        StageKind::Totp,
        r#"{"not_configured_action": "skip"}"#,
    ),
    (
        "default-authentication-login",
        StageKind::UserLogin,
        r#"{"session_duration": "seconds=0"}"#,
    ),
    ("default-invalidation-logout", StageKind::UserLogout, "{}"),
    (
        "default-provider-authorization-consent",
        StageKind::Consent,
        r#"{"mode": "always_require"}"#,
    ),
];

/// The default flows: (slug, title, designation, authentication requirement, stage names).
const FLOWS: &[(&str, &str, FlowDesignation, FlowAuthentication, &[&str])] = &[
    (
        "default-authentication-flow",
        "Welcome to Gatehouse!",
        FlowDesignation::Authentication,
        FlowAuthentication::None,
        &[
            "default-authentication-identification",
            "default-authentication-password",
            "default-authentication-mfa-validation",
            "default-authentication-login",
        ],
    ),
    (
        "default-invalidation-flow",
        "Log out",
        FlowDesignation::Invalidation,
        FlowAuthentication::None,
        &["default-invalidation-logout"],
    ),
    (
        "default-provider-authorization-explicit-consent",
        "Redirecting to %(app)s",
        FlowDesignation::Authorization,
        FlowAuthentication::RequireAuthenticated,
        &["default-provider-authorization-consent"],
    ),
    (
        "default-provider-authorization-implicit-consent",
        "Redirecting to %(app)s",
        FlowDesignation::Authorization,
        FlowAuthentication::RequireAuthenticated,
        &[],
    ),
    (
        "default-provider-invalidation-flow",
        "Logged out of %(app)s",
        FlowDesignation::Invalidation,
        FlowAuthentication::None,
        &[],
    ),
    (
        "default-user-settings-flow",
        "Update your info",
        FlowDesignation::StageConfiguration,
        FlowAuthentication::RequireAuthenticated,
        &[],
    ),
];

async fn default_flows(conn: &mut Conn) -> gatehouse_store::Result<()> {
    let mut stage_ids = std::collections::HashMap::new();
    for (name, kind, settings) in STAGES {
        let stage = flows::create_stage(
            conn,
            &flows::StageFields {
                name: (*name).into(),
                kind: *kind,
                settings: serde_json::from_str(settings).unwrap_or_else(|_| json!({})),
            },
        )
        .await?;
        stage_ids.insert(*name, stage.uuid);
    }
    for (slug, title, designation, authentication, stages) in FLOWS {
        let flow = flows::create(
            conn,
            &flows::FlowFields {
                slug: (*slug).into(),
                name: (*slug).replace('-', " "),
                title: (*title).into(),
                designation: *designation,
                authentication: *authentication,
                policy_engine_mode: PolicyEngineMode::Any,
                layout: FlowLayout::Stacked,
                denied_action: DeniedAction::MessageContinue,
                compatibility_mode: false,
                background: String::new(),
            },
        )
        .await?;
        for (order, stage) in (10i64..).step_by(10).zip(stages.iter()) {
            if let Some(uuid) = stage_ids.get(stage) {
                flows::bind_stage(conn, flow.uuid, *uuid, order).await?;
            }
        }
    }
    Ok(())
}
