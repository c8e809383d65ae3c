//! Property tests of the login sources' OAuth `state` (issue #13, fuzzing): a callback is
//! accepted only with the state its login issued, compared before the code is used, and issued
//! states are fresh and unguessable. The seed corpus `fuzz/corpus/state/` runs first;
//! `PROPTEST_CASES` bounds the generated cases.
// Test code: a failed unwrap is a failed test (helpers sit outside #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../fuzz/attack.rs"]
mod attack;

use gatehouse_core::kinds::SourceProviderType;
use gatehouse_sources::{CallbackQuery, Error, PendingLogin, SourceClient, SourceSettings};
use proptest::prelude::*;

const CALLBACK: &str = "https://auth.example.com/source/oauth/callback/github/";

/// A GitHub source: plain OAuth2 with preset endpoints, so starting a login needs no network,
/// and a callback refused at its state never reaches one.
fn github() -> SourceSettings {
    SourceSettings {
        name: "GitHub".into(),
        provider_type: SourceProviderType::Github,
        consumer_key: "client-id".into(),
        consumer_secret: "client-secret".into(),
        authorization_url: String::new(),
        access_token_url: String::new(),
        profile_url: String::new(),
        oidc_well_known_url: String::new(),
        oidc_jwks_url: String::new(),
        additional_scopes: String::new(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Starts a login; returns its authorization URL and what is kept for the callback.
fn start(rt: &tokio::runtime::Runtime, client: &SourceClient) -> (String, PendingLogin) {
    let started = rt.block_on(client.start(&github(), CALLBACK)).unwrap();
    (started.redirect_url, started.pending)
}

/// The callback with `state` (and a code), as the browser brings it back.
fn callback(
    rt: &tokio::runtime::Runtime,
    client: &SourceClient,
    pending: &PendingLogin,
    state: Option<&str>,
    error: Option<&str>,
) -> Result<(), Error> {
    let query = CallbackQuery {
        code: Some("code-from-upstream".into()),
        state: state.map(str::to_owned),
        error: error.map(str::to_owned),
        error_description: None,
    };
    rt.block_on(client.finish(&github(), CALLBACK, pending, &query))
        .map(|_| ())
}

#[test]
fn seed_states_are_refused_and_the_issued_one_passes_the_state_check() {
    let rt = runtime();
    let client = SourceClient::new().unwrap();
    let (url, pending) = start(&rt, &client);
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(url.contains(&format!("state={}", pending.state)), "{url}");
    for seed in attack::seeds("state") {
        assert!(
            matches!(
                callback(&rt, &client, &pending, Some(&seed), None),
                Err(Error::StateMismatch)
            ),
            "{seed}"
        );
    }
    assert!(matches!(
        callback(&rt, &client, &pending, None, None),
        Err(Error::StateMismatch)
    ));
    // The issued state passes, so the next check answers: the visitor declined at GitHub.
    assert!(matches!(
        callback(
            &rt,
            &client,
            &pending,
            Some(&pending.state),
            Some("access_denied")
        ),
        Err(Error::Denied { .. })
    ));
    // An empty kept state never matches an empty answer.
    let empty = PendingLogin {
        state: String::new(),
        ..pending
    };
    assert!(matches!(
        callback(&rt, &client, &empty, Some(""), Some("access_denied")),
        Err(Error::StateMismatch)
    ));
}

#[test]
fn issued_states_are_fresh_and_long() {
    let rt = runtime();
    let client = SourceClient::new().unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..64 {
        let (_, pending) = start(&rt, &client);
        assert!(
            pending.state.len() >= 22,
            "{} is short",
            pending.state.len()
        );
        assert!(seen.insert(pending.state), "a state was issued twice");
    }
}

proptest! {
    /// Any state but the issued one -- arbitrary text, one character changed, cut, extended,
    /// or the error parameter set to sneak past -- is refused as a state mismatch, before the
    /// code is exchanged.
    #[test]
    fn a_callback_passes_only_with_the_issued_state(
        returned in ".{0,80}",
        at in any::<prop::sample::Index>(),
        c in any::<char>(),
        error in prop::option::of("access_denied|server_error|.{0,10}"),
    ) {
        let rt = runtime();
        let client = SourceClient::new().unwrap();
        let (_, pending) = start(&rt, &client);
        let issued = pending.state.clone();
        let i = at.index(issued.len());
        let mut changed = issued.clone();
        changed.replace_range(i..=i, &c.to_string());
        let cut = issued[..i].to_owned();
        let extended = format!("{issued}{c}");
        for candidate in [returned.as_str(), &changed, &cut, &extended] {
            if candidate == issued {
                continue;
            }
            let refused = callback(&rt, &client, &pending, Some(candidate), error.as_deref());
            prop_assert!(matches!(refused, Err(Error::StateMismatch)), "{:?}", candidate);
        }
    }
}
