//! OAuth2 state: authorization codes (single use, stored hashed) and remembered consents.

use chrono::{DateTime, Utc};
use gatehouse_core::secret;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, RowExt};
use crate::Result;

/// What an authorization code stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeGrant {
    /// The provider (client) it was issued to.
    pub provider: i64,
    /// The user who authorised.
    pub user: i64,
    /// The IdP session it came from.
    pub session: Option<Uuid>,
    /// The redirect URI it was sent to (must be repeated at the token endpoint).
    pub redirect_uri: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The RP's nonce, echoed in the ID token.
    pub nonce: String,
    /// PKCE challenge.
    pub code_challenge: String,
    /// PKCE method (`S256`).
    pub code_challenge_method: String,
    /// Expiry.
    pub expires: DateTime<Utc>,
}

/// Stores a new authorization code for `grant`.
pub async fn create_code(conn: &mut AnyConnection, code: &str, grant: &CodeGrant) -> Result<()> {
    sql::insert(
        conn,
        "authorization_codes",
        vec![
            ("code_hash", secret::token_hash(code).into()),
            ("provider_id", grant.provider.into()),
            ("user_id", grant.user.into()),
            ("session_uuid", grant.session.into()),
            ("redirect_uri", grant.redirect_uri.clone().into()),
            ("scope", grant.scope.clone().into()),
            ("nonce", grant.nonce.clone().into()),
            ("code_challenge", grant.code_challenge.clone().into()),
            (
                "code_challenge_method",
                grant.code_challenge_method.clone().into(),
            ),
            ("created", sql::now().into()),
            ("expires", grant.expires.into()),
            ("used", false.into()),
        ],
        None,
    )
    .await?;
    Ok(())
}

/// The scopes `user` already consented to for `application`, if any.
pub async fn consented_scopes(
    conn: &mut AnyConnection,
    user: i64,
    application: Uuid,
) -> Result<Option<Vec<String>>> {
    let row = sql::fetch_optional(
        conn,
        "SELECT scopes FROM consents WHERE user_id = $1 AND application_uuid = $2",
        vec![user.into(), application.into()],
    )
    .await?;
    Ok(row
        .map(|r| r.text("scopes"))
        .transpose()?
        .map(|s| s.split_whitespace().map(str::to_owned).collect()))
}

/// Remembers that `user` consented to `scopes` for `application`.
pub async fn remember_consent(
    conn: &mut AnyConnection,
    user: i64,
    application: Uuid,
    scopes: &[String],
) -> Result<()> {
    sql::execute(
        conn,
        "DELETE FROM consents WHERE user_id = $1 AND application_uuid = $2",
        vec![user.into(), application.into()],
    )
    .await?;
    sql::insert(
        conn,
        "consents",
        vec![
            ("user_id", user.into()),
            ("application_uuid", application.into()),
            ("scopes", scopes.join(" ").into()),
            ("created", sql::now().into()),
        ],
        None,
    )
    .await?;
    Ok(())
}
