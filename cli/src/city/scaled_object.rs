//! KEDA ScaledObjects as the local autoscaler reads them: the same objects
//! `kubectl apply -k` gives the cluster, rendered from `manifests/` (the
//! `local` overlay) with `kubectl kustomize`, so the local city and the
//! cluster share one scaling configuration.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use super::hpa::{Behavior, Policy, PolicyKind, Rules, Select};

/// Why the ScaledObjects could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScaledObjectError {
    /// `kubectl kustomize` could not run or failed.
    #[error("kubectl kustomize {path}: {reason}")]
    Render {
        /// The kustomization rendered.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The rendered YAML is not what KEDA accepts.
    #[error("ScaledObject {name}: {reason}")]
    Invalid {
        /// The object's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A document is not YAML.
    #[error("rendered YAML: {0}")]
    Yaml(String),
}

impl ScaledObject {
    /// What KEDA sends the external scaler for this object: its name,
    /// namespace and first trigger's metadata; `None` without triggers.
    pub fn scaler_ref(&self) -> Option<safecity_scaler::pb::ScaledObjectRef> {
        let trigger = self.triggers.first()?;
        Some(safecity_scaler::pb::ScaledObjectRef {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            scaler_metadata: trigger.metadata.clone(),
        })
    }
}

/// One trigger of a ScaledObject.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// `external-push`, `external`, ...
    pub kind: String,
    /// Its metadata, as KEDA forwards it to an external scaler.
    pub metadata: HashMap<String, String>,
}

/// `spec.fallback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback {
    /// Failed polls before the fallback applies.
    pub failure_threshold: u32,
    /// Replicas run meanwhile.
    pub replicas: u32,
}

