//! Each kind of object in the file's vocabulary: how a stored object reads (references as names
//! and slugs, lists sorted where order carries no meaning), and how a desired entry is written
//! back through the API's validated write paths.

use std::collections::BTreeMap;

use gatehouse_core::kinds::{PolicyEngineMode, ProxyMode, RedirectUriType};
use gatehouse_declarative::document::{
    ApplicationEntry, BindingEntry, Document, FlowEntry, FlowStageEntry, GroupEntry,
    OAuth2ProviderEntry, OutpostEntry, PolicyEntry, ProxyProviderEntry, ScopeMappingEntry,
    SourceEntry, StageEntry, UserEntry,
};
use gatehouse_proto::core::{ApplicationRequest, GroupRequest, UserRequest};
use gatehouse_proto::flows::FlowRequest;
use gatehouse_proto::outposts::OutpostRequest;
use gatehouse_proto::providers::{
    OAuth2ProviderRequest, ProxyProviderRequest, RedirectUri, ScopeMappingRequest,
};
use gatehouse_proto::sources::OAuthSourceRequest;
use gatehouse_store::policies::{self, BindingFields, Subject, Target};
use gatehouse_store::providers::{self as store_providers, ProviderKind};
use gatehouse_store::{
    applications, flows, groups, outposts, scope_mappings, sources, sql, users, Conn,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{Failure, Run};
use crate::api::providers::{OAuth2, Proxy};
use crate::api::resource::Resource;
use crate::error::ApiError;

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure::Server(ApiError::Internal(e.to_string()))
}

fn typed<T: DeserializeOwned>(value: Value) -> Result<T, Failure> {
    serde_json::from_value(value).map_err(internal)
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// A redirect URI's type as the file spells it: `authorization`, the default, left out, so a
/// file that never names it matches what is stored.
fn named_type(kind: Option<RedirectUriType>) -> Option<RedirectUriType> {
    kind.filter(|k| *k != RedirectUriType::Authorization)
}

/// Sorts bindings so that file order within one `order` value does not matter.
fn canonical(mut bindings: Vec<BindingEntry>) -> Vec<BindingEntry> {
    bindings.sort_by(|a, b| {
        (a.order, &a.policy, &a.group, &a.user).cmp(&(b.order, &b.policy, &b.group, &b.user))
    });
    bindings
}

async fn flow_slug(conn: &mut Conn, flow: Option<Uuid>) -> Result<String, Failure> {
    Ok(match flow {
        Some(uuid) => sql::get::<flows::Flow>(conn, uuid).await?.fields.slug,
        None => String::new(),
    })
}

impl Run<'_> {
    async fn flow_ref(
        &mut self,
        kind: &str,
        key: &str,
        field: &str,
        slug: Option<&str>,
    ) -> Result<Option<Uuid>, Failure> {
        match slug.filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(slug) => match flows::find_by_slug(self.conn, slug).await? {
                Some(f) => Ok(Some(f.uuid)),
                None => Err(self.invalid(kind, key, Some(field), format!("no flow with slug `{slug}`; define it under `flows:` or use a default flow"))),
            },
        }
    }

    async fn group_ref(
        &mut self,
        kind: &str,
        key: &str,
        field: &str,
        name: &str,
    ) -> Result<groups::Group, Failure> {
        match groups::find_by_name(self.conn, name).await? {
            Some(g) => Ok(g),
            None => Err(self.invalid(
                kind,
                key,
                Some(field),
                format!("no group named `{name}`; define it under `groups:`"),
            )),
        }
    }

    async fn user_ref(
        &mut self,
        kind: &str,
        key: &str,
        field: &str,
        username: &str,
    ) -> Result<users::User, Failure> {
        match users::find_by_username(self.conn, username).await? {
            Some(u) => Ok(u),
            None => Err(self.invalid(
                kind,
                key,
                Some(field),
                format!("no user named `{username}`; define it under `users:`"),
            )),
        }
    }

    async fn provider_ref(
        &mut self,
        kind: &str,
        key: &str,
        field: &str,
        name: &str,
    ) -> Result<store_providers::Provider, Failure> {
        match store_providers::find_by_name(self.conn, self.sealing, name).await? {
            Some(p) => Ok(p),
            None => Err(self.invalid(kind, key, Some(field), format!("no provider named `{name}`; define it under `oauth2_providers:` or `proxy_providers:`"))),
        }
    }

    /// The bindings attached to `target`, as file entries.
    async fn bindings_view(&mut self, target: Uuid) -> Result<Vec<BindingEntry>, Failure> {
        let mut out = Vec::new();
        for b in policies::bindings_of(self.conn, target).await? {
            let f = b.fields;
            let (mut policy, mut group, mut user) = (None, None, None);
            match f.subject {
                Subject::Policy(p) => {
                    policy = Some(
                        sql::get::<policies::Policy>(self.conn, p)
                            .await?
                            .fields
                            .name,
                    )
                }
                Subject::Group(g) => {
                    group = Some(sql::get::<groups::Group>(self.conn, g).await?.fields.name)
                }
                Subject::User(u) => user = Some(users::get(self.conn, u).await?.fields.username),
            }
            out.push(BindingEntry {
                policy,
                group,
                user,
                order: f.order,
                negate: f.negate,
                enabled: f.enabled,
                timeout: f.timeout,
                failure_result: f.failure_result,
            });
        }
        Ok(canonical(out))
    }

    /// Replaces the bindings attached to `target` with `entries`.
    async fn replace_bindings(
        &mut self,
        kind: &str,
        key: &str,
        target: Target,
        entries: &[BindingEntry],
    ) -> Result<(), Failure> {
        for existing in policies::bindings_of(self.conn, target.uuid()).await? {
            policies::unbind(self.conn, existing.uuid).await?;
        }
        for entry in entries {
            let subject = match (&entry.policy, &entry.group, &entry.user) {
                (Some(name), None, None) => match policies::find_by_name(self.conn, name).await? {
                    Some(p) => Subject::Policy(p.uuid),
                    None => {
                        return Err(self.invalid(
                            kind,
                            key,
                            Some("bindings"),
                            format!("no policy named `{name}`; define it under `policies:`"),
                        ))
                    }
                },
                (None, Some(name), None) => {
                    Subject::Group(self.group_ref(kind, key, "bindings", name).await?.id)
                }
                (None, None, Some(name)) => {
                    Subject::User(self.user_ref(kind, key, "bindings", name).await?.id)
                }
                _ => {
                    return Err(self.invalid(
                        kind,
                        key,
                        Some("bindings"),
                        "each binding names exactly one of policy, group or user",
                    ))
                }
            };
            policies::bind(
                self.conn,
                &BindingFields {
                    target,
                    subject,
                    negate: entry.negate,
                    enabled: entry.enabled,
                    order: entry.order,
                    timeout: entry.timeout,
                    failure_result: entry.failure_result,
                },
            )
            .await?;
        }
        Ok(())
    }
}

