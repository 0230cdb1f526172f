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
//! Each key may also be given as `<key>FromEnv` naming an environment
//! variable of the scale target: KEDA resolves it and forwards the value
//! under the suffixed key, and the scaler reads it like the plain key (both
//! at once is refused). KEDA's own keys (`scalerAddress`, `enableTLS`,
//! `unsafeSsl`, `caCert`, `tlsClientCert`, `tlsClientKey`, `tlsCertFile`) are
//! accepted and ignored; any other key is refused, so a typo never silently
//! falls back to a default.

use std::collections::HashMap;
use std::str::FromStr;

use safecity_events::EventType;
use safecity_events::topology::FunctionQueues;

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
        let keys = OurKeys::resolve(metadata)?;
        let source = keys.work_source()?;
        let queue = keys.queue(scaled_object, source)?;
        let target_pending_per_replica = match keys.get("targetPendingPerReplica") {
            Some(text) => positive("targetPendingPerReplica", text)?,
            None => DEFAULT_TARGET_PENDING_PER_REPLICA,
        };
        let target_drain_seconds = keys
            .get("targetDrainSeconds")
            .map(|text| positive("targetDrainSeconds", text))
            .transpose()?;
        let activation_pending = match keys.get("activationPending") {
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
        let metric_name = metric_name(&queue, target_drain_seconds.is_some());
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

/// Our keys of a trigger's metadata, each given directly or as
/// `<key>FromEnv` (KEDA resolves that one from the scale target's
/// environment and forwards the value under the suffixed key).
struct OurKeys<'a> {
    values: HashMap<&'static str, &'a str>,
}

impl<'a> OurKeys<'a> {
    const KNOWN: [&'static str; 5] = [
        "eventType",
        "queue",
        "targetPendingPerReplica",
        "targetDrainSeconds",
        "activationPending",
    ];

    /// Checks every key (KEDA's own are skipped; a typo is refused, never
    /// defaulted) and resolves the `FromEnv` forms.
    fn resolve(metadata: &'a HashMap<String, String>) -> Result<Self, MetadataError> {
        let mut values: HashMap<&'static str, &'a str> = HashMap::new();
        for (key, value) in metadata {
            if KEDA_KEYS.contains(&key.as_str()) {
                continue;
            }
            let base = key.strip_suffix("FromEnv").unwrap_or(key);
            let Some(known) = Self::KNOWN.iter().find(|k| **k == base) else {
                return Err(MetadataError::new(
                    key,
                    format!(
                        "unknown key; known keys are {} (each also as <key>FromEnv)",
                        Self::KNOWN.join(", ")
                    ),
                ));
            };
            if values.insert(known, value.trim()).is_some() {
                return Err(MetadataError::new(
                    key,
                    format!("both `{known}` and `{known}FromEnv` are set; keep one"),
                ));
            }
        }
        Ok(OurKeys { values })
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.values.get(key).copied()
    }

    /// `eventType`: what announces new work, if given.
    fn work_source(&self) -> Result<Option<WorkSource>, MetadataError> {
        match self.get("eventType") {
            None | Some("") => Ok(None),
            Some("frames") => Ok(Some(WorkSource::Frames)),
            Some(text) => EventType::from_str(text)
                .map(|t| Some(WorkSource::Event(t)))
                .map_err(|_| {
                    MetadataError::new(
                        "eventType",
                        format!(
                            "unknown event type `{text}`; use accident, fire, gun, knife or frames"
                        ),
                    )
                }),
        }
    }

    /// `queue`, or the work queue of the function the ScaledObject is named after.
    fn queue(
        &self,
        scaled_object: &str,
        source: Option<WorkSource>,
    ) -> Result<String, MetadataError> {
        match self.get("queue") {
            Some(queue) if !queue.is_empty() => {
                if queue.len() > 255 {
                    return Err(MetadataError::new("queue", "longer than 255 bytes"));
                }
                Ok(queue.to_owned())
            }
            _ if source.is_none() => Err(MetadataError::new(
                "eventType",
                "set eventType (accident | fire | gun | knife | frames) or queue",
            )),
            _ => Ok(FunctionQueues::new(scaled_object)
                .map_err(|_| {
                    MetadataError::new(
                        "queue",
                        format!("the ScaledObject name `{scaled_object}` is not a function name, so its queue cannot be derived: set queue"),
                    )
                })?
                .work()),
        }
    }
}

/// The metric name KEDA shows: `pending-<queue>` or `drain-seconds-<queue>`,
/// with every character but ASCII letters and digits turned into `-`.
fn metric_name(queue: &str, drain_time: bool) -> String {
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
    if drain_time {
        format!("drain-seconds-{slug}")
    } else {
        format!("pending-{slug}")
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

    #[test]
    fn every_key_is_read_from_its_from_env_form() {
        // KEDA resolves `<key>FromEnv` from the scale target's environment
        // and forwards the value under the suffixed key.
        let spec = TriggerSpec::parse(
            "fn",
            &meta(&[
                ("eventTypeFromEnv", "fire"),
                ("queueFromEnv", "safecity.fn.other"),
                ("targetPendingPerReplicaFromEnv", "3"),
                ("activationPendingFromEnv", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(spec.source, WorkSource::Event(EventType::Fire));
        assert_eq!(spec.queue, "safecity.fn.other");
        assert_eq!(spec.target(), 3.0);
        assert_eq!(spec.activation_pending, 2.0);
        let drain = TriggerSpec::parse(
            "fn",
            &meta(&[("eventType", "fire"), ("targetDrainSecondsFromEnv", "45")]),
        )
        .unwrap();
        assert_eq!(drain.target(), 45.0);

        let bad = TriggerSpec::parse(
            "fn",
            &meta(&[
                ("eventType", "fire"),
                ("targetPendingPerReplicaFromEnv", "lots"),
            ]),
        )
        .unwrap_err();
        assert_eq!(bad.key, "targetPendingPerReplica");
        let both = TriggerSpec::parse(
            "fn",
            &meta(&[
                ("eventType", "fire"),
                ("targetPendingPerReplica", "3"),
                ("targetPendingPerReplicaFromEnv", "4"),
            ]),
        )
        .unwrap_err();
        assert!(both.reason.contains("both"), "{both}");
        let unknown = TriggerSpec::parse(
            "fn",
            &meta(&[("eventType", "fire"), ("colourFromEnv", "red")]),
        )
        .unwrap_err();
        assert_eq!(unknown.key, "colourFromEnv");
    }
}
