//! `gatehouse import authentik --url URL --token TOKEN`: Authentik's configuration, read through
//! its API, as a Gatehouse declarative document.
//!
//! What is kept so applications need no change: provider names, OAuth2 client ids and secrets,
//! redirect URIs with their matching modes, the signing algorithm, token lifetimes, proxy
//! providers' client ids (the `authentik_proxy_…` cookie name), source slugs (the callback URLs
//! registered at Google, GitHub and Facebook), flow and application slugs (issuer and endpoint
//! URLs). What Gatehouse cannot express is listed in the report; a policy it cannot translate
//! is replaced by one that denies, so nothing is let in that Authentik kept out.
//!
//! Field-by-field facts, with where each was read, are in the test fixture's `FACTS.md`.

mod api;
mod database;
mod stages;

use std::collections::{BTreeMap, HashMap};

use gatehouse_core::kinds::MatchingMode;
use gatehouse_declarative::document::Secret;
use gatehouse_oidc::redirect;
use serde_json::{json, Map, Value};
use uuid::Uuid;

pub use api::Client;
use api::{
    Application, Binding, Flow, Group, Invitation, KeyPair, OAuth2Provider, OAuthSource, Outpost,
    Polymorphic, ProxyProvider, ScopeMapping, StageBinding, User,
};

use crate::{Error, Import, Report};

/// The name of Gatehouse's embedded outpost, which Authentik's embedded outpost becomes.
const EMBEDDED_OUTPOST: &str = "gatehouse Embedded Outpost";

/// Names of objects by the keys other objects refer to them with.
#[derive(Default)]
struct Names {
    groups: HashMap<Uuid, String>,
    users: HashMap<i64, String>,
    flows: HashMap<Uuid, String>,
    providers: HashMap<i64, String>,
    stages: HashMap<Uuid, String>,
    /// Policies carried, by UUID; the ones left out are in `denied`.
    policies: HashMap<Uuid, String>,
    /// Policies replaced by a denying placeholder: UUID → placeholder name.
    denied: HashMap<Uuid, String>,
    sources: HashMap<Uuid, String>,
    scope_mappings: HashMap<Uuid, String>,
    key_types: HashMap<Uuid, String>,
}