/// Orders groups so that parents defined in the file come before their children; refuses cycles.
pub(super) fn parents_first<'d>(
    run: &Run<'_>,
    entries: &'d [GroupEntry],
) -> Result<Vec<&'d GroupEntry>, Failure> {
    let by_name: BTreeMap<&str, &GroupEntry> =
        entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut done: Vec<&str> = Vec::new();
    let mut ordered = Vec::new();
    fn visit<'d>(
        run: &Run<'_>,
        name: &'d str,
        by_name: &BTreeMap<&'d str, &'d GroupEntry>,
        path: &mut Vec<&'d str>,
        done: &mut Vec<&'d str>,
        ordered: &mut Vec<&'d GroupEntry>,
    ) -> Result<(), Failure> {
        if done.contains(&name) {
            return Ok(());
        }
        if path.contains(&name) {
            return Err(run.invalid(
                "groups",
                name,
                Some("parents"),
                format!("parent cycle: {} → {name}", path.join(" → ")),
            ));
        }
        let Some(entry) = by_name.get(name) else {
            return Ok(());
        };
        path.push(name);
        for parent in entry.parents.iter().flatten() {
            visit(run, parent, by_name, path, done, ordered)?;
        }
        path.pop();
        done.push(name);
        ordered.push(entry);
        Ok(())
    }
    for entry in entries {
        visit(
            run,
            &entry.name,
            &by_name,
            &mut Vec::new(),
            &mut done,
            &mut ordered,
        )?;
    }
    Ok(ordered)
}

pub(super) async fn group(run: &mut Run<'_>, entry: &GroupEntry) -> Result<(), Failure> {
    let key = entry.name.as_str();
    let existing = groups::find_by_name(run.conn, key).await?;
    let current = match &existing {
        Some(g) => Some(json!(GroupEntry {
            name: g.fields.name.clone(),
            is_superuser: Some(g.fields.is_superuser),
            parents: Some(sorted(
                groups::parents(run.conn, g.id)
                    .await?
                    .into_iter()
                    .map(|p| p.fields.name)
                    .collect()
            )),
            attributes: Some(g.fields.attributes.as_object().cloned().unwrap_or_default()),
        })),
        None => None,
    };
    let mut entry = entry.clone();
    entry.parents = entry.parents.map(sorted);
    let Some(desired) = run.compare("group", key, current, &entry, &[])? else {
        return Ok(());
    };
    let desired: GroupEntry = typed(desired)?;
    let mut parents = Vec::new();
    for name in desired.parents.iter().flatten() {
        parents.push(run.group_ref("groups", key, "parents", name).await?.uuid);
    }
    let request = GroupRequest {
        name: Some(desired.name),
        is_superuser: Some(desired.is_superuser.unwrap_or(false)),
        parents: Some(parents),
        users: None,
        attributes: Some(desired.attributes.unwrap_or_default()),
        roles: None,
    };
    groups::Group::write(run.conn, run.sealing, run.admin, existing, request, true)
        .await
        .map_err(|e| run.locate("groups", key, e))?;
    Ok(())
}

