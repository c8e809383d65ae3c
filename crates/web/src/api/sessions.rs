//! `core/authenticated_sessions/`: every logged-in browser; deleting one logs it out on its next
//! request, in every process sharing the database.

use gatehouse_proto::core::{
    AuthenticatedSession, SessionUserAgent, UserAgentBrowser, UserAgentDevice, UserAgentOs,
};
use gatehouse_store::sessions::{self, Session};
use gatehouse_store::{sql, Conn, ListSpec, Listed};
use uuid::Uuid;

use super::resource::{Operations, Resource};
use super::Api;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{FilterKind, ListRules};
use crate::Settings;
use gatehouse_store::SecretKey;

const RULES: ListRules = ListRules {
    filters: &[
        ("session__last_ip", "last_ip", FilterKind::Text),
        ("session__last_user_agent", "user_agent", FilterKind::Text),
    ],
    search: &["last_ip", "user_agent"],
    ordering: &[("expires", "expires"), ("last_used", "created")],
    default_order: "created",
    relations: &[(
        "user__username",
        "user_id",
        "SELECT id FROM users WHERE username = $?",
    )],
};

pub(super) fn routes(api: Api) -> Api {
    api.resource::<Session>(
        "/core/authenticated_sessions/",
        "/core/authenticated_sessions/{uuid}/",
        "authenticated session",
        Operations::ReadOnly,
    )
    .op(
        axum::http::Method::DELETE,
        "/core/authenticated_sessions/{uuid}/",
        "Revoke a session (the browser is logged out on its next request)",
        super::resource::remove::<Session>,
        None,
        super::Reply::Empty,
    )
}

fn unparsed() -> SessionUserAgent {
    SessionUserAgent {
        device: UserAgentDevice {
            brand: None,
            family: "Other".into(),
            model: None,
        },
        os: UserAgentOs {
            family: "Other".into(),
            major: None,
            minor: None,
            patch: None,
            patch_minor: None,
        },
        user_agent: UserAgentBrowser {
            family: "Other".into(),
            major: String::new(),
            minor: String::new(),
            patch: String::new(),
        },
        string: String::new(),
    }
}

impl Resource for Session {
    const MODEL: &'static str = "authenticatedsession";
    const RULES: ListRules = RULES;
    type Key = Uuid;
    type Wire = AuthenticatedSession;
    type Request = AuthenticatedSession;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &Uuid) -> ApiResult<Self> {
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
        _conn: &mut Conn,
        _sealing: &SecretKey,
        _settings: &Settings,
    ) -> ApiResult<AuthenticatedSession> {
        let mut agent = unparsed();
        agent.string = self.user_agent.clone();
        Ok(AuthenticatedSession {
            uuid: self.uuid,
            current: false,
            user_agent: agent,
            geo_ip: None,
            asn: None,
            user: self.user,
            last_ip: self.last_ip.clone(),
            last_user_agent: self.user_agent.clone(),
            last_used: self.created,
            expires: self.expires,
        })
    }

    async fn write(
        _conn: &mut Conn,
        _sealing: &SecretKey,
        _admin: &Admin,
        _current: Option<Self>,
        _req: AuthenticatedSession,
        _full: bool,
    ) -> ApiResult<Self> {
        Err(ApiError::field(
            "non_field_errors",
            "Sessions start by logging in, not through the API.",
        ))
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        sessions::revoke(conn, self.uuid).await?;
        Ok(())
    }

    fn label(&self) -> (String, String) {
        (
            self.uuid.to_string(),
            format!("session of user {}", self.user),
        )
    }
}