/// Reads everything the API exposes and maps it; with `database` (Authentik's PostgreSQL URL)
/// also the password hashes and TOTP devices only the database holds.
pub async fn import(client: &Client, database: Option<&str>) -> Result<Import, Error> {
    let mut report = Report::default();
    let mut env = BTreeMap::new();
    let mut names = Names::default();
    let mut doc = Map::new();
    doc.insert("version".into(), json!(1));

    let groups: Vec<Group> = client.list("core/groups/?include_users=false").await?;
    let users: Vec<User> = client.list("core/users/?include_groups=false").await?;
    let flows: Vec<Flow> = client.list("flows/instances/").await?;
    let keys: Vec<KeyPair> = client.list("crypto/certificatekeypairs/").await?;
    for g in &groups {
        names.groups.insert(g.pk, g.name.clone());
    }
    for u in &users {
        names.users.insert(u.pk, u.username.clone());
    }
    for f in &flows {
        names.flows.insert(f.pk, f.slug.clone());
    }
    let sources: Vec<OAuthSource> = client.list("sources/oauth/").await?;
    for s in &sources {
        names.sources.insert(s.pk, s.slug.clone());
    }
    for k in &keys {
        names
            .key_types
            .insert(k.pk, k.key_type.clone().unwrap_or_default());
    }

    doc.insert("groups".into(), map_groups(&groups, &names, &mut report));
    let carried_users = map_users(&users, &names, &mut report);
    let usernames: Vec<String> = carried_users
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["username"].as_str().map(str::to_owned))
        .collect();
    doc.insert("users".into(), carried_users);
    match database {
        Some(url) => {
            let credentials =
                database::credentials(url, &usernames, &mut env, &mut report).await?;
            doc.insert("credentials".into(), Value::Array(credentials));
        }
        None => report.left_out(
            "credentials",
            "passwords, TOTP devices, passkeys",
            "Authentik's API does not give them: add --database postgres://… (Authentik's database) to carry passwords, TOTP devices and signing keys",
        ),
    }
    doc.insert(
        "policies".into(),
        map_policies(client, &mut names, &mut report).await?,
    );
    doc.insert(
        "stages".into(),
        stages::map(client, &mut names, &mut report).await?,
    );
    doc.insert(
        "flows".into(),
        map_flows(client, &flows, &names, &mut report).await?,
    );
    doc.insert(
        "scope_mappings".into(),
        map_scope_mappings(client, &mut names, &mut report).await?,
    );
    let oauth2: Vec<OAuth2Provider> = client.list("providers/oauth2/").await?;
    let proxy: Vec<ProxyProvider> = client.list("providers/proxy/").await?;
    for p in &oauth2 {
        names.providers.insert(p.pk, p.name.clone());
    }
    for p in &proxy {
        names.providers.insert(p.pk, p.name.clone());
    }
    doc.insert(
        "oauth2_providers".into(),
        Value::Array(
            oauth2
                .iter()
                .map(|p| map_oauth2(p, &names, &mut env, &mut report))
                .collect(),
        ),
    );
    doc.insert(
        "proxy_providers".into(),
        Value::Array(
            proxy
                .iter()
                .map(|p| map_proxy(p, &names, &mut report))
                .collect(),
        ),
    );
    let apps: Vec<Application> = client.list("core/applications/").await?;
    let mut applications = Vec::new();
    for app in &apps {
        applications.push(map_application(client, app, &names, &mut report).await?);
    }
    doc.insert("applications".into(), Value::Array(applications));
    doc.insert(
        "sources".into(),
        Value::Array(
            sources
                .iter()
                .filter_map(|s| map_source(s, &names, &mut env, &mut report))
                .collect(),
        ),
    );
    let outposts: Vec<Outpost> = client.list("outposts/instances/").await?;
    doc.insert(
        "outposts".into(),
        Value::Array(
            outposts
                .iter()
                .filter_map(|o| map_outpost(o, &names, &mut report))
                .collect(),
        ),
    );
    let invitations: Vec<Invitation> = client.list("stages/invitation/invitations/").await?;
    for i in &invitations {
        report.left_out(
            "invitation",
            &i.name,
            "invitations are not part of the declarative file; create new ones with `gatehouse invite create <group>` (links already sent stop working)",
        );
    }
    let used: Vec<Uuid> = oauth2.iter().filter_map(|p| p.signing_key).collect();
    match database {
        Some(url) => {
            let carried = database::signing_keys(url, &used, &mut env, &mut report).await?;
            doc.insert("signing_keys".into(), Value::Array(carried));
        }
        None => {
            for k in keys.iter().filter(|k| used.contains(&k.pk)) {
                report.left_out(
                    "certificate-key pair",
                    &k.name,
                    "its private key comes with --database; without it Gatehouse signs with its own keys: relying parties fetch the new JWKS on their own, tokens already issued stop verifying, and people log in once more",
                );
            }
        }
    }
    doc.retain(|_, v| !matches!(v, Value::Array(a) if a.is_empty()));
    Ok(Import {
        document: Value::Object(doc),
        env,
        report,
    })
}

/// Sets `key` in `entry` when `value` is present and not empty.
fn put(entry: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(Value::Object(o)) if o.is_empty() => {}
        Some(v) => {
            entry.insert(key.into(), v);
        }
    }
}

/// The environment variable holding a secret of `object`, e.g. `GRAFANA_CLIENT_SECRET`.
fn variable(object: &str, what: &str) -> String {
    let mut name: String = object
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    format!("{}_{what}", name.trim_matches('_'))
}