pub(super) async fn user(run: &mut Run<'_>, entry: &UserEntry) -> Result<(), Failure> {
    let key = entry.username.as_str();
    let existing = users::find_by_username(run.conn, key).await?;
    let current = match &existing {
        Some(u) => Some(json!(UserEntry {
            username: u.fields.username.clone(),
            name: Some(u.fields.name.clone()),
            email: Some(u.fields.email.clone()),
            user_type: Some(u.fields.user_type),
            is_active: Some(u.fields.is_active),
            path: Some(u.fields.path.clone()),
            attributes: Some(u.fields.attributes.as_object().cloned().unwrap_or_default()),
            groups: Some(sorted(
                groups::of_user(run.conn, u.id)
                    .await?
                    .into_iter()
                    .map(|g| g.fields.name)
                    .collect()
            )),
        })),
        None => None,
    };
    let mut entry = entry.clone();
    entry.groups = entry.groups.map(sorted);
    let Some(desired) = run.compare("user", key, current, &entry, &[])? else {
        return Ok(());
    };
    let desired: UserEntry = typed(desired)?;
    let mut group_uuids = Vec::new();
    for name in desired.groups.iter().flatten() {
        group_uuids.push(run.group_ref("users", key, "groups", name).await?.uuid);
    }
    let request = UserRequest {
        name: Some(desired.name.unwrap_or_else(|| desired.username.clone())),
        username: Some(desired.username),
        is_active: desired.is_active,
        last_login: None,
        groups: Some(group_uuids),
        roles: None,
        email: desired.email,
        attributes: desired.attributes,
        path: desired.path,
        user_type: desired.user_type,
    };
    users::User::write(run.conn, run.sealing, run.admin, existing, request, true)
        .await
        .map_err(|e| run.locate("users", key, e))?;
    Ok(())
}

pub(super) async fn stage(run: &mut Run<'_>, entry: &StageEntry) -> Result<(), Failure> {
    let key = entry.name.as_str();
    let existing = flows::find_stage_by_name(run.conn, key).await?;
    let current = existing.as_ref().map(|s| {
        json!(StageEntry {
            name: s.fields.name.clone(),
            kind: s.fields.kind,
            settings: Some(s.fields.settings.as_object().cloned().unwrap_or_default()),
        })
    });
    let Some(desired) = run.compare("stage", key, current, entry, &[])? else {
        return Ok(());
    };
    let desired: StageEntry = typed(desired)?;
    if let Some(err) = gatehouse_core::validate::name(&desired.name).err() {
        return Err(run.invalid("stages", key, Some("name"), err));
    }
    let fields = flows::StageFields {
        name: desired.name,
        kind: desired.kind,
        settings: Value::Object(desired.settings.unwrap_or_default()),
    };
    match existing {
        Some(s) => flows::update_stage(run.conn, s.uuid, &fields).await?,
        None => flows::create_stage(run.conn, &fields).await?,
    };
    Ok(())
}

pub(super) async fn policy(run: &mut Run<'_>, entry: &PolicyEntry) -> Result<(), Failure> {
    let key = entry.name.as_str();
    let existing = policies::find_by_name(run.conn, key).await?;
    let current = existing.as_ref().map(|p| {
        json!(PolicyEntry {
            name: p.fields.name.clone(),
            kind: p.fields.kind,
            execution_logging: Some(p.fields.execution_logging),
            settings: Some(p.fields.settings.as_object().cloned().unwrap_or_default()),
        })
    });
    let Some(desired) = run.compare("policy", key, current, entry, &[])? else {
        return Ok(());
    };
    let desired: PolicyEntry = typed(desired)?;
    let settings = desired.settings.unwrap_or_default();
    if desired.kind == gatehouse_core::kinds::PolicyKind::Expression
        && !settings.get("expression").is_some_and(Value::is_string)
    {
        return Err(run.invalid(
            "policies",
            key,
            Some("settings"),
            "an expression policy needs `settings.expression` (a CEL expression)",
        ));
    }
    let fields = policies::PolicyFields {
        name: desired.name,
        kind: desired.kind,
        execution_logging: desired.execution_logging.unwrap_or(false),
        settings: Value::Object(settings),
    };
    match existing {
        Some(p) => policies::update(run.conn, p.uuid, &fields).await?,
        None => policies::create(run.conn, &fields).await?,
    };
    Ok(())
}

/// A stage binding's mode as the file writes it: left out when it is the default, `all`, so
/// files that never name it plan to zero.
fn engine_mode(mode: PolicyEngineMode) -> Option<PolicyEngineMode> {
    (mode != PolicyEngineMode::All).then_some(mode)
}

