//! `credentials:`: sign-in factors carried over from another identity provider
//! (`gatehouse import authentik --database` writes them). They are seeded once: a password hash
//! is set only while the user has no password, a TOTP device only while the user has none of
//! that name, so a login that rehashes the password or moves the device's step never shows up
//! as drift and applying twice plans nothing.

use gatehouse_declarative::diff::SENSITIVE;
use gatehouse_declarative::document::CredentialEntry;
use gatehouse_proto::declarative::{ConfigChange, FieldChange};
use gatehouse_store::{devices, users};
use serde_json::{json, Value};

use super::{Failure, Run};

/// Seeds what `entry` carries that the user does not have yet.
pub(super) async fn credential(run: &mut Run<'_>, entry: &CredentialEntry) -> Result<(), Failure> {
    let key = entry.user.as_str();
    let Some(user) = users::find_by_username(run.conn, key).await? else {
        return Err(run.invalid(
            "credentials",
            key,
            Some("user"),
            format!("no user `{key}`; define it under `users:`"),
        ));
    };
    if !entry.passkeys.is_empty() {
        return Err(run.invalid(
            "credentials",
            key,
            Some("passkeys"),
            "carried-over passkeys are not applied yet: remove `passkeys:` for now; the person adds a passkey again after signing in",
        ));
    }
    let mut fields = Vec::new();
    let seeded = |field: String| FieldChange {
        field,
        old: Value::Null,
        new: json!(SENSITIVE),
    };
    let hash = entry
        .password_hash
        .as_ref()
        .and_then(|s| s.value.as_deref())
        .filter(|h| !h.is_empty());
    if let Some(hash) = hash {
        if let Err(e) = gatehouse_core::secret::check_importable_hash(hash) {
            return Err(run.invalid("credentials", key, Some("password_hash"), e.to_string()));
        }
        if !user.has_password {
            users::set_password_hash(run.conn, user.id, Some(hash)).await?;
            fields.push(seeded("password_hash".into()));
        }
    }
    let present = devices::totp_of(run.conn, run.sealing, user.id).await?;
    for device in &entry.totp {
        let field = format!("totp[{}]", device.name);
        let secret = device.secret.value.as_deref().unwrap_or_default();
        if let Err(e) = gatehouse_flow::totp_for(secret) {
            return Err(run.invalid(
                "credentials",
                key,
                Some(&field),
                format!("the secret is not a base32 TOTP seed ({e})"),
            ));
        }
        if present.iter().any(|d| d.name == device.name) {
            continue;
        }
        let step = device.last_step.unwrap_or(0).max(0);
        devices::add_totp(run.conn, run.sealing, user.id, &device.name, secret, step).await?;
        fields.push(seeded(field));
    }
    if !fields.is_empty() {
        run.outcome.changes.push(ConfigChange {
            action: "create".into(),
            kind: "credential".into(),
            key: key.into(),
            fields,
        });
    }
    Ok(())
}
