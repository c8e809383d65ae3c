//! `events/events/`: the audit log, read-only, newest first by default.

use gatehouse_proto::events::Event;
use gatehouse_store::events;
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
        ("action", "action", FilterKind::Text),
        ("client_ip", "client_ip", FilterKind::Text),
        ("app", "app", FilterKind::Text),
    ],
    search: &["action", "app", "user_info", "context"],
    ordering: &[("created", "created"), ("action", "action")],
    default_order: "created",
    relations: &[],
};

pub(super) fn routes(api: Api) -> Api {
    api.resource::<events::Event>(
        "/events/events/",
        "/events/events/{uuid}/",
        "event",
        Operations::ReadOnly,
    )
}

impl Resource for events::Event {
    const MODEL: &'static str = "event";
    const RULES: ListRules = RULES;
    type Key = Uuid;
    type Wire = Event;
    type Request = Event;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &Uuid) -> ApiResult<Self> {
        Ok(sql::get(conn, *key).await?)
    }

    async fn list(
        conn: &mut Conn,
        _sealing: &SecretKey,
        spec: &ListSpec,
    ) -> ApiResult<Listed<Self>> {
        let mut spec = spec.clone();
        // Newest first unless the caller asked otherwise.
        if spec.ordering == [("created", false)] {
            spec.ordering = vec![("created", true)];
        }
        Ok(sql::list(conn, &spec).await?)
    }

    async fn render(
        &self,
        _conn: &mut Conn,
        _sealing: &SecretKey,
        _settings: &Settings,
    ) -> ApiResult<Event> {
        Ok(Event {
            pk: self.uuid,
            user: self.user.clone(),
            action: self.action.clone(),
            app: self.app.clone(),
            context: self.context.clone(),
            client_ip: self.client_ip.clone(),
            created: self.created,
            expires: None,
            brand: None,
        })
    }

    async fn write(
        _conn: &mut Conn,
        _sealing: &SecretKey,
        _admin: &Admin,
        _current: Option<Self>,
        _req: Event,
        _full: bool,
    ) -> ApiResult<Self> {
        Err(ApiError::field(
            "non_field_errors",
            "Events are written by Gatehouse only.",
        ))
    }

    async fn delete(self, _conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Err(ApiError::field(
            "non_field_errors",
            "Events cannot be deleted through the API.",
        ))
    }

    fn label(&self) -> (String, String) {
        (self.uuid.to_string(), self.action.clone())
    }
}