pub(super) async fn flow(run: &mut Run<'_>, entry: &FlowEntry) -> Result<(), Failure> {
    let key = entry.slug.as_str();
    let existing = flows::find_by_slug(run.conn, key).await?;
    let current = match &existing {
        Some(f) => {
            let mut stages = Vec::new();
            for b in flows::stage_bindings(run.conn, f.uuid).await? {
                stages.push(FlowStageEntry {
                    stage: sql::get::<flows::Stage>(run.conn, b.stage)
                        .await?
                        .fields
                        .name,
                    order: b.order,
                    bindings: run.bindings_view(b.uuid).await?,
                    policy_engine_mode: engine_mode(b.policy_engine_mode),
                });
            }
            let ff = &f.fields;
            Some(json!(FlowEntry {
                slug: ff.slug.clone(),
                name: Some(ff.name.clone()),
                title: Some(ff.title.clone()),
                designation: Some(ff.designation),
                authentication: Some(ff.authentication),
                policy_engine_mode: Some(ff.policy_engine_mode),
                layout: Some(ff.layout),
                denied_action: Some(ff.denied_action),
                compatibility_mode: Some(ff.compatibility_mode),
                background: Some(ff.background.clone()),
                stages: Some(stages),
                bindings: Some(run.bindings_view(f.uuid).await?),
            }))
        }
        None => None,
    };
    let mut entry = entry.clone();
    entry.bindings = entry.bindings.map(canonical);
    if let Some(stages) = &mut entry.stages {
        stages.sort_by(|a, b| (a.order, &a.stage).cmp(&(b.order, &b.stage)));
        for s in stages.iter_mut() {
            s.bindings = canonical(std::mem::take(&mut s.bindings));
            s.policy_engine_mode = s.policy_engine_mode.and_then(engine_mode);
        }
    }
    let Some(desired) = run.compare("flow", key, current.clone(), &entry, &[])? else {
        return Ok(());
    };
    let desired: FlowEntry = typed(desired)?;
    let name = desired.name.clone().unwrap_or_else(|| desired.slug.clone());
    let request = FlowRequest {
        title: Some(desired.title.clone().unwrap_or_else(|| name.clone())),
        name: Some(name),
        slug: Some(desired.slug.clone()),
        designation: desired.designation,
        background: desired.background.clone(),
        policy_engine_mode: desired.policy_engine_mode,
        compatibility_mode: desired.compatibility_mode,
        layout: desired.layout,
        denied_action: desired.denied_action,
        authentication: desired.authentication,
    };
    let flow = flows::Flow::write(run.conn, run.sealing, run.admin, existing, request, true)
        .await
        .map_err(|e| run.locate("flows", key, e))?;
    let current_stages = current
        .as_ref()
        .map(|c| c["stages"].clone())
        .unwrap_or(Value::Null);
    if let Some(stages) = &desired.stages {
        if serde_json::to_value(stages).map_err(internal)? != current_stages {
            for b in flows::stage_bindings(run.conn, flow.uuid).await? {
                flows::unbind_stage(run.conn, b.uuid).await?;
            }
            for s in stages {
                let Some(stage) = flows::find_stage_by_name(run.conn, &s.stage).await? else {
                    return Err(run.invalid(
                        "flows",
                        key,
                        Some("stages"),
                        format!("no stage named `{}`; define it under `stages:`", s.stage),
                    ));
                };
                let mut binding =
                    flows::bind_stage(run.conn, flow.uuid, stage.uuid, s.order).await?;
                if let Some(mode) = s.policy_engine_mode {
                    binding.policy_engine_mode = mode;
                    binding = flows::put_stage_binding(run.conn, &binding, true).await?;
                }
                run.replace_bindings(
                    "flows",
                    key,
                    Target::StageBinding(binding.uuid),
                    &s.bindings,
                )
                .await?;
            }
        }
    }
    let current_bindings = current
        .as_ref()
        .map(|c| c["bindings"].clone())
        .unwrap_or(Value::Null);
    if let Some(bindings) = &desired.bindings {
        if serde_json::to_value(bindings).map_err(internal)? != current_bindings {
            run.replace_bindings("flows", key, Target::Flow(flow.uuid), bindings)
                .await?;
        }
    }
    Ok(())
}

/// The common provider fields in file vocabulary: (authorization, invalidation, authentication).
async fn provider_flows(
    conn: &mut Conn,
    p: &store_providers::Provider,
) -> Result<[String; 3], Failure> {
    Ok([
        flow_slug(conn, Some(p.fields.authorization_flow)).await?,
        flow_slug(conn, p.fields.invalidation_flow).await?,
        flow_slug(conn, p.fields.authentication_flow).await?,
    ])
}

pub(super) async fn scope_mapping(
    run: &mut Run<'_>,
    entry: &ScopeMappingEntry,
) -> Result<(), Failure> {
    let key = entry.name.as_str();
    let existing = sql::find::<scope_mappings::ScopeMapping>(run.conn, "name", key.into()).await?;
    let current = existing.as_ref().map(|m| {
        json!(ScopeMappingEntry {
            name: m.fields.name.clone(),
            scope_name: m.fields.scope_name.clone(),
            expression: m.fields.expression.clone(),
            description: Some(m.fields.description.clone()),
        })
    });
    let Some(desired) = run.compare("scope_mapping", key, current, entry, &[])? else {
        return Ok(());
    };
    let desired: ScopeMappingEntry = typed(desired)?;
    let request = ScopeMappingRequest {
        name: Some(desired.name),
        scope_name: Some(desired.scope_name),
        expression: Some(desired.expression),
        description: desired.description,
        managed: None,
    };
    scope_mappings::ScopeMapping::write(run.conn, run.sealing, run.admin, existing, request, true)
        .await
        .map_err(|e| run.locate("scope_mappings", key, e))?;
    Ok(())
}

