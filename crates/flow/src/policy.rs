//! Policies and bindings. A binding evaluates a policy, a group membership or a user identity
//! against a subject (the user if known, the identifier typed so far, the request). Results are
//! `Pass`, `Fail(message)` or `NotApplicable`; bindings combine under `all` or `any`, and
//! not-applicable ones never decide.

use std::time::Duration;

use chrono::Utc;
use gatehouse_core::kinds::{PolicyEngineMode, PolicyKind};
use gatehouse_store::policies::{self, Binding, Subject};
use gatehouse_store::{groups, reputation, sql, users, Conn};
use serde_json::{json, Value};

use crate::state::RequestInfo;
use crate::Result;

/// The result of one policy or binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allows.
    Pass,
    /// Refuses, with a message for the user.
    Fail(String),
    /// Cannot decide yet (e.g. needs a user before one is identified).
    NotApplicable,
}

/// Whom a policy is evaluated for.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The user, once identified (pending in a flow, or logged in).
    pub user: Option<&'a users::User>,
    /// What the visitor typed as username/email, when they did.
    pub identifier: Option<&'a str>,
    /// The HTTP request.
    pub request: &'a RequestInfo,
    /// The flow being run, if any.
    pub flow: Option<&'a str>,
    /// The invitation the flow was opened with (`name`, `fixed_data`), if any: expressions
    /// read it as `context.invitation`.
    pub invitation: Option<&'a Value>,
}

/// One binding's result with the reason, for `gatehouse flow explain`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Explained {
    /// What is bound, e.g. `policy brute-force-protection`.
    pub binding: String,
    /// Evaluation order.
    pub order: i64,
    /// `pass`, `fail` or `not applicable`.
    pub result: String,
    /// Why.
    pub reason: String,
}

/// Longest accepted expression; CEL has no cost limit, so size is bounded instead.
pub const MAX_EXPRESSION: usize = 4096;

/// The score at or below which a reputation policy without a `threshold` fails: five recent
/// failures, as in Authentik.
pub const DEFAULT_THRESHOLD: i64 = -5;

fn setting<'v>(settings: &'v Value, key: &str) -> Option<&'v Value> {
    settings.get(key)
}

/// Evaluates one policy for `ctx`; `failure_result` decides when an expression fails or times
/// out.
pub async fn evaluate_policy(
    conn: &mut Conn,
    policy: &policies::Policy,
    ctx: Context<'_>,
    timeout: Duration,
    failure_result: bool,
) -> Result<(Verdict, String)> {
    let s = &policy.fields.settings;
    let message = setting(s, "message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Access denied by policy {}.", policy.fields.name));
    match policy.fields.kind {
        PolicyKind::GroupMembership => {
            let Some(user) = ctx.user else {
                return Ok((Verdict::NotApplicable, "no user identified yet".into()));
            };
            let group = setting(s, "group")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let member = groups::effective_of_user(conn, user.id)
                .await?
                .iter()
                .any(|g| g.fields.name == group);
            Ok(if member {
                (
                    Verdict::Pass,
                    format!("{} is in {group}", user.fields.username),
                )
            } else {
                (
                    Verdict::Fail(message),
                    format!("{} is not in {group}", user.fields.username),
                )
            })
        }
        PolicyKind::Reputation => {
            let check_username = setting(s, "check_username")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let check_ip = setting(s, "check_ip")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let threshold = setting(s, "threshold")
                .and_then(Value::as_i64)
                .unwrap_or(DEFAULT_THRESHOLD);
            let identifier = ctx
                .identifier
                .or(ctx.user.map(|u| u.fields.username.as_str()));
            let who = match (check_username, identifier) {
                (true, Some(id)) => id,
                (true, None) => {
                    return Ok((Verdict::NotApplicable, "no username to score yet".into()))
                }
                (false, _) => "",
            };
            let from = if check_ip {
                ctx.request.ip.as_str()
            } else {
                ""
            };
            let score = reputation::score(conn, who, from, Utc::now()).await?;
            Ok(if score > threshold {
                (Verdict::Pass, format!("score {score} is above {threshold}"))
            } else {
                (
                    Verdict::Fail(
                        setting(s, "message")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .unwrap_or_else(|| {
                                "Too many failed attempts. Wait a few minutes and try again."
                                    .to_owned()
                            }),
                    ),
                    format!("score {score} is at or below {threshold}"),
                )
            })
        }
        PolicyKind::Expression => {
            let expression = setting(s, "expression")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if expression.len() > MAX_EXPRESSION {
                return Ok((
                    Verdict::Fail(message),
                    format!("expression longer than {MAX_EXPRESSION} characters"),
                ));
            }
            let user = match ctx.user {
                Some(u) => user_variable(conn, u).await?,
                None if references_user(&expression) == Some(true) => {
                    return Ok((
                        Verdict::NotApplicable,
                        "the expression uses `user`, and no user is identified yet".into(),
                    ))
                }
                None => Value::Null,
            };
            let request = json!({
                "ip": ctx.request.ip, "host": ctx.request.host, "path": ctx.request.path,
                "method": ctx.request.method, "user_agent": ctx.request.user_agent,
            });
            let flow = json!({"slug": ctx.flow.unwrap_or_default()});
            // Always present, so `has(context.invitation.fixed_data.group)` is false rather
            // than an error when the flow was opened without an invitation.
            let invitation = ctx
                .invitation
                .cloned()
                .unwrap_or_else(|| json!({"fixed_data": {}}));
            let context = json!({
                "identifier": ctx.identifier.unwrap_or_default(),
                "invitation": invitation,
            });
            let outcome = tokio::time::timeout(
                timeout,
                tokio::task::spawn_blocking(move || {
                    run_cel(&expression, user, request, flow, context)
                }),
            )
            .await;
            // An expression that fails or runs out of time yields the binding's failure result.
            let failed = |why: String| {
                let verdict = if failure_result {
                    Verdict::Pass
                } else {
                    Verdict::Fail(message.clone())
                };
                (verdict, format!("{why}; failure result applies"))
            };
            Ok(match outcome {
                Ok(Ok(Ok(true))) => (Verdict::Pass, "expression is true".into()),
                Ok(Ok(Ok(false))) => (Verdict::Fail(message), "expression is false".into()),
                Ok(Ok(Err(e))) => failed(format!("expression failed: {e}")),
                Ok(Err(e)) => failed(format!("expression panicked: {e}")),
                Err(_) => failed(format!(
                    "expression took longer than {} s",
                    timeout.as_secs()
                )),
            })
        }
    }
}

