//! The in-memory state every RPC answers from: the pending work of each
//! watched queue, refreshed in the background ([`depth`], [`management`]), and
//! the tap counters of push activation.

pub mod depth;
pub mod management;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use safecity_runtime::EventType;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The pending work of one queue, as last observed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingWork {
    /// Ready messages (AMQP passive `queue.declare`, at most one depth interval old).
    pub ready: u64,
    /// Delivered, unacknowledged messages (management API, see [`InFlightEstimate`]).
    pub in_flight: u64,
    /// Consumers of the queue.
    pub consumers: u32,
    /// Whether the queue exists (a missing queue has no work).
    pub queue_exists: bool,
    /// Observed mean handling time of one message, seconds (Little's law on the
    /// management API's in-flight count and ack rate), if any work was acked yet.
    pub mean_handling_seconds: Option<f64>,
    /// When the ready count was read.
    pub sampled_at: Instant,
    /// The tap counter of the queue's event type when the ready count was read.
    pub tap_count_at_sample: u64,
    /// When the management API last reported on the queue (in-flight count).
    pub management_at: Instant,
}

impl PendingWork {
    /// Ready + in-flight messages.
    pub fn total(&self) -> u64 {
        self.ready + self.in_flight
    }

    /// Whether `other` reports the same work (sample times aside): only such a
    /// change wakes the streams watching the queue.
    fn same_work(&self, other: &PendingWork) -> bool {
        self.ready == other.ready
            && self.in_flight == other.in_flight
            && self.consumers == other.consumers
            && self.queue_exists == other.queue_exists
            && self.mean_handling_seconds == other.mean_handling_seconds
            && self.tap_count_at_sample == other.tap_count_at_sample
    }
}

/// How in-flight work is estimated between management samples.
///
/// The management API's `messages_unacknowledged` is exact but lags (the
/// broker emits queue statistics every 5 s and the management database
/// aggregates them again). When the ready count (read over AMQP, no lag)
/// drops while consumers are attached, the drop is *held* as in flight until a
/// management read taken after the drop reports in-flight work (from then on
/// the management value is current), or for `3 × stats_lag` at most (a
/// function that acked everything before the statistics ever showed it). The
/// estimate is `max(management in-flight, held)`: a function that just took
/// its work is never reported idle because the statistics lag; the price is
/// that a very fast function looks busy up to `3 × stats_lag` longer, far
/// below KEDA's 300 s cooldown.
#[derive(Debug, Default)]
pub struct InFlightEstimate {
    management_unacked: u64,
    /// (when, how many left the ready count)
    held: VecDeque<(Instant, u64)>,
}

impl InFlightEstimate {
    fn record_drain(&mut self, now: Instant, count: u64) {
        if count > 0 {
            self.held.push_back((now, count));
        }
    }

    fn record_management(&mut self, unacked: u64) {
        self.management_unacked = unacked;
        if unacked > 0 {
            self.held.clear();
        }
    }

    fn value(&mut self, now: Instant, stats_lag: Duration) -> u64 {
        self.held
            .retain(|(at, _)| now.duration_since(*at) <= stats_lag * 3);
        let held: u64 = self.held.iter().map(|(_, n)| n).sum();
        self.management_unacked.max(held)
    }
}

#[derive(Debug, Default)]
struct QueueTracker {
    ready: u64,
    consumers: u32,
    queue_exists: bool,
    depth_at: Option<Instant>,
    tap_count_at_sample: u64,
    /// Whether the last management listing of the vhost had the queue (`None`: not listed yet).
    listed: Option<bool>,
    /// When the management API last reported on the queue.
    management_at: Option<Instant>,
    in_flight: InFlightEstimate,
    mean_handling_seconds: Option<f64>,
}