/// The UUIDs of the scope mappings named in a provider entry.
async fn mapping_refs(
    run: &mut Run<'_>,
    key: &str,
    names: Option<&[String]>,
) -> Result<Option<Vec<Uuid>>, Failure> {
    let Some(names) = names else {
        return Ok(None);
    };
    let mut uuids = Vec::with_capacity(names.len());
    for name in names {
        match sql::find::<scope_mappings::ScopeMapping>(run.conn, "name", name.as_str().into())
            .await?
        {
            Some(m) => uuids.push(m.uuid),
            None => {
                return Err(run.invalid(
                    "oauth2_providers",
                    key,
                    Some("property_mappings"),
                    format!("no scope mapping named `{name}`; define it under `scope_mappings:`"),
                ))
            }
        }
    }
    Ok(Some(uuids))
}

pub(super) async fn oauth2_provider(
    run: &mut Run<'_>,
    entry: &OAuth2ProviderEntry,
) -> Result<(), Failure> {
    let key = entry.name.as_str();
    let existing = store_providers::find_by_name(run.conn, run.sealing, key).await?;
    if let Some(p) = existing
        .as_ref()
        .filter(|p| p.fields.kind.tag() != "oauth2")
    {
        return Err(run.invalid(
            "oauth2_providers",
            key,
            None,
            format!(
                "`{}` exists as a {} provider; rename one of them",
                p.fields.name,
                p.fields.kind.tag()
            ),
        ));
    }
    let current = match &existing {
        Some(p) => {
            let [authorization, invalidation, authentication] = provider_flows(run.conn, p).await?;
            let ProviderKind::OAuth2(o) = &p.fields.kind else {
                return Err(internal("kind changed"));
            };
            let mapped: Vec<String> = scope_mappings::of_provider(run.conn, p.id)
                .await?
                .into_iter()
                .map(|m| m.fields.name)
                .collect();
            Some(json!({
                "name": p.fields.name,
                "authorization_flow": authorization,
                "invalidation_flow": invalidation,
                "authentication_flow": authentication,
                "client_type": o.client_type,
                "client_id": p.fields.client_id,
                "client_secret": p.fields.client_secret,
                "redirect_uris": o.redirect_uris.iter().map(|u| RedirectUri { matching_mode: u.matching_mode, url: u.url.clone(), redirect_uri_type: named_type(Some(u.redirect_uri_type)) }).collect::<Vec<_>>(),
                "access_code_validity": o.access_code_validity,
                "access_token_validity": p.fields.access_token_validity,
                "refresh_token_validity": p.fields.refresh_token_validity,
                "include_claims_in_id_token": o.include_claims_in_id_token,
                "sub_mode": o.sub_mode,
                "property_mappings": mapped,
                "signing_algorithm": o.signing_algorithm,
                "issuer_mode": o.issuer_mode,
                "logout_uri": o.logout_uri,
            }))
        }
        None => None,
    };
    let mut entry = entry.clone();
    if let Some(uris) = &mut entry.redirect_uris {
        for u in uris.iter_mut() {
            u.redirect_uri_type = named_type(u.redirect_uri_type);
        }
    }
    // Stored selections come back ordered by name; the order in the file carries no meaning.
    if let Some(names) = &mut entry.property_mappings {
        names.sort();
    }
    let Some(mut desired) =
        run.compare("oauth2_provider", key, current, &entry, &["client_secret"])?
    else {
        return Ok(());
    };
    // The secret travels separately: the entry type only holds references.
    desired["client_secret"] = Value::Null;
    let desired: OAuth2ProviderEntry = typed(desired)?;
    let secret = entry
        .client_secret
        .as_ref()
        .and_then(|s| s.value.clone())
        .filter(|s| !s.is_empty());
    let secret = secret.or_else(|| existing.as_ref().map(|p| p.fields.client_secret.clone()));
    let request = OAuth2ProviderRequest {
        name: Some(desired.name.clone()),
        authentication_flow: Some(
            run.flow_ref(
                "oauth2_providers",
                key,
                "authentication_flow",
                desired.authentication_flow.as_deref(),
            )
            .await?,
        ),
        authorization_flow: run
            .flow_ref(
                "oauth2_providers",
                key,
                "authorization_flow",
                desired.authorization_flow.as_deref(),
            )
            .await?,
        invalidation_flow: match desired.invalidation_flow.as_deref() {
            None => None,
            slug => Some(
                run.flow_ref("oauth2_providers", key, "invalidation_flow", slug)
                    .await?,
            ),
        },
        client_type: desired.client_type,
        client_id: desired.client_id,
        client_secret: secret,
        access_code_validity: desired.access_code_validity,
        access_token_validity: desired.access_token_validity,
        refresh_token_validity: desired.refresh_token_validity,
        include_claims_in_id_token: desired.include_claims_in_id_token,
        redirect_uris: Some(desired.redirect_uris.unwrap_or_default()),
        logout_uri: desired.logout_uri,
        sub_mode: desired.sub_mode,
        signing_algorithm: desired.signing_algorithm,
        issuer_mode: desired.issuer_mode,
        property_mappings: mapping_refs(run, key, desired.property_mappings.as_deref()).await?,
        ..Default::default()
    };
    OAuth2::write(
        run.conn,
        run.sealing,
        run.admin,
        existing.map(OAuth2::from),
        request,
        true,
    )
    .await
    .map_err(|e| run.locate("oauth2_providers", key, e))?;
    Ok(())
}

