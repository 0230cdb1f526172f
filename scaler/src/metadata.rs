//! ScaledObject trigger metadata (`scalerMetadata`) parsed into a [`TriggerSpec`].
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `eventType` | `accident`, `fire`, `gun`, `knife` or `frames`: push activation source | – |
//! | `queue` | the queue whose pending work is measured | `safecity.fn.<ScaledObject name>` |
//! | `targetPendingPerReplica` | pending messages one replica should carry | `10` |
//! | `targetDrainSeconds` | switch to drain-time scaling: seconds of backlog per replica | – |
//! | `activationPending` | pending work above which the function is active | `0` |
//!
//! KEDA's own keys (`scalerAddress`, `enableTLS`, `unsafeSsl`, `caCert`,
//! `tlsClientCert`, `tlsClientKey`, `tlsCertFile`) are accepted and ignored; any
//! other key is refused, so a typo never silently falls back to a default.

use std::collections::HashMap;
use std::str::FromStr;

use safecity_runtime::EventType;
use safecity_runtime::topology::FunctionQueues;

/// Default of `targetPendingPerReplica`.
pub const DEFAULT_TARGET_PENDING_PER_REPLICA: f64 = 10.0;

/// Keys KEDA itself puts in the trigger metadata; not ours to judge.
const KEDA_KEYS: &[&str] = &[
    "scalerAddress",
    "enableTLS",
    "unsafeSsl",
    "caCert",
    "tlsClientCert",
    "tlsClientKey",
    "tlsCertFile",
];

/// Trigger metadata that cannot be used; names the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scalerMetadata key `{key}`: {reason}")]
pub struct MetadataError {
    /// The metadata key at fault.
    pub key: String,
    /// Why it was refused.
    pub reason: String,
}

impl MetadataError {
    fn new(key: &str, reason: impl Into<String>) -> Self {
        MetadataError {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What announces new work for a trigger, for push activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkSource {
    /// CloudEvents of this type on the events exchange (tapped: push in milliseconds).
    Event(EventType),
    /// Camera frames (not tapped, frames are large: activation from the depth refresh).
    Frames,
    /// Only the queue is known (activation from the depth refresh).
    QueueOnly,
}

impl WorkSource {
    /// The label used in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            WorkSource::Event(event_type) => event_type.as_str(),
            WorkSource::Frames => "frames",
            WorkSource::QueueOnly => "queue",
        }
    }
}

/// How one ScaledObject trigger wants its function scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerSpec {
    /// The queue whose pending work is measured.
    pub queue: String,
    /// What announces new work (for push activation).
    pub source: WorkSource,
    /// Pending messages per replica (HPA `AverageValue` target) when not drain-time scaling.
    pub target_pending_per_replica: f64,
    /// Seconds of backlog per replica: switches the metric to drain time.
    pub target_drain_seconds: Option<f64>,
    /// Pending work above which the function is active.
    pub activation_pending: f64,
    /// The metric name given to KEDA (unique per trigger).
    pub metric_name: String,
}

