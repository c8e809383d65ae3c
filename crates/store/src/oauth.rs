//! OAuth2 state: authorization codes (single use, stored hashed), remembered consents, signing
//! keys, and the issued access and refresh tokens. Every token remembers the IdP session it was
//! issued in: [`end_session_tokens`] (called by `sessions::revoke`) and [`end_user_tokens`]
//! (called where a password is set, a user deactivated or all their sessions revoked) end them,
//! so logout and credential changes reach the relying parties' refresh tokens too.

use chrono::{DateTime, Utc};
use gatehouse_core::secret;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sealed::{self, SIGNING_KEY};
use crate::sql::{self, RowExt};
use crate::{Result, SecretKey};

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
    /// When the session it came from authenticated (the ID token's `auth_time`).
    pub auth_time: Option<DateTime<Utc>>,
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
            ("auth_time", grant.auth_time.into()),
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

/// Forgets the consent of `user` for `application` (the RP asked with `prompt=consent`).
pub async fn forget_consent(conn: &mut AnyConnection, user: i64, application: Uuid) -> Result<()> {
    sql::execute(
        conn,
        "DELETE FROM consents WHERE user_id = $1 AND application_uuid = $2",
        vec![user.into(), application.into()],
    )
    .await?;
    Ok(())
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

/// A signing key.
#[derive(Debug, Clone, PartialEq)]
pub struct SigningKey {
    /// Key id (`kid`).
    pub kid: String,
    /// `ES256` or `RS256`.
    pub algorithm: String,
    /// PKCS#8 PEM of the private key (sealed at rest, plain here).
    pub private_pem: String,
    /// The public key as a JWK (JSON).
    pub public_jwk: serde_json::Value,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// When it stopped signing, if it did.
    pub retired: Option<DateTime<Utc>>,
    /// Until when a retired key stays in the JWKS (its last tokens expire by then).
    pub published_until: Option<DateTime<Utc>>,
}

fn signing_key(key: &SecretKey, row: &sqlx::any::AnyRow) -> Result<SigningKey> {
    let kid = row.text("kid")?;
    let private_pem = sealed::open(key, SIGNING_KEY, &kid, &row.text("private_pem")?)?;
    Ok(SigningKey {
        kid,
        algorithm: row.text("algorithm")?,
        private_pem,
        public_jwk: row.json("public_jwk")?,
        created: row.ts("created")?,
        retired: row.opt_ts("retired")?,
        published_until: row.opt_ts("published_until")?,
    })
}

/// Keys that sign now (not retired), newest first.
pub async fn active_keys(
    conn: &mut AnyConnection,
    key: &SecretKey,
    algorithm: &str,
) -> Result<Vec<SigningKey>> {
    sql::fetch_all(
        conn,
        "SELECT * FROM signing_keys WHERE retired IS NULL AND algorithm = $1 ORDER BY created DESC",
        vec![algorithm.into()],
    )
    .await?
    .iter()
    .map(|row| signing_key(key, row))
    .collect()
}

/// Keys to publish at `now`: active ones and retired ones whose tokens may still be alive.
pub async fn published_keys(
    conn: &mut AnyConnection,
    key: &SecretKey,
    now: DateTime<Utc>,
) -> Result<Vec<SigningKey>> {
    sql::fetch_all(
        conn,
        "SELECT * FROM signing_keys WHERE retired IS NULL OR published_until > $1 ORDER BY created DESC",
        vec![now.into()],
    )
    .await?
    .iter()
    .map(|row| signing_key(key, row))
    .collect()
}

/// Every key ever made, newest first (for the operator's listing).
pub async fn all_keys(conn: &mut AnyConnection, key: &SecretKey) -> Result<Vec<SigningKey>> {
    sql::fetch_all(
        conn,
        "SELECT * FROM signing_keys ORDER BY created DESC",
        Vec::new(),
    )
    .await?
    .iter()
    .map(|row| signing_key(key, row))
    .collect()
}

/// A signing key without its private half, for listings (`crypto/certificatekeypairs/`).
#[derive(Debug, Clone, PartialEq)]
pub struct PublicKey {
    /// Key id (`kid`).
    pub kid: String,
    /// `ES256` or `RS256`.
    pub algorithm: String,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// When it stopped signing, if it did.
    pub retired: Option<DateTime<Utc>>,
}

impl PublicKey {
    /// A stable UUID for the key: the API names key pairs by UUID, Gatehouse by `kid`.
    pub fn uuid(&self) -> uuid::Uuid {
        const NAMESPACE: uuid::Uuid =
            uuid::Uuid::from_u128(0x6761_7465_686f_7573_652d_6b65_7973_0001);
        uuid::Uuid::new_v5(&NAMESPACE, self.kid.as_bytes())
    }
}

impl sql::Entity for PublicKey {
    const WHAT: &'static str = "signing key";
    const SELECT: &'static str = "SELECT kid, algorithm, created, retired FROM signing_keys";
    const KEY: &'static str = "kid";

    fn from_row(row: &sqlx::any::AnyRow) -> Result<Self> {
        Ok(PublicKey {
            kid: row.text("kid")?,
            algorithm: row.text("algorithm")?,
            created: row.ts("created")?,
            retired: row.opt_ts("retired")?,
        })
    }
}

/// Retires the active keys of `algorithm`, keeping them published until `published_until`;
/// returns how many were retired.
pub async fn retire_keys(
    conn: &mut AnyConnection,
    algorithm: &str,
    published_until: DateTime<Utc>,
) -> Result<u64> {
    sql::execute(
        conn,
        "UPDATE signing_keys SET retired = $1, published_until = $2 WHERE retired IS NULL AND algorithm = $3",
        vec![sql::now().into(), published_until.into(), algorithm.into()],
    )
    .await
}

/// Stores a new signing key.
pub async fn add_key(
    conn: &mut AnyConnection,
    key: &SecretKey,
    kid: &str,
    algorithm: &str,
    private_pem: &str,
    public_jwk: &serde_json::Value,
) -> Result<()> {
    sql::insert(
        conn,
        "signing_keys",
        vec![
            ("kid", kid.into()),
            ("algorithm", algorithm.into()),
            (
                "private_pem",
                sealed::seal(key, SIGNING_KEY, kid, private_pem)?.into(),
            ),
            ("public_jwk", public_jwk.into()),
            ("created", sql::now().into()),
        ],
        None,
    )
    .await?;
    Ok(())
}

/// Marks an authorization code used; returns the grant when it was valid and unused, `Err`
/// with the grant's hash when it had been used before (a replay).
pub async fn redeem_code(
    conn: &mut AnyConnection,
    code: &str,
    now: DateTime<Utc>,
) -> Result<Redeemed> {
    let hash = secret::token_hash(code);
    let row = sql::fetch_optional(
        conn,
        "SELECT * FROM authorization_codes WHERE code_hash = $1",
        vec![hash.clone().into()],
    )
    .await?;
    let Some(row) = row else {
        return Ok(Redeemed::Unknown);
    };
    let grant = CodeGrant {
        provider: row.int("provider_id")?,
        user: row.int("user_id")?,
        session: row.opt_uuid("session_uuid")?,
        redirect_uri: row.text("redirect_uri")?,
        scope: row.text("scope")?,
        nonce: row.text("nonce")?,
        code_challenge: row.text("code_challenge")?,
        code_challenge_method: row.text("code_challenge_method")?,
        expires: row.ts("expires")?,
        auth_time: row.opt_ts("auth_time")?,
    };
    let claimed = sql::execute(
        conn,
        "UPDATE authorization_codes SET used = $1 WHERE code_hash = $2 AND used = $3",
        vec![true.into(), hash.clone().into(), false.into()],
    )
    .await?;
    if claimed == 0 {
        return Ok(Redeemed::Replayed { code_hash: hash });
    }
    if grant.expires <= now {
        return Ok(Redeemed::Expired);
    }
    Ok(Redeemed::Valid {
        grant,
        code_hash: hash,
    })
}

/// The outcome of redeeming an authorization code.
#[derive(Debug, Clone, PartialEq)]
pub enum Redeemed {
    /// First use, in time.
    Valid {
        /// What it grants.
        grant: CodeGrant,
        /// Its hash, to link the tokens issued from it.
        code_hash: String,
    },
    /// No such code.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Used before: tokens issued from it must be revoked.
    Replayed {
        /// Its hash.
        code_hash: String,
    },
}

/// Revokes every token issued from the code with hash `code_hash`, and their refresh families.
pub async fn revoke_from_code(conn: &mut AnyConnection, code_hash: &str) -> Result<()> {
    sql::execute(
        conn,
        "UPDATE access_tokens SET revoked = $1 WHERE code_hash = $2",
        vec![true.into(), code_hash.into()],
    )
    .await?;
    sql::execute(
        conn,
        "UPDATE refresh_tokens SET revoked = $1 WHERE family IN (SELECT family FROM refresh_tokens WHERE code_hash = $2)",
        vec![true.into(), code_hash.into()],
    )
    .await?;
    Ok(())
}

/// What every token of one issuance shares: whom it was issued to, in which IdP session, for
/// what, and from which authorization code.
#[derive(Debug, Clone, Copy)]
pub struct Issued<'a> {
    /// The provider (client).
    pub provider: i64,
    /// The user; `None` for client credentials.
    pub user: Option<i64>,
    /// The IdP session the grant came from; ending it ends the tokens.
    pub session: Option<Uuid>,
    /// Granted scopes, space-separated.
    pub scope: &'a str,
    /// The authorization code they come from, so a replay of it can revoke them.
    pub code_hash: Option<&'a str>,
}

