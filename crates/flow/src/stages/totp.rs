//! The authenticator validation stage: a TOTP code from one of the pending user's devices, or a
//! single-use recovery code. Each TOTP step is accepted once (no replay). Passed without asking
//! when the user has no device. A passkey login is one factor: it passes this stage only when the
//! server counts a (always user-verified) passkey as two factors.

use async_trait::async_trait;
use chrono::Utc;
use gatehouse_core::secret;
use gatehouse_store::{devices, reputation, users};
use serde_json::json;

use super::{audit, Entry, Stage, Step, Visit};
use crate::state::{Challenge, Response};
use crate::throttle::{retry_message, Attempt};
use crate::Result;

/// The message for a wrong TOTP or recovery code.
pub const BAD_CODE: &str = "Invalid code.";

/// Asks for a second factor.
pub(crate) struct Totp;

#[async_trait]
impl Stage for Totp {
    async fn enter(&self, visit: Visit<'_>) -> Result<Entry> {
        if visit.run.via_passkey && visit.engine.passkey_counts_as_two_factors {
            return Ok(Entry::Pass);
        }
        let has_device = match visit.run.pending_user {
            Some(id) => !devices::totp_of(visit.conn, &visit.engine.sealing, id)
                .await?
                .is_empty(),
            None => false,
        };
        Ok(if has_device {
            Entry::Ask(Challenge::Totp)
        } else {
            Entry::Pass
        })
    }

    async fn respond(&self, visit: Visit<'_>, response: &Response) -> Result<Step> {
        let Visit {
            engine,
            conn,
            run,
            req,
            ..
        } = visit;
        let code: String = response
            .field("code")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if code.len() > 16 {
            return Ok(Step::invalid(
                "code",
                "Ensure this field has no more than 16 characters.",
            ));
        }
        let Some(user_id) = run.pending_user else {
            return Ok(Step::Deny(
                "No user to check a code for; start again.".into(),
            ));
        };
        let attempt = Attempt::new(Some(user_id), "", &req.ip);
        if let Err(wait) = engine.throttle.check(&attempt) {
            return Ok(Step::retry(Challenge::Totp, retry_message(wait)));
        }
        if code.contains('-')
            && devices::use_recovery_code(conn, user_id, &secret::token_hash(&code.to_lowercase()))
                .await?
        {
            let user = users::get(conn, user_id).await?;
            audit(conn, "recovery_code_used", Some(&user), json!({}), req).await?;
            return Ok(Step::Next);
        }
        if check_code(conn, &engine.sealing, user_id, &code).await? {
            return Ok(Step::Next);
        }
        engine.throttle.failed(&attempt);
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
        Ok(Step::retry(Challenge::Totp, BAD_CODE))
    }
}

/// Whether `code` is the current code of one of `user`'s TOTP devices, not used before; a match
/// is recorded, so the same code never passes twice.
pub async fn check_code(
    conn: &mut gatehouse_store::Conn,
    sealing: &gatehouse_store::SecretKey,
    user: i64,
    code: &str,
) -> Result<bool> {
    for device in devices::totp_of(conn, sealing, user).await? {
        let Ok(totp) = totp_for(&device.secret) else {
            continue;
        };
        if let Some(step) = totp.check_current(code) {
            let step = i64::try_from(step).unwrap_or(i64::MAX);
            if devices::use_totp_step(conn, device.uuid, step).await? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A TOTP checker for a base32 secret (SHA1, 6 digits, 30 s, one step of skew).
pub fn totp_for(secret_b32: &str) -> std::result::Result<totp_rs::Totp, String> {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).map_err(|e| format!("{e:?}"))?;
    totp_rs::Builder::new()
        .with_secret(secret)
        .build()
        .map_err(|e| format!("{e:?}"))
}
