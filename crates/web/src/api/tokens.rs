//! `core/tokens/`: API tokens. Keys are stored hashed, so the key is in the creation response
//! only (a deliberate difference from Authentik's `view_key`).

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::Json;
use chrono::{Duration, Utc};
use gatehouse_core::kinds::TokenIntent;
use gatehouse_core::{secret, validate};
use gatehouse_proto::core::{CreatedToken, Token, TokenRequest};
use gatehouse_store::{sql, tokens, users, Conn, Filter, ListSpec, Listed};

use super::resource::{remove, Operations, Resource};
use super::users::audit;
use super::validate::Errors;
use super::{Api, Reply};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{FilterKind, JsonBody, ListRules};
use crate::{AppState, Settings};
use gatehouse_store::SecretKey;

const RULES: ListRules = ListRules {
    filters: &[
        ("identifier", "identifier", FilterKind::Text),
        ("intent", "intent", FilterKind::Text),
        ("description", "description", FilterKind::Text),
        ("managed", "managed", FilterKind::Text),
    ],
    search: &["identifier", "description"],
    ordering: &[
        ("identifier", "identifier"),
        ("expires", "expires"),
        ("intent", "intent"),
    ],
    default_order: "identifier",
    relations: &[(
        "user__username",
        "user_id",
        "SELECT id FROM users WHERE username = $?",
    )],
};

pub(super) fn routes(mut api: Api) -> Api {
    let created = api.schema::<CreatedToken>();
    let request = api.schema::<TokenRequest>();
    api.resource::<tokens::Token>(
        "/core/tokens/",
        "/core/tokens/{identifier}/",
        "token",
        Operations::ReadOnly,
    )
    .op(
        Method::POST,
        "/core/tokens/",
        "Create a token; the response carries its key, shown only this once",
        create,
        Some(&request),
        Reply::Created(created),
    )
    .op(
        Method::DELETE,
        "/core/tokens/{identifier}/",
        "Revoke a token",
        remove::<tokens::Token>,
        None,
        Reply::Empty,
    )
}

async fn render(conn: &mut Conn, t: &tokens::Token) -> ApiResult<Token> {
    let user = users::get(conn, t.fields.user).await?;
    Ok(Token {
        pk: t.uuid,
        managed: t.fields.managed.clone(),
        identifier: t.fields.identifier.clone(),
        intent: t.fields.intent,
        user: t.fields.user,
        user_obj: super::users::render(conn, &user).await?,
        description: t.fields.description.clone(),
        expires: t.fields.expires,
        expiring: t.fields.expiring,
    })
}

async fn find(conn: &mut Conn, identifier: &str) -> ApiResult<tokens::Token> {
    tokens::find_by_identifier(conn, identifier)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("token with identifier `{identifier}`")))
}

impl Resource for tokens::Token {
    const MODEL: &'static str = "token";
    const RULES: ListRules = RULES;
    type Key = String;
    type Wire = Token;
    type Request = TokenRequest;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &String) -> ApiResult<Self> {
        find(conn, key).await
    }

    async fn list(
        conn: &mut Conn,
        _sealing: &SecretKey,
        spec: &ListSpec,
    ) -> ApiResult<Listed<Self>> {
        // Set-up links are recovery tokens; they are not the API's business.
        let mut spec = spec.clone();
        spec.filters.push(Filter::NotEquals(
            "identifier",
            crate::bootstrap::SETUP_TOKEN.into(),
        ));
        Ok(sql::list(conn, &spec).await?)
    }

    async fn render(
        &self,
        conn: &mut Conn,
        _sealing: &SecretKey,
        _settings: &Settings,
    ) -> ApiResult<Token> {
        render(conn, self).await
    }

    async fn write(
        _conn: &mut Conn,
        _sealing: &SecretKey,
        _admin: &Admin,
        _current: Option<Self>,
        _req: TokenRequest,
        _full: bool,
    ) -> ApiResult<Self> {
        Err(ApiError::field(
            "non_field_errors",
            "Tokens cannot be changed; revoke it and create a new one.",
        ))
    }

    async fn delete(self, conn: &mut Conn, admin: &Admin) -> ApiResult<()> {
        if self.uuid == admin.token.uuid {
            return Err(ApiError::field(
                "non_field_errors",
                "You cannot revoke the token you are calling with; use another token.",
            ));
        }
        Ok(tokens::delete(conn, self.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        (self.uuid.to_string(), self.fields.identifier.clone())
    }
}

/// Expiry of expiring tokens created without one, as in Authentik.
const DEFAULT_VALIDITY_MINUTES: i64 = 30;

async fn create(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(req): JsonBody<TokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let mut errors = Errors::default();
    let identifier = errors
        .require("identifier", req.identifier.clone())
        .unwrap_or_default();
    if !identifier.is_empty() {
        errors.check(
            "identifier",
            validate::slug(&identifier.to_lowercase()).map(|_| ()),
        );
        if identifier.len() > 255 {
            errors.add(
                "identifier",
                "Ensure this field has no more than 255 characters.",
            );
        }
    }
    if req.managed.is_some() {
        errors.add(
            "managed",
            "Only Gatehouse marks tokens as managed; leave this field out.",
        );
    }
    let description = req.description.clone().unwrap_or_default();
    errors.check("description", validate::text(&description));
    let expiring = req.expiring.unwrap_or(true);
    let expires = match req.expires {
        Some(Some(t)) => Some(t),
        _ if expiring => Some(Utc::now() + Duration::minutes(DEFAULT_VALIDITY_MINUTES)),
        _ => None,
    };
    if expiring && expires.is_some_and(|t| t <= Utc::now()) {
        errors.add("expires", "The expiry is in the past; choose a later time.");
    }
    errors.finish()?;
    let mut tx = state.store.begin().await?;
    let user = match req.user {
        Some(id) => match users::get(&mut tx, id).await {
            Err(gatehouse_store::Error::NotFound { .. }) => {
                return Err(ApiError::field(
                    "user",
                    format!("Invalid pk \"{id}\" - object does not exist."),
                ))
            }
            other => other?.id,
        },
        None => admin.user.id,
    };
    let key = secret::new_token();
    let t = tokens::create(
        &mut tx,
        &tokens::TokenFields {
            identifier,
            intent: req.intent.unwrap_or(TokenIntent::Api),
            user,
            description,
            expiring,
            expires: if expiring { expires } else { None },
            managed: None,
        },
        &key,
    )
    .await?;
    audit(
        &mut tx,
        &admin,
        "model_created",
        "token",
        t.uuid.to_string(),
        &t.fields.identifier,
    )
    .await?;
    let token = render(&mut tx, &t).await?;
    gatehouse_store::commit(tx).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, key })))
}
