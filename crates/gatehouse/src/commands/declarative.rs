//! `plan` and `apply`: send the config file and the values of the `${VAR}` it references to the
//! server, which diffs (and applies) it in one transaction; print the field-level changes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};

use crate::cli::DeclarativeArgs;
use crate::client::Client;

/// Names of the environment variables a document references as `${VAR}` or `${VAR:-}`.
pub(super) fn referenced_variables(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "(none)".into(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Sends `file` (with the values of the variables it references) to be planned, or applied
/// when `apply`; returns the server's plan.
pub(super) async fn send(
    client: &Client,
    file: &Path,
    prune: bool,
    apply: bool,
) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let env: BTreeMap<String, String> = referenced_variables(&text)
        .into_iter()
        .filter_map(|name| std::env::var(&name).ok().map(|v| (name, v)))
        .collect();
    let body =
        json!({"document": text, "source": file.display().to_string(), "prune": prune, "env": env});
    let path = if apply {
        "/declarative/apply/"
    } else {
        "/declarative/plan/"
    };
    client.post(path, &body).await
}

/// Prints a plan (or what was applied) the way `plan` and `apply` do; `file` is named in the
/// hint to apply it.
pub(super) fn print_plan(client: &Client, plan: &Value, file: &Path) {
    client.print(plan, |plan| {
        for warning in plan["warnings"].as_array().into_iter().flatten() {
            println!("warning: {}", warning.as_str().unwrap_or_default());
        }
        let changes = plan["changes"].as_array().cloned().unwrap_or_default();
        if changes.is_empty() {
            println!("No changes. The configuration matches {}.", file.display());
            return;
        }
        for change in &changes {
            let sign = match change["action"].as_str() {
                Some("create") => "+",
                Some("delete") => "-",
                _ => "~",
            };
            println!(
                "{sign} {} {} {}",
                change["action"].as_str().unwrap_or_default(),
                change["kind"].as_str().unwrap_or_default(),
                change["key"].as_str().unwrap_or_default()
            );
            for field in change["fields"].as_array().into_iter().flatten() {
                let name = field["field"].as_str().unwrap_or_default();
                match change["action"].as_str() {
                    Some("update") => println!(
                        "    {name}: {} -> {}",
                        show(&field["old"]),
                        show(&field["new"])
                    ),
                    _ => println!(
                        "    {name}: {}",
                        show(if sign == "-" {
                            &field["old"]
                        } else {
                            &field["new"]
                        })
                    ),
                }
            }
        }
        let count = changes.len();
        if plan["applied"] == json!(true) {
            println!("Applied {count} change(s).");
        } else {
            println!(
                "Plan: {count} change(s). Run `gatehouse apply -f {}` to make them.",
                file.display()
            );
        }
    });
}

/// Runs `plan` (`apply == false`) or `apply`.
pub(super) async fn run(args: DeclarativeArgs, apply: bool) -> anyhow::Result<()> {
    let client = Client::new(&args.client)?;
    let plan = send(&client, &args.file, args.prune, apply).await?;
    print_plan(&client, &plan, &args.file);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_referenced_variable_once() {
        let text = "a: ${GOOGLE_SECRET}\nb: ${GITHUB_SECRET:-}\nc: ${GOOGLE_SECRET}";
        assert_eq!(
            referenced_variables(text),
            vec!["GOOGLE_SECRET", "GITHUB_SECRET"]
        );
    }
}
