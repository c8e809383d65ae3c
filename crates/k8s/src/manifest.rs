//! Kubernetes manifests as plain JSON values: read from multi-document YAML (as `kubectl` and
//! `helm template` write them), written back as YAML, and the handful of fields the linter and
//! the generator share. Typed k8s-openapi structs would reject the CRDs (Traefik, Prometheus
//! operator) that real manifests mix in, so objects stay untyped here.

use serde_json::{Map, Value};

use crate::{Error, Result};

/// One object of a manifest file.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file it came from, as given on the command line.
    pub file: String,
    /// The object.
    pub value: Value,
}

impl Document {
    /// `kind`.
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `metadata.namespace`, `default` when not set (as `kubectl apply` would place it).
    pub fn namespace(&self) -> &str {
        self.value["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
    }

    /// `Kind namespace/name`, for messages.
    pub fn label(&self) -> String {
        format!("{} {}/{}", self.kind(), self.namespace(), self.name())
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.value["metadata"]["annotations"][key].as_str()
    }

    /// The labels of the pods a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job)
    /// makes, or of a Pod itself.
    pub fn pod_labels(&self) -> Option<&Map<String, Value>> {
        match self.kind() {
            "Pod" => self.value["metadata"]["labels"].as_object(),
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                self.value["spec"]["template"]["metadata"]["labels"].as_object()
            }
            _ => None,
        }
    }

    /// The pod spec of a workload or Pod.
    pub fn pod_spec(&self) -> Option<&Value> {
        match self.kind() {
            "Pod" => Some(&self.value["spec"]),
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                Some(&self.value["spec"]["template"]["spec"])
            }
            _ => None,
        }
    }
}

/// Which Gatehouse process a pod runs, from its `app.kubernetes.io/component` label or, for
/// hand-written manifests, its first container's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `gatehouse serve`.
    Server,
    /// `gatehouse outpost`.
    Outpost,
    /// Something else.
    Other,
}

/// The role of a pod with `labels` and `spec` (a pod spec, when known).
pub fn role(labels: &Map<String, Value>, spec: Option<&Value>) -> Role {
    match labels
        .get("app.kubernetes.io/component")
        .and_then(Value::as_str)
    {
        Some("server") => return Role::Server,
        Some("outpost") => return Role::Outpost,
        _ => {}
    }
    let container = spec.map(|s| &s["containers"][0]);
    let first_arg = container
        .and_then(|c| c["args"][0].as_str().or_else(|| c["command"][1].as_str()))
        .unwrap_or_default();
    match first_arg {
        "serve" => Role::Server,
        "outpost" => Role::Outpost,
        _ => Role::Other,
    }
}

/// Whether an equality-based `selector` (a Service's `spec.selector`, or a `matchLabels`)
/// selects pods labelled `labels`. An empty selector selects nothing here: a Service without
/// one has no managed endpoints.
pub fn selects(selector: &Map<String, Value>, labels: &Map<String, Value>) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.get(k).and_then(Value::as_str) == v.as_str())
}

/// Reads every object of a multi-document YAML text (empty documents and `List` items
/// included as their items).
pub fn parse(file: &str, text: &str) -> Result<Vec<Document>> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de).map_err(|e| Error::Manifest {
            file: file.to_owned(),
            message: format!("document {}: not valid YAML: {e}", i + 1),
        })?;
        match value {
            Value::Null => {}
            Value::Object(ref o) if o.get("kind").and_then(Value::as_str) == Some("List") => {
                for item in o
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    docs.push(Document {
                        file: file.to_owned(),
                        value: item.clone(),
                    });
                }
            }
            Value::Object(ref o) if o.contains_key("kind") && o.contains_key("apiVersion") => docs
                .push(Document {
                    file: file.to_owned(),
                    value,
                }),
            _ => {
                return Err(Error::Manifest {
                    file: file.to_owned(),
                    message: format!(
                        "document {}: not a Kubernetes object (no apiVersion and kind)",
                        i + 1
                    ),
                })
            }
        }
    }
    Ok(docs)
}

/// Writes `objects` as one multi-document YAML text.
pub fn to_yaml(objects: &[Value]) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(o).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_selector_picks_pods_carrying_all_its_labels() {
        let selector = json!({"app": "gatehouse", "component": "outpost"});
        let outpost = json!({"app": "gatehouse", "component": "outpost", "extra": "x"});
        let server = json!({"app": "gatehouse", "component": "server"});
        let (s, o, v) = (
            selector.as_object().cloned().unwrap_or_default(),
            outpost.as_object().cloned().unwrap_or_default(),
            server.as_object().cloned().unwrap_or_default(),
        );
        assert!(selects(&s, &o));
        assert!(!selects(&s, &v));
        assert!(!selects(&Map::new(), &o));
    }

    #[test]
    fn documents_that_are_not_objects_are_refused_with_the_file_named() {
        let e = parse("x.yaml", "---\n- 1\n").err().map(|e| e.to_string());
        assert!(
            e.unwrap_or_default().starts_with("x.yaml: document 1"),
            "names file and document"
        );
        let docs = parse(
            "y.yaml",
            "---\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n",
        )
        .unwrap_or_default();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].label(), "Service default/a");
    }
}
