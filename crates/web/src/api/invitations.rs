//! `stages/invitation/invitations/`: create, list and revoke invitation links (T10).

use chrono::Utc;
use gatehouse_core::validate;
use gatehouse_proto::flows::{Invitation, InvitationRequest};
use gatehouse_store::{flows, invitations, sql, users, Conn, ListSpec, Listed};
use uuid::Uuid;

use super::resource::{Operations, Resource};
use super::validate::Errors;
use super::Api;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{FilterKind, ListRules};
use crate::Settings;

const RULES: ListRules = ListRules {
    filters: &[
        ("name", "name", FilterKind::Text),
        ("pk", "uuid", FilterKind::Text),
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

/// The flow an invitation uses when none is named: the only enrollment flow with an invitation
/// stage. None or several is an error that lists what exists.
pub(crate) async fn default_flow(conn: &mut Conn) -> ApiResult<flows::Flow> {
    let mut candidates = flows::invitation_flows(conn).await?;
    match candidates.len() {
        1 => Ok(candidates.remove(0)),
        0 => Err(ApiError::field(
            "flow",
            "No enrollment flow has an invitation stage; create one (e.g. apply examples/homelab.yaml) or name the flow.",
        )),
        _ => {
            let slugs: Vec<String> = candidates.into_iter().map(|f| f.fields.slug).collect();
            Err(ApiError::field(
                "flow",
                format!("Several enrollment flows have an invitation stage ({}); name one.", slugs.join(", ")),
            ))
        }
    }
}

impl Resource for invitations::Invitation {
    const MODEL: &'static str = "invitation";
    const RULES: ListRules = RULES;
    type Key = Uuid;
    type Wire = Invitation;
    type Request = InvitationRequest;

    async fn find(conn: &mut Conn, key: &Uuid) -> ApiResult<Self> {
        Ok(sql::get(conn, *key).await?)
    }

    async fn list(conn: &mut Conn, spec: &ListSpec) -> ApiResult<Listed<Self>> {
        Ok(sql::list(conn, spec).await?)
    }

    async fn render(&self, conn: &mut Conn, settings: &Settings) -> ApiResult<Invitation> {
        let flow = sql::get::<flows::Flow>(conn, self.fields.flow).await?;
        let creator = users::get(conn, self.fields.created_by).await?;
        Ok(Invitation {
            pk: self.uuid,
            name: self.fields.name.clone(),
            expires: self.fields.expires,
            fixed_data: self.fields.fixed_data.clone(),
            created_by: super::users::partial(&creator),
            single_use: self.fields.single_use,
            flow: Some(flow.uuid),
            link: link(&settings.external_url, &flow.fields.slug, self.uuid),
            flow_obj: super::flows::render(conn, &flow).await?,
        })
    }

    async fn write(
        conn: &mut Conn,
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
                    f
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
            None => default_flow(conn).await?,
        };
        Ok(invitations::create(
            conn,
            &invitations::InvitationFields {
                name,
                flow: flow.uuid,
                expires,
                fixed_data: serde_json::Value::Object(req.fixed_data.unwrap_or_default()),
                single_use: req.single_use.unwrap_or(true),
                created_by: admin.user.id,
            },
        )
        .await?)
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(invitations::delete(conn, self.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        (self.uuid.to_string(), self.fields.name.clone())
    }
}
