//! Property tests of the core parsers and checks every surface relies on (issue #13,
//! fuzzing): durations, names and URLs from settings and API input, and the constant-time
//! comparison the OAuth `state` and PKCE checks use (redirect-URI registration is tested with
//! its matcher, `crates/oidc/tests/fuzz.rs`). `PROPTEST_CASES` bounds the generated cases.
// Test code: a failed unwrap is a failed test (helpers sit outside #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_core::secret::constant_time_eq;
use gatehouse_core::{validate, Duration};
use proptest::prelude::*;

proptest! {
    /// A duration either parses to what it prints back or is a typed error.
    #[test]
    fn durations_parse_or_refuse(text in prop_oneof![".{0,24}", "(-?[0-9]{1,22}(s|m|h|d|w)?)+", "(days|hours|minutes|seconds)=[0-9.-]{1,20}(;(hours|minutes)=[0-9]{1,20})?"]) {
        if let Ok(d) = text.parse::<Duration>() {
            let again: Duration = d.as_str().parse().unwrap();
            prop_assert_eq!(again.seconds(), d.seconds());
        }
    }

    /// The validators answer for any input, never panic.
    #[test]
    fn validators_never_panic(value in ".{0,80}") {
        let _ = validate::slug(&value);
        let _ = validate::name(&value);
        let _ = validate::text(&value);
        let _ = validate::username(&value);
        let _ = validate::email(&value);
        let _ = validate::http_url(&value);
        let _ = validate::url_host(&value);
        let _ = validate::url_encode(&value);
    }

    /// The state (and PKCE) comparison accepts exactly the value issued: a state round-trips,
    /// any tampering -- one character changed, cut, extended -- is refused.
    #[test]
    fn state_comparison_accepts_only_the_issued_value(state in "[A-Za-z0-9_-]{43}", at in 0usize..43, c in "[A-Za-z0-9_~.%-]") {
        prop_assert!(constant_time_eq(&state, &state.clone()));
        let mut tampered = state.clone();
        tampered.replace_range(at..=at, &c);
        prop_assert_eq!(constant_time_eq(&state, &tampered), tampered == state);
        prop_assert!(!constant_time_eq(&state, &state[..at]));
        let extended = state.clone() + &c;
        prop_assert!(!constant_time_eq(&state, &extended));
    }
}
