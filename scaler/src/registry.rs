//! The ScaledObject triggers KEDA asks about, each parsed once.
//!
//! KEDA sends a trigger's whole `scalerMetadata` map with every RPC. The
//! registry keys each distinct (ScaledObject name, metadata) by an
//! order-independent fingerprint of its content, so the hot path is one read
//! lock (never held across an await, never taken for writing by the
//! refreshers), a hash of the request's strings and an equality check: no
//! parsing and no allocation.
//!
//! KEDA never tells an external scaler that a ScaledObject was deleted; it
//! just stops calling. [`Registry::prune`] forgets a trigger that no RPC touched
//! for the idle timeout while no `StreamIsActive` stream of it is open, and
//! stops watching the queues no remaining trigger uses (their sampling, their
//! metric series, and their tap binding when no other queue needs it).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::metadata::{MetadataError, TriggerSpec, WorkSource};
use crate::metrics::ScalerMetrics;
use crate::pb::{GetMetricSpecResponse, MetricSpec, ScaledObjectRef};
use crate::state::{ScalerState, WatchedQueue};

/// One trigger: its metadata as KEDA sends it, parsed once, and its queue.
#[derive(Debug)]
pub struct Registration {
    name: String,
    metadata: HashMap<String, String>,
    /// The parsed metadata.
    pub spec: TriggerSpec,
    /// The watched queue whose work the trigger measures.
    pub queue: Arc<WatchedQueue>,
    /// The answer to `GetMetricSpec`.
    pub metric_spec: GetMetricSpecResponse,
    /// Milliseconds since the registry's epoch of the last RPC.
    last_used_ms: AtomicU64,
    open_streams: AtomicUsize,
}

impl Registration {
    fn matches(&self, object: &ScaledObjectRef) -> bool {
        self.name == object.name && self.metadata == object.scaler_metadata
    }
}

/// Keeps a trigger registered while a `StreamIsActive` stream of it is open;
/// dropping it counts as a use (the idle time starts when the stream closes).
#[derive(Debug)]
pub struct StreamLease {
    registry: Arc<Registry>,
    registration: Arc<Registration>,
}

impl StreamLease {
    /// The trigger of the stream.
    pub fn registration(&self) -> &Arc<Registration> {
        &self.registration
    }
}

impl Drop for StreamLease {
    fn drop(&mut self) {
        self.registration
            .last_used_ms
            .store(self.registry.now_ms(), Ordering::Relaxed);
        self.registration
            .open_streams
            .fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one [`Registry::prune`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Triggers forgotten.
    pub triggers: usize,
    /// Queues no longer watched.
    pub queues: Vec<String>,
}

/// The registered triggers.
#[derive(Debug)]
pub struct Registry {
    state: Arc<ScalerState>,
    metrics: Arc<ScalerMetrics>,
    epoch: Instant,
    hasher: RandomState,
    entries: RwLock<HashMap<u64, Vec<Arc<Registration>>>>,
    /// Fingerprints of refused metadata already logged (bounded).
    rejected: std::sync::Mutex<HashSet<u64>>,
}

/// Refused metadata remembered for logging once; beyond it, log again.
const REJECTIONS_REMEMBERED: usize = 10_000;

impl Registry {
    /// An empty registry whose triggers watch queues in `state`.
    pub fn new(state: Arc<ScalerState>, metrics: Arc<ScalerMetrics>) -> Arc<Self> {
        Arc::new(Registry {
            state,
            metrics,
            epoch: Instant::now(),
            hasher: RandomState::new(),
            entries: RwLock::new(HashMap::new()),
            rejected: std::sync::Mutex::new(HashSet::new()),
        })
    }

    /// True the first time `object` (name and metadata) is refused.
    pub fn first_rejection(&self, object: &ScaledObjectRef) -> bool {
        let key = self.fingerprint(object);
        let mut rejected = self.rejected.lock().expect("rejections lock");
        if rejected.len() >= REJECTIONS_REMEMBERED {
            rejected.clear();
        }
        rejected.insert(key)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Order-independent: the request's map iterates in its own random order.
    fn fingerprint(&self, object: &ScaledObjectRef) -> u64 {
        object
            .scaler_metadata
            .iter()
            .fold(self.hasher.hash_one(&object.name), |sum, pair| {
                sum.wrapping_add(self.hasher.hash_one(pair))
            })
    }

    fn lookup(&self, key: u64, object: &ScaledObjectRef) -> Option<Arc<Registration>> {
        let entries = self.entries.read().expect("registry lock");
        let registration = entries.get(&key)?.iter().find(|r| r.matches(object))?;
        // Touched under the read lock: a concurrent prune (write lock) sees it.
        registration
            .last_used_ms
            .store(self.now_ms(), Ordering::Relaxed);
        Some(registration.clone())
    }

    /// The trigger of `object`, parsed and registered on first sight. Bad
    /// metadata is refused every time (and never cached).
    pub fn resolve(&self, object: &ScaledObjectRef) -> Result<Arc<Registration>, MetadataError> {
        let key = self.fingerprint(object);
        if let Some(registration) = self.lookup(key, object) {
            return Ok(registration);
        }
        let spec = TriggerSpec::parse(&object.name, &object.scaler_metadata)?;
        let mut entries = self.entries.write().expect("registry lock");
        if let Some(registration) = entries
            .get(&key)
            .and_then(|same_key| same_key.iter().find(|r| r.matches(object)))
        {
            return Ok(registration.clone());
        }
        // Under the write lock, so a concurrent prune cannot drop the queue
        // between watching it and registering the trigger that uses it.
        let event_type = match spec.source {
            WorkSource::Event(event_type) => Some(event_type),
            WorkSource::Frames | WorkSource::QueueOnly => None,
        };
        let queue = self.state.watch_queue(&spec.queue, event_type);
        let target = spec.target();
        #[allow(deprecated)]
        let metric_spec = GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: spec.metric_name.clone(),
                target_size: target.ceil() as i64,
                target_size_float: target,
            }],
        };
        let registration = Arc::new(Registration {
            name: object.name.clone(),
            metadata: object.scaler_metadata.clone(),
            spec,
            queue,
            metric_spec,
            last_used_ms: AtomicU64::new(self.now_ms()),
            open_streams: AtomicUsize::new(0),
        });
        entries.entry(key).or_default().push(registration.clone());
        let count = entries.values().map(Vec::len).sum();
        drop(entries);
        self.metrics.set_registered_triggers(count);
        debug!(scaled_object = %object.name, namespace = %object.namespace, queue = %registration.queue.name, "trigger registered");
        Ok(registration)
    }

