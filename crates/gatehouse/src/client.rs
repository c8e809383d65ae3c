//! A small client of the REST API for the admin commands: bearer token, JSON, errors turned into
//! messages that name the field and the fix.

use anyhow::{anyhow, bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::cli::ClientArgs;

/// An authenticated connection to a running server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Print JSON instead of tables.
    pub json: bool,
}

/// Turns a DRF-shaped error body into one readable line.
fn describe_error(status: StatusCode, body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let detail = match parsed {
        Some(Value::Object(map)) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "code")
            .map(|(k, v)| {
                let text = match v {
                    Value::Array(items) => items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| i.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if k == "detail" || k == "non_field_errors" {
                    text
                } else {
                    format!("{k}: {text}")
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => body.chars().take(300).collect(),
    };
    format!("server answered {status}: {detail}")
}

impl Client {
    /// A client for `args`; fails when no token is configured.
    pub fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let token = args
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("no API token: pass --token or set GATEHOUSE_TOKEN (the set-up page or `gatehouse token create` gives one)"))?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            base: args.url.trim_end_matches('/').to_owned(),
            token,
            json: args.json,
        })
    }

    /// Sends a request to `/api/v3{path}` and returns the JSON answer (`Null` for 204).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/api/v3{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the server at {} (is it running? check --url / GATEHOUSE_URL)",
                self.base
            )
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("reading the server's answer")?;
        if !status.is_success() {
            bail!(describe_error(status, &text));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| {
            format!(
                "the server's answer is not JSON: {}",
                text.chars().take(200).collect::<String>()
            )
        })
    }

    /// GET.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Every object of a list endpoint, following pages.
    pub async fn list_all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let separator = if path.contains('?') { '&' } else { '?' };
        for page in 1..=10_000 {
            let answer = self
                .get(&format!("{path}{separator}page={page}&page_size=1000"))
                .await?;
            if let Some(results) = answer["results"].as_array() {
                out.extend(results.iter().cloned());
            }
            if answer["pagination"]["next"].as_i64().unwrap_or(0) == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// The one object of `path` whose `param` equals `value`, or an error naming `what`.
    pub async fn find_one(
        &self,
        path: &str,
        param: &str,
        value: &str,
        what: &str,
    ) -> anyhow::Result<Value> {
        let encoded: String = url_encode(value);
        let found = self.list_all(&format!("{path}?{param}={encoded}")).await?;
        found
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("no {what} named `{value}`"))
    }

    /// Prints `value` as JSON (with `--json`) or with `human`.
    pub fn print(&self, value: &Value, human: impl FnOnce(&Value)) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            human(value);
        }
    }
}

pub use gatehouse_core::validate::url_encode;

/// Prints rows as left-aligned columns under a header.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

/// A JSON value as a table cell.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drf_errors_read_as_one_line() {
        let body = r#"{"username": ["an object with this username already exists."]}"#;
        assert_eq!(
            describe_error(StatusCode::BAD_REQUEST, body),
            "server answered 400 Bad Request: username: an object with this username already exists."
        );
        assert!(describe_error(
            StatusCode::UNAUTHORIZED,
            r#"{"detail": "nope", "code": "x"}"#
        )
        .ends_with(": nope"));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(url_encode("Headscale Users"), "Headscale%20Users");
        assert_eq!(url_encode("a&b=c"), "a%26b%3Dc");
    }
}