pub(super) async fn proxy_provider(
    run: &mut Run<'_>,
    entry: &ProxyProviderEntry,
) -> Result<(), Failure> {
    let key = entry.name.as_str();
    let existing = store_providers::find_by_name(run.conn, run.sealing, key).await?;
    if let Some(p) = existing.as_ref().filter(|p| p.fields.kind.tag() != "proxy") {
        return Err(run.invalid(
            "proxy_providers",
            key,
            None,
            format!(
                "`{}` exists as a {} provider; rename one of them",
                p.fields.name,
                p.fields.kind.tag()
            ),
        ));
    }
    let current = match &existing {
        Some(p) => {
            let [authorization, invalidation, authentication] = provider_flows(run.conn, p).await?;
            let ProviderKind::Proxy(x) = &p.fields.kind else {
                return Err(internal("kind changed"));
            };
            Some(json!(ProxyProviderEntry {
                name: p.fields.name.clone(),
                client_id: Some(p.fields.client_id.clone()),
                authorization_flow: Some(authorization),
                invalidation_flow: Some(invalidation),
                authentication_flow: Some(authentication),
                mode: Some(x.mode),
                external_host: Some(x.external_host.clone()),
                internal_host: Some(x.internal_host.clone()),
                internal_host_ssl_validation: Some(x.internal_host_ssl_validation),
                cookie_domain: Some(x.cookie_domain.clone()),
                skip_path_regex: Some(x.skip_path_regex.clone()),
                basic_auth_enabled: Some(x.basic_auth_enabled),
                basic_auth_user_attribute: Some(x.basic_auth_user_attribute.clone()),
                basic_auth_password_attribute: Some(x.basic_auth_password_attribute.clone()),
                intercept_header_auth: Some(x.intercept_header_auth),
                access_token_validity: Some(p.fields.access_token_validity.clone()),
                refresh_token_validity: Some(p.fields.refresh_token_validity.clone()),
            }))
        }
        None => None,
    };
    let Some(desired) = run.compare("proxy_provider", key, current, entry, &[])? else {
        return Ok(());
    };
    let desired: ProxyProviderEntry = typed(desired)?;
    let request = ProxyProviderRequest {
        name: Some(desired.name.clone()),
        client_id: desired.client_id,
        authentication_flow: Some(
            run.flow_ref(
                "proxy_providers",
                key,
                "authentication_flow",
                desired.authentication_flow.as_deref(),
            )
            .await?,
        ),
        authorization_flow: run
            .flow_ref(
                "proxy_providers",
                key,
                "authorization_flow",
                desired.authorization_flow.as_deref(),
            )
            .await?,
        invalidation_flow: match desired.invalidation_flow.as_deref() {
            None => None,
            slug => Some(
                run.flow_ref("proxy_providers", key, "invalidation_flow", slug)
                    .await?,
            ),
        },
        internal_host: desired.internal_host,
        external_host: desired.external_host,
        internal_host_ssl_validation: desired.internal_host_ssl_validation,
        skip_path_regex: desired.skip_path_regex,
        basic_auth_enabled: desired.basic_auth_enabled,
        basic_auth_password_attribute: desired.basic_auth_password_attribute,
        basic_auth_user_attribute: desired.basic_auth_user_attribute,
        mode: Some(desired.mode.unwrap_or(ProxyMode::ForwardSingle)),
        intercept_header_auth: desired.intercept_header_auth,
        cookie_domain: desired.cookie_domain,
        access_token_validity: desired.access_token_validity,
        refresh_token_validity: desired.refresh_token_validity,
        ..Default::default()
    };
    Proxy::write(
        run.conn,
        run.sealing,
        run.admin,
        existing.map(Proxy::from),
        request,
        true,
    )
    .await
    .map_err(|e| run.locate("proxy_providers", key, e))?;
    Ok(())
}

