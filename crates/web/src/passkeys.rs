//! Passkeys (WebAuthn) through webauthn-rs: registration from the user page and passwordless,
//! discoverable login from the identification stage.
//!
//! The relying party is the external URL's host, so passkeys need a host name (browsers refuse
//! IP addresses); with an IP external URL the feature is off and pages say why. Ceremony state
//! lives in this process for a few minutes between the two requests of a ceremony.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder,
};

/// How long a started ceremony may take.
const CEREMONY_TIMEOUT: Duration = Duration::from_secs(300);

/// The most ceremonies of one kind in progress at once: anonymous visitors can start login
/// ceremonies without writing anything (#13 L5), so their memory is bounded too.
const MAX_CEREMONIES: usize = 10_000;

/// Why a passkey ceremony failed.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// Passkeys are off for this server.
    #[error("passkeys need the server's external URL to use a host name, not an IP address")]
    Unavailable,
    /// No ceremony was started, or it timed out.
    #[error("the passkey request expired; try again")]
    Expired,
    /// The browser's answer did not verify.
    #[error("the passkey could not be verified: {0}")]
    Rejected(String),
    /// Too many ceremonies are in progress.
    #[error("too many passkey requests are in progress; try again in a few minutes")]
    Busy,
}

type Ceremonies<T> = Mutex<HashMap<String, (T, Instant)>>;

/// The relying party and the ceremonies in progress.
pub struct Passkeys {
    webauthn: Option<Webauthn>,
    registrations: Ceremonies<PasskeyRegistration>,
    logins: Ceremonies<DiscoverableAuthentication>,
}

fn take<T>(map: &Ceremonies<T>, key: &str) -> Option<T> {
    let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    map.retain(|_, (_, at)| at.elapsed() < CEREMONY_TIMEOUT);
    map.remove(key).map(|(v, _)| v)
}

fn put<T>(map: &Ceremonies<T>, key: String, value: T) -> Result<(), PasskeyError> {
    let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    map.retain(|_, (_, at)| at.elapsed() < CEREMONY_TIMEOUT);
    if map.len() >= MAX_CEREMONIES && !map.contains_key(&key) {
        return Err(PasskeyError::Busy);
    }
    map.insert(key, (value, Instant::now()));
    Ok(())
}

impl Passkeys {
    /// The relying party for `external_url`; off when its host is an IP address.
    pub fn new(external_url: &str) -> Passkeys {
        let webauthn = Url::parse(external_url).ok().and_then(|origin| {
            let rp_id = origin.domain()?.to_owned();
            WebauthnBuilder::new(&rp_id, &origin)
                .ok()?
                .rp_name("Gatehouse")
                .allow_any_port(true)
                .build()
                .ok()
        });
        Passkeys {
            webauthn,
            registrations: Mutex::new(HashMap::new()),
            logins: Mutex::new(HashMap::new()),
        }
    }

    /// Whether passkeys can be used with this server.
    pub fn available(&self) -> bool {
        self.webauthn.is_some()
    }

    fn rp(&self) -> Result<&Webauthn, PasskeyError> {
        self.webauthn.as_ref().ok_or(PasskeyError::Unavailable)
    }

    /// Starts registering a passkey for a user; `ceremony` names the ceremony (the session).
    /// Returns the options for `navigator.credentials.create`, asking for a discoverable key so
    /// it can log in without a username.
    pub fn start_registration(
        &self,
        ceremony: &str,
        user: Uuid,
        username: &str,
        display_name: &str,
        existing: Vec<Passkey>,
    ) -> Result<Value, PasskeyError> {
        let exclude = existing.iter().map(|p| p.cred_id().clone()).collect();
        let (options, state) = self
            .rp()?
            .start_passkey_registration(user, username, display_name, Some(exclude))
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        let mut options =
            serde_json::to_value(options).map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        options["publicKey"]["authenticatorSelection"]["residentKey"] = "required".into();
        options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = true.into();
        put(&self.registrations, ceremony.to_owned(), state)?;
        Ok(options)
    }

    /// Verifies the browser's answer to a registration.
    pub fn finish_registration(
        &self,
        ceremony: &str,
        credential: &Value,
    ) -> Result<Passkey, PasskeyError> {
        let state = take(&self.registrations, ceremony).ok_or(PasskeyError::Expired)?;
        let credential: RegisterPublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        self.rp()?
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| PasskeyError::Rejected(e.to_string()))
    }

    /// Starts a passwordless login; returns the options for `navigator.credentials.get`.
    pub fn start_login(&self, ceremony: &str) -> Result<Value, PasskeyError> {
        let (mut options, state) = self
            .rp()?
            .start_discoverable_authentication()
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        // A modal request, not autofill: the button asks for a passkey explicitly.
        options.mediation = None;
        put(&self.logins, ceremony.to_owned(), state)?;
        serde_json::to_value(options).map_err(|e| PasskeyError::Rejected(e.to_string()))
    }

    /// Which stored credential the browser's answer claims: (user handle, credential id).
    pub fn identify(
        &self,
        credential: &Value,
    ) -> Result<(Uuid, Vec<u8>, PublicKeyCredential), PasskeyError> {
        let credential: PublicKeyCredential = serde_json::from_value(credential.clone())
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        let (user, id) = self
            .rp()?
            .identify_discoverable_authentication(&credential)
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        let id = id.to_vec();
        Ok((user, id, credential))
    }

    /// Verifies a passwordless login against the stored passkey; returns the passkey with its
    /// counter updated when it changed.
    pub fn finish_login(
        &self,
        ceremony: &str,
        credential: &PublicKeyCredential,
        mut stored: Passkey,
    ) -> Result<Option<Passkey>, PasskeyError> {
        let state = take(&self.logins, ceremony).ok_or(PasskeyError::Expired)?;
        let result = self
            .rp()?
            .finish_discoverable_authentication_v2(credential, state, &stored)
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        Ok(
            if result.needs_update() && stored.update_credential(&result).unwrap_or(false) {
                Some(stored)
            } else {
                None
            },
        )
    }
}

/// A credential id as stored: base64url without padding.
pub fn credential_key(id: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceremonies_in_progress_are_bounded() {
        let map: Ceremonies<()> = Mutex::new(HashMap::new());
        for i in 0..MAX_CEREMONIES {
            assert!(put(&map, i.to_string(), ()).is_ok());
        }
        assert!(matches!(
            put(&map, "one more".into(), ()),
            Err(PasskeyError::Busy)
        ));
        assert!(
            put(&map, "7".into(), ()).is_ok(),
            "a run restarting its own ceremony is not refused"
        );
        assert!(take(&map, "7").is_some());
        assert!(
            put(&map, "one more".into(), ()).is_ok(),
            "a finished one frees a place"
        );
    }
}