/// Whether the expression reads `user`; `None` when it does not compile (evaluation then fails
/// and the binding's failure result applies).
fn references_user(expression: &str) -> Option<bool> {
    check_expression(expression)
        .ok()
        .map(|p| p.references().has_variable("user"))
}

/// The `user` variable of CEL expressions: profile, attributes and group names (parents
/// included).
pub async fn user_variable(conn: &mut Conn, u: &users::User) -> Result<Value> {
    let names: Vec<String> = groups::effective_of_user(conn, u.id)
        .await?
        .into_iter()
        .map(|g| g.fields.name)
        .collect();
    Ok(json!({
        "username": u.fields.username, "name": u.fields.name, "email": u.fields.email,
        "type": u.fields.user_type.as_str(), "is_active": u.fields.is_active,
        "attributes": u.fields.attributes, "groups": names,
    }))
}

/// Compiles and runs a CEL expression with `variables` bound.
fn execute(
    expression: &str,
    variables: Vec<(&str, Value)>,
) -> std::result::Result<cel_interpreter::Value, String> {
    let program = check_expression(expression)?;
    let mut ctx = cel_interpreter::Context::default();
    for (name, value) in variables {
        ctx.add_variable(name, value).map_err(|e| e.to_string())?;
    }
    program.execute(&ctx).map_err(|e| e.to_string())
}

/// Deepest bracket nesting the CEL parser is handed. Its recursive descent overflows the stack
/// (an abort no `catch_unwind` catches) around twenty levels in a debug build; policies people
/// write nest three or four.
const MAX_NESTING: usize = 8;

/// How deeply `(`, `[` and `{` nest in `expression`, outside string literals.
fn nesting(expression: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut chars = expression.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(' | '[' | '{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ')' | ']' | '}') => depth = depth.saturating_sub(1),
            (None, _) => {}
        }
    }
    deepest
}

/// Compiles an expression, for checking it when it is saved as well as before running it.
pub fn check_expression(expression: &str) -> std::result::Result<cel_interpreter::Program, String> {
    if expression.len() > MAX_EXPRESSION {
        return Err(format!("is longer than {MAX_EXPRESSION} characters"));
    }
    if nesting(expression) > MAX_NESTING {
        return Err(format!(
            "nests brackets deeper than {MAX_NESTING} levels; split it into simpler conditions"
        ));
    }
    // The CEL parser panics on some malformed input instead of returning an error; an
    // administrator's typo must not take the request (or a login) down with it.
    match std::panic::catch_unwind(|| cel_interpreter::Program::compile(expression)) {
        Ok(compiled) => compiled.map_err(|e| format!("does not compile: {e}")),
        Err(_) => Err("does not compile: the parser gave up on it".to_owned()),
    }
}

/// Compiles and runs a CEL expression; anything but `true`/`false` is an error.
pub fn run_cel(
    expression: &str,
    user: Value,
    request: Value,
    flow: Value,
    context: Value,
) -> std::result::Result<bool, String> {
    let variables = vec![
        ("user", user),
        ("request", request),
        ("flow", flow),
        ("context", context),
    ];
    match execute(expression, variables)? {
        cel_interpreter::Value::Bool(b) => Ok(b),
        other => Err(format!("returned {other:?}, not true or false")),
    }
}

