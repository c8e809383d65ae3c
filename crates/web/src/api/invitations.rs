//! `stages/invitation/invitations/`: create, list and revoke invitation links (T10).
//!
//! As in Authentik, a used single-use invitation and a revoked one leave the list (Authentik
//! deletes them); Gatehouse keeps the rows, so `?ended=true` lists them with who used which,
//! and `DELETE` revokes: the link then says it was revoked instead of "not found".

use chrono::Utc;
use gatehouse_core::validate;
use gatehouse_proto::flows::{Invitation, InvitationRequest, InvitationUse};
use gatehouse_store::{flows, invitations, sql, users, Conn, Filter, ListSpec, Listed};
use uuid::Uuid;

use super::resource::{Operations, Resource};
use super::validate::Errors;
use super::Api;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{FilterKind, ListRules};
use crate::Settings;
use gatehouse_store::SecretKey;

const RULES: ListRules = ListRules {
    filters: &[
        ("name", "name", FilterKind::Text),
        ("pk", "uuid", FilterKind::Text),
        ("ended", "ended", FilterKind::Bool),
    ],
    search: &["name"],
    ordering: &[
        ("name", "name"),
        ("expires", "expires"),
        ("created", "created"),
    ],
    default_order: "created",
    relations: &[(
        "created_by__username",
        "created_by",
        "SELECT id FROM users WHERE username = $?",
    )],
};

pub(super) fn routes(api: Api) -> Api {
    api.resource::<invitations::Invitation>(
        "/stages/invitation/invitations/",
        "/stages/invitation/invitations/{uuid}/",
        "invitation",
        Operations::CreateDelete,
    )
}

/// The enrollment link of an invitation.
pub(crate) fn link(external_url: &str, flow_slug: &str, token: Uuid) -> String {
    format!("{external_url}/if/flow/{flow_slug}/?itoken={token}")
}

/// The flow an invitation's link opens: the one it names, else the first (by slug) enrollment
/// flow with an invitation stage — any of them accepts an invitation that names none.
pub(crate) async fn link_flow(
    conn: &mut Conn,
    invitation: &invitations::Invitation,
) -> ApiResult<Option<flows::Flow>> {
    match invitation.fields.flow {
        Some(uuid) => Ok(Some(sql::get::<flows::Flow>(conn, uuid).await?)),
        None => Ok(flows::invitation_flows(conn).await?.into_iter().next()),
    }
}

impl Resource for invitations::Invitation {
    const MODEL: &'static str = "invitation";
    const RULES: ListRules = RULES;
    type Key = Uuid;
    type Wire = Invitation;
    type Request = InvitationRequest;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &Uuid) -> ApiResult<Self> {
        Ok(sql::get(conn, *key).await?)
    }

    async fn list(
        conn: &mut Conn,
        _sealing: &SecretKey,
        spec: &ListSpec,
    ) -> ApiResult<Listed<Self>> {
        let mut spec = spec.clone();
        let asks_ended = spec
            .filters
            .iter()
            .any(|f| matches!(f, Filter::Equals("ended", _)));
        if !asks_ended {
            spec.filters.push(Filter::Equals("ended", false.into()));
        }
        Ok(sql::list(conn, &spec).await?)
    }

    async fn render(
        &self,
        conn: &mut Conn,
        _sealing: &SecretKey,
        settings: &Settings,
    ) -> ApiResult<Invitation> {
        let flow = link_flow(conn, self).await?;
        let creator = users::get(conn, self.fields.created_by).await?;
        let uses = invitations::uses(conn, self.uuid)
            .await?
            .into_iter()
            .map(|u| InvitationUse {
                user: u.user,
                username: u.username,
                used: u.used,
            })
            .collect();
        Ok(Invitation {
            pk: self.uuid,
            name: self.fields.name.clone(),
            expires: self.fields.expires,
            fixed_data: self.fields.fixed_data.clone(),
            created_by: super::users::partial(&creator),
            single_use: self.fields.single_use,
            flow: self.fields.flow,
            link: flow
                .as_ref()
                .map(|f| link(&settings.external_url, &f.fields.slug, self.uuid))
                .unwrap_or_default(),
            flow_obj: match &flow {
                Some(f) => Some(super::flows::render(conn, f).await?),
                None => None,
            },
            state: self.state(Utc::now()).as_str().to_owned(),
            uses,
        })
    }

    async fn write(
        conn: &mut Conn,
        _sealing: &SecretKey,
        admin: &Admin,
        current: Option<Self>,
        req: InvitationRequest,
        _full: bool,
    ) -> ApiResult<Self> {
        if current.is_some() {
            return Err(ApiError::field(
                "non_field_errors",
                "Invitations cannot be changed; revoke it and create a new one.",
            ));
        }
        let mut errors = Errors::default();
        let name = errors.require("name", req.name.clone()).unwrap_or_default();
        if !name.is_empty() {
            errors.check("name", validate::slug(&name));
        }
        let expires = req.expires.flatten();
        if expires.is_some_and(|t| t <= Utc::now()) {
            errors.add(
                "expires",
                "The expiry is in the past; choose a later time or leave it empty.",
            );
        }
        errors.finish()?;
        let flow = match req.flow.flatten() {
            Some(uuid) => match sql::get::<flows::Flow>(conn, uuid).await {
                Ok(f)
                    if f.fields.designation
                        == gatehouse_core::kinds::FlowDesignation::Enrollment =>
                {
                    Some(f.uuid)
                }
                Ok(f) => {
                    return Err(ApiError::field(
                        "flow",
                        format!("Flow `{}` is not an enrollment flow.", f.fields.slug),
                    ))
                }
                Err(gatehouse_store::Error::NotFound { .. }) => {
                    return Err(ApiError::field(
                        "flow",
                        format!("Invalid pk \"{uuid}\" - object does not exist."),
                    ))
                }
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        Ok(invitations::create(
            conn,
            &invitations::InvitationFields {
                name,
                flow,
                expires,
                fixed_data: serde_json::Value::Object(req.fixed_data.unwrap_or_default()),
                single_use: req.single_use.unwrap_or(true),
                created_by: admin.user.id,
            },
        )
        .await?)
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(invitations::revoke(conn, self.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        (self.uuid.to_string(), self.fields.name.clone())
    }
}
