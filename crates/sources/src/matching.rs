//! What a verified identity means for local users, as a pure function: the web layer looks up the
//! facts (an existing connection, the signed-in user, users with the identity's email or
//! username), [`decide`] says what to do, and the web layer does it in one transaction. Nothing
//! here touches storage, so every matching mode is unit-tested below.
//!
//! Authentik's semantics (its source matcher and flow manager), in order:
//! 1. Someone already signed in is connecting another account: an existing connection
//!    authenticates as its user; otherwise the account links to the signed-in user, whatever the
//!    mode.
//! 2. An existing connection for (source, identifier) authenticates as its user, whatever the
//!    mode.
//! 3. `identifier`: nobody else is considered; enroll a new user.
//! 4. `email_*` / `username_*`: without the property (an email only counts if the upstream
//!    verified it) the login is refused; no user has it: enroll; a user has it: `*_link` links to
//!    that user, `*_deny` refuses.

use gatehouse_core::kinds::UserMatchingMode;

use crate::Identity;

/// The facts [`decide`] needs, with `U` whatever identifies a local user to the caller (a pk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchInput<U> {
    /// The user already connected to this source with the identity's `id`, if any.
    pub connected_user: Option<U>,
    /// The user signed in to Gatehouse right now (connecting another source from their user
    /// page), if any.
    pub signed_in_user: Option<U>,
    /// The user whose email is the identity's email, if any (looked up only when the email is
    /// verified; [`decide`] ignores it otherwise).
    pub user_with_email: Option<U>,
    /// The user whose username is the identity's username, if any.
    pub user_with_username: Option<U>,
}

impl<U> Default for MatchInput<U> {
    fn default() -> Self {
        MatchInput {
            connected_user: None,
            signed_in_user: None,
            user_with_email: None,
            user_with_username: None,
        }
    }
}

/// What to do with a verified identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<U> {
    /// A connection exists: run the source's authentication flow as this user.
    Authenticate(U),
    /// Store a connection from the identity to this user, then authenticate as them.
    Link(U),
    /// Nobody matches: run the source's enrollment flow for a new user (and connect them when it
    /// completes).
    Enroll,
    /// Refuse, with the reason shown to the person.
    Deny(DenyReason),
}

/// Why a login through a source is refused; its message says what to do instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DenyReason {
    /// `email_link` / `email_deny` without a verified email address.
    #[error("Your account at the login service has no verified email address, and this login source needs one to find your Gatehouse account. Verify your email address there (on GitHub: make it your primary address), then try again.")]
    NoVerifiedEmail,
    /// `username_link` / `username_deny` without a username.
    #[error("Your account at the login service has no username, and this login source needs one to find your Gatehouse account. Sign in another way, or ask an administrator.")]
    NoUsername,
    /// `email_deny`: a user with this email address exists.
    #[error("A Gatehouse account with this email address already exists, so this login source may not create another. Sign in the way you signed up before; you can then connect this account from your user page.")]
    EmailTaken,
    /// `username_deny`: a user with this username exists.
    #[error("A Gatehouse account with this username already exists, so this login source may not create another. Sign in the way you signed up before; you can then connect this account from your user page.")]
    UsernameTaken,
}