/// One watched queue: its tracker, and a watch channel publishing its pending work.
#[derive(Debug)]
pub struct WatchedQueue {
    /// The queue's name.
    pub name: String,
    event_type: Option<EventType>,
    tracker: Mutex<QueueTracker>,
    pending: watch::Sender<Option<PendingWork>>,
}

impl WatchedQueue {
    /// Subscribes to the queue's pending work (`None` until the first full sample).
    pub fn subscribe(&self) -> watch::Receiver<Option<PendingWork>> {
        self.pending.subscribe()
    }

    /// The last published pending work.
    pub fn current(&self) -> Option<PendingWork> {
        *self.pending.borrow()
    }

    /// Whether the ready count was read at least once.
    pub fn has_depth_sample(&self) -> bool {
        self.tracker
            .lock()
            .expect("tracker lock")
            .depth_at
            .is_some()
    }

    /// Whether the queue exists, as far as the scaler knows: from the last
    /// management listing of the vhost, corrected by a passive declare that
    /// found it gone. `None` until the first listing.
    pub fn known_to_exist(&self) -> Option<bool> {
        self.tracker.lock().expect("tracker lock").listed
    }

    /// Records that a passive declare found the queue gone: it is not declared
    /// again until a management listing shows it.
    pub fn mark_missing(&self) {
        self.tracker.lock().expect("tracker lock").listed = Some(false);
    }

    /// The event type whose tap announces this queue's work, if any.
    pub fn event_type(&self) -> Option<EventType> {
        self.event_type
    }

    fn publish(&self, tracker: &mut QueueTracker, stats_lag: Duration) {
        let (Some(sampled_at), Some(management_at)) = (tracker.depth_at, tracker.management_at)
        else {
            return;
        };
        let in_flight = tracker.in_flight.value(Instant::now(), stats_lag);
        let work = PendingWork {
            ready: tracker.ready,
            in_flight,
            consumers: tracker.consumers,
            queue_exists: tracker.queue_exists,
            mean_handling_seconds: tracker.mean_handling_seconds,
            sampled_at,
            tap_count_at_sample: tracker.tap_count_at_sample,
            management_at,
        };
        // The new sample times are always stored (RPCs check freshness), but
        // only a change of the work itself wakes the streams.
        self.pending.send_if_modified(|current| {
            let changed = current.is_none_or(|c| !c.same_work(&work));
            *current = Some(work);
            changed
        });
    }
}

/// Whether the broker can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerHealth {
    /// Not connected yet.
    Connecting,
    /// Connected and sampled.
    Up,
    /// The last attempt failed; the reason is safe to show (no credentials).
    Down(String),
}

/// The scaler's shared state.
#[derive(Debug)]
pub struct ScalerState {
    queues: RwLock<HashMap<String, Arc<WatchedQueue>>>,
    taps: HashMap<EventType, watch::Sender<u64>>,
    tapped: watch::Sender<HashSet<EventType>>,
    broker: watch::Sender<BrokerHealth>,
    management_error: Mutex<Option<String>>,
    /// Woken when a queue is added, so it is sampled at once.
    pub(crate) new_queue: Arc<Notify>,
    /// Woken when a queue is added, for the management poller.
    pub(crate) new_queue_management: Arc<Notify>,
    stats_lag: Duration,
}

impl ScalerState {
    /// An empty state; `stats_lag` is how old management statistics may be.
    pub fn new(stats_lag: Duration) -> Arc<Self> {
        Arc::new(ScalerState {
            queues: RwLock::new(HashMap::new()),
            taps: EventType::ALL
                .iter()
                .map(|t| (*t, watch::Sender::new(0)))
                .collect(),
            tapped: watch::Sender::new(HashSet::new()),
            broker: watch::Sender::new(BrokerHealth::Connecting),
            management_error: Mutex::new(None),
            new_queue: Arc::new(Notify::new()),
            new_queue_management: Arc::new(Notify::new()),
            stats_lag,
        })
    }

