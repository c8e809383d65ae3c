//! Closed sets of values, spelled exactly as Authentik's API spells them so that existing scripts,
//! the `authentik-client` SDK and declarative configs keep working.

use std::fmt;
use std::str::FromStr;

/// A value outside a closed set; names the set and lists the accepted values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {set}: use one of {allowed}")]
pub struct UnknownValue {
    /// The set the value was checked against, e.g. `user type`.
    pub set: &'static str,
    /// The refused value.
    pub value: String,
    /// The accepted values, comma-separated.
    pub allowed: String,
}

/// Declares a string enum with its wire spelling, `FromStr`, `Display`, serde and OpenAPI schema.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $set:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        set: $set,
                        value: s.to_owned(),
                        allowed: [$($text),+].join(", "),
                    }),
                }
            }
        }

        // Written out rather than derived: the derive reads the variant names, not the
        // `serde(rename)` spellings this macro passes it, and documented `All` where the API
        // sends `all`.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .description(Some(concat!("A ", $set, ".")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// Who a user account belongs to.
    UserType, "user type" {
        /// A member of the organisation.
        Internal = "internal",
        /// A guest, e.g. a family member's friend.
        External = "external",
        /// A machine account used by scripts.
        ServiceAccount = "service_account",
        /// A machine account Gatehouse manages itself (outposts).
        InternalServiceAccount = "internal_service_account",
    }
}

string_enum! {
    /// What a flow is for; decides where it can be used.
    FlowDesignation, "flow designation" {
        /// Logs a user in.
        Authentication = "authentication",
        /// Authorises access to an application (consent).
        Authorization = "authorization",
        /// Logs a user out.
        Invalidation = "invalidation",
        /// Creates a new user.
        Enrollment = "enrollment",
        /// Deletes the current user.
        Unenrollment = "unenrollment",
        /// Recovers an account.
        Recovery = "recovery",
        /// Configures a stage (e.g. TOTP set-up) for the current user.
        StageConfiguration = "stage_configuration",
    }
}

string_enum! {
    /// How a flow is laid out on screen.
    FlowLayout, "flow layout" {
        /// Everything in one column.
        Stacked = "stacked",
        /// Content on the left.
        ContentLeft = "content_left",
        /// Content on the right.
        ContentRight = "content_right",
        /// Sidebar on the left.
        SidebarLeft = "sidebar_left",
        /// Sidebar on the right.
        SidebarRight = "sidebar_right",
        /// Sidebar on the left over the background.
        SidebarLeftFrameBackground = "sidebar_left_frame_background",
        /// Sidebar on the right over the background.
        SidebarRightFrameBackground = "sidebar_right_frame_background",
    }
}

string_enum! {
    /// What happens when a flow denies a user.
    DeniedAction, "denied action" {
        /// Show a message, continue to `next` if given.
        MessageContinue = "message_continue",
        /// Show a message.
        Message = "message",
        /// Continue to `next` silently.
        Continue = "continue",
    }
}

string_enum! {
    /// Who may start a flow.
    FlowAuthentication, "flow authentication requirement" {
        /// Anybody.
        None = "none",
        /// Logged-in users only.
        RequireAuthenticated = "require_authenticated",
        /// Anonymous visitors only.
        RequireUnauthenticated = "require_unauthenticated",
        /// Superusers only.
        RequireSuperuser = "require_superuser",
        /// Only when redirected from an application.
        RequireRedirect = "require_redirect",
        /// Only outposts.
        RequireOutpost = "require_outpost",
        /// Only with a token.
        RequireToken = "require_token",
    }
}

string_enum! {
    /// How several policy results combine.
    PolicyEngineMode, "policy engine mode" {
        /// Every binding must pass.
        All = "all",
        /// One passing binding suffices.
        Any = "any",
    }
}

string_enum! {
    /// The kinds of stages a flow can contain (SPEC §2).
    StageKind, "stage kind" {
        /// Asks for a username or email; shows source and passkey buttons.
        Identification = "identification",
        /// Checks a password.
        Password = "password",
        /// Passkey / WebAuthn.
        Webauthn = "webauthn",
        /// Time-based one-time password.
        Totp = "totp",
        /// Consent to share data with an application.
        Consent = "consent",
        /// Validates an invitation token (`?itoken=`).
        Invitation = "invitation",
        /// Asks for fields (name, email, …).
        Prompt = "prompt",
        /// Creates or updates the pending user.
        UserWrite = "user_write",
        /// Starts a session.
        UserLogin = "user_login",
        /// Ends a session.
        UserLogout = "user_logout",
        /// Denies with a message.
        Deny = "deny",
    }
}