/// Records an issued access token.
pub async fn record_access_token(
    conn: &mut AnyConnection,
    jti: &str,
    issued: Issued<'_>,
    expires: DateTime<Utc>,
) -> Result<()> {
    sql::insert(
        conn,
        "access_tokens",
        vec![
            ("jti", jti.into()),
            ("provider_id", issued.provider.into()),
            ("user_id", issued.user.into()),
            ("session_uuid", issued.session.into()),
            ("scope", issued.scope.into()),
            ("code_hash", issued.code_hash.map(str::to_owned).into()),
            ("created", sql::now().into()),
            ("expires", expires.into()),
            ("revoked", false.into()),
        ],
        None,
    )
    .await?;
    Ok(())
}

/// Whether access token `jti` is known and not revoked.
pub async fn access_token_live(conn: &mut AnyConnection, jti: &str) -> Result<bool> {
    let row = sql::fetch_optional(
        conn,
        "SELECT revoked FROM access_tokens WHERE jti = $1",
        vec![jti.into()],
    )
    .await?;
    Ok(match row {
        Some(r) => !r.flag("revoked")?,
        None => false,
    })
}

/// Revokes access token `jti` (no-op when unknown).
pub async fn revoke_access_token(conn: &mut AnyConnection, jti: &str) -> Result<()> {
    sql::execute(
        conn,
        "UPDATE access_tokens SET revoked = $1 WHERE jti = $2",
        vec![true.into(), jti.into()],
    )
    .await?;
    Ok(())
}