fn secret_ref(var: &str, optional: bool) -> Value {
    serde_json::to_value(Secret::written(var, optional)).unwrap_or(Value::Null)
}

fn map_groups(groups: &[Group], names: &Names, report: &mut Report) -> Value {
    let mut out = Vec::new();
    for g in groups {
        let mut e = Map::new();
        e.insert("name".into(), json!(g.name));
        if g.is_superuser {
            e.insert("is_superuser".into(), json!(true));
        }
        let parents: Vec<&String> = g
            .parents
            .iter()
            .chain(g.parent.iter())
            .filter_map(|p| names.groups.get(p))
            .collect();
        put(&mut e, "parents", Some(json!(parents)));
        put(
            &mut e,
            "attributes",
            Some(Value::Object(g.attributes.clone())),
        );
        report.carried("groups");
        out.push(Value::Object(e));
    }
    Value::Array(out)
}

fn map_users(users: &[User], names: &Names, report: &mut Report) -> Value {
    let mut out = Vec::new();
    for u in users {
        let kind = u.user_type.as_deref().unwrap_or("internal");
        if kind == "internal_service_account" || u.username == "AnonymousUser" {
            continue;
        }
        let mut e = Map::new();
        e.insert("username".into(), json!(u.username));
        put(&mut e, "name", Some(json!(u.name)));
        put(&mut e, "email", u.email.clone().map(Value::from));
        e.insert("type".into(), json!(kind));
        e.insert("is_active".into(), json!(u.is_active));
        put(&mut e, "path", u.path.clone().map(Value::from));
        put(
            &mut e,
            "attributes",
            Some(Value::Object(u.attributes.clone())),
        );
        let groups: Vec<&String> = u
            .groups
            .iter()
            .filter_map(|g| names.groups.get(g))
            .collect();
        put(&mut e, "groups", Some(json!(groups)));
        if kind == "service_account" {
            report.check(
                "user",
                &u.username,
                "a service account: its API tokens are not carried; make new ones",
            );
        }
        report.carried("users");
        out.push(Value::Object(e));
    }
    Value::Array(out)
}

/// An expression policy in Gatehouse's terms: the CEL that does the same, and what to tell the
/// operator; `None` when it must be translated by hand.
fn translate_policy(python: &str) -> Option<(String, String)> {
    if let Some(cel) = translate_expression(python) {
        return Some((
            cel.clone(),
            format!("translated from Python `{}` to CEL `{cel}`", python.trim()),
        ));
    }
    // The invitation-group policy of the reference deployment (and Authentik's docs): it adds
    // the enrolling person to the group named in the invitation's fixed data and passes.
    // Gatehouse's user-write stage does that itself for a `group` in the fixed data.
    if python.contains("fixed_data") && python.contains(".groups.add(") {
        return Some((
            "true".into(),
            "it added the person to the group in the invitation's fixed data; Gatehouse's user-write stage does that for `group` itself, so it is carried as CEL `true`: check the key is `group`".into(),
        ));
    }
    None
}

/// `return ak_is_group_member(request.user, name="X")`, the most common expression policy, as
/// CEL; `None` for anything else.
fn translate_expression(python: &str) -> Option<String> {
    let body = python.trim().strip_prefix("return ")?.trim();
    let inner = body
        .strip_prefix("ak_is_group_member(request.user, name=")?
        .strip_suffix(')')?;
    let name = inner
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .or_else(|| inner.strip_prefix('\'').and_then(|n| n.strip_suffix('\'')))?;
    if name.contains(['"', '\\']) {
        return None;
    }
    Some(format!("\"{name}\" in user.groups"))
}

