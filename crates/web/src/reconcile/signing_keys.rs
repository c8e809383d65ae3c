//! `signing_keys:`: token-signing key pairs carried over from another identity provider, so
//! tokens it issued keep verifying and relying parties that pinned its key notice nothing. A key
//! is added once, under the `kid` its tokens carry, and becomes the key that signs for its
//! algorithm; the key it replaces stays published until every token it signed has expired,
//! exactly as a rotation leaves it. Servers pick the new key up when they next reload their
//! keys (within ten seconds, or at once for a token that names it).

use gatehouse_declarative::diff::SENSITIVE;
use gatehouse_declarative::document::SigningKeyEntry;
use gatehouse_proto::declarative::{ConfigChange, FieldChange};
use gatehouse_store::{oauth, sql};
use serde_json::{json, Value};

use super::{Failure, Run};

/// Adds the key of `entry` unless a key with its `kid` is already there.
pub(super) async fn signing_key(run: &mut Run<'_>, entry: &SigningKeyEntry) -> Result<(), Failure> {
    let key = entry.name.as_str();
    let pem = entry.private_key.value.as_deref().unwrap_or_default();
    let kid = match entry.kid.as_deref().filter(|k| !k.is_empty()) {
        Some(kid) => kid.to_owned(),
        None => gatehouse_core::secret::token_hash(pem)[..16].to_owned(),
    };
    if kid.len() > 128 || kid.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(run.invalid(
            "signing_keys",
            key,
            Some("kid"),
            "must be 1 to 128 printable ASCII characters",
        ));
    }
    let (algorithm, pkcs8, jwk) = gatehouse_oidc::keys::carried_key(pem, &kid).map_err(|e| {
        run.invalid(
            "signing_keys",
            key,
            Some("private_key"),
            format!("the key {e}"),
        )
    })?;
    let present = sql::fetch_optional(
        run.conn,
        "SELECT kid FROM signing_keys WHERE kid = $1",
        vec![kid.clone().into()],
    )
    .await?;
    if present.is_some() {
        return Ok(());
    }
    let until = crate::api::keys::retired_key_published_until(run.conn)
        .await
        .map_err(Failure::Server)?;
    oauth::retire_keys(run.conn, algorithm.as_str(), until).await?;
    oauth::add_key(
        run.conn,
        run.sealing,
        &kid,
        algorithm.as_str(),
        &pkcs8,
        &jwk,
    )
    .await?;
    let field = |name: &str, new: Value| FieldChange {
        field: name.into(),
        old: Value::Null,
        new,
    };
    run.outcome.changes.push(ConfigChange {
        action: "create".into(),
        kind: "signing_key".into(),
        key: key.into(),
        fields: vec![
            field("kid", json!(kid)),
            field("algorithm", json!(algorithm.as_str())),
            field("private_key", json!(SENSITIVE)),
        ],
    });
    Ok(())
}