impl TriggerSpec {
    /// Parses the metadata of the ScaledObject named `scaled_object`.
    pub fn parse(
        scaled_object: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<Self, MetadataError> {
        const OURS: &[&str] = &[
            "eventType",
            "queue",
            "targetPendingPerReplica",
            "targetDrainSeconds",
            "activationPending",
        ];
        for key in metadata.keys() {
            let base = key.strip_suffix("FromEnv").unwrap_or(key);
            if !OURS.contains(&base) && !KEDA_KEYS.contains(&key.as_str()) {
                return Err(MetadataError::new(
                    key,
                    format!("unknown key; known keys are {}", OURS.join(", ")),
                ));
            }
        }
        let get = |key: &str| metadata.get(key).map(|v| v.trim());

        let source = match get("eventType") {
            None | Some("") => None,
            Some("frames") => Some(WorkSource::Frames),
            Some(text) => Some(WorkSource::Event(EventType::from_str(text).map_err(
                |_| {
                    MetadataError::new(
                        "eventType",
                        format!(
                            "unknown event type `{text}`; use accident, fire, gun, knife or frames"
                        ),
                    )
                },
            )?)),
        };
        let queue = match get("queue") {
            Some(queue) if !queue.is_empty() => {
                if queue.len() > 255 {
                    return Err(MetadataError::new("queue", "longer than 255 bytes"));
                }
                queue.to_owned()
            }
            _ => {
                if source.is_none() {
                    return Err(MetadataError::new(
                        "eventType",
                        "set eventType (accident | fire | gun | knife | frames) or queue",
                    ));
                }
                FunctionQueues::new(scaled_object)
                    .map_err(|_| {
                        MetadataError::new(
                            "queue",
                            format!("the ScaledObject name `{scaled_object}` is not a function name, so its queue cannot be derived: set queue"),
                        )
                    })?
                    .work()
            }
        };
        let target_pending_per_replica = match get("targetPendingPerReplica") {
            Some(text) => positive("targetPendingPerReplica", text)?,
            None => DEFAULT_TARGET_PENDING_PER_REPLICA,
        };
        let target_drain_seconds = get("targetDrainSeconds")
            .map(|text| positive("targetDrainSeconds", text))
            .transpose()?;
        let activation_pending = match get("activationPending") {
            Some(text) => {
                let value = number("activationPending", text)?;
                if value < 0.0 {
                    return Err(MetadataError::new(
                        "activationPending",
                        "must not be negative",
                    ));
                }
                value
            }
            None => 0.0,
        };
        let slug: String = queue
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let metric_name = match target_drain_seconds {
            Some(_) => format!("drain-seconds-{slug}"),
            None => format!("pending-{slug}"),
        };
        Ok(TriggerSpec {
            queue,
            source: source.unwrap_or(WorkSource::QueueOnly),
            target_pending_per_replica,
            target_drain_seconds,
            activation_pending,
            metric_name,
        })
    }

    /// The HPA target per replica of [`TriggerSpec::metric_name`].
    pub fn target(&self) -> f64 {
        self.target_drain_seconds
            .unwrap_or(self.target_pending_per_replica)
    }
}

fn number(key: &str, text: &str) -> Result<f64, MetadataError> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(MetadataError::new(key, format!("`{text}` is not a number"))),
    }
}

fn positive(key: &str, text: &str) -> Result<f64, MetadataError> {
    let value = number(key, text)?;
    if value <= 0.0 {
        return Err(MetadataError::new(
            key,
            format!("`{text}` must be greater than zero"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn event_type_derives_queue_from_the_scaled_object() {
        let spec = TriggerSpec::parse(
            "fire-alert",
            &meta(&[("eventType", "fire"), ("scalerAddress", "scaler:6000")]),
        )
        .unwrap();
        assert_eq!(spec.queue, "safecity.fn.fire-alert");
        assert_eq!(spec.source, WorkSource::Event(EventType::Fire));
        assert_eq!(spec.target(), 10.0);
        assert_eq!(spec.activation_pending, 0.0);
        assert_eq!(spec.metric_name, "pending-safecity-fn-fire-alert");
    }

    #[test]
    fn queue_and_drain_target() {
        let spec = TriggerSpec::parse(
            "Whatever",
            &meta(&[
                ("queue", "safecity.fn.detector"),
                ("eventType", "frames"),
                ("targetDrainSeconds", "30"),
                ("activationPending", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(spec.source, WorkSource::Frames);
        assert_eq!(spec.target(), 30.0);
        assert_eq!(spec.activation_pending, 2.0);
        assert!(spec.metric_name.starts_with("drain-seconds-"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("eventType", "flood")], "eventType"),
            (
                &[("eventType", "fire"), ("targetPendingPerReplica", "ten")],
                "targetPendingPerReplica",
            ),
            (
                &[("eventType", "fire"), ("targetPendingPerReplica", "0")],
                "targetPendingPerReplica",
            ),
            (
                &[("eventType", "fire"), ("targetDrainSeconds", "-1")],
                "targetDrainSeconds",
            ),
            (
                &[("eventType", "fire"), ("activationPending", "NaN")],
                "activationPending",
            ),
            (&[("eventType", "fire"), ("colour", "red")], "colour"),
            (&[], "eventType"),
        ];
        for (pairs, key) in cases {
            let error = TriggerSpec::parse("fn", &meta(pairs)).unwrap_err();
            assert_eq!(error.key, *key, "{pairs:?}: {error}");
        }
        let error =
            TriggerSpec::parse("Not A Function", &meta(&[("eventType", "gun")])).unwrap_err();
        assert_eq!(error.key, "queue");
    }
}