async fn map_policies(
    client: &Client,
    names: &mut Names,
    report: &mut Report,
) -> Result<Value, Error> {
    let all: Vec<Polymorphic> = client.list("policies/all/").await?;
    let mut out = Vec::new();
    for p in &all {
        let kind = p.meta_model_name.as_str();
        let mut e = Map::new();
        e.insert("name".into(), json!(p.name));
        if p.execution_logging {
            e.insert("execution_logging".into(), json!(true));
        }
        match kind {
            "authentik_policies_reputation.reputationpolicy" => {
                let r: Value = client
                    .get(&format!("policies/reputation/{}/", p.pk))
                    .await?;
                e.insert("kind".into(), json!("reputation"));
                e.insert(
                    "settings".into(),
                    json!({
                        "check_ip": r["check_ip"].as_bool().unwrap_or(true),
                        "check_username": r["check_username"].as_bool().unwrap_or(true),
                        "threshold": r["threshold"].as_i64().unwrap_or(-5),
                    }),
                );
                names.policies.insert(p.pk, p.name.clone());
                report.carried("policies");
            }
            "authentik_policies_expression.expressionpolicy" => {
                let x: Value = client
                    .get(&format!("policies/expression/{}/", p.pk))
                    .await?;
                let python = x["expression"].as_str().unwrap_or_default();
                e.insert("kind".into(), json!("expression"));
                match translate_policy(python) {
                    Some((cel, note)) => {
                        e.insert("settings".into(), json!({ "expression": cel }));
                        names.policies.insert(p.pk, p.name.clone());
                        report.carried("policies");
                        report.check("expression policy", &p.name, note);
                    }
                    None => {
                        e.insert("settings".into(), json!({ "expression": "false" }));
                        names.policies.insert(p.pk, p.name.clone());
                        names.denied.insert(p.pk, p.name.clone());
                        report.left_out(
                            "expression policy",
                            &p.name,
                            format!(
                                "Python cannot be carried; it now denies (CEL `false`) until translated by hand. Its source:\n{}",
                                indent(python)
                            ),
                        );
                    }
                }
            }
            other => {
                report.left_out(
                    "policy",
                    &p.name,
                    format!("{other} has no Gatehouse counterpart; its bindings are left out"),
                );
                continue;
            }
        }
        out.push(Value::Object(e));
    }
    Ok(Value::Array(out))
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The bindings at `target` as declarative entries. A binding of a policy Gatehouse has no
/// counterpart for is left out only where that cannot let anyone in: at a flow-stage binding it
/// would skip a stage, at an application or flow it would widen access, so there the whole
/// object is marked in the report.
async fn bindings(
    client: &Client,
    target: Uuid,
    owner: (&str, &str, Option<&str>),
    names: &Names,
    report: &mut Report,
) -> Result<Vec<Value>, Error> {
    let found: Vec<Binding> = client
        .list(&format!("policies/bindings/?target={target}"))
        .await?;
    let mut out = Vec::new();
    for b in found {
        let mut e = Map::new();
        match (b.policy, b.group, b.user) {
            (Some(p), _, _) => match names.policies.get(&p) {
                Some(name) => {
                    if let (Some(stage), true) = (owner.2, names.denied.contains_key(&p)) {
                        // A failing policy at a stage skips the stage rather than denying:
                        // safe for most stages, not for a deny stage it was meant to trigger.
                        report.check(
                            owner.0,
                            owner.1,
                            format!("policy `{name}` now always fails, so the stage `{stage}` it guards is skipped: translate the policy, or make sure skipping that stage lets nobody in"),
                        );
                    }
                    e.insert("policy".into(), json!(name));
                }
                None => {
                    report.left_out(
                        owner.0,
                        owner.1,
                        "a binding of a policy Gatehouse cannot run was left out: check who may pass",
                    );
                    continue;
                }
            },
            (_, Some(g), _) => {
                e.insert("group".into(), json!(names.groups.get(&g)));
            }
            (_, _, Some(u)) => {
                e.insert("user".into(), json!(names.users.get(&u)));
            }
            _ => continue,
        }
        e.insert("order".into(), json!(b.order));
        if b.negate {
            e.insert("negate".into(), json!(true));
        }
        if !b.enabled {
            e.insert("enabled".into(), json!(false));
        }
        if b.timeout != 30 {
            e.insert("timeout".into(), json!(b.timeout));
        }
        if b.failure_result {
            e.insert("failure_result".into(), json!(true));
        }
        out.push(Value::Object(e));
    }
    Ok(out)
}

async fn map_flows(
    client: &Client,
    flows: &[Flow],
    names: &Names,
    report: &mut Report,
) -> Result<Value, Error> {
    let mut out = Vec::new();
    for f in flows {
        let mut e = Map::new();
        e.insert("slug".into(), json!(f.slug));
        e.insert("name".into(), json!(f.name));
        e.insert("title".into(), json!(f.title));
        e.insert("designation".into(), json!(f.designation));
        put(
            &mut e,
            "authentication",
            f.authentication.clone().map(Value::from),
        );
        put(
            &mut e,
            "policy_engine_mode",
            f.policy_engine_mode.clone().map(Value::from),
        );
        put(&mut e, "layout", f.layout.clone().map(Value::from));
        put(
            &mut e,
            "denied_action",
            f.denied_action.clone().map(Value::from),
        );
        put(
            &mut e,
            "compatibility_mode",
            f.compatibility_mode.map(Value::from),
        );
        let placed: Vec<StageBinding> = client
            .list(&format!("flows/bindings/?target={}", f.pk))
            .await?;
        let mut stages = Vec::new();
        for b in placed {
            let Some(stage) = names.stages.get(&b.stage) else {
                report.left_out(
                    "flow",
                    &f.slug,
                    format!(
                        "the stage at order {} has no Gatehouse counterpart and was left out",
                        b.order
                    ),
                );
                continue;
            };
            let bound = bindings(
                client,
                b.policybindingmodel_ptr_id,
                ("flow", &f.slug, Some(stage)),
                names,
                report,
            )
            .await?;
            let mut placed = json!({"stage": stage, "order": b.order});
            // The mode matters only where two or more policies meet; Gatehouse's default is
            // `all`, Authentik's `any`.
            if bound.len() > 1 && b.policy_engine_mode.as_deref() == Some("any") {
                placed["policy_engine_mode"] = json!("any");
            }
            placed["bindings"] = Value::Array(bound);
            stages.push(placed);
        }
        e.insert("stages".into(), Value::Array(stages));
        let bound = bindings(
            client,
            f.policybindingmodel_ptr_id,
            ("flow", &f.slug, None),
            names,
            report,
        )
        .await?;
        e.insert("bindings".into(), Value::Array(bound));
        report.carried("flows");
        out.push(Value::Object(e));
    }
    Ok(Value::Array(out))
}

async fn map_scope_mappings(
    client: &Client,
    names: &mut Names,
    report: &mut Report,
) -> Result<Value, Error> {
    let all: Vec<ScopeMapping> = client.list("propertymappings/provider/scope/").await?;
    for m in &all {
        if m.managed.is_some() {
            // Authentik's own openid/email/profile/offline_access mappings: Gatehouse's
            // built-in scopes give the same claims.
            continue;
        }
        let note = if m.scope_name == "groups" {
            "Python cannot be carried; Gatehouse's built-in `groups` scope gives a `groups` claim with the user's group names (parents included): check that is what the application expects".to_owned()
        } else {
            format!(
                "Python cannot be carried; write it as a CEL scope mapping for scope `{}`. Its source:\n{}",
                m.scope_name,
                indent(&m.expression)
            )
        };
        report.left_out("scope mapping", &m.name, note);
        names.scope_mappings.insert(m.pk, m.name.clone());
    }
    Ok(Value::Array(Vec::new()))
}

fn flow(names: &Names, uuid: Option<Uuid>) -> Option<Value> {
    uuid.and_then(|u| names.flows.get(&u)).map(|s| json!(s))
}

fn map_oauth2(
    p: &OAuth2Provider,
    names: &Names,
    env: &mut BTreeMap<String, String>,
    report: &mut Report,
) -> Value {
    let mut e = Map::new();
    e.insert("name".into(), json!(p.name));
    put(
        &mut e,
        "authorization_flow",
        flow(names, Some(p.authorization_flow)),
    );
    put(
        &mut e,
        "invalidation_flow",
        flow(names, p.invalidation_flow),
    );
    put(
        &mut e,
        "authentication_flow",
        flow(names, p.authentication_flow),
    );
    put(
        &mut e,
        "client_type",
        p.client_type.clone().map(Value::from),
    );
    e.insert("client_id".into(), json!(p.client_id));
    if let Some(secret) = p.client_secret.as_deref().filter(|s| !s.is_empty()) {
        let var = variable(&p.name, "CLIENT_SECRET");
        env.insert(var.clone(), secret.to_owned());
        e.insert("client_secret".into(), secret_ref(&var, false));
    }
    let mut uris = Vec::new();
    for u in &p.redirect_uris {
        let accepted = u
            .matching_mode
            .parse::<MatchingMode>()
            .map_err(|e| e.to_string())
            .and_then(|mode| {
                redirect::check(mode, &u.url)
                    .map(|()| vec![u.url.clone()])
                    .map_err(|e| e.to_string())
            });
        let urls = match accepted {
            Ok(urls) => urls,
            Err(why) => match expand_origin(&u.url) {
                Some(urls) => {
                    report.check(
                        "OAuth2 provider",
                        &p.name,
                        format!(
                            "the redirect URI `{}` became one entry per host: {}",
                            u.url,
                            urls.join(", ")
                        ),
                    );
                    urls
                }
                None => {
                    report.left_out(
                        "OAuth2 provider",
                        &p.name,
                        format!("redirect URI left out: {why}"),
                    );
                    continue;
                }
            },
        };
        for url in urls {
            let mut r = Map::new();
            r.insert("matching_mode".into(), json!(u.matching_mode));
            r.insert("url".into(), json!(url));
            put(
                &mut r,
                "redirect_uri_type",
                u.redirect_uri_type.clone().map(Value::from),
            );
            uris.push(Value::Object(r));
        }
    }
    e.insert("redirect_uris".into(), Value::Array(uris));
    for (key, value) in [
        ("access_code_validity", &p.access_code_validity),
        ("access_token_validity", &p.access_token_validity),
        ("refresh_token_validity", &p.refresh_token_validity),
        ("sub_mode", &p.sub_mode),
        ("issuer_mode", &p.issuer_mode),
    ] {
        put(&mut e, key, value.clone().map(Value::from));
    }
    put(
        &mut e,
        "include_claims_in_id_token",
        p.include_claims_in_id_token.map(Value::from),
    );
    let algorithm = match p
        .signing_key
        .and_then(|k| names.key_types.get(&k))
        .map(String::as_str)
    {
        Some("ec") => "ES256",
        Some(_) => "RS256",
        None => {
            report.check(
                "OAuth2 provider",
                &p.name,
                "signed with HS256 (no key pair) in Authentik; Gatehouse signs with RS256: the application must accept it",
            );
            "RS256"
        }
    };
    e.insert("signing_algorithm".into(), json!(algorithm));
    let custom: Vec<&String> = p
        .property_mappings
        .iter()
        .filter_map(|m| names.scope_mappings.get(m))
        .collect();
    if !custom.is_empty() {
        report.check(
            "OAuth2 provider",
            &p.name,
            format!(
                "used scope mappings that were not carried ({}): see them above",
                custom
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    report.carried("OAuth2 providers");
    Value::Object(e)
}

/// Most alternatives a host group may stand for before it is reported instead.
const MAX_HOSTS: usize = 8;

/// A regex redirect URI whose host varies only by one group of literal alternatives, such as
/// `https://(www\.)?app\.example\.com/cb` or `https://(a|b)\.example\.com/cb`, as the
/// literal-origin entries it stands for (Gatehouse refuses host patterns); `None` when it is
/// not of that shape or an alternative is still refused.
fn expand_origin(url: &str) -> Option<Vec<String>> {
    let open = url.find('(')?;
    let close = open + url[open..].find(')')?;
    let inner = &url[open + 1..close];
    if inner.contains(['(', '[', '*', '+', '{', '?', '^', '$']) {
        return None;
    }
    let optional = url[close + 1..].starts_with('?');
    let rest = &url[close + 1 + usize::from(optional)..];
    let mut alternatives: Vec<&str> = inner.split('|').collect();
    if optional {
        alternatives.push("");
    }
    if alternatives.len() > MAX_HOSTS {
        return None;
    }
    let urls: Vec<String> = alternatives
        .iter()
        .map(|a| format!("{}{a}{rest}", &url[..open]))
        .collect();
    urls.iter()
        .all(|u| redirect::check(MatchingMode::Regex, u).is_ok())
        .then_some(urls)
}

fn map_proxy(p: &ProxyProvider, names: &Names, report: &mut Report) -> Value {
    let mut e = Map::new();
    e.insert("name".into(), json!(p.name));
    e.insert("client_id".into(), json!(p.client_id));
    put(
        &mut e,
        "authorization_flow",
        flow(names, Some(p.authorization_flow)),
    );
    put(
        &mut e,
        "invalidation_flow",
        flow(names, p.invalidation_flow),
    );
    put(
        &mut e,
        "authentication_flow",
        flow(names, p.authentication_flow),
    );
    put(&mut e, "mode", p.mode.clone().map(Value::from));
    e.insert("external_host".into(), json!(p.external_host));
    for (key, value) in [
        ("internal_host", &p.internal_host),
        ("cookie_domain", &p.cookie_domain),
        ("skip_path_regex", &p.skip_path_regex),
        ("basic_auth_user_attribute", &p.basic_auth_user_attribute),
        (
            "basic_auth_password_attribute",
            &p.basic_auth_password_attribute,
        ),
        ("access_token_validity", &p.access_token_validity),
        ("refresh_token_validity", &p.refresh_token_validity),
    ] {
        put(&mut e, key, value.clone().map(Value::from));
    }
    for (key, value) in [
        (
            "internal_host_ssl_validation",
            p.internal_host_ssl_validation,
        ),
        ("basic_auth_enabled", p.basic_auth_enabled),
        ("intercept_header_auth", p.intercept_header_auth),
    ] {
        put(&mut e, key, value.map(Value::from));
    }
    report.carried("proxy providers");
    Value::Object(e)
}

async fn map_application(
    client: &Client,
    app: &Application,
    names: &Names,
    report: &mut Report,
) -> Result<Value, Error> {
    let mut e = Map::new();
    e.insert("slug".into(), json!(app.slug));
    e.insert("name".into(), json!(app.name));
    put(
        &mut e,
        "provider",
        app.provider
            .and_then(|p| names.providers.get(&p))
            .map(|n| json!(n)),
    );
    for (key, value) in [
        ("meta_launch_url", &app.meta_launch_url),
        ("meta_description", &app.meta_description),
        ("meta_publisher", &app.meta_publisher),
        ("policy_engine_mode", &app.policy_engine_mode),
        ("group", &app.group),
    ] {
        put(&mut e, key, value.clone().map(Value::from));
    }
    put(
        &mut e,
        "open_in_new_tab",
        app.open_in_new_tab.map(Value::from),
    );
    put(&mut e, "meta_hide", app.meta_hide.map(Value::from));
    let bound = bindings(
        client,
        app.pk,
        ("application", &app.slug, None),
        names,
        report,
    )
    .await?;
    e.insert("bindings".into(), Value::Array(bound));
    report.carried("applications");
    Ok(Value::Object(e))
}

fn map_source(
    s: &OAuthSource,
    names: &Names,
    env: &mut BTreeMap<String, String>,
    report: &mut Report,
) -> Option<Value> {
    if s.provider_type
        .parse::<gatehouse_core::kinds::SourceProviderType>()
        .is_err()
    {
        report.left_out(
            "OAuth source",
            &s.slug,
            format!(
                "provider type `{}` is not one Gatehouse has",
                s.provider_type
            ),
        );
        return None;
    }
    let mut e = Map::new();
    e.insert("slug".into(), json!(s.slug));
    e.insert("name".into(), json!(s.name));
    e.insert("provider_type".into(), json!(s.provider_type));
    put(
        &mut e,
        "user_matching_mode",
        s.user_matching_mode.clone().map(Value::from),
    );
    put(
        &mut e,
        "authentication_flow",
        flow(names, s.authentication_flow),
    );
    put(&mut e, "enrollment_flow", flow(names, s.enrollment_flow));
    e.insert("consumer_key".into(), json!(s.consumer_key));
    let var = variable(&s.slug, "CONSUMER_SECRET");
    env.insert(var.clone(), String::new());
    e.insert("consumer_secret".into(), secret_ref(&var, true));
    put(&mut e, "enabled", s.enabled.map(Value::from));
    put(&mut e, "promoted", s.promoted.map(Value::from));
    for (key, value) in [
        ("authorization_url", &s.authorization_url),
        ("access_token_url", &s.access_token_url),
        ("profile_url", &s.profile_url),
        ("oidc_well_known_url", &s.oidc_well_known_url),
        ("additional_scopes", &s.additional_scopes),
    ] {
        put(&mut e, key, value.clone().map(Value::from));
    }
    report.check(
        "OAuth source",
        &s.slug,
        format!("Authentik's API never returns the client secret: set {var} in the environment file; the source stays disabled while it is empty"),
    );
    report.carried("OAuth sources");
    Some(Value::Object(e))
}

fn map_outpost(o: &Outpost, names: &Names, report: &mut Report) -> Option<Value> {
    if o.outpost_type != "proxy" {
        report.left_out(
            "outpost",
            &o.name,
            format!("{} outposts have no Gatehouse counterpart", o.outpost_type),
        );
        return None;
    }
    let name = if o.managed.as_deref() == Some("goauthentik.io/outposts/embedded") {
        EMBEDDED_OUTPOST.to_owned()
    } else {
        o.name.clone()
    };
    let providers: Vec<&String> = o
        .providers
        .iter()
        .filter_map(|p| names.providers.get(p))
        .collect();
    report.carried("outposts");
    Some(json!({"name": name, "providers": providers}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_membership_expressions_become_cel() {
        assert_eq!(
            translate_expression("return ak_is_group_member(request.user, name=\"Admins\")\n"),
            Some("\"Admins\" in user.groups".into())
        );
        assert_eq!(translate_expression("return True"), None);
        assert_eq!(
            translate_expression("return ak_is_group_member(request.user, name=\"a\\\" || true\")"),
            None
        );
    }

    #[test]
    fn a_host_group_becomes_one_entry_per_host() {
        assert_eq!(
            expand_origin(r"https://(www\.)?wrongmove\.example\.com/auth/callback"),
            Some(vec![
                r"https://www\.wrongmove\.example\.com/auth/callback".to_owned(),
                r"https://wrongmove\.example\.com/auth/callback".to_owned(),
            ])
        );
        assert_eq!(
            expand_origin(r"https://[a-z0-9-]+\.k8s\.example\.com/cb"),
            None
        );
        assert_eq!(expand_origin(r"https://(a|.*)\.example\.com/cb"), None);
    }

    #[test]
    fn variables_are_shell_names() {
        assert_eq!(
            variable("Cloudflare Access", "CLIENT_SECRET"),
            "CLOUDFLARE_ACCESS_CLIENT_SECRET"
        );
        assert_eq!(
            variable("wrong-move", "CLIENT_SECRET"),
            "WRONG_MOVE_CLIENT_SECRET"
        );
    }
}
