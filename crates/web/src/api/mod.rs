//! The REST API under `/api/v3/`, following Authentik's paths and shapes (SPEC §3.3).
//!
//! Every route is registered through [`Api`], which records its documentation at the same time,
//! so the OpenAPI document at `/api/v3/schema/` describes exactly the routes that exist.
//!
//! One module per resource family; each converts store records into wire types and wire
//! requests into store fields, validating on the way.

mod applications;
mod authenticators;
mod declarative;

mod events;
mod explain;
mod flows;
mod groups;
mod invitations;
pub(crate) mod keys;
mod outpost_api;
mod outposts;
mod policies;
mod policy_kinds;
pub(crate) mod providers;
pub(crate) mod resource;
mod schema;
pub(crate) mod scope_mappings;
mod sessions;
mod source_connections;
pub(crate) mod sources;
mod stages;
mod tokens;
pub(crate) mod users;
mod validate;

use std::collections::BTreeMap;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;
use gatehouse_proto::page::{Paginated, Pagination};
use gatehouse_store::{ListSpec, Listed};
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;

pub use schema::OpenApiDocument;

/// What an operation answers on success, for the document.
#[derive(Clone)]
pub(crate) enum Reply {
    /// 200 with one object of the named schema.
    Object(String),
    /// 201 with one object of the named schema.
    Created(String),
    /// 200 with a page of objects of the named schema.
    List(String),
    /// 200 with a plain array (no pagination) of the named schema.
    Array(String),
    /// 204 without a body.
    Empty,
    /// 200 with a stream of server-sent events, the first of the named schema.
    Stream(String),
}

/// One documented operation.
#[derive(Clone)]
pub(crate) struct Operation {
    pub(crate) path: &'static str,
    pub(crate) method: Method,
    pub(crate) summary: String,
    pub(crate) tag: &'static str,
    pub(crate) request: Option<String>,
    pub(crate) reply: Reply,
}

/// Builds the API router and its OpenAPI description together.
pub(crate) struct Api {
    router: Router<AppState>,
    operations: Vec<Operation>,
    schemas: BTreeMap<String, Value>,
    tag: &'static str,
}

impl Api {
    /// Registers `T` (and the schemas it refers to) as a component; returns its name.
    pub(crate) fn schema<T: ToSchema>(&mut self) -> String {
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        nested.push((
            T::name().into_owned(),
            <T as utoipa::PartialSchema>::schema(),
        ));
        for (name, schema) in nested {
            self.schemas
                .entry(name)
                .or_insert_with(|| serde_json::to_value(schema).unwrap_or(Value::Null));
        }
        T::name().into_owned()
    }

    /// Sets the tag for the operations registered next.
    pub(crate) fn tag(mut self, tag: &'static str) -> Self {
        self.tag = tag;
        self
    }

    /// Registers `handler` for `method path` with its documentation.
    pub(crate) fn op<H, X>(
        mut self,
        method: Method,
        path: &'static str,
        summary: impl Into<String>,
        handler: H,
        request: Option<&str>,
        reply: Reply,
    ) -> Self
    where
        H: Handler<X, AppState>,
        X: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        self.router = self.router.route(path, on(filter, handler));
        self.operations.push(Operation {
            path,
            method,
            summary: summary.into(),
            tag: self.tag,
            request: request.map(str::to_owned),
            reply,
        });
        self
    }
}

/// The `/api/v3` router and the document describing it.
pub fn router() -> (Router<AppState>, OpenApiDocument) {
    let mut api = Api {
        router: Router::new(),
        operations: Vec::new(),
        schemas: BTreeMap::new(),
        tag: "",
    };
    api.schema::<Pagination>();
    let api = users::routes(api.tag("core"));
    let api = groups::routes(api);
    let api = applications::routes(api);
    let api = tokens::routes(api);
    let api = sessions::routes(api);
    let api = authenticators::routes(api.tag("authenticators"));
    let api = providers::routes(api.tag("providers"));
    let api = keys::routes(api.tag("oauth2"));
    let api = scope_mappings::routes(api.tag("propertymappings"));
    let api = flows::routes(api.tag("flows"));
    let api = explain::routes(api);
    let api = invitations::routes(api.tag("stages"));
    let api = policies::routes(api.tag("policies"));
    let api = policy_kinds::routes(api);
    let api = stages::routes(api.tag("stages"));
    let api = sources::routes(api.tag("sources"));
    let api = source_connections::routes(api);
    let api = outposts::routes(api.tag("outposts"));
    let api = outpost_api::routes(api);
    let api = events::routes(api.tag("events"));
    let api = declarative::routes(api.tag("declarative"));

    let document = OpenApiDocument::build(&api.operations, api.schemas);
    (api.router, document)
}

/// Wraps one page of converted records in the pagination envelope.
pub(crate) fn page<T>(
    spec: &ListSpec,
    listed: &Listed<impl Sized>,
    results: Vec<T>,
) -> Paginated<T> {
    Paginated {
        pagination: Pagination::new(
            listed.count,
            spec.page,
            spec.page_size,
            results.len() as i64,
        ),
        results,
        autocomplete: serde_json::Map::new(),
    }
}

/// Checks that a compatibility-only list field is empty; `what` names the missing concept.
pub(crate) fn must_be_empty<T>(value: &Option<Vec<T>>, what: &str) -> Result<(), String> {
    match value {
        Some(v) if !v.is_empty() => {
            Err(format!("Gatehouse has no {what}; leave this field empty."))
        }
        _ => Ok(()),
    }
}
