//! Property tests of what a flow takes from a visitor and an administrator (issue #13,
//! fuzzing): `next` after a flow, and CEL policies run with arbitrary user and request
//! attributes. The seed corpora `fuzz/corpus/next/` and `fuzz/corpus/cel/` run first;
//! `PROPTEST_CASES` bounds the generated cases.
// Test code: a failed unwrap is a failed test (helpers sit outside #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../fuzz/attack.rs"]
mod attack;

use attack::{adversarial_url, seeds};
use gatehouse_flow::policy::{check_expression, run_cel};
use gatehouse_flow::run::safe_next;
use proptest::prelude::*;
use serde_json::{json, Value};

const FALLBACK: &str = "/if/user/";

/// `next` is followed only as a path on this site: joined to any base it stays there.
fn next_case(next: &str) {
    let target = safe_next(Some(next), FALLBACK);
    let base = url::Url::parse("https://auth.example.com/flow/").unwrap();
    let joined = base.join(&target).unwrap();
    assert_eq!(joined.origin(), base.origin(), "{next:?} leads to {joined}");
}

/// A policy gives true, false or an error, never a panic.
fn cel_case(expression: &str, user: Value, request: Value) {
    let _ = check_expression(expression);
    let _ = run_cel(
        expression,
        user,
        request,
        json!("default-authentication-flow"),
        json!({}),
    );
}

#[test]
fn next_seeds_stay_on_the_site() {
    for seed in seeds("next").iter().chain(&seeds("rd")) {
        next_case(seed);
    }
}

#[test]
fn cel_seeds_never_panic() {
    for seed in seeds("cel") {
        cel_case(
            &seed,
            json!({"username": "alice", "groups": ["admins"], "attributes": {}}),
            json!({"ip": "192.0.2.1"}),
        );
    }
}

/// Finding of this test (issue #13): twenty nested parentheses overflowed the CEL parser's
/// stack in a debug build, aborting the process; expressions are now depth-limited before
/// compiling, while the nesting people write still compiles and runs.
#[test]
fn deeply_nested_cel_is_refused_not_a_crash() {
    let nested = |n: usize| format!("{}1{} == 1", "(".repeat(n), ")".repeat(n));
    for n in [20, 200, 2_000] {
        let refused = check_expression(&nested(n)).err().unwrap_or_default();
        assert!(refused.contains("nests brackets"), "depth {n}: {refused}");
    }
    assert_eq!(
        run_cel(&nested(8), json!({}), json!({}), json!(""), json!({})),
        Ok(true)
    );
    assert!(check_expression(r#"user.name == "((((((((((((((((((((" "#).is_ok());
}

/// Arbitrary JSON, as user attributes, headers or an invitation's data may be.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// `next` never leads off-site.
    #[test]
    fn next_never_leads_off_site(next in prop_oneof![adversarial_url("https://auth.example.com"), ".{0,40}"]) {
        next_case(&next);
    }

    /// Policies over arbitrary attributes never panic, whatever the expression reads.
    #[test]
    fn cel_policies_never_panic_on_arbitrary_attributes(
        expression in prop_oneof![
            prop::sample::select(seeds("cel")),
            "(user|request|context)(\\.[a-z_]{1,8}){0,3} (==|!=|<|>|in) (1|\"a\"|true|\\[\\]|\\{\\}|user\\.[a-z]{1,6})",
            ".{0,60}",
        ],
        user in any_json(),
        request in any_json(),
    ) {
        cel_case(&expression, user, request);
    }
}
