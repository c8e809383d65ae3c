//! The OpenAPI document at `/api/v3/schema/` describes every route, and every route it describes
//! exists (none answers "no such endpoint" or 405).

use gatehouse_testkit::{send, with_server};
use serde_json::Value;

/// The resources the Foundation promises, as `(method, path)`.
const REQUIRED: &[(&str, &str)] = &[
    ("GET", "/api/v3/core/users/"),
    ("POST", "/api/v3/core/users/{id}/set_password/"),
    ("GET", "/api/v3/core/groups/"),
    ("POST", "/api/v3/core/groups/{uuid}/add_user/"),
    ("POST", "/api/v3/core/groups/{uuid}/remove_user/"),
    ("GET", "/api/v3/core/applications/"),
    ("GET", "/api/v3/core/tokens/"),
    ("GET", "/api/v3/providers/oauth2/"),
    ("GET", "/api/v3/providers/proxy/"),
    ("GET", "/api/v3/stages/invitation/invitations/"),
    ("GET", "/api/v3/flows/instances/"),
    ("GET", "/api/v3/policies/bindings/"),
    ("GET", "/api/v3/sources/oauth/"),
    ("GET", "/api/v3/outposts/instances/"),
    ("GET", "/api/v3/events/events/"),
    ("POST", "/api/v3/declarative/plan/"),
    ("POST", "/api/v3/declarative/apply/"),
    ("GET", "/api/v3/authenticators/all/"),
    ("GET", "/api/v3/authenticators/admin/all/"),
    ("GET", "/api/v3/authenticators/webauthn/"),
    ("DELETE", "/api/v3/authenticators/webauthn/{id}/"),
    ("PATCH", "/api/v3/authenticators/totp/{id}/"),
    ("GET", "/api/v3/authenticators/admin/webauthn/"),
    ("DELETE", "/api/v3/authenticators/admin/totp/{id}/"),
];

#[tokio::test]
async fn schema_describes_every_route_and_every_described_route_exists() -> anyhow::Result<()> {
    with_server(|server| async move {
        let (status, doc) = send(server.http.get(format!("{}/api/v3/schema/", server.url))).await?;
        assert_eq!(status, 200);
        assert_eq!(doc["openapi"], "3.1.0");
        let yaml = server
            .http
            .get(format!("{}/api/v3/schema/?format=yaml", server.url))
            .send()
            .await?;
        assert_eq!(yaml.status(), 200);
        assert!(yaml.text().await?.contains("openapi: 3.1.0"));

        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        for (method, path) in REQUIRED {
            assert!(
                paths
                    .get(*path)
                    .and_then(|p| p.get(method.to_lowercase()))
                    .is_some(),
                "{method} {path} undocumented"
            );
        }
        let schemas = &doc["components"]["schemas"];
        for name in [
            "User",
            "Group",
            "Application",
            "OAuth2Provider",
            "ProxyProvider",
            "PolicyBinding",
            "Pagination",
        ] {
            assert!(schemas[name].is_object(), "component {name} missing");
        }
        let mut checked = 0;
        for (path, methods) in &paths {
            for (method, operation) in methods.as_object().into_iter().flatten() {
                assert!(
                    operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
                    "{method} {path} has no summary"
                );
                for reference in collect_refs(operation) {
                    let name = reference.trim_start_matches("#/components/schemas/");
                    assert!(
                        schemas[name].is_object(),
                        "{method} {path} refers to missing schema {name}"
                    );
                }
                let concrete = path
                    .replace("{id}", "999999")
                    .replace("{uuid}", "00000000-0000-0000-0000-000000000000")
                    .replace("{slug}", "no-such-slug")
                    .replace("{identifier}", "no-such-token");
                let request = server
                    .http
                    .request(
                        method.to_uppercase().parse()?,
                        format!("{}{concrete}", server.url),
                    )
                    .bearer_auth(gatehouse_testkit::TOKEN)
                    .json(&serde_json::json!({}));
                let (status, body) = send(request).await?;
                assert_ne!(status, 405, "{method} {path} is documented but not routed");
                assert!(
                    !body["detail"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("see /api/v3/schema/"),
                    "{method} {path} is documented but not routed: {body}"
                );
                assert!(status < 500, "{method} {path} answered {status}: {body}");
                checked += 1;
            }
        }
        assert!(checked >= 60, "only {checked} operations documented");
        server.stop().await
    })
    .await
}

fn collect_refs(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| {
                if k == "$ref" {
                    v.as_str().map(str::to_owned).into_iter().collect()
                } else {
                    collect_refs(v)
                }
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(collect_refs).collect(),
        _ => Vec::new(),
    }
}
