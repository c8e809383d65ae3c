//! `sources/user_connections/oauth/`: which local user each identity at a login source signs
//! in as. Links are made by the login sources themselves (enrollment, `email_link`, or the user
//! page); administrators can list, add and remove them here.

use gatehouse_proto::sources::{UserOAuthSourceConnection, UserOAuthSourceConnectionRequest};
use gatehouse_store::sources::{self, Connection, Source};
use gatehouse_store::{sql, users, Conn, ListSpec, Listed};

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
        ("user", "user_id", FilterKind::Int),
        ("identifier", "identifier", FilterKind::Text),
        ("source", "source_uuid", FilterKind::Text),
    ],
    search: &["identifier"],
    ordering: &[
        ("pk", "id"),
        ("created", "created"),
        ("last_updated", "last_updated"),
    ],
    default_order: "id",
    relations: &[(
        "source__slug",
        "source_uuid",
        "SELECT uuid FROM sources WHERE slug = $?",
    )],
};

pub(super) fn routes(api: Api) -> Api {
    api.resource::<Connection>(
        "/sources/user_connections/oauth/",
        "/sources/user_connections/oauth/{id}/",
        "user OAuth source connection",
        Operations::Crud,
    )
}

impl Resource for Connection {
    const MODEL: &'static str = "useroauthsourceconnection";
    const RULES: ListRules = RULES;
    type Key = i64;
    type Wire = UserOAuthSourceConnection;
    type Request = UserOAuthSourceConnectionRequest;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &i64) -> ApiResult<Self> {
        Ok(sql::get(conn, *key).await?)
    }

    async fn list(
        conn: &mut Conn,
        _sealing: &SecretKey,
        spec: &ListSpec,
    ) -> ApiResult<Listed<Self>> {
        Ok(sql::list(conn, spec).await?)
    }

    async fn render(
        &self,
        conn: &mut Conn,
        sealing: &SecretKey,
        settings: &Settings,
    ) -> ApiResult<UserOAuthSourceConnection> {
        let source = sources::get(conn, sealing, self.source).await?;
        Ok(UserOAuthSourceConnection {
            pk: self.id,
            user: self.user,
            source: self.source,
            source_obj: super::sources::render(&source, settings),
            identifier: self.identifier.clone(),
            created: self.created,
            last_updated: self.last_updated,
            expires: None,
        })
    }

    async fn write(
        conn: &mut Conn,
        _sealing: &SecretKey,
        admin: &Admin,
        current: Option<Self>,
        req: UserOAuthSourceConnectionRequest,
        full: bool,
    ) -> ApiResult<Self> {
        let mut errors = Errors::default();
        if full || current.is_none() {
            errors.require("source", req.source.as_ref());
            errors.require("identifier", req.identifier.as_ref());
        }
        if req
            .identifier
            .as_deref()
            .is_some_and(|i| i.trim().is_empty())
        {
            errors.add("identifier", "This field may not be blank.");
        }
        errors.finish()?;
        let source = req.source.or(current.as_ref().map(|c| c.source));
        let identifier = req
            .identifier
            .clone()
            .or(current.as_ref().map(|c| c.identifier.clone()));
        let user = req
            .user
            .or(current.as_ref().map(|c| c.user))
            .unwrap_or(admin.user.id);
        let (Some(source), Some(identifier)) = (source, identifier) else {
            return Err(ApiError::field("source", "This field is required."));
        };
        if sql::find::<Source>(conn, "uuid", source.into())
            .await?
            .is_none()
        {
            return Err(ApiError::field(
                "source",
                format!("Invalid pk \"{source}\" - object does not exist."),
            ));
        }
        if let Err(gatehouse_store::Error::NotFound { .. }) = users::get(conn, user).await {
            return Err(ApiError::field(
                "user",
                format!("Invalid pk \"{user}\" - object does not exist."),
            ));
        }
        Ok(match current {
            Some(c) => sources::update_connection(conn, c.id, source, user, &identifier).await?,
            None => sources::connect(conn, source, user, &identifier).await?,
        })
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(sources::disconnect(conn, self.id).await?)
    }

    fn label(&self) -> (String, String) {
        (self.id.to_string(), self.identifier.clone())
    }
}
