//! Authenticator devices (`/api/v3/authenticators/`): a user's passkeys and TOTP apps as
//! Authentik shows them. No secret leaves the server: neither TOTP seeds nor public keys are
//! part of any of these shapes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::PartialUser;

/// A device of any kind, as `authenticators/all/` lists them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Device {
    /// `TOTP Device` or `WebAuthn Device`.
    pub verbose_name: String,
    /// `TOTP Devices` or `WebAuthn Devices`.
    pub verbose_name_plural: String,
    /// Authentik's model name, e.g. `authentik_stages_authenticator_totp.totpdevice`.
    pub meta_model_name: String,
    /// The device's number within its kind, as text (Authentik's shape).
    pub pk: String,
    /// Label.
    pub name: String,
    /// Authentik's model label, e.g. `authentik_stages_authenticator_webauthn.WebAuthnDevice`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always true: Gatehouse stores a device only once it was proved to work.
    pub confirmed: bool,
    /// When it was added.
    pub created: DateTime<Utc>,
    /// Gatehouse keeps no edit time: the time it was added.
    pub last_updated: DateTime<Utc>,
    /// When it last signed in or passed a second-factor stage.
    pub last_used: Option<DateTime<Utc>>,
    /// Nothing more to say: null.
    pub extra_description: Option<String>,
    /// No external id: null.
    pub external_id: Option<String>,
}

/// An authenticator app (TOTP).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = TOTPDevice)]
pub struct TotpDevice {
    /// Label.
    pub name: String,
    /// Number.
    pub pk: i64,
    /// Owner.
    pub user: PartialUser,
}

/// The make of a passkey, when known (Gatehouse keeps no metadata service: always null).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebAuthnDeviceType {
    /// Authenticator model id.
    pub aaguid: String,
    /// Its name.
    pub description: String,
}

/// A passkey (WebAuthn).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebAuthnDevice {
    /// Number.
    pub pk: i64,
    /// Label.
    pub name: String,
    /// When it was added.
    pub created_on: DateTime<Utc>,
    /// Its make: null (not looked up).
    pub device_type: Option<WebAuthnDeviceType>,
    /// Authenticator model id; the all-zero id when unknown.
    pub aaguid: String,
    /// Owner.
    pub user: PartialUser,
}

/// The writable part of a device: its label (PUT and PATCH).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    /// New label, 1 to 64 characters.
    pub name: Option<String>,
}
