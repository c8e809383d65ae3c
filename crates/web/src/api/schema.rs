//! The OpenAPI 3.1 document, generated from the operations registered in [`super::Api`].

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{Operation, Reply};

/// The OpenAPI document, rendered once at start-up.
#[derive(Clone, Debug)]
pub struct OpenApiDocument(pub Value);

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

impl OpenApiDocument {
    pub(crate) fn build(
        operations: &[Operation],
        mut schemas: BTreeMap<String, Value>,
    ) -> OpenApiDocument {
        schemas.insert(
            "ValidationError".into(),
            json!({"type": "object", "description": "Field name (or non_field_errors) → messages.",
                   "additionalProperties": {"type": "array", "items": {"type": "string"}}}),
        );
        schemas.insert(
            "GenericError".into(),
            json!({"type": "object", "required": ["detail"],
                   "properties": {"detail": {"type": "string"}, "code": {"type": "string"}}}),
        );
        let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for op in operations {
            let full_path = format!("/api/v3{}", op.path);
            let mut parameters: Vec<Value> = op
                .path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
                .collect();
            let (status, body) = match &op.reply {
                Reply::Object(name) => ("200", Some(schema_ref(name))),
                Reply::Created(name) => ("201", Some(schema_ref(name))),
                Reply::List(name) => {
                    for (name, kind, description) in [
                        ("page", "integer", "1-based page number."),
                        (
                            "page_size",
                            "integer",
                            "Objects per page (1–1000, default 20).",
                        ),
                        (
                            "ordering",
                            "string",
                            "Comma-separated fields; prefix `-` for descending.",
                        ),
                        ("search", "string", "Case-insensitive substring match."),
                    ] {
                        parameters.push(json!({"name": name, "in": "query", "required": false,
                                               "description": description, "schema": {"type": kind}}));
                    }
                    let list = json!({"type": "object", "required": ["pagination", "results", "autocomplete"],
                        "properties": {"pagination": schema_ref("Pagination"),
                                       "results": {"type": "array", "items": schema_ref(name)},
                                       "autocomplete": {"type": "object"}}});
                    ("200", Some(list))
                }
                Reply::Array(name) => (
                    "200",
                    Some(json!({"type": "array", "items": schema_ref(name)})),
                ),
                Reply::Empty => ("204", None),
                Reply::Stream(name) => ("200", Some(schema_ref(name))),
            };
            let mut responses = Map::new();
            responses.insert(
                status.into(),
                match (body, &op.reply) {
                    (Some(schema), Reply::Stream(_)) => json!({
                        "description": "Server-sent events; the first event's data has this schema",
                        "content": {"text/event-stream": {"schema": schema}},
                    }),
                    (Some(schema), _) => {
                        json!({"description": "Success", "content": json_content(schema)})
                    }
                    (None, _) => json!({"description": "Success, no content"}),
                },
            );
            responses.insert("400".into(), json!({"description": "Invalid input", "content": json_content(schema_ref("ValidationError"))}));
            for code in ["401", "403", "404"] {
                responses.insert(code.into(), json!({"description": "Error", "content": json_content(schema_ref("GenericError"))}));
            }
            let mut operation = json!({
                "operationId": format!("{}_{}", full_path.trim_matches('/').replace(['/', '{', '}'], "_").replace("__", "_"), op.method.as_str().to_lowercase()),
                "summary": op.summary,
                "tags": [op.tag],
                "security": [{"authentik": []}],
                "parameters": parameters,
                "responses": responses,
            });
            if let Some(request) = &op.request {
                operation["requestBody"] =
                    json!({"required": true, "content": json_content(schema_ref(request))});
            }
            paths
                .entry(full_path)
                .or_default()
                .insert(op.method.as_str().to_lowercase(), operation);
        }
        OpenApiDocument(json!({
            "openapi": "3.1.0",
            "info": {
                "title": "Gatehouse",
                "version": env!("CARGO_PKG_VERSION"),
                "description": "Gatehouse REST API, compatible with Authentik's v3 API for the core resources.",
            },
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {"authentik": {"type": "http", "scheme": "bearer"}},
            },
        }))
    }

    /// Every `(method, path)` the document describes, for tests.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(paths) = self.0["paths"].as_object() {
            for (path, methods) in paths {
                for method in methods.as_object().into_iter().flat_map(|m| m.keys()) {
                    out.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }
}
