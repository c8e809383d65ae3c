//! Request extractors that fail with API errors naming the problem: JSON bodies (with the
//! offending field) and list parameters (page, page size, ordering, filters); and the one place
//! the client's address is decided ([`client_address`]).

use axum::body::Bytes;

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use gatehouse_store::{Filter, ListSpec, Value};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body whose errors name the field: `{"groups": ["invalid type: …"]}`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_owned();
        if !content_type.starts_with("application/json") {
            return Err(ApiError::field(
                "non_field_errors",
                format!("Unsupported media type `{content_type}`: send JSON with `Content-Type: application/json`."),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::field(
                "non_field_errors",
                format!("Could not read the request body: {e}."),
            )
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON, reporting the path of the field that failed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let message = e.inner().to_string();
        if e.inner().is_syntax() || e.inner().is_eof() {
            return ApiError::field("non_field_errors", format!("JSON parse error - {message}"));
        }
        let path = e.path().to_string();
        let field = match message.strip_prefix("unknown field `") {
            Some(rest) => rest
                .split('`')
                .next()
                .unwrap_or("non_field_errors")
                .to_owned(),
            None if path == "." || path.is_empty() => "non_field_errors".to_owned(),
            None => path
                .split(['.', '['])
                .next()
                .unwrap_or("non_field_errors")
                .to_owned(),
        };
        let message = if message.starts_with("unknown field") {
            format!("Unknown field: {message}. Remove it from the request.")
        } else {
            format!("Invalid value: {message}.")
        };
        ApiError::field(field, message)
    })
}

/// What a resource allows in list queries.
pub struct ListRules {
    /// Query parameters that filter by equality: (parameter, column, kind).
    pub filters: &'static [(&'static str, &'static str, FilterKind)],
    /// Columns searched by `search`.
    pub search: &'static [&'static str],
    /// Fields accepted in `ordering`: (field, column).
    pub ordering: &'static [(&'static str, &'static str)],
    /// Default ordering column.
    pub default_order: &'static str,
    /// Filters through a relation: (parameter, column, subquery with `$?` for the value).
    pub relations: &'static [(&'static str, &'static str, &'static str)],
}

/// How a filter parameter's text is compared.
#[derive(Clone, Copy)]
pub enum FilterKind {
    /// As text.
    Text,
    /// As `true`/`false`.
    Bool,
    /// As an integer.
    Int,
}

/// A path parameter of an API route. A malformed one (letters where an integer id belongs, a
/// broken UUID) names no object, so it answers the API's JSON 404, as Django REST framework's
/// lookups do, rather than the framework's plain-text 400.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|e| ApiError::NotFound(format!("object at this address ({})", e.body_text())))
    }
}

/// Raw query parameters of a list request.
pub struct ListQuery(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(pairs)| ListQuery(pairs))
            .map_err(|e| {
                ApiError::field("non_field_errors", format!("Unreadable query string: {e}."))
            })
    }
}

impl ListQuery {
    /// The value of parameter `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Turns the parameters into a list spec under `rules`, refusing bad pages and orderings.
    pub fn spec(&self, rules: &ListRules) -> Result<ListSpec, ApiError> {
        let number = |name: &str, default: i64, max: i64| -> Result<i64, ApiError> {
            match self.get(name) {
                None | Some("") => Ok(default),
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        ApiError::field(
                            name,
                            format!("`{v}` is not a whole number between 1 and {max}."),
                        )
                    }),
            }
        };
        let page = number("page", 1, i64::MAX / 1_000_000)?;
        let page_size = number("page_size", 20, 1000)?;
        let mut filters = Vec::new();
        for (param, column, kind) in rules.filters {
            let Some(raw) = self.get(param) else { continue };
            let value = match kind {
                FilterKind::Text => Value::Text(raw.to_owned()),
                FilterKind::Bool => match raw {
                    "true" | "True" | "1" => Value::Bool(true),
                    "false" | "False" | "0" => Value::Bool(false),
                    _ => {
                        return Err(ApiError::field(
                            *param,
                            format!("`{raw}` is not true or false."),
                        ))
                    }
                },
                FilterKind::Int => Value::Int(raw.parse().map_err(|_| {
                    ApiError::field(*param, format!("`{raw}` is not a whole number."))
                })?),
            };
            filters.push(Filter::Equals(column, value));
        }
        for (param, column, subquery) in rules.relations {
            if let Some(raw) = self.get(param) {
                filters.push(Filter::InSubquery(column, subquery, raw.to_owned()));
            }
        }
        if let Some(term) = self.get("search").filter(|t| !t.is_empty()) {
            filters.push(Filter::Search(rules.search, term.to_owned()));
        }
        let mut ordering = Vec::new();
        for part in self
            .get("ordering")
            .unwrap_or_default()
            .split(',')
            .filter(|p| !p.is_empty())
        {
            let (field, desc) = match part.strip_prefix('-') {
                Some(f) => (f, true),
                None => (part, false),
            };
            let column = rules
                .ordering
                .iter()
                .find(|(f, _)| *f == field)
                .map(|(_, c)| *c)
                .ok_or_else(|| {
                    let allowed: Vec<&str> = rules.ordering.iter().map(|(f, _)| *f).collect();
                    ApiError::field(
                        "ordering",
                        format!(
                            "cannot order by `{field}`: use one of {}.",
                            allowed.join(", ")
                        ),
                    )
                })?;
            ordering.push((column, desc));
        }
        if ordering.is_empty() {
            ordering.push((rules.default_order, false));
        }
        Ok(ListSpec {
            filters,
            ordering,
            page,
            page_size,
        })
    }
}

pub use gatehouse_outpost::request::basic_credentials;

pub use gatehouse_outpost::request::{client_address, TcpPeer};