/// Decides what `identity` means under `mode`, following Authentik (see the module doc).
pub fn decide<U>(mode: UserMatchingMode, identity: &Identity, facts: MatchInput<U>) -> Decision<U> {
    if let Some(user) = facts.connected_user {
        return Decision::Authenticate(user);
    }
    if let Some(user) = facts.signed_in_user {
        return Decision::Link(user);
    }
    let (present, existing, link, missing, taken) = match mode {
        UserMatchingMode::Identifier => return Decision::Enroll,
        UserMatchingMode::EmailLink | UserMatchingMode::EmailDeny => (
            identity.verified_email().is_some_and(|e| !e.is_empty()),
            facts.user_with_email,
            mode == UserMatchingMode::EmailLink,
            DenyReason::NoVerifiedEmail,
            DenyReason::EmailTaken,
        ),
        UserMatchingMode::UsernameLink | UserMatchingMode::UsernameDeny => (
            identity.username.as_deref().is_some_and(|u| !u.is_empty()),
            facts.user_with_username,
            mode == UserMatchingMode::UsernameLink,
            DenyReason::NoUsername,
            DenyReason::UsernameTaken,
        ),
    };
    match (present, existing) {
        (false, _) => Decision::Deny(missing),
        (true, None) => Decision::Enroll,
        (true, Some(user)) if link => Decision::Link(user),
        (true, Some(_)) => Decision::Deny(taken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use UserMatchingMode::*;

    fn identity(email_verified: bool) -> Identity {
        Identity {
            id: "1234".into(),
            username: Some("octocat".into()),
            email: Some("octocat@example.com".into()),
            email_verified,
            name: Some("Octo Cat".into()),
            attributes: serde_json::json!({}),
        }
    }

    fn facts(email: Option<u32>, username: Option<u32>) -> MatchInput<u32> {
        MatchInput {
            user_with_email: email,
            user_with_username: username,
            ..MatchInput::default()
        }
    }

    #[test]
    fn an_existing_connection_authenticates_in_every_mode() {
        for mode in UserMatchingMode::ALL {
            let input = MatchInput {
                connected_user: Some(7),
                signed_in_user: Some(8),
                user_with_email: Some(9),
                user_with_username: Some(10),
            };
            assert_eq!(
                decide(*mode, &identity(false), input),
                Decision::Authenticate(7),
                "{mode}"
            );
        }
    }

    #[test]
    fn a_signed_in_user_links_the_new_account_in_every_mode() {
        for mode in UserMatchingMode::ALL {
            let input = MatchInput {
                signed_in_user: Some(8),
                user_with_email: Some(9),
                ..MatchInput::default()
            };
            assert_eq!(
                decide(*mode, &identity(true), input),
                Decision::Link(8),
                "{mode}"
            );
        }
    }

    #[test]
    fn identifier_enrolls_even_when_email_and_username_are_taken() {
        assert_eq!(
            decide(Identifier, &identity(true), facts(Some(1), Some(2))),
            Decision::Enroll
        );
    }

    #[test]
    fn email_link_links_to_the_user_with_the_verified_email() {
        assert_eq!(
            decide(EmailLink, &identity(true), facts(Some(1), Some(2))),
            Decision::Link(1)
        );
    }

    #[test]
    fn email_link_enrolls_when_nobody_has_the_email() {
        assert_eq!(
            decide(EmailLink, &identity(true), facts(None, Some(2))),
            Decision::Enroll
        );
    }

    #[test]
    fn an_unverified_email_never_links_and_is_refused() {
        for mode in [EmailLink, EmailDeny] {
            assert_eq!(
                decide(mode, &identity(false), facts(Some(1), None)),
                Decision::Deny(DenyReason::NoVerifiedEmail),
                "{mode}"
            );
        }
    }

    #[test]
    fn a_missing_email_is_refused_under_email_modes() {
        let no_email = Identity {
            email: None,
            ..identity(false)
        };
        assert_eq!(
            decide(EmailLink, &no_email, facts(None, None)),
            Decision::Deny(DenyReason::NoVerifiedEmail)
        );
    }

    #[test]
    fn email_deny_refuses_when_a_user_has_the_email() {
        let decision = decide(EmailDeny, &identity(true), facts(Some(1), None));
        assert_eq!(decision, Decision::Deny(DenyReason::EmailTaken));
        if let Decision::Deny(reason) = decision {
            assert!(reason.to_string().contains("already exists"));
        }
    }

    #[test]
    fn email_deny_enrolls_when_nobody_has_the_email() {
        assert_eq!(
            decide(EmailDeny, &identity(true), facts(None, Some(2))),
            Decision::Enroll
        );
    }

    #[test]
    fn username_link_links_to_the_user_with_the_username() {
        assert_eq!(
            decide(UsernameLink, &identity(false), facts(Some(1), Some(2))),
            Decision::Link(2)
        );
    }

    #[test]
    fn username_link_enrolls_when_nobody_has_the_username() {
        assert_eq!(
            decide(UsernameLink, &identity(false), facts(Some(1), None)),
            Decision::Enroll
        );
    }

    #[test]
    fn username_deny_refuses_when_a_user_has_the_username() {
        assert_eq!(
            decide(UsernameDeny, &identity(true), facts(None, Some(2))),
            Decision::Deny(DenyReason::UsernameTaken)
        );
        assert_eq!(
            decide(UsernameDeny, &identity(true), facts(Some(1), None)),
            Decision::Enroll
        );
    }

    #[test]
    fn username_modes_without_username_are_refused() {
        let nameless = Identity {
            username: None,
            ..identity(true)
        };
        for mode in [UsernameLink, UsernameDeny] {
            assert_eq!(
                decide(mode, &nameless, facts(None, None)),
                Decision::Deny(DenyReason::NoUsername),
                "{mode}"
            );
        }
    }
}
