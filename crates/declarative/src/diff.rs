//! Field-level comparison of a stored object and a file entry, both in the file's vocabulary.

use gatehouse_proto::declarative::FieldChange;
use serde_json::{Map, Value};

/// Shown instead of a secret's value in plans.
pub const SENSITIVE: &str = "(sensitive)";

/// `current` with every field `entry` sets replaced: what the object should become.
pub fn overlay(current: &Value, entry: &Value) -> Value {
    let mut merged = current.as_object().cloned().unwrap_or_default();
    if let Some(fields) = entry.as_object() {
        for (k, v) in fields {
            if !v.is_null() {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(merged)
}

/// The fields whose value differs between `current` (absent when creating) and `desired`, by
/// field name; values of `secrets` are masked.
pub fn changes(current: Option<&Value>, desired: &Value, secrets: &[&str]) -> Vec<FieldChange> {
    let empty = Map::new();
    let old = current.and_then(Value::as_object).unwrap_or(&empty);
    let mut out = Vec::new();
    for (field, new) in desired.as_object().into_iter().flatten() {
        let before = old.get(field).cloned().unwrap_or(Value::Null);
        if &before == new || (current.is_none() && new.is_null()) {
            continue;
        }
        let mask = |v: Value| {
            if secrets.contains(&field.as_str()) && !v.is_null() {
                Value::String(SENSITIVE.into())
            } else {
                v
            }
        };
        out.push(FieldChange {
            field: field.clone(),
            old: mask(before),
            new: mask(new.clone()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn omitted_fields_keep_their_value() {
        let current = json!({"name": "Grafana", "client_secret": "s3cret", "redirect_uris": ["a"]});
        let entry = json!({"name": "Grafana", "redirect_uris": ["b"], "client_secret": null});
        let desired = overlay(&current, &entry);
        assert_eq!(desired["client_secret"], "s3cret");
        let changed = changes(Some(&current), &desired, &["client_secret"]);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].field, "redirect_uris");
    }

    #[test]
    fn secrets_are_masked_in_changes() {
        let desired = json!({"name": "x", "consumer_secret": "hunter2"});
        let changed = changes(None, &desired, &["consumer_secret"]);
        let secret = changed
            .iter()
            .find(|c| c.field == "consumer_secret")
            .map(|c| c.new.clone());
        assert_eq!(secret, Some(json!(SENSITIVE)));
    }
}
