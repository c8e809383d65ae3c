//! Property tests of where the provider may send a browser (issue #13, fuzzing): registered
//! redirect URIs, strict and regex, against adversarial URLs around the registered origin, and
//! PKCE and arbitrary patterns never panicking. The seed corpus `fuzz/corpus/redirect_uri/`
//! runs first; `PROPTEST_CASES` bounds the generated cases.
// Test code: a failed unwrap is a failed test (helpers sit outside #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../fuzz/attack.rs"]
mod attack;

use attack::{adversarial_url, origin_of, seeds};
use gatehouse_core::kinds::{
    ClientType, IssuerMode, MatchingMode, RedirectUriType, SigningAlgorithm, SubMode,
};
use gatehouse_oidc::redirect::{check, redirect_allowed};
use gatehouse_oidc::tokens::pkce_ok;
use gatehouse_store::providers::{OAuth2Settings, RedirectUri};
use proptest::prelude::*;

const STRICT: &str = "https://rp1.example.com/cb";
const REGEX: &str = r"https://rp2\.example\.com.*";
const REGEX_ORIGIN: &str = "https://rp2.example.com";

fn settings(uris: &[(MatchingMode, &str)]) -> OAuth2Settings {
    OAuth2Settings {
        client_type: ClientType::Confidential,
        access_code_validity: "minutes=1".into(),
        include_claims_in_id_token: true,
        sub_mode: SubMode::HashedUserId,
        signing_algorithm: SigningAlgorithm::Es256,
        issuer_mode: IssuerMode::PerProvider,
        logout_uri: String::new(),
        redirect_uris: uris
            .iter()
            .map(|(matching_mode, url)| RedirectUri {
                matching_mode: *matching_mode,
                url: (*url).to_owned(),
                redirect_uri_type: RedirectUriType::Authorization,
            })
            .collect(),
    }
}

/// A strict redirect URI matches itself only, byte for byte.
fn strict_case(uri: &str) {
    let s = settings(&[(MatchingMode::Strict, STRICT)]);
    assert_eq!(
        redirect_allowed(&s, RedirectUriType::Authorization, uri),
        uri == STRICT,
        "{uri:?}"
    );
}

/// What the issue #13 regex fix holds: a regex redirect URI never accepts a URL whose
/// scheme, host or port differ from the pattern's.
fn regex_case(uri: &str) {
    let s = settings(&[(MatchingMode::Regex, REGEX)]);
    if redirect_allowed(&s, RedirectUriType::Authorization, uri) {
        assert_eq!(
            origin_of(uri),
            origin_of(REGEX_ORIGIN),
            "{uri:?} accepted by {REGEX}"
        );
    }
}

#[test]
fn strict_redirect_uri_seeds_match_only_themselves() {
    for seed in seeds("redirect_uri") {
        strict_case(&seed);
    }
}

#[test]
fn regex_redirect_uri_seeds_stay_on_the_registered_origin() {
    for seed in seeds("redirect_uri") {
        regex_case(&seed);
    }
}

proptest! {
    /// A strict redirect URI is never matched by anything else.
    #[test]
    fn strict_redirect_uri_matches_only_itself(uri in adversarial_url("https://rp1.example.com/cb")) {
        strict_case(&uri);
    }

    /// A regex redirect URI never leads to another origin.
    #[test]
    fn regex_redirect_uri_never_leaves_the_registered_origin(uri in adversarial_url(REGEX_ORIGIN)) {
        regex_case(&uri);
    }

    /// Arbitrary registered patterns (an administrator's typo) and URIs never panic.
    #[test]
    fn arbitrary_patterns_never_panic(pattern in ".{0,40}", uri in ".{0,80}") {
        let s = settings(&[(MatchingMode::Regex, &pattern), (MatchingMode::Strict, &pattern)]);
        let _ = check(MatchingMode::Regex, &pattern);
        let _ = check(MatchingMode::Strict, &pattern);
        let _ = redirect_allowed(&s, RedirectUriType::Authorization, &uri);
    }

    /// PKCE checks answer for any challenge, method and verifier, and only the right
    /// verifier passes S256.
    #[test]
    fn pkce_never_panics_and_needs_the_verifier(challenge in ".{0,80}", method in "(S256|plain|.{0,8})", verifier in ".{0,130}") {
        let _ = pkce_ok(&challenge, &method, &verifier);
        use base64::Engine;
        use sha2::Digest;
        let right = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        if pkce_ok(&right, "S256", &challenge) {
            prop_assert_eq!(&challenge, &verifier);
        }
    }
}
