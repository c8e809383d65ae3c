//! `plan` / `apply` through the API: the homelab reference reaches plan-to-zero, a one-field
//! edit is exactly one update, failures leave the database untouched, and errors are located.

use gatehouse_testkit::{with_server, TestServer};
use serde_json::{json, Value};

use crate::errors;

fn homelab() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/homelab.yaml"
    ))
    .unwrap_or_default()
}

async fn run(
    server: &TestServer,
    document: &str,
    apply: bool,
    env: Value,
) -> anyhow::Result<(u16, Value)> {
    let path = if apply {
        "/declarative/apply/"
    } else {
        "/declarative/plan/"
    };
    server
        .post(
            path,
            json!({"document": document, "source": "homelab.yaml", "env": env}),
        )
        .await
}

fn count(body: &Value) -> usize {
    body["changes"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(usize::MAX)
}

#[tokio::test]
async fn homelab_applies_then_plans_to_zero() -> anyhow::Result<()> {
    with_server(|server| async move {
        let doc = homelab();
        let (status, plan) = run(&server, &doc, false, json!({})).await?;
        assert_eq!(status, 200, "{plan}");
        let planned = count(&plan);
        assert!(planned > 40, "{plan}");
        let (_, apps) = server.get("/core/applications/").await?;
        assert_eq!(apps["pagination"]["count"], 0, "plan writes nothing");

        let (status, applied) = run(&server, &doc, true, json!({})).await?;
        assert_eq!(status, 200, "{applied}");
        assert_eq!(count(&applied), planned, "apply does what plan said");
        let (status, again) = run(&server, &doc, false, json!({})).await?;
        assert_eq!(status, 200);
        assert_eq!(count(&again), 0, "second plan is empty: {again}");

        for (path, expected) in [
            ("/core/applications/", 10),
            ("/core/groups/", 9),
            ("/core/users/", 8),
            ("/sources/oauth/", 3),
        ] {
            let (_, list) = server.get(path).await?;
            assert_eq!(list["pagination"]["count"], expected, "{path}");
        }
        let (_, kubernetes) = server.get("/providers/oauth2/?name=Kubernetes").await?;
        assert_eq!(kubernetes["results"][0]["client_type"], "public");
        let (_, catch_all) = server.get("/providers/proxy/").await?;
        assert_eq!(catch_all["results"][0]["access_token_validity"], "weeks=4");
        assert_eq!(
            catch_all["results"][0]["outpost_set"],
            json!(["gatehouse Embedded Outpost"])
        );
        let (_, google) = server.get("/sources/oauth/google/").await?;
        assert_eq!(
            google["enabled"], false,
            "a source without its secret is kept disabled"
        );
        assert!(applied["warnings"]
            .as_array()
            .is_some_and(|w| !w.is_empty()));
        let (_, headscale_users) = server
            .get("/core/users/?groups_by_name=Headscale%20Users")
            .await?;
        assert_eq!(headscale_users["pagination"]["count"], 6);
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn one_redirect_uri_edit_is_one_update_and_ids_survive() -> anyhow::Result<()> {
    with_server(|server| async move {
        let doc = homelab();
        run(&server, &doc, true, json!({})).await?;
        let (_, before) = server.get("/providers/oauth2/?name=Grafana").await?;
        let edited = doc.replace(
            "https://grafana.example.com/login/generic_oauth",
            "https://grafana.example.com/login/oauth2",
        );
        let (_, plan) = run(&server, &edited, false, json!({})).await?;
        assert_eq!(count(&plan), 1, "{plan}");
        assert_eq!(plan["changes"][0]["action"], "update");
        assert_eq!(plan["changes"][0]["key"], "Grafana");
        assert_eq!(plan["changes"][0]["fields"][0]["field"], "redirect_uris");
        let (_, applied) = run(&server, &edited, true, json!({})).await?;
        assert_eq!(count(&applied), 1);
        let (_, after) = server.get("/providers/oauth2/?name=Grafana").await?;
        let (b, a) = (&before["results"][0], &after["results"][0]);
        assert_eq!(a["pk"], b["pk"], "updated in place");
        assert_eq!(
            a["client_secret"], b["client_secret"],
            "the generated secret survives"
        );
        assert_eq!(
            a["redirect_uris"][0]["url"],
            "https://grafana.example.com/login/oauth2"
        );
        let (_, zero) = run(&server, &edited, false, json!({})).await?;
        assert_eq!(count(&zero), 0, "{zero}");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn a_failing_apply_changes_nothing() -> anyhow::Result<()> {
    with_server(|server| async move {
        // Valid groups first, then a user in a group that does not exist: the whole file fails.
        let doc = "groups:\n  - name: Family\nusers:\n  - username: carol@example.com\n    groups: [Family, Nonexistent]\n";
        let (status, body) = run(&server, doc, true, json!({})).await?;
        assert_eq!(status, 400);
        let message = errors(&body, "document");
        assert!(message.starts_with("homelab.yaml:4: users[carol@example.com].groups"), "{message}");
        assert!(message.contains("no group named `Nonexistent`"), "{message}");
        let (_, groups) = server.get("/core/groups/?name=Family").await?;
        assert_eq!(groups["pagination"]["count"], 0, "the group from the same file was rolled back");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn config_errors_name_file_line_and_key() -> anyhow::Result<()> {
    with_server(|server| async move {
        let cases = [
            ("groups:\n  - name: A\n    superuser: true\n", "homelab.yaml:3", "unknown field `superuser`"),
            ("sources:\n  - slug: google\n    consumer_secret: hunter2\n", "homelab.yaml:2", "not literals"),
            ("sources:\n  - slug: google\n    consumer_secret: ${GOOGLE_SECRET}\n", "homelab.yaml:2", "GOOGLE_SECRET is not set"),
            ("groups:\n  - name: A\n    parents: [B]\n  - name: B\n    parents: [A]\n", "homelab.yaml:", "parent cycle"),
            ("groups:\n  - name: A\n  - name: A\n", "homelab.yaml:2", "appears twice"),
            ("applications:\n  - slug: x\n    name: X\n    provider: Nope\n", "homelab.yaml:2", "no provider named `Nope`"),
            ("proxy_providers:\n  - name: P\n    external_host: not-a-url\n    authorization_flow: default-provider-authorization-implicit-consent\n    invalidation_flow: default-provider-invalidation-flow\n", "homelab.yaml:2", "external_host"),
            ("version: 2\n", "homelab.yaml:1", "version 2"),
            ("groups: [\n", "homelab.yaml:", ""),
        ];
        for (doc, location, needle) in cases {
            let (status, body) = run(&server, doc, false, json!({})).await?;
            assert_eq!(status, 400, "{doc}: {body}");
            let message = errors(&body, "document");
            assert!(message.starts_with(location) && message.contains(needle), "{doc}\n→ {message}");
            assert!(!message.contains("hunter2"), "secrets are never echoed: {message}");
        }
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn secrets_come_from_the_environment_and_are_masked_in_plans() -> anyhow::Result<()> {
    with_server(|server| async move {
        let doc = homelab();
        let env = json!({"GOOGLE_CLIENT_SECRET": "google-secret-value", "CLOUDFLARE_ACCESS_CLIENT_SECRET": "cloudflare-secret-value-0123456789"});
        let (_, plan) = run(&server, &doc, true, env.clone()).await?;
        let text = plan.to_string();
        assert!(!text.contains("google-secret-value") && !text.contains("cloudflare-secret-value"), "{text}");
        let (_, google) = server.get("/sources/oauth/google/").await?;
        assert_eq!(google["enabled"], true, "with its secret the source is enabled");
        let (_, cf) = server.get("/providers/oauth2/?name=Cloudflare%20Access").await?;
        assert_eq!(cf["results"][0]["client_secret"], "cloudflare-secret-value-0123456789");
        let (_, zero) = run(&server, &doc, false, env).await?;
        assert_eq!(count(&zero), 0, "{zero}");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn prune_deletes_unlisted_objects_but_spares_built_ins() -> anyhow::Result<()> {
    with_server(|server| async move {
        server
            .post("/core/groups/", json!({"name": "Leftover"}))
            .await?;
        let doc = "groups:\n  - name: Kept\n";
        let (status, body) = server
            .post(
                "/declarative/apply/",
                json!({"document": doc, "source": "g.yaml", "prune": true}),
            )
            .await?;
        assert_eq!(status, 200, "{body}");
        let deleted: Vec<&str> = body["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["action"] == "delete")
            .filter_map(|c| c["key"].as_str())
            .collect();
        assert_eq!(deleted, vec!["Leftover"], "Admins is built in and survives");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn scope_mappings_apply_by_name_and_plan_to_zero() -> anyhow::Result<()> {
    with_server(|server| async move {
        let doc = r#"
scope_mappings:
  - name: Headscale user
    scope_name: headscale
    expression: '{"tailnet_user": user.username}'
oauth2_providers:
  - name: Headscale
    client_id: headscale
    authorization_flow: default-provider-authorization-implicit-consent
    invalidation_flow: default-provider-invalidation-flow
    signing_algorithm: ES256
    property_mappings: [Headscale user]
    redirect_uris:
      - {matching_mode: strict, url: "https://headscale.example.com/oidc/callback"}
"#;
        let (status, applied) = run(&server, doc, true, json!({})).await?;
        assert_eq!(status, 200, "{applied}");
        let (status, again) = run(&server, doc, false, json!({})).await?;
        assert_eq!(status, 200);
        assert_eq!(count(&again), 0, "second plan is empty: {again}");
        let (_, providers) = server.get("/providers/oauth2/?name=Headscale").await?;
        let provider = &providers["results"][0];
        assert_eq!(provider["signing_algorithm"], "ES256");
        let (_, mapping) = server
            .get("/propertymappings/provider/scope/?name=Headscale%20user")
            .await?;
        assert_eq!(
            provider["property_mappings"],
            json!([mapping["results"][0]["pk"]]),
            "{provider}"
        );

        let broken = doc.replace(
            r#"'{"tailnet_user": user.username}'"#,
            r#"'{"tailnet_user": '"#,
        );
        let (status, body) = run(&server, &broken, true, json!({})).await?;
        assert_eq!(status, 400, "{body}");
        assert!(errors(&body, "document").contains("expression"), "{body}");
        let unknown = doc.replace("[Headscale user]", "[Nobody]");
        let (status, body) = run(&server, &unknown, true, json!({})).await?;
        assert_eq!(status, 400, "{body}");
        assert!(
            errors(&body, "document").contains("no scope mapping named `Nobody`"),
            "{body}"
        );
        server.stop().await
    })
    .await
}

/// A stage's policies combine with `all` unless the file says `any` (Authentik's default, which
/// the importer carries where two or more policies meet); either way a second apply plans
/// nothing, and the API shows the mode.
#[tokio::test]
async fn a_stage_binding_combines_its_policies_as_the_file_says() -> anyhow::Result<()> {
    with_server(|server| async move {
        let doc = r#"
policies:
  - {name: brute-force-a, kind: reputation}
  - {name: brute-force-b, kind: reputation, settings: {threshold: -3}}
stages:
  - {name: lockout, kind: deny, settings: {message: Too many attempts.}}
flows:
  - slug: guarded
    designation: authentication
    stages:
      - stage: lockout
        order: 10
        policy_engine_mode: any
        bindings: [{policy: brute-force-a, order: 0}, {policy: brute-force-b, order: 1}]
"#;
        let (status, body) = run(&server, doc, true, json!({})).await?;
        assert_eq!(status, 200, "{body}");
        let (status, again) = run(&server, doc, false, json!({})).await?;
        assert_eq!((status, count(&again)), (200, 0), "{again}");
        let (_, flow) = server.get("/flows/instances/guarded/").await?;
        let (_, bindings) = server
            .get(&format!(
                "/flows/bindings/?target={}",
                flow["pk"].as_str().unwrap_or_default()
            ))
            .await?;
        assert_eq!(
            bindings["results"][0]["policy_engine_mode"], "any",
            "{bindings}"
        );
        let plain = doc.replace("        policy_engine_mode: any\n", "");
        let (_, changed) = run(&server, &plain, true, json!({})).await?;
        assert_eq!(
            count(&changed),
            1,
            "leaving the mode out means all: {changed}"
        );
        let (_, bindings) = server
            .get(&format!(
                "/flows/bindings/?target={}",
                flow["pk"].as_str().unwrap_or_default()
            ))
            .await?;
        assert_eq!(
            bindings["results"][0]["policy_engine_mode"], "all",
            "{bindings}"
        );
        server.stop().await
    })
    .await
}