/// A ScaledObject, with KEDA's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledObject {
    /// `metadata.name` (KEDA sends it to the scaler).
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.scaleTargetRef.name`: the Deployment scaled.
    pub target: String,
    /// `spec.pollingInterval` (default 30 s).
    pub polling_interval: Duration,
    /// `spec.cooldownPeriod` (default 300 s).
    pub cooldown: Duration,
    /// `spec.minReplicaCount` (default 0).
    pub min_replicas: u32,
    /// `spec.maxReplicaCount` (default 100).
    pub max_replicas: u32,
    /// `spec.fallback`.
    pub fallback: Option<Fallback>,
    /// `spec.advanced.horizontalPodAutoscalerConfig.behavior` (HPA defaults).
    pub behavior: Behavior,
    /// `spec.triggers`.
    pub triggers: Vec<Trigger>,
}

#[derive(Deserialize)]
struct Document {
    kind: Option<String>,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    scale_target_ref: TargetRef,
    polling_interval: Option<u64>,
    cooldown_period: Option<u64>,
    min_replica_count: Option<u32>,
    max_replica_count: Option<u32>,
    fallback: Option<FallbackSpec>,
    advanced: Option<Advanced>,
    #[serde(default)]
    triggers: Vec<TriggerSpec>,
}

#[derive(Deserialize)]
struct TargetRef {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FallbackSpec {
    failure_threshold: u32,
    replicas: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Advanced {
    horizontal_pod_autoscaler_config: Option<HpaConfig>,
}

#[derive(Deserialize)]
struct HpaConfig {
    behavior: Option<BehaviorSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BehaviorSpec {
    scale_up: Option<RulesSpec>,
    scale_down: Option<RulesSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RulesSpec {
    stabilization_window_seconds: Option<u64>,
    select_policy: Option<String>,
    policies: Option<Vec<PolicySpec>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicySpec {
    #[serde(rename = "type")]
    kind: String,
    value: u32,
    period_seconds: u64,
}

#[derive(Deserialize)]
struct TriggerSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    metadata: HashMap<String, serde_yaml_ng::Value>,
}

fn rules(spec: Option<RulesSpec>, default: Rules, name: &str) -> Result<Rules, ScaledObjectError> {
    let Some(spec) = spec else {
        return Ok(default);
    };
    let invalid = |reason: String| ScaledObjectError::Invalid {
        name: name.to_owned(),
        reason,
    };
    let select = match spec.select_policy.as_deref() {
        None | Some("Max") => Select::Max,
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        Some(other) => return Err(invalid(format!("selectPolicy `{other}`"))),
    };
    let policies = match spec.policies {
        None => default.policies,
        Some(policies) => policies
            .into_iter()
            .map(|p| {
                let kind = match p.kind.as_str() {
                    "Pods" => PolicyKind::Pods,
                    "Percent" => PolicyKind::Percent,
                    other => return Err(invalid(format!("policy type `{other}`"))),
                };
                Ok(Policy {
                    kind,
                    value: p.value,
                    period: Duration::from_secs(p.period_seconds),
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Rules {
        stabilization: spec
            .stabilization_window_seconds
            .map_or(default.stabilization, Duration::from_secs),
        select,
        policies,
    })
}

/// The ScaledObjects among the documents of `yaml` (a rendered multi-document stream).
pub fn parse(yaml: &str) -> Result<Vec<ScaledObject>, ScaledObjectError> {
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(yaml) {
        let document =
            Document::deserialize(document).map_err(|e| ScaledObjectError::Yaml(e.to_string()))?;
        if document.kind.as_deref() != Some("ScaledObject") {
            continue;
        }
        let name = document.metadata.name;
        let invalid = |reason: String| ScaledObjectError::Invalid {
            name: name.clone(),
            reason,
        };
        let spec: Spec = serde_yaml_ng::from_value(document.spec.unwrap_or_default())
            .map_err(|e| invalid(e.to_string()))?;
        let defaults = Behavior::default();
        let behavior_spec = spec
            .advanced
            .and_then(|a| a.horizontal_pod_autoscaler_config)
            .and_then(|h| h.behavior);
        let (up, down) = match behavior_spec {
            Some(b) => (b.scale_up, b.scale_down),
            None => (None, None),
        };
        let triggers = spec
            .triggers
            .into_iter()
            .map(|t| Trigger {
                kind: t.kind,
                metadata: t
                    .metadata
                    .into_iter()
                    .map(|(k, v)| {
                        let text = match v {
                            serde_yaml_ng::Value::String(s) => s,
                            other => serde_yaml_ng::to_string(&other)
                                .unwrap_or_default()
                                .trim()
                                .to_owned(),
                        };
                        (k, text)
                    })
                    .collect(),
            })
            .collect();
        objects.push(ScaledObject {
            namespace: document
                .metadata
                .namespace
                .unwrap_or_else(|| "default".to_owned()),
            target: spec.scale_target_ref.name,
            polling_interval: Duration::from_secs(spec.polling_interval.unwrap_or(30)),
            cooldown: Duration::from_secs(spec.cooldown_period.unwrap_or(300)),
            min_replicas: spec.min_replica_count.unwrap_or(0),
            max_replicas: spec.max_replica_count.unwrap_or(100),
            fallback: spec.fallback.map(|f| Fallback {
                failure_threshold: f.failure_threshold,
                replicas: f.replicas,
            }),
            behavior: Behavior {
                scale_up: rules(up, defaults.scale_up, &name)?,
                scale_down: rules(down, defaults.scale_down, &name)?,
            },
            triggers,
            name,
        });
    }
    Ok(objects)
}

/// Renders `kustomization` with `kubectl kustomize` and returns its ScaledObjects.
pub fn render(
    kubectl: &Path,
    kustomization: &Path,
) -> Result<Vec<ScaledObject>, ScaledObjectError> {
    let failed = |reason: String| ScaledObjectError::Render {
        path: kustomization.display().to_string(),
        reason,
    };
    let output = Command::new(kubectl)
        .arg("kustomize")
        .arg(kustomization)
        .output()
        .map_err(|e| failed(format!("cannot run {}: {e}", kubectl.display())))?;
    if !output.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    parse(&String::from_utf8_lossy(&output.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keda_defaults_and_behavior_are_read() {
        let yaml = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: x}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: fire-post
  namespace: safecity
spec:
  scaleTargetRef: {name: fire-post}
  cooldownPeriod: 15
  maxReplicaCount: 4
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: 10
          policies: [{type: Pods, value: 1, periodSeconds: 5}]
  triggers:
    - type: external-push
      metadata: {scalerAddress: "127.0.0.1:6000", eventType: fire, targetPendingPerReplica: "20"}
"#;
        let objects = parse(yaml).expect("parsed");
        assert_eq!(objects.len(), 1);
        let so = &objects[0];
        assert_eq!(
            (so.name.as_str(), so.target.as_str()),
            ("fire-post", "fire-post")
        );
        assert_eq!(so.polling_interval, Duration::from_secs(30), "KEDA default");
        assert_eq!(so.cooldown, Duration::from_secs(15));
        assert_eq!((so.min_replicas, so.max_replicas), (0, 4));
        assert_eq!(
            so.behavior.scale_down.stabilization,
            Duration::from_secs(10)
        );
        assert_eq!(so.behavior.scale_down.policies[0].kind, PolicyKind::Pods);
        assert_eq!(so.behavior.scale_up, Behavior::default().scale_up);
        assert_eq!(so.triggers[0].metadata["targetPendingPerReplica"], "20");
    }
}