pub(super) async fn application(
    run: &mut Run<'_>,
    entry: &ApplicationEntry,
) -> Result<(), Failure> {
    let key = entry.slug.as_str();
    let existing = applications::find_by_slug(run.conn, key).await?;
    let current = match &existing {
        Some(a) => {
            let f = &a.fields;
            let provider = match f.provider {
                Some(id) => {
                    store_providers::get(run.conn, run.sealing, id)
                        .await?
                        .fields
                        .name
                }
                None => String::new(),
            };
            Some(json!(ApplicationEntry {
                slug: f.slug.clone(),
                name: Some(f.name.clone()),
                provider: Some(provider),
                meta_launch_url: Some(f.meta_launch_url.clone()),
                meta_icon: Some(f.meta_icon.clone()),
                meta_description: Some(f.meta_description.clone()),
                meta_publisher: Some(f.meta_publisher.clone()),
                open_in_new_tab: Some(f.open_in_new_tab),
                meta_hide: Some(f.meta_hide),
                policy_engine_mode: Some(f.policy_engine_mode),
                group: Some(f.group.clone()),
                bindings: Some(run.bindings_view(a.uuid).await?),
            }))
        }
        None => None,
    };
    let mut entry = entry.clone();
    entry.bindings = entry.bindings.map(canonical);
    let current_bindings = current
        .as_ref()
        .map(|c| c["bindings"].clone())
        .unwrap_or(Value::Null);
    let Some(desired) = run.compare("application", key, current, &entry, &[])? else {
        return Ok(());
    };
    let desired: ApplicationEntry = typed(desired)?;
    let provider = match desired.provider.as_deref().filter(|p| !p.is_empty()) {
        Some(name) => Some(
            run.provider_ref("applications", key, "provider", name)
                .await?
                .id,
        ),
        None => None,
    };
    let request = ApplicationRequest {
        name: Some(desired.name.clone().unwrap_or_else(|| desired.slug.clone())),
        slug: Some(desired.slug.clone()),
        provider: Some(provider),
        backchannel_providers: None,
        open_in_new_tab: desired.open_in_new_tab,
        meta_launch_url: desired.meta_launch_url,
        meta_icon: desired.meta_icon,
        meta_description: desired.meta_description,
        meta_publisher: desired.meta_publisher,
        policy_engine_mode: desired.policy_engine_mode,
        group: desired.group,
        meta_hide: desired.meta_hide,
    };
    let app =
        applications::Application::write(run.conn, run.sealing, run.admin, existing, request, true)
            .await
            .map_err(|e| run.locate("applications", key, e))?;
    if let Some(bindings) = &desired.bindings {
        if serde_json::to_value(bindings).map_err(internal)? != current_bindings {
            run.replace_bindings("applications", key, Target::Application(app.uuid), bindings)
                .await?;
        }
    }
    Ok(())
}

pub(super) async fn source(run: &mut Run<'_>, entry: &SourceEntry) -> Result<(), Failure> {
    let key = entry.slug.as_str();
    let existing = sources::find_by_slug(run.conn, run.sealing, key).await?;
    let current = match &existing {
        Some(s) => {
            let f = &s.fields;
            Some(json!({
                "slug": f.slug,
                "name": f.name,
                "provider_type": f.provider_type,
                "user_matching_mode": f.user_matching_mode,
                "authentication_flow": flow_slug(run.conn, f.authentication_flow).await?,
                "enrollment_flow": flow_slug(run.conn, f.enrollment_flow).await?,
                "consumer_key": f.consumer_key,
                "consumer_secret": f.consumer_secret,
                "enabled": f.enabled,
                "promoted": f.promoted,
                "authorization_url": f.authorization_url,
                "access_token_url": f.access_token_url,
                "profile_url": f.profile_url,
                "oidc_well_known_url": f.oidc_well_known_url,
                "additional_scopes": f.additional_scopes,
            }))
        }
        None => None,
    };
    let mut entry = entry.clone();
    let secret_given = entry
        .consumer_secret
        .as_ref()
        .and_then(|s| s.value.clone())
        .filter(|s| !s.is_empty());
    let secret = secret_given
        .clone()
        .or_else(|| existing.as_ref().map(|s| s.fields.consumer_secret.clone()))
        .unwrap_or_default();
    // A source without its secret cannot work: keep it (so the config is complete) but disabled.
    entry.enabled = Some(entry.enabled.unwrap_or(true) && !secret.is_empty());
    if secret.is_empty() {
        run.outcome.warnings.push(format!(
            "sources[{key}]: consumer_secret is empty, so the source is disabled until it is set"
        ));
    }
    let Some(mut desired) = run.compare("source", key, current, &entry, &["consumer_secret"])?
    else {
        return Ok(());
    };
    desired["consumer_secret"] = Value::Null;
    let desired: SourceEntry = typed(desired)?;
    let request = OAuthSourceRequest {
        name: Some(desired.name.clone().unwrap_or_else(|| desired.slug.clone())),
        slug: Some(desired.slug.clone()),
        enabled: desired.enabled,
        promoted: desired.promoted,
        authentication_flow: Some(
            run.flow_ref(
                "sources",
                key,
                "authentication_flow",
                desired.authentication_flow.as_deref(),
            )
            .await?,
        ),
        enrollment_flow: Some(
            run.flow_ref(
                "sources",
                key,
                "enrollment_flow",
                desired.enrollment_flow.as_deref(),
            )
            .await?,
        ),
        user_matching_mode: desired.user_matching_mode,
        provider_type: desired.provider_type,
        authorization_url: desired.authorization_url,
        access_token_url: desired.access_token_url,
        profile_url: desired.profile_url,
        consumer_key: Some(desired.consumer_key.unwrap_or_default()),
        consumer_secret: Some(secret),
        additional_scopes: desired.additional_scopes,
        oidc_well_known_url: desired.oidc_well_known_url,
        ..Default::default()
    };
    sources::Source::write(run.conn, run.sealing, run.admin, existing, request, true)
        .await
        .map_err(|e| run.locate("sources", key, e))?;
    Ok(())
}

