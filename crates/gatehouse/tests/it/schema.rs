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
    ("GET", "/api/v3/policies/all/"),
    ("POST", "/api/v3/policies/expression/"),
    ("PATCH", "/api/v3/policies/reputation/{policy_uuid}/"),
    (
        "DELETE",
        "/api/v3/policies/reputation/scores/{reputation_uuid}/",
    ),
    ("GET", "/api/v3/stages/all/"),
    ("POST", "/api/v3/stages/deny/"),
    ("PUT", "/api/v3/stages/user_login/{stage_uuid}/"),
    ("GET", "/api/v3/flows/bindings/"),
    ("PATCH", "/api/v3/flows/bindings/{fsb_uuid}/"),
    ("GET", "/api/v3/core/users/me/"),
    ("DELETE", "/api/v3/sources/all/{slug}/"),
    ("GET", "/api/v3/crypto/certificatekeypairs/{kp_uuid}/"),
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

/// Schemathesis (PyPI; `scripts/test` installs it next to the SDK) sends requests generated from
/// `/api/v3/schema/` — valid ones, and ones broken on purpose — and checks every answer against
/// the document: no 5xx, only documented status codes and content types, every body in its
/// documented schema. The seed is fixed so a failure replays; its report names the request.
#[tokio::test]
async fn schemathesis_finds_no_answer_that_contradicts_the_schema() -> anyhow::Result<()> {
    use anyhow::Context;
    with_server(|server| async move {
        let python = std::env::var("GATEHOUSE_TEST_PYTHON").context(
            "GATEHOUSE_TEST_PYTHON is not set: run scripts/test, which installs schemathesis into target/test-venv",
        )?;
        let schemathesis = std::path::Path::new(&python).with_file_name("schemathesis");
        let scratch = tempfile::tempdir()?;
        let output = tokio::process::Command::new(&schemathesis)
            .current_dir(scratch.path())
            .args([
                "run",
                &format!("{}/api/v3/schema/", server.url),
                "--url",
                &server.url,
                "-H",
                &format!("Authorization: Bearer {}", gatehouse_testkit::TOKEN),
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "10",
                "--seed",
                "20261203",
                "--generation-database",
                "none",
                // One worker: hypothesis caches lambda sources without a lock, and two threads
                // at once made schemathesis report its own "AST constructor recursion depth
                // mismatch" as an error.
                "--workers",
                "1",
                "--no-color",
            ])
            .output()
            .await
            .with_context(|| format!("running {}", schemathesis.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "schemathesis found answers the schema does not describe\n{stdout}\n{stderr}"
        );
        server.stop().await
    })
    .await
}
