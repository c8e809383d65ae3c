//! The REST API: authentication, the pagination envelope, CRUD, and every kind of bad input
//! answered with a DRF-shaped error that names the field.

use gatehouse_testkit::{send, with_server};
use serde_json::{json, Value};

use crate::errors;

#[tokio::test]
async fn listing_users_needs_a_token_and_returns_the_envelope() -> anyhow::Result<()> {
    with_server(|server| async move {
        let url = format!("{}/api/v3/core/users/", server.url);
        let (status, body) = send(server.http.get(&url)).await?;
        assert_eq!(status, 401);
        assert_eq!(body["code"], "not_authenticated");
        let (status, body) = send(server.http.get(&url).bearer_auth("wrong")).await?;
        assert_eq!(status, 401);
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("invalid"),
            "{body}"
        );
        let (status, body) =
            send(server.http.get(&url).header("Authorization", "Basic YTpi")).await?;
        assert_eq!(status, 401, "{body}");

        let (status, body) = server.get("/core/users/").await?;
        assert_eq!(status, 200);
        for key in [
            "next",
            "previous",
            "count",
            "current",
            "total_pages",
            "start_index",
            "end_index",
        ] {
            assert!(
                body["pagination"][key].is_number(),
                "pagination.{key} missing: {body}"
            );
        }
        assert_eq!(body["results"][0]["username"], "admin");
        assert!(body["autocomplete"].is_object());
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn a_non_superuser_token_is_forbidden() -> anyhow::Result<()> {
    with_server(|server| async move {
        let (_, user) = server
            .post(
                "/core/users/",
                json!({"username": "erin@example.com", "name": "Erin"}),
            )
            .await?;
        let (status, token) = server
            .post(
                "/core/tokens/",
                json!({"identifier": "erin-token", "user": user["pk"], "expiring": false}),
            )
            .await?;
        assert_eq!(status, 201, "{token}");
        let key = token["key"].as_str().unwrap_or_default().to_owned();
        assert_eq!(key.len(), 43, "the key is shown once at creation");
        let (_, listed) = server.get("/core/tokens/erin-token/").await?;
        assert!(
            listed.get("key").is_none(),
            "the key is never shown again: {listed}"
        );
        let (status, body) = send(
            server
                .http
                .get(format!("{}/api/v3/core/users/", server.url))
                .bearer_auth(&key),
        )
        .await?;
        assert_eq!(status, 403);
        assert_eq!(body["code"], "permission_denied");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn pagination_filtering_and_ordering() -> anyhow::Result<()> {
    with_server(|server| async move {
        for i in 0..25 {
            let (status, body) = server
                .post("/core/groups/", json!({"name": format!("group-{i:02}")}))
                .await?;
            assert_eq!(status, 201, "{body}");
        }
        let (_, page2) = server
            .get("/core/groups/?page=2&page_size=10&ordering=name")
            .await?;
        let p = &page2["pagination"];
        assert_eq!(
            (
                p["count"].as_i64(),
                p["current"].as_i64(),
                p["next"].as_i64(),
                p["previous"].as_i64()
            ),
            (Some(26), Some(2), Some(3), Some(1))
        );
        assert_eq!(
            (
                p["start_index"].as_i64(),
                p["end_index"].as_i64(),
                p["total_pages"].as_i64()
            ),
            (Some(11), Some(20), Some(3))
        );
        assert_eq!(page2["results"][0]["name"], "group-09");
        let (_, desc) = server
            .get("/core/groups/?ordering=-name&page_size=1")
            .await?;
        assert_eq!(desc["results"][0]["name"], "group-24");
        let (_, searched) = server.get("/core/groups/?search=GROUP-1").await?;
        assert_eq!(searched["pagination"]["count"], 10);
        let (_, exact) = server.get("/core/groups/?name=Admins").await?;
        assert_eq!(exact["pagination"]["count"], 1);
        let (_, members) = server.get("/core/users/?groups_by_name=Admins").await?;
        assert_eq!(members["results"][0]["username"], "admin");
        let (_, wildcard) = server.get("/core/groups/?search=%25").await?;
        assert_eq!(
            wildcard["pagination"]["count"], 0,
            "LIKE wildcards are literal in search"
        );
        // A resource with no searchable fields ignores `search` (Django REST framework's
        // SearchFilter does), rather than failing.
        let (status, bindings) = server.get("/policies/bindings/?search=x").await?;
        assert_eq!(status, 200, "{bindings}");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn bad_list_parameters_name_the_parameter() -> anyhow::Result<()> {
    with_server(|server| async move {
        for (query, field) in [
            ("page=0", "page"),
            ("page=abc", "page"),
            ("page_size=100000", "page_size"),
            ("ordering=password_hash", "ordering"),
            ("is_active=maybe", "is_active"),
        ] {
            let (status, body) = server.get(&format!("/core/users/?{query}")).await?;
            assert_eq!(status, 400, "{query}: {body}");
            assert!(!errors(&body, field).is_empty(), "{query}: {body}");
        }
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn bad_bodies_are_refused_with_the_field_named() -> anyhow::Result<()> {
    with_server(|server| async move {
        let cases = [
            (json!({"username": "x", "name": "X", "favourite_colour": "blue"}), "favourite_colour"),
            (json!({"name": "No Username"}), "username"),
            (json!({"username": "has space", "name": "X"}), "username"),
            (json!({"username": "y", "name": "Y", "email": "not-an-email"}), "email"),
            (json!({"username": "z", "name": "Z", "type": "robot"}), "type"),
            (json!({"username": "w", "name": "W", "groups": ["00000000-0000-0000-0000-000000000000"]}), "groups"),
            (json!({"username": "v", "name": "V", "roles": ["00000000-0000-0000-0000-000000000000"]}), "roles"),
            (json!({"username": "u", "name": "U", "attributes": []}), "attributes"),
            (json!({"username": "t", "name": "x".repeat(5000)}), "name"),
        ];
        for (body, field) in cases {
            let (status, answer) = server.post("/core/users/", body.clone()).await?;
            assert_eq!(status, 400, "{body}: {answer}");
            assert!(!errors(&answer, field).is_empty(), "expected `{field}` named for {body}: {answer}");
        }
        let (status, answer) = send(
            server
                .api(reqwest::Method::POST, "/core/users/")
                .header("Content-Type", "application/json")
                .body("{not json"),
        )
        .await?;
        assert_eq!(status, 400);
        assert!(!errors(&answer, "non_field_errors").is_empty(), "{answer}");
        let (_, users) = server.get("/core/users/").await?;
        assert_eq!(users["pagination"]["count"], 1, "nothing was half-written");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn duplicates_name_the_clashing_field() -> anyhow::Result<()> {
    with_server(|server| async move {
        let (status, body) = server
            .post(
                "/core/users/",
                json!({"username": "admin", "name": "Again"}),
            )
            .await?;
        assert_eq!(status, 400);
        assert!(
            errors(&body, "username").contains("already exists"),
            "{body}"
        );
        let (status, body) = server
            .post("/core/groups/", json!({"name": "Admins"}))
            .await?;
        assert_eq!(status, 400);
        assert!(errors(&body, "name").contains("already exists"), "{body}");
        server
            .post(
                "/core/applications/",
                json!({"slug": "grafana", "name": "Grafana"}),
            )
            .await?;
        let (status, body) = server
            .post(
                "/core/applications/",
                json!({"slug": "grafana", "name": "Other"}),
            )
            .await?;
        assert_eq!(status, 400);
        assert!(errors(&body, "slug").contains("already exists"), "{body}");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn group_parent_cycles_are_refused() -> anyhow::Result<()> {
    with_server(|server| async move {
        let (_, a) = server.post("/core/groups/", json!({"name": "A"})).await?;
        let (_, b) = server
            .post("/core/groups/", json!({"name": "B", "parents": [a["pk"]]}))
            .await?;
        let (_, c) = server
            .post(
                "/core/groups/",
                json!({"name": "C", "parents": [b["pk"], a["pk"]]}),
            )
            .await?;
        assert_eq!(
            c["parents"].as_array().map(Vec::len),
            Some(2),
            "a group may have several parents: {c}"
        );
        let a_pk = a["pk"].as_str().unwrap_or_default();
        let (status, body) = server
            .patch(
                &format!("/core/groups/{a_pk}/"),
                json!({"parents": [c["pk"]]}),
            )
            .await?;
        assert_eq!(status, 400);
        assert!(errors(&body, "parents").contains("cycle"), "{body}");
        let (status, body) = server
            .patch(
                &format!("/core/groups/{a_pk}/"),
                json!({"parents": [a["pk"]]}),
            )
            .await?;
        assert_eq!(status, 400, "{body}");
        let (_, a_now) = server.get(&format!("/core/groups/{a_pk}/")).await?;
        assert_eq!(
            a_now["parents"],
            json!([]),
            "the refused change left nothing behind"
        );
        assert_eq!(a_now["children"].as_array().map(Vec::len), Some(2));
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn superuser_status_is_inherited_from_parent_groups() -> anyhow::Result<()> {
    with_server(|server| async move {
        let (_, admins) = server.get("/core/groups/?name=Admins").await?;
        let (_, ops) = server
            .post(
                "/core/groups/",
                json!({"name": "Ops", "parents": [admins["results"][0]["pk"]]}),
            )
            .await?;
        let (_, user) = server
            .post(
                "/core/users/",
                json!({"username": "bob@example.com", "name": "Bob", "groups": [ops["pk"]]}),
            )
            .await?;
        assert_eq!(
            user["is_superuser"], true,
            "members of a child of Admins count as members of Admins: {user}"
        );
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn users_are_read_changed_and_deleted() -> anyhow::Result<()> {
    with_server(|server| async move {
        let (_, user) = server
            .post(
                "/core/users/",
                json!({"username": "dan@example.com", "name": "Dan"}),
            )
            .await?;
        let pk = user["pk"].as_i64().unwrap_or_default();
        let (status, changed) = server
            .patch(
                &format!("/core/users/{pk}/"),
                json!({"is_active": false, "attributes": {"team": "ops"}}),
            )
            .await?;
        assert_eq!(status, 200, "{changed}");
        assert_eq!(changed["is_active"], false);
        assert_eq!(changed["name"], "Dan", "PATCH keeps unspecified fields");
        let (status, body) = server
            .post(
                &format!("/core/users/{pk}/set_password/"),
                json!({"password": ""}),
            )
            .await?;
        assert_eq!(status, 400, "{body}");
        let (status, _) = server
            .post(
                &format!("/core/users/{pk}/set_password/"),
                json!({"password": "correct horse"}),
            )
            .await?;
        assert_eq!(status, 204);
        let (status, _) = server.delete(&format!("/core/users/{pk}/")).await?;
        assert_eq!(status, 204);
        let (status, body) = server.get(&format!("/core/users/{pk}/")).await?;
        assert_eq!(status, 404);
        assert_eq!(body["code"], "not_found");
        let (status, body) = server.get("/core/users/not-a-number/").await?;
        assert!(status == 400 || status == 404, "{status} {body}");
        let (_, events) = server.get("/events/events/?action=model_deleted").await?;
        assert_eq!(
            events["pagination"]["count"], 1,
            "deletions are audited: {events}"
        );
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn providers_validate_flows_urls_and_durations() -> anyhow::Result<()> {
    with_server(|server| async move {
        let (implicit, invalidation) = crate::provider_flows(&server, "implicit").await?;
        let (_, authentication) = server.get("/flows/instances/default-authentication-flow/").await?;
        let base = json!({
            "name": "Catch all",
            "authorization_flow": implicit,
            "invalidation_flow": invalidation,
            "mode": "forward_domain",
            "external_host": "https://auth.example.org",
            "cookie_domain": "example.com",
        });
        let (status, body) = server.post("/providers/proxy/", base.clone()).await?;
        assert_eq!(status, 400);
        assert!(errors(&body, "external_host").contains("not under the cookie domain"), "{body}");
        let mut wrong_flow = base.clone();
        wrong_flow["external_host"] = json!("https://auth.example.com");
        wrong_flow["authorization_flow"] = authentication["pk"].clone();
        wrong_flow["access_token_validity"] = json!("fortnights=2");
        let (status, body) = server.post("/providers/proxy/", wrong_flow).await?;
        assert_eq!(status, 400);
        assert!(errors(&body, "authorization_flow").contains("authentication flow"), "{body}");
        assert!(errors(&body, "access_token_validity").contains("unknown unit"), "{body}");
        let mut good = base.clone();
        good["external_host"] = json!("https://auth.example.com");
        good["access_token_validity"] = json!("weeks=4");
        let (status, proxy) = server.post("/providers/proxy/", good).await?;
        assert_eq!(status, 201, "{proxy}");
        assert_eq!(proxy["redirect_uris"][0]["url"], "https://auth.example.com/outpost.goauthentik.io/callback?X-authentik-auth-callback=true");

        let (status, oauth) = server
            .post(
                "/providers/oauth2/",
                json!({"name": "Grafana", "authorization_flow": implicit, "invalidation_flow": invalidation,
                       "redirect_uris": [{"matching_mode": "strict", "url": "https://grafana.example.com/login/generic_oauth"}]}),
            )
            .await?;
        assert_eq!(status, 201, "{oauth}");
        assert!(oauth["client_secret"].as_str().unwrap_or_default().len() >= 64, "a long secret is generated");
        let (status, body) = server
            .post(
                "/providers/oauth2/",
                json!({"name": "Bad", "authorization_flow": implicit, "invalidation_flow": invalidation,
                       "redirect_uris": [{"matching_mode": "regex", "url": "https://(unclosed"}]}),
            )
            .await?;
        assert_eq!(status, 400);
        assert!(errors(&body, "redirect_uris").contains("regular expression"), "{body}");
        let (status, _) = server.get(&format!("/providers/proxy/{}/", oauth["pk"])).await?;
        assert_eq!(status, 404, "an OAuth2 provider is not a proxy provider");
        let (status, app) = server
            .post("/core/applications/", json!({"slug": "grafana", "name": "Grafana", "provider": oauth["pk"]}))
            .await?;
        assert_eq!(status, 201, "{app}");
        assert_eq!(app["provider_obj"]["assigned_application_slug"], "grafana");
        let (status, body) = server.post("/core/applications/", json!({"slug": "Not A Slug", "name": "x"})).await?;
        assert_eq!(status, 400);
        assert!(!errors(&body, "slug").is_empty());
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn an_invitation_may_name_no_flow_and_exist_before_any_enrollment_flow() -> anyhow::Result<()>
{
    with_server(|server| async move {
        let (status, body) = server
            .post("/stages/invitation/invitations/", json!({"name": "first"}))
            .await?;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["flow"], Value::Null, "{body}");
        assert_eq!(body["state"], "pending", "{body}");
        assert_eq!(body["link"], "", "no flow can take it yet: {body}");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn unknown_api_paths_answer_json_404() -> anyhow::Result<()> {
    with_server(|server| async move {
        let (status, body) = server.get("/core/nonexistent/").await?;
        assert_eq!(status, 404);
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("/api/v3/schema/"),
            "{body}"
        );
        server.stop().await
    })
    .await
}