    /// Holds `registration` while a stream of it is open.
    pub fn open_stream(self: &Arc<Self>, registration: Arc<Registration>) -> StreamLease {
        registration.open_streams.fetch_add(1, Ordering::AcqRel);
        StreamLease {
            registry: self.clone(),
            registration,
        }
    }

    /// Number of registered triggers.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .expect("registry lock")
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Whether no trigger is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets triggers idle for `idle` or longer with no open stream, and stops
    /// watching the queues no remaining trigger uses.
    pub fn prune(&self, idle: Duration) -> Pruned {
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let now = self.now_ms();
        let mut entries = self.entries.write().expect("registry lock");
        let mut triggers = 0;
        entries.retain(|_, same_key| {
            same_key.retain(|r| {
                let keep = r.open_streams.load(Ordering::Acquire) > 0
                    || now.saturating_sub(r.last_used_ms.load(Ordering::Relaxed)) < idle_ms;
                if !keep {
                    debug!(scaled_object = %r.name, queue = %r.queue.name, "trigger idle: forgotten");
                    triggers += 1;
                }
                keep
            });
            !same_key.is_empty()
        });
        if triggers == 0 {
            return Pruned::default();
        }
        let used: HashSet<&str> = entries
            .values()
            .flatten()
            .map(|r| r.queue.name.as_str())
            .collect();
        // Still under the registry's write lock: no trigger can start using a
        // queue that is being dropped.
        let removed = self.state.retain_queues(|name| used.contains(name));
        let count = entries.values().map(Vec::len).sum();
        drop(entries);
        self.metrics.set_registered_triggers(count);
        for queue in &removed {
            self.metrics
                .forget_queue(&queue.name, queue.event_type().map(|t| t.as_str()));
        }
        Pruned {
            triggers,
            queues: removed.iter().map(|q| q.name.clone()).collect(),
        }
    }
}