pub(super) async fn outpost(run: &mut Run<'_>, entry: &OutpostEntry) -> Result<(), Failure> {
    let key = entry.name.as_str();
    let existing = sql::find::<outposts::Outpost>(run.conn, "name", key.into()).await?;
    let existing = match existing {
        Some(o) => Some(outposts::complete(run.conn, o).await?),
        None => None,
    };
    let current = match &existing {
        Some(o) => {
            let mut names = Vec::new();
            for id in &o.fields.providers {
                names.push(
                    store_providers::get(run.conn, run.sealing, *id)
                        .await?
                        .fields
                        .name,
                );
            }
            Some(json!(OutpostEntry {
                name: o.fields.name.clone(),
                providers: Some(sorted(names)),
                config: Some(o.fields.config.as_object().cloned().unwrap_or_default()),
            }))
        }
        None => None,
    };
    let mut entry = entry.clone();
    entry.providers = entry.providers.map(sorted);
    let Some(desired) = run.compare("outpost", key, current, &entry, &[])? else {
        return Ok(());
    };
    let desired: OutpostEntry = typed(desired)?;
    let mut ids = Vec::new();
    for name in desired.providers.iter().flatten() {
        ids.push(
            run.provider_ref("outposts", key, "providers", name)
                .await?
                .id,
        );
    }
    let request = OutpostRequest {
        name: Some(desired.name),
        outpost_type: None,
        providers: Some(ids),
        service_connection: None,
        config: Some(desired.config.unwrap_or_default()),
        managed: None,
    };
    outposts::Outpost::write(run.conn, run.sealing, run.admin, existing, request, true)
        .await
        .map_err(|e| run.locate("outposts", key, e))?;
    Ok(())
}

/// Objects Gatehouse itself relies on are never pruned.
fn protected(key: &str) -> bool {
    key.starts_with("default-") || key == crate::bootstrap::ADMIN || key == crate::bootstrap::ADMINS
}

/// Deletes objects of the kinds the file has entries for that the file does not mention.
pub(super) async fn prune(run: &mut Run<'_>, doc: &Document) -> Result<(), Failure> {
    async fn keys(conn: &mut Conn, sql_text: &str) -> Result<Vec<String>, Failure> {
        use gatehouse_store::sql::RowExt;
        sql::fetch_all(conn, sql_text, vec![])
            .await?
            .iter()
            .map(|r| r.text("k").map_err(Failure::from))
            .collect()
    }
    let wanted = |names: Vec<&str>| names.into_iter().map(str::to_owned).collect::<Vec<_>>();
    let sections: [(&str, bool, Vec<String>, &str, &str); 9] = [
        (
            "application",
            !doc.applications.is_empty(),
            wanted(doc.applications.iter().map(|e| e.slug.as_str()).collect()),
            "SELECT slug AS k FROM applications",
            "DELETE FROM applications WHERE slug = $1",
        ),
        (
            "source",
            !doc.sources.is_empty(),
            wanted(doc.sources.iter().map(|e| e.slug.as_str()).collect()),
            "SELECT slug AS k FROM sources",
            "DELETE FROM sources WHERE slug = $1",
        ),
        (
            "provider",
            !(doc.oauth2_providers.is_empty() && doc.proxy_providers.is_empty()),
            wanted(
                doc.oauth2_providers
                    .iter()
                    .map(|e| e.name.as_str())
                    .chain(doc.proxy_providers.iter().map(|e| e.name.as_str()))
                    .collect(),
            ),
            "SELECT name AS k FROM providers",
            "DELETE FROM providers WHERE name = $1",
        ),
        (
            "flow",
            !doc.flows.is_empty(),
            wanted(doc.flows.iter().map(|e| e.slug.as_str()).collect()),
            "SELECT slug AS k FROM flows",
            "DELETE FROM flows WHERE slug = $1",
        ),
        (
            "stage",
            !doc.stages.is_empty(),
            wanted(doc.stages.iter().map(|e| e.name.as_str()).collect()),
            "SELECT name AS k FROM stages",
            "DELETE FROM stages WHERE name = $1",
        ),
        (
            "policy",
            !doc.policies.is_empty(),
            wanted(doc.policies.iter().map(|e| e.name.as_str()).collect()),
            "SELECT name AS k FROM policies",
            "DELETE FROM policies WHERE name = $1",
        ),
        (
            "user",
            !doc.users.is_empty(),
            wanted(doc.users.iter().map(|e| e.username.as_str()).collect()),
            "SELECT username AS k FROM users",
            "DELETE FROM users WHERE username = $1",
        ),
        (
            "group",
            !doc.groups.is_empty(),
            wanted(doc.groups.iter().map(|e| e.name.as_str()).collect()),
            "SELECT name AS k FROM groups",
            "DELETE FROM groups WHERE name = $1",
        ),
        (
            "outpost",
            !doc.outposts.is_empty(),
            wanted(doc.outposts.iter().map(|e| e.name.as_str()).collect()),
            "SELECT name AS k FROM outposts WHERE managed IS NULL",
            "DELETE FROM outposts WHERE name = $1",
        ),
    ];
    for (kind, present, wanted, list_sql, delete_sql) in sections {
        if !present {
            continue;
        }
        for key in keys(run.conn, list_sql).await? {
            if wanted.contains(&key) || protected(&key) || key == run.admin.user.fields.username {
                continue;
            }
            sql::execute(run.conn, delete_sql, vec![key.clone().into()]).await?;
            run.deleted(kind, &key);
        }
    }
    Ok(())
}