/// A stored refresh token.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    /// Rotation family.
    pub family: Uuid,
    /// Provider.
    pub provider: i64,
    /// User.
    pub user: i64,
    /// The IdP session the family started in (carried through rotations).
    pub session: Option<Uuid>,
    /// When that session authenticated.
    pub auth_time: Option<DateTime<Utc>>,
    /// Scopes.
    pub scope: String,
    /// Nonce of the original authorization.
    pub nonce: String,
    /// Expiry.
    pub expires: DateTime<Utc>,
    /// Rotated away already.
    pub used: bool,
    /// Revoked.
    pub revoked: bool,
}

/// A refresh token to store: its family, the issuance it belongs to and the family's facts.
#[derive(Debug, Clone, Copy)]
pub struct NewRefresh<'a> {
    /// The family it starts or continues.
    pub family: Uuid,
    /// Whom and what it was issued for (`user` is required).
    pub issued: Issued<'a>,
    /// Nonce of the original authorization.
    pub nonce: &'a str,
    /// When the session authenticated.
    pub auth_time: Option<DateTime<Utc>>,
    /// Expiry.
    pub expires: DateTime<Utc>,
}

/// Stores a refresh token (by hash).
pub async fn add_refresh_token(
    conn: &mut AnyConnection,
    token: &str,
    new: NewRefresh<'_>,
) -> Result<()> {
    sql::insert(
        conn,
        "refresh_tokens",
        vec![
            ("token_hash", secret::token_hash(token).into()),
            ("family", new.family.into()),
            ("provider_id", new.issued.provider.into()),
            ("user_id", new.issued.user.into()),
            ("session_uuid", new.issued.session.into()),
            ("auth_time", new.auth_time.into()),
            ("scope", new.issued.scope.into()),
            ("nonce", new.nonce.into()),
            ("code_hash", new.issued.code_hash.map(str::to_owned).into()),
            ("created", sql::now().into()),
            ("expires", new.expires.into()),
            ("used", false.into()),
            ("revoked", false.into()),
        ],
        None,
    )
    .await?;
    Ok(())
}