    /// The watched queue `name`, added (and announced to the refreshers) if new.
    /// The first watcher of a queue decides the event type that taps it.
    pub fn watch_queue(&self, name: &str, event_type: Option<EventType>) -> Arc<WatchedQueue> {
        if let Some(queue) = self.queues.read().expect("queues lock").get(name) {
            return queue.clone();
        }
        let (queue, event_type) = {
            let mut queues = self.queues.write().expect("queues lock");
            let queue = queues
                .entry(name.to_owned())
                .or_insert_with(|| {
                    Arc::new(WatchedQueue {
                        name: name.to_owned(),
                        event_type,
                        tracker: Mutex::new(QueueTracker::default()),
                        pending: watch::Sender::new(None),
                    })
                })
                .clone();
            let event_type = queue.event_type;
            (queue, event_type)
        };
        if let Some(event_type) = event_type {
            self.tapped.send_if_modified(|set| set.insert(event_type));
        }
        self.new_queue.notify_one();
        self.new_queue_management.notify_one();
        queue
    }

    /// Stops watching every queue for which `keep` is false and returns them;
    /// tap bindings no remaining queue needs are dropped.
    pub fn retain_queues(&self, keep: impl Fn(&str) -> bool) -> Vec<Arc<WatchedQueue>> {
        let (removed, still_tapped) = {
            let mut queues = self.queues.write().expect("queues lock");
            let gone: Vec<String> = queues.keys().filter(|name| !keep(name)).cloned().collect();
            let removed: Vec<Arc<WatchedQueue>> =
                gone.iter().filter_map(|name| queues.remove(name)).collect();
            let still_tapped: HashSet<EventType> =
                queues.values().filter_map(|q| q.event_type).collect();
            (removed, still_tapped)
        };
        if !removed.is_empty() {
            self.tapped.send_if_modified(|set| {
                let changed = *set != still_tapped;
                *set = still_tapped;
                changed
            });
        }
        removed
    }

    /// Names of all watched queues.
    pub fn queue_names(&self) -> Vec<Arc<WatchedQueue>> {
        self.queues
            .read()
            .expect("queues lock")
            .values()
            .cloned()
            .collect()
    }

    /// Number of watched queues.
    pub fn queue_count(&self) -> usize {
        self.queues.read().expect("queues lock").len()
    }

    /// The event types that need a tap binding.
    pub fn tapped(&self) -> watch::Receiver<HashSet<EventType>> {
        self.tapped.subscribe()
    }

    /// Subscribes to the tap counter of `event_type` (events seen on the exchange).
    pub fn tap_counter(&self, event_type: EventType) -> watch::Receiver<u64> {
        self.taps[&event_type].subscribe()
    }

    /// The tap counter of `event_type` now.
    pub fn tap_count(&self, event_type: EventType) -> u64 {
        *self.taps[&event_type].borrow()
    }

    /// Counts one tapped event of `event_type`.
    pub fn record_tap(&self, event_type: EventType) {
        self.taps[&event_type].send_modify(|count| *count += 1);
    }

    /// The broker's health.
    pub fn broker_health(&self) -> BrokerHealth {
        self.broker.borrow().clone()
    }

    /// Why the broker cannot be read, if it cannot (nothing is cloned while it is up).
    pub fn broker_down(&self) -> Option<String> {
        match &*self.broker.borrow() {
            BrokerHealth::Down(reason) => Some(reason.clone()),
            BrokerHealth::Connecting | BrokerHealth::Up => None,
        }
    }

    /// Subscribes to the broker's health.
    pub fn subscribe_broker_health(&self) -> watch::Receiver<BrokerHealth> {
        self.broker.subscribe()
    }

    /// Sets the broker's health.
    pub fn set_broker_health(&self, health: BrokerHealth) {
        self.broker.send_if_modified(|current| {
            let changed = *current != health;
            *current = health;
            changed
        });
    }

    /// The last management API error since its last successful read.
    pub fn management_error(&self) -> Option<String> {
        self.management_error.lock().expect("lock").clone()
    }

