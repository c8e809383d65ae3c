//! `--database postgres://…`: what Authentik's API never gives, read from its own tables —
//! password hashes (Django's encoded forms, verified at the next login and replaced by
//! Gatehouse's argon2id then) and TOTP devices (hex keys become base32 seeds). Column layouts
//! are those of the test fixture's `schema.sql`, each with the migration it comes from.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sqlx::{Connection, Row};

use super::{secret_ref, variable};
use crate::{Error, Report};

/// How a failed query against `url` is reported (without the password).
fn failure(url: &str) -> impl Fn(sqlx::Error) -> Error + Copy + '_ {
    move |e| Error::Source {
        url: redact(url),
        message: e.to_string(),
    }
}

/// Connects to Authentik's database.
async fn connect(url: &str) -> Result<sqlx::PgConnection, Error> {
    sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| Error::Source {
            url: redact(url),
            message: format!(
                "{e}; check --database (postgres://USER:PASSWORD@HOST/DB of Authentik)"
            ),
        })
}

/// Reads the credentials of `usernames` (the users carried) as `credentials:` entries.
pub(super) async fn credentials(
    url: &str,
    usernames: &[String],
    env: &mut BTreeMap<String, String>,
    report: &mut Report,
) -> Result<Vec<Value>, Error> {
    let failed = failure(url);
    let mut conn = connect(url).await?;
    let mut entries: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let users = sqlx::query("SELECT username, password FROM authentik_core_user ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .map_err(failed)?;
    for row in users {
        let username: String = row.try_get("username").map_err(failed)?;
        let password: Option<String> = row.try_get("password").map_err(failed)?;
        // Django marks accounts without a password with a leading "!".
        let Some(hash) = password.filter(|p| !p.is_empty() && !p.starts_with('!')) else {
            continue;
        };
        if !usernames.contains(&username) {
            continue;
        }
        let var = variable(&username, "PASSWORD_HASH");
        env.insert(var.clone(), hash);
        entries
            .entry(username)
            .or_default()
            .insert("password_hash".into(), secret_ref(&var, false));
        report.carried("password hashes");
    }
    let devices = sqlx::query(
        "SELECT u.username, d.name, d.key, d.step, d.t0, d.digits, d.drift, d.last_t \
         FROM authentik_stages_authenticator_totp_totpdevice d \
         JOIN authentik_core_user u ON u.id = d.user_id WHERE d.confirmed ORDER BY d.id",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(failed)?;
    for row in devices {
        let username: String = row.try_get("username").map_err(failed)?;
        let name: String = row.try_get("name").map_err(failed)?;
        let key: String = row.try_get("key").map_err(failed)?;
        let step: i16 = row.try_get("step").map_err(failed)?;
        let t0: i64 = row.try_get("t0").map_err(failed)?;
        let digits: i16 = row.try_get("digits").map_err(failed)?;
        let drift: i16 = row.try_get("drift").map_err(failed)?;
        let last_t: i64 = row.try_get("last_t").map_err(failed)?;
        if !usernames.contains(&username) {
            continue;
        }
        let label = format!("{username} / {name}");
        if (digits, step, t0) != (6, 30, 0) {
            report.left_out(
                "TOTP device",
                &label,
                format!("{digits} digits, {step}-second steps from {t0}: Gatehouse checks 6-digit codes of 30-second steps; the person sets up the app again"),
            );
            continue;
        }
        let Ok(seed) = hex::decode(&key) else {
            report.left_out("TOTP device", &label, "its key is not hex");
            continue;
        };
        if drift != 0 {
            report.check(
                "TOTP device",
                &label,
                format!("Authentik had learned a clock drift of {drift} steps; Gatehouse accepts one step either way"),
            );
        }
        let var = variable(&label, "TOTP_SECRET");
        env.insert(var.clone(), totp_rs::Secret::from(seed).to_base32());
        let entry = entries.entry(username).or_default();
        let list = entry.entry("totp").or_insert_with(|| json!([]));
        if let Value::Array(list) = list {
            list.push(json!({"name": name, "secret": secret_ref(&var, false), "last_step": last_t.max(0)}));
        }
        report.carried("TOTP devices");
    }
    let passkeys = sqlx::query(
        "SELECT u.username, d.name FROM authentik_stages_authenticator_webauthn_webauthndevice d \
         JOIN authentik_core_user u ON u.id = d.user_id ORDER BY d.id",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(failed)?;
    for row in passkeys {
        let username: String = row.try_get("username").map_err(failed)?;
        let name: String = row.try_get("name").map_err(failed)?;
        report.left_out(
            "passkey",
            &format!("{username} / {name}"),
            "carried-over passkeys are not applied yet: the person signs in another way and adds the passkey again",
        );
    }
    Ok(entries
        .into_iter()
        .map(|(user, mut e)| {
            e.insert("user".into(), json!(user));
            Value::Object(e)
        })
        .collect())
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Reads the private keys of the key pairs in `used` (those carried providers sign with) as
/// `signing_keys:` entries, under the `kid` their tokens carry: the `kid` column (2025.12 and
/// later), else the MD5 of the key as earlier versions computed it on the fly.
pub(super) async fn signing_keys(
    url: &str,
    used: &[uuid::Uuid],
    env: &mut BTreeMap<String, String>,
    report: &mut Report,
) -> Result<Vec<Value>, Error> {
    let failed = failure(url);
    let mut conn = connect(url).await?;
    let rows = sqlx::query(
        "SELECT kp_uuid::text AS kp_uuid, name, key_data, kid FROM authentik_crypto_certificatekeypair \
         WHERE key_data <> '' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(failed)?;
    let mut out = Vec::new();
    for row in rows {
        let uuid: String = row.try_get("kp_uuid").map_err(failed)?;
        if !uuid.parse().is_ok_and(|u| used.contains(&u)) {
            continue;
        }
        let name: String = row.try_get("name").map_err(failed)?;
        let pem: String = row.try_get("key_data").map_err(failed)?;
        let kid: Option<String> = row.try_get("kid").map_err(failed)?;
        let Some(kid) = kid.filter(|k| !k.is_empty()) else {
            report.left_out(
                "certificate-key pair",
                &name,
                "this Authentik predates the kid column (2025.12): upgrade it first, or tokens it issued would not find their key",
            );
            continue;
        };
        let var = variable(&name, "PRIVATE_KEY");
        env.insert(var.clone(), pem);
        out.push(json!({"name": name, "private_key": secret_ref(&var, false), "kid": kid}));
        report.carried("signing keys");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_appear_in_messages() {
        assert_eq!(
            redact("postgres://authentik:s3cret@db.example.com/authentik"),
            "postgres://authentik:***@db.example.com/authentik"
        );
        assert_eq!(
            redact("postgres://db.example.com/authentik"),
            "postgres://db.example.com/authentik"
        );
    }
}