/// Runs a claim-mapping expression over `user` and the granted `scopes`; it must yield a map,
/// whose entries become claims.
pub fn run_claims(
    expression: &str,
    user: Value,
    scopes: Value,
) -> std::result::Result<serde_json::Map<String, Value>, String> {
    let result = execute(expression, vec![("user", user), ("scopes", scopes)])?;
    match result.json().map_err(|e| e.to_string())? {
        Value::Object(claims) => Ok(claims),
        other => Err(format!("returned {other}, not a map of claims")),
    }
}

/// Evaluates one binding.
pub async fn evaluate_binding(
    conn: &mut Conn,
    binding: &Binding,
    ctx: Context<'_>,
) -> Result<Explained> {
    let f = &binding.fields;
    let timeout = Duration::from_secs(f.timeout.clamp(1, 30) as u64);
    let (label, (verdict, reason)) = match f.subject {
        Subject::Policy(uuid) => {
            let policy = sql::get::<policies::Policy>(conn, uuid).await?;
            let label = format!("policy {}", policy.fields.name);
            (
                label,
                evaluate_policy(conn, &policy, ctx, timeout, f.failure_result).await?,
            )
        }
        Subject::Group(id) => {
            let group = sql::get::<groups::Group>(conn, id).await?;
            let label = format!("group {}", group.fields.name);
            let verdict = match ctx.user {
                None => (Verdict::NotApplicable, "no user identified yet".into()),
                Some(u) => {
                    if groups::effective_of_user(conn, u.id)
                        .await?
                        .iter()
                        .any(|g| g.id == id)
                    {
                        (
                            Verdict::Pass,
                            format!("{} is in {}", u.fields.username, group.fields.name),
                        )
                    } else {
                        (
                            Verdict::Fail("You do not have access to this.".into()),
                            format!("{} is not in {}", u.fields.username, group.fields.name),
                        )
                    }
                }
            };
            (label, verdict)
        }
        Subject::User(id) => {
            let user = users::get(conn, id).await?;
            let label = format!("user {}", user.fields.username);
            let verdict = match ctx.user {
                None => (Verdict::NotApplicable, "no user identified yet".into()),
                Some(u) if u.id == id => (Verdict::Pass, "it is this user".into()),
                Some(u) => (
                    Verdict::Fail("You do not have access to this.".into()),
                    format!("{} is another user", u.fields.username),
                ),
            };
            (label, verdict)
        }
    };
    let verdict = match (verdict, f.negate) {
        (Verdict::Pass, true) => Verdict::Fail("Access denied.".into()),
        (Verdict::Fail(_), true) => Verdict::Pass,
        (v, _) => v,
    };
    let result = match &verdict {
        Verdict::Pass => "pass".to_owned(),
        Verdict::Fail(m) => format!("fail: {m}"),
        Verdict::NotApplicable => "not applicable".to_owned(),
    };
    Ok(Explained {
        binding: if f.negate {
            format!("not {label}")
        } else {
            label
        },
        order: f.order,
        result,
        reason,
    })
}

/// Evaluates every enabled binding on `target` and combines them under `mode`. With no
/// applicable binding the target is open: not-applicable never denies.
pub async fn evaluate_target(
    conn: &mut Conn,
    target: uuid::Uuid,
    mode: PolicyEngineMode,
    ctx: Context<'_>,
) -> Result<(Verdict, Vec<Explained>)> {
    let mut explained = Vec::new();
    let mut passes = 0;
    let mut failure: Option<String> = None;
    for binding in policies::bindings_of(conn, target).await? {
        if !binding.fields.enabled {
            continue;
        }
        let e = evaluate_binding(conn, &binding, ctx).await?;
        if e.result == "pass" {
            passes += 1;
        } else if let Some(message) = e.result.strip_prefix("fail: ") {
            failure.get_or_insert_with(|| message.to_owned());
        }
        explained.push(e);
    }
    let verdict = match (mode, failure) {
        (_, None) => Verdict::Pass,
        (PolicyEngineMode::Any, Some(_)) if passes > 0 => Verdict::Pass,
        (_, Some(message)) => Verdict::Fail(message),
    };
    Ok((verdict, explained))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cel_expressions_see_user_and_request() {
        let user = json!({"username": "alice", "groups": ["Admins"]});
        let request = json!({"ip": "10.1.2.3", "path": "/"});
        let ok = run_cel(
            "'Admins' in user.groups && request.ip.startsWith('10.')",
            user.clone(),
            request.clone(),
            json!({}),
            json!({}),
        );
        assert_eq!(ok, Ok(true));
        assert_eq!(
            run_cel(
                "user.username == 'bob'",
                user.clone(),
                request.clone(),
                json!({}),
                json!({})
            ),
            Ok(false)
        );
        assert!(run_cel("1 + 1", user.clone(), request.clone(), json!({}), json!({})).is_err());
        assert!(run_cel("this is not cel (", user, request, json!({}), json!({})).is_err());
    }

    #[test]
    fn expressions_that_use_user_are_detected() {
        assert_eq!(references_user("'Admins' in user.groups"), Some(true));
        assert_eq!(references_user("request.ip == '127.0.0.1'"), Some(false));
        assert_eq!(references_user("this is not ( cel"), None);
    }
}