/// The refresh token `token`, if known.
pub async fn find_refresh_token(
    conn: &mut AnyConnection,
    token: &str,
) -> Result<Option<RefreshToken>> {
    let row = sql::fetch_optional(
        conn,
        "SELECT * FROM refresh_tokens WHERE token_hash = $1",
        vec![secret::token_hash(token).into()],
    )
    .await?;
    row.map(|r| {
        Ok(RefreshToken {
            family: r.uuid("family")?,
            provider: r.int("provider_id")?,
            user: r.int("user_id")?,
            session: r.opt_uuid("session_uuid")?,
            auth_time: r.opt_ts("auth_time")?,
            scope: r.text("scope")?,
            nonce: r.text("nonce")?,
            expires: r.ts("expires")?,
            used: r.flag("used")?,
            revoked: r.flag("revoked")?,
        })
    })
    .transpose()
}
/// Marks refresh token `token` rotated; false when it already was (a reuse) or its family has
/// been revoked meanwhile.
pub async fn rotate_refresh_token(conn: &mut AnyConnection, token: &str) -> Result<bool> {
    let changed = sql::execute(
        conn,
        "UPDATE refresh_tokens SET used = $1 WHERE token_hash = $2 AND used = $3 AND revoked = $3",
        vec![true.into(), secret::token_hash(token).into(), false.into()],
    )
    .await?;
    Ok(changed > 0)
}

/// Revokes a whole refresh family (reuse detected, or the RP revoked one of its tokens).
pub async fn revoke_family(conn: &mut AnyConnection, family: Uuid) -> Result<()> {
    sql::execute(
        conn,
        "UPDATE refresh_tokens SET revoked = $1 WHERE family = $2",
        vec![true.into(), family.into()],
    )
    .await?;
    Ok(())
}

/// Ends the tokens issued in IdP session `session`: its access tokens and the refresh families
/// that started in it (offline ones too: the session was ended on purpose, not by expiry).
pub async fn end_session_tokens(conn: &mut AnyConnection, session: Uuid) -> Result<()> {
    end_tokens_where(conn, "session_uuid", session.into()).await
}

/// Ends every token of `user`, whatever session it came from: their password changed, they
/// were deactivated, or all their sessions were revoked.
pub async fn end_user_tokens(conn: &mut AnyConnection, user: i64) -> Result<()> {
    end_tokens_where(conn, "user_id", user.into()).await
}

async fn end_tokens_where(
    conn: &mut AnyConnection,
    column: &'static str,
    value: sql::Value,
) -> Result<()> {
    for table in ["access_tokens", "refresh_tokens"] {
        sql::execute(
            conn,
            &format!("UPDATE {table} SET revoked = $1 WHERE {column} = $2 AND revoked = $3"),
            vec![true.into(), value.clone(), false.into()],
        )
        .await?;
    }
    Ok(())
}
