//! What a token says about a user: the `sub` under the provider's subject mode, the claims of
//! the built-in scopes (profile, email, groups), then those of the provider's scope mappings
//! (CEL expressions run by the flow crate's policy engine, bounded in time). Used for ID and
//! access tokens, userinfo, and the outpost's headers.

use gatehouse_core::kinds::SubMode;
use gatehouse_core::secret;
use gatehouse_store::scope_mappings::ScopeMapping;
use gatehouse_store::{groups, users, Conn};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The stable opaque id of a user (Authentik's `uid`, the default OIDC `sub`): a hash of their
/// uuid, revealing neither the database id nor the username. The API shows it too.
pub fn uid(user: &users::User) -> String {
    secret::token_hash(&format!("gatehouse-user:{}", user.uuid))
}

/// The `sub` of `user` under the provider's subject mode.
pub fn subject(user: &users::User, mode: SubMode) -> String {
    match mode {
        SubMode::HashedUserId => uid(user),
        SubMode::UserId => user.id.to_string(),
        SubMode::UserUuid => user.uuid.to_string(),
        SubMode::UserUsername => user.fields.username.clone(),
        SubMode::UserEmail => user.fields.email.clone(),
        SubMode::UserUpn => user.fields.attributes["upn"]
            .as_str()
            .unwrap_or(&user.fields.email)
            .to_owned(),
    }
}

/// Claims a scope mapping may not set: they describe the token, not the user.
const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "nonce",
    "auth_time",
    "azp",
    "scope",
    "at_hash",
];

/// How long one scope mapping's expression may run.
const MAPPING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The claims `scopes` allow about `user`: the built-in ones, then those of the provider's
/// scope `mappings` whose scope was granted. A mapping that fails is logged and skipped; it
/// never blocks the login.
pub async fn user_claims(
    conn: &mut Conn,
    user: &users::User,
    scopes: &[&str],
    mode: SubMode,
    mappings: &[ScopeMapping],
) -> Result<Map<String, Value>> {
    let mut claims = builtin_claims(conn, user, scopes, mode).await?;
    let granted: Vec<&ScopeMapping> = mappings
        .iter()
        .filter(|m| scopes.contains(&m.fields.scope_name.as_str()))
        .collect();
    if granted.is_empty() {
        return Ok(claims);
    }
    let variable = gatehouse_flow::policy::user_variable(conn, user)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    for mapping in granted {
        let (expression, user_var) = (mapping.fields.expression.clone(), variable.clone());
        let scope_list: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let outcome = tokio::time::timeout(
            MAPPING_TIMEOUT,
            tokio::task::spawn_blocking(move || {
                gatehouse_flow::policy::run_claims(&expression, user_var, Value::from(scope_list))
            }),
        )
        .await;
        match outcome {
            Ok(Ok(Ok(mapped))) => {
                for (name, value) in mapped {
                    if RESERVED_CLAIMS.contains(&name.as_str()) {
                        tracing::warn!(mapping = %mapping.fields.name, claim = %name, "a scope mapping may not set this claim; it is ignored");
                    } else {
                        claims.insert(name, value);
                    }
                }
            }
            Ok(Ok(Err(e))) => {
                tracing::warn!(mapping = %mapping.fields.name, error = %e, "scope mapping failed; its claims are left out")
            }
            Ok(Err(e)) => {
                tracing::warn!(mapping = %mapping.fields.name, error = %e, "scope mapping panicked; its claims are left out")
            }
            Err(_) => {
                tracing::warn!(mapping = %mapping.fields.name, "scope mapping ran out of time; its claims are left out")
            }
        }
    }
    Ok(claims)
}

/// The claims of the built-in scopes.
async fn builtin_claims(
    conn: &mut Conn,
    user: &users::User,
    scopes: &[&str],
    mode: SubMode,
) -> Result<Map<String, Value>> {
    let mut claims = Map::new();
    claims.insert("sub".into(), subject(user, mode).into());
    if scopes.contains(&"profile") {
        claims.insert(
            "preferred_username".into(),
            user.fields.username.clone().into(),
        );
        claims.insert("nickname".into(), user.fields.username.clone().into());
        claims.insert("name".into(), user.fields.name.clone().into());
    }
    if scopes.contains(&"email") {
        claims.insert("email".into(), user.fields.email.clone().into());
        claims.insert(
            "email_verified".into(),
            (!user.fields.email.is_empty()).into(),
        );
    }
    if scopes.contains(&"groups") {
        let names: Vec<String> = groups::effective_of_user(conn, user.id)
            .await?
            .into_iter()
            .map(|g| g.fields.name)
            .collect();
        claims.insert("groups".into(), names.into());
    }
    Ok(claims)
}
