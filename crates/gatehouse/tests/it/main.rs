//! End-to-end tests of `gatehouse`: the real server in-process on 127.0.0.1:0, the real binary for
//! the CLI, and a fresh database per test. The same binary runs on SQLite and on PostgreSQL
//! (`GATEHOUSE_TEST_DATABASE`); `scripts/test` runs it both ways.

mod api;
mod browser;
mod carried;
mod cli;
mod declarative;
mod deploy;
mod devices;
mod doctor;
mod enrollment;
mod feed;
mod flows;
mod import;
mod login_attacks;
mod oidc;
mod oidc_attacks;
mod outpost;
mod outpost_attacks;
mod schema;
mod sdk;
mod sealing;
mod server;
mod settings;
mod sources;
mod standalone;

use gatehouse_testkit::TestServer;
use serde_json::Value;

/// The pks of the default provider flows: authorization with `consent` ("explicit" or
/// "implicit") consent, and invalidation.
pub async fn provider_flows(server: &TestServer, consent: &str) -> anyhow::Result<(Value, Value)> {
    let (_, authorization) = server
        .get(&format!(
            "/flows/instances/default-provider-authorization-{consent}-consent/"
        ))
        .await?;
    let (_, invalidation) = server
        .get("/flows/instances/default-provider-invalidation-flow/")
        .await?;
    Ok((authorization["pk"].clone(), invalidation["pk"].clone()))
}

/// Field errors of a DRF-shaped 400 body, for assertions: `errors(&body, "username")`.
pub fn errors(body: &Value, field: &str) -> String {
    body[field]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}