/// Prunes `registry` every `idle / 2` (at most every minute) until `cancel`.
pub async fn run_pruner(
    registry: Arc<Registry>,
    metrics: Arc<ScalerMetrics>,
    idle: Duration,
    cancel: CancellationToken,
) {
    let period = (idle / 2).clamp(Duration::from_millis(10), Duration::from_secs(60));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let pruned = registry.prune(idle);
        if pruned.triggers > 0 {
            metrics.pruned_triggers.inc_by(pruned.triggers as u64);
            info!(
                triggers = pruned.triggers,
                queues = ?pruned.queues,
                idle_timeout = ?idle,
                "forgot ScaledObject triggers KEDA stopped asking about"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safecity_events::EventType;

    fn object(name: &str, pairs: &[(&str, &str)]) -> ScaledObjectRef {
        ScaledObjectRef {
            name: name.to_owned(),
            namespace: "ns".to_owned(),
            scaler_metadata: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn registry() -> (Arc<ScalerState>, Arc<Registry>) {
        let state = ScalerState::new(Duration::from_secs(6));
        let registry = Registry::new(state.clone(), ScalerMetrics::new());
        (state, registry)
    }

    #[tokio::test]
    async fn same_metadata_in_any_order_is_parsed_once() {
        let (state, registry) = registry();
        let pairs = [
            ("eventType", "fire"),
            ("targetPendingPerReplica", "3"),
            ("scalerAddress", "scaler:6000"),
            ("activationPending", "1"),
        ];
        let first = registry.resolve(&object("fire-alert", &pairs)).unwrap();
        // A fresh map from the same pairs (fresh random iteration order).
        let mut reversed = pairs;
        reversed.reverse();
        let second = registry.resolve(&object("fire-alert", &reversed)).unwrap();
        assert!(Arc::ptr_eq(&first, &second), "one registration");
        assert_eq!(registry.len(), 1);
        assert_eq!(state.queue_count(), 1);
        assert_eq!(first.metric_spec.metric_specs[0].target_size_float, 3.0);

        let other = registry
            .resolve(&object("fire-alert", &[("eventType", "fire")]))
            .unwrap();
        assert!(
            !Arc::ptr_eq(&first, &other),
            "other metadata, other trigger"
        );
        assert!(Arc::ptr_eq(&first.queue, &other.queue), "same queue");
        assert_eq!((registry.len(), state.queue_count()), (2, 1));

        let error = registry
            .resolve(&object("fire-alert", &[("eventType", "flood")]))
            .unwrap_err();
        assert_eq!(error.key, "eventType");
        assert_eq!(registry.len(), 2, "bad metadata is not cached");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_triggers_are_pruned_unless_a_stream_is_open() {
        let (state, registry) = registry();
        let mut tapped = state.tapped();
        let fire = registry
            .resolve(&object("fire-alert", &[("eventType", "fire")]))
            .unwrap();
        let lease = registry.open_stream(fire);
        drop(
            registry
                .resolve(&object("gun-alert", &[("eventType", "gun")]))
                .unwrap(),
        );
        let _knife = registry
            .resolve(&object("knife-alert", &[("eventType", "knife")]))
            .unwrap();
        assert_eq!(
            *tapped.borrow_and_update(),
            HashSet::from([EventType::Fire, EventType::Gun, EventType::Knife])
        );
        let idle = Duration::from_secs(600);

        tokio::time::advance(Duration::from_secs(599)).await;
        // knife is used again just before the deadline.
        registry
            .resolve(&object("knife-alert", &[("eventType", "knife")]))
            .unwrap();
        assert_eq!(registry.prune(idle), Pruned::default(), "nothing idle yet");

        tokio::time::advance(Duration::from_secs(2)).await;
        let pruned = registry.prune(idle);
        assert_eq!(
            pruned,
            Pruned {
                triggers: 1,
                queues: vec!["safecity.fn.gun-alert".to_owned()],
            },
            "gun idle; fire idle too but its stream is open; knife used 2 s ago"
        );
        assert_eq!(state.queue_count(), 2);
        assert_eq!(
            *tapped.borrow_and_update(),
            HashSet::from([EventType::Fire, EventType::Knife]),
            "gun's tap binding goes"
        );

        // The stream closes: fire's idle time starts now.
        drop(lease);
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(registry.prune(idle).triggers, 0, "stream closed 300 s ago");
        tokio::time::advance(Duration::from_secs(301)).await;
        let pruned = registry.prune(idle);
        assert_eq!(pruned.triggers, 2, "fire and knife");
        assert_eq!((registry.len(), state.queue_count()), (0, 0));
        assert!(tapped.borrow_and_update().is_empty());

        // KEDA asks again: registered and watched again.
        registry
            .resolve(&object("gun-alert", &[("eventType", "gun")]))
            .unwrap();
        assert_eq!((registry.len(), state.queue_count()), (1, 1));
        assert_eq!(*tapped.borrow_and_update(), HashSet::from([EventType::Gun]));
    }
}