string_enum! {
    /// The kinds of policies (SPEC §2).
    PolicyKind, "policy kind" {
        /// Passes for members of a group (and its descendants).
        GroupMembership = "group_membership",
        /// A CEL expression.
        Expression = "expression",
        /// Scores failed logins per username and IP.
        Reputation = "reputation",
    }
}

string_enum! {
    /// How the outpost fronts an application.
    ProxyMode, "proxy mode" {
        /// Gatehouse reverse-proxies to `internal_host`.
        Proxy = "proxy",
        /// Forward auth for one application.
        ForwardSingle = "forward_single",
        /// Forward auth for a whole domain.
        ForwardDomain = "forward_domain",
    }
}

string_enum! {
    /// Whether an OAuth2 client can keep a secret.
    ClientType, "client type" {
        /// A server-side app with a client secret.
        Confidential = "confidential",
        /// A browser or CLI app; must use PKCE.
        Public = "public",
    }
}

string_enum! {
    /// How a redirect URI is compared.
    MatchingMode, "redirect URI matching mode" {
        /// Exact string match.
        Strict = "strict",
        /// Anchored regular expression.
        Regex = "regex",
    }
}

string_enum! {
    /// What a registered redirect URI is for (Authentik's `redirect_uri_type`): authorization
    /// responses never go to a post-logout URI, nor end-session to a callback.
    RedirectUriType, "redirect URI type" {
        /// Where authorization responses (codes and errors) go.
        Authorization = "authorization",
        /// Where end-session may return the browser (`post_logout_redirect_uri`).
        Logout = "logout",
    }
}

string_enum! {
    /// How an OIDC provider signs its tokens. RS256 is what every relying party accepts without
    /// configuration; ES256 is much faster to sign and what busy token endpoints should use.
    SigningAlgorithm, "signing algorithm" {
        /// RSA 2048 with SHA-256.
        Rs256 = "RS256",
        /// ECDSA P-256 with SHA-256.
        Es256 = "ES256",
    }
}

string_enum! {
    /// What the `sub` claim contains.
    SubMode, "subject mode" {
        /// A hash of the user id, stable and opaque.
        HashedUserId = "hashed_user_id",
        /// The numeric user id.
        UserId = "user_id",
        /// The user's UUID.
        UserUuid = "user_uuid",
        /// The username.
        UserUsername = "user_username",
        /// The email address.
        UserEmail = "user_email",
        /// The user principal name attribute.
        UserUpn = "user_upn",
    }
}

string_enum! {
    /// How the `iss` claim is formed.
    IssuerMode, "issuer mode" {
        /// One issuer for every provider.
        Global = "global",
        /// `/application/o/<slug>/` per provider.
        PerProvider = "per_provider",
    }
}

string_enum! {
    /// What a token is for.
    TokenIntent, "token intent" {
        /// Email verification links.
        Verification = "verification",
        /// REST API access.
        Api = "api",
        /// One-time account recovery or initial set-up links.
        Recovery = "recovery",
        /// Passwords for apps that cannot do OIDC.
        AppPassword = "app_password",
    }
}

string_enum! {
    /// What an outpost serves.
    OutpostType, "outpost type" {
        /// Forward auth and reverse proxy.
        Proxy = "proxy",
        /// LDAP (not implemented by Gatehouse).
        Ldap = "ldap",
        /// RADIUS (not implemented by Gatehouse).
        Radius = "radius",
        /// Remote access (not implemented by Gatehouse).
        Rac = "rac",
    }
}

string_enum! {
    /// Which identity service a login source talks to.
    SourceProviderType, "source provider type" {
        /// Any OpenID Connect provider.
        OpenIdConnect = "openidconnect",
        /// Google.
        Google = "google",
        /// GitHub.
        Github = "github",
        /// Facebook.
        Facebook = "facebook",
        /// GitLab.
        Gitlab = "gitlab",
        /// Microsoft Entra ID.
        EntraId = "entraid",
        /// Discord.
        Discord = "discord",
        /// Apple.
        Apple = "apple",
    }
}

string_enum! {
    /// How a login source links an outside identity to a local user.
    UserMatchingMode, "user matching mode" {
        /// Only by the stored outside identifier.
        Identifier = "identifier",
        /// Link to the user with the same email.
        EmailLink = "email_link",
        /// Refuse when a user with the same email exists.
        EmailDeny = "email_deny",
        /// Link to the user with the same username.
        UsernameLink = "username_link",
        /// Refuse when a user with the same username exists.
        UsernameDeny = "username_deny",
    }
}