    /// Records a ready count read over AMQP (`None`: the queue does not exist).
    pub fn record_depth(&self, queue: &WatchedQueue, depth: Option<(u64, u32)>) {
        let now = Instant::now();
        let tap_count = queue
            .event_type
            .map_or(0, |event_type| *self.taps[&event_type].borrow());
        let mut tracker = queue.tracker.lock().expect("tracker lock");
        let (ready, consumers) = depth.unwrap_or((0, 0));
        if tracker.management_at.is_some()
            && tracker.depth_at.is_some()
            && consumers > 0
            && ready < tracker.ready
        {
            let drained = tracker.ready - ready;
            tracker.in_flight.record_drain(now, drained);
        }
        tracker.ready = ready;
        tracker.consumers = consumers;
        tracker.queue_exists = depth.is_some();
        tracker.depth_at = Some(now);
        tracker.tap_count_at_sample = tap_count;
        queue.publish(&mut tracker, self.stats_lag);
    }

    /// Records one management API read of the whole vhost: in-flight counts,
    /// ack rates, and which queues exist (the depth sampler declares only
    /// those, so missing queues cost no AMQP channel).
    pub fn record_management(&self, stats: &HashMap<String, management::QueueStats>) {
        let now = Instant::now();
        let mut newly_listed = false;
        for queue in self.queue_names() {
            let mut tracker = queue.tracker.lock().expect("tracker lock");
            let listed = stats.get(&queue.name);
            if (listed.is_some() && tracker.listed != Some(true)) || tracker.depth_at.is_none() {
                newly_listed = true;
            }
            tracker.listed = Some(listed.is_some());
            let queue_stats = listed.copied().unwrap_or_default();
            tracker.in_flight.record_management(queue_stats.unacked);
            if queue_stats.unacked > 0 && queue_stats.ack_rate > 0.0 {
                // Little's law: mean time in the system = mean number in it / throughput.
                let observed = queue_stats.unacked as f64 / queue_stats.ack_rate;
                tracker.mean_handling_seconds = Some(match tracker.mean_handling_seconds {
                    Some(previous) => 0.7 * previous + 0.3 * observed,
                    None => observed,
                });
            }
            tracker.management_at = Some(now);
            queue.publish(&mut tracker, self.stats_lag);
        }
        *self.management_error.lock().expect("lock") = None;
        if newly_listed {
            // Queues the depth sampler skipped until their existence was known.
            self.new_queue.notify_one();
        }
    }

    /// Records a failed management API read.
    pub fn record_management_error(&self, error: String) {
        *self.management_error.lock().expect("lock") = Some(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drained_work_counts_as_in_flight_until_statistics_catch_up() {
        let state = ScalerState::new(Duration::from_secs(6));
        let queue = state.watch_queue("q", Some(EventType::Fire));
        state.record_depth(&queue, Some((5, 1)));
        assert!(queue.current().is_none(), "no management sample yet");
        state.record_management(&HashMap::new());
        assert_eq!(queue.current().unwrap().total(), 5);
        // The consumer took all five; the management API still says 0 unacked.
        state.record_depth(&queue, Some((0, 1)));
        let work = queue.current().unwrap();
        assert_eq!((work.ready, work.in_flight), (0, 5));
        // Statistics not yet showing those deliveries: the hold stays.
        state.record_management(&HashMap::new());
        assert_eq!(queue.current().unwrap().in_flight, 5);
        // Statistics catch up: the management value is current from now on.
        let stats = HashMap::from([(
            "q".to_owned(),
            management::QueueStats {
                unacked: 3,
                ack_rate: 2.0,
            },
        )]);
        state.record_management(&stats);
        let work = queue.current().unwrap();
        assert_eq!(work.in_flight, 3);
        assert_eq!(work.mean_handling_seconds, Some(1.5));
    }
}
