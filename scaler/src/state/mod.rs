//! The in-memory state every RPC answers from: the pending work of each
//! watched queue, refreshed in the background ([`depth`], [`management`]), and
//! the tap counters of push activation.

pub mod depth;
pub mod management;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use safecity_events::EventType;
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
    /// Tapped arrivals before this instant are covered by the management
    /// counts (a read sent then reported in-flight work).
    arrivals_seen_before: Option<Instant>,
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

    /// Whether nothing is going on: sampled, nothing ready, no consumer, no
    /// in-flight estimate, and its event type tapped with no event since the
    /// sample (`tap_count` is the type's counter now). Only tapped queues
    /// qualify: for them the tap, not the sampler, announces new work.
    fn is_quiet(&self, tap_count: Option<u64>) -> bool {
        let tracker = self.tracker.lock().expect("tracker lock");
        let Some(tap_count) = tap_count else {
            return false;
        };
        tracker.depth_at.is_some()
            && tracker.ready == 0
            && tracker.consumers == 0
            && tracker.tap_count_at_sample == tap_count
            && self.current().is_some_and(|work| work.total() == 0)
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

    fn publish(&self, tracker: &mut QueueTracker, stats_lag: Duration, unproven_arrivals: u64) {
        let (Some(sampled_at), Some(management_at)) = (tracker.depth_at, tracker.management_at)
        else {
            return;
        };
        // Only a consumer can hold an arrival unseen; arrivals sitting in the
        // ready count are counted there.
        let unseen = if tracker.consumers > 0 {
            unproven_arrivals.saturating_sub(tracker.ready)
        } else {
            0
        };
        let in_flight = tracker
            .in_flight
            .value(Instant::now(), stats_lag)
            .max(unseen);
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

/// Events of one type seen by the tap, for the in-flight estimate.
///
/// An event delivered straight to an attached consumer never shows in the
/// ready count, and the management API's unacked count lags (the broker
/// emits queue statistics every 5 s and the management database aggregates
/// them again: 8 s was observed here). So an arrival counts as pending work
/// of every queue of its type that has consumers (only a consumer can hold
/// it unseen) until a management read sent after it reports in-flight work
/// for that queue (from then on the management value is current), or for
/// `3 × stats_lag` at most, like a held drain.
#[derive(Debug, Default)]
struct Arrivals {
    /// Arrival instants, oldest first.
    at: VecDeque<Instant>,
}

impl Arrivals {
    /// Bound on remembered arrivals per type (far above any function's
    /// concurrency; beyond it the management counts are current anyway).
    const MAX: usize = 100_000;

    fn record(&mut self, now: Instant) {
        if self.at.len() == Self::MAX {
            self.at.pop_front();
        }
        self.at.push_back(now);
    }

    /// Forgets arrivals older than `hold`.
    fn expire(&mut self, now: Instant, hold: Duration) {
        while self
            .at
            .front()
            .is_some_and(|arrival| now.saturating_duration_since(*arrival) > hold)
        {
            self.at.pop_front();
        }
    }

    /// Arrivals after `since` (all when `None`).
    fn count_after(&self, since: Option<Instant>) -> u64 {
        let first = since.map_or(0, |since| self.at.partition_point(|at| *at <= since));
        (self.at.len() - first) as u64
    }
}

/// The scaler's shared state.
#[derive(Debug)]
pub struct ScalerState {
    queues: RwLock<HashMap<String, Arc<WatchedQueue>>>,
    taps: HashMap<EventType, watch::Sender<u64>>,
    arrivals: HashMap<EventType, Mutex<Arrivals>>,
    tapped: watch::Sender<HashSet<EventType>>,
    broker: watch::Sender<BrokerHealth>,
    /// When the broker state last became `Connecting`.
    connecting_since: Mutex<Instant>,
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
            arrivals: EventType::ALL
                .iter()
                .map(|t| (*t, Mutex::default()))
                .collect(),
            connecting_since: Mutex::new(Instant::now()),
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

    /// Whether `queue` is quiet (see the depth sampler: quiet queues are
    /// declared less often, the tap announces their work).
    pub fn is_quiet(&self, queue: &WatchedQueue) -> bool {
        queue.is_quiet(queue.event_type.map(|t| self.tap_count(t)))
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

    /// Counts one tapped event of `event_type`; it is pending work of the
    /// queues of that type until a management read proves it gone.
    pub fn record_tap(&self, event_type: EventType) {
        self.arrivals[&event_type]
            .lock()
            .expect("arrivals lock")
            .record(Instant::now());
        self.taps[&event_type].send_modify(|count| *count += 1);
    }

    /// Tapped events of `event_type` after `since` that may still be in
    /// flight unseen (see [`Arrivals`]).
    fn arrivals_after(&self, event_type: EventType, since: Option<Instant>) -> u64 {
        let mut arrivals = self.arrivals[&event_type].lock().expect("arrivals lock");
        arrivals.expire(Instant::now(), self.stats_lag * 3);
        arrivals.count_after(since)
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
        if health == BrokerHealth::Connecting {
            *self.connecting_since.lock().expect("lock") = Instant::now();
        }
        self.broker.send_if_modified(|current| {
            let changed = *current != health;
            *current = health;
            changed
        });
    }

    /// Until when a first sample of a queue may be worth waiting for: never
    /// while the broker is down or the management API failed its last read
    /// (an RPC answers `Unavailable` at once), `first_sample_timeout` after
    /// the connection attempt began while connecting, and `timeout` from now
    /// while everything is up.
    pub fn first_sample_deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.management_error().is_some() {
            return None;
        }
        match *self.broker.borrow() {
            BrokerHealth::Down(_) => None,
            BrokerHealth::Connecting => {
                let deadline = *self.connecting_since.lock().expect("lock") + timeout;
                (deadline > Instant::now()).then_some(deadline)
            }
            BrokerHealth::Up => Some(Instant::now() + timeout),
        }
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
        let unproven = self.unproven_for(queue, &tracker);
        queue.publish(&mut tracker, self.stats_lag, unproven);
    }

    /// Records one management API read of the whole vhost: in-flight counts,
    /// ack rates, and which queues exist (the depth sampler declares only
    /// those, so missing queues cost no AMQP channel).
    ///
    /// `read_at` is when the read was sent: a queue it shows with in-flight
    /// work has management counts that cover every arrival before it.
    pub fn record_management(
        &self,
        stats: &HashMap<String, management::QueueStats>,
        read_at: Instant,
    ) {
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
            if queue_stats.unacked > 0 {
                tracker.arrivals_seen_before = Some(read_at);
            }
            if queue_stats.unacked > 0 && queue_stats.ack_rate > 0.0 {
                // Little's law: mean time in the system = mean number in it / throughput.
                let observed = queue_stats.unacked as f64 / queue_stats.ack_rate;
                tracker.mean_handling_seconds = Some(match tracker.mean_handling_seconds {
                    Some(previous) => 0.7 * previous + 0.3 * observed,
                    None => observed,
                });
            }
            tracker.management_at = Some(now);
            let unproven = self.unproven_for(&queue, &tracker);
            queue.publish(&mut tracker, self.stats_lag, unproven);
        }
        *self.management_error.lock().expect("lock") = None;
        if newly_listed {
            // Queues the depth sampler skipped until their existence was known.
            self.new_queue.notify_one();
        }
    }

    fn unproven_for(&self, queue: &WatchedQueue, tracker: &QueueTracker) -> u64 {
        queue.event_type.map_or(0, |event_type| {
            self.arrivals_after(event_type, tracker.arrivals_seen_before)
        })
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
        state.record_management(&HashMap::new(), Instant::now());
        assert_eq!(queue.current().unwrap().total(), 5);
        // The consumer took all five; the management API still says 0 unacked.
        state.record_depth(&queue, Some((0, 1)));
        let work = queue.current().unwrap();
        assert_eq!((work.ready, work.in_flight), (0, 5));
        // Statistics not yet showing those deliveries: the hold stays.
        state.record_management(&HashMap::new(), Instant::now());
        assert_eq!(queue.current().unwrap().in_flight, 5);
        // Statistics catch up: the management value is current from now on.
        let stats = HashMap::from([(
            "q".to_owned(),
            management::QueueStats {
                unacked: 3,
                ack_rate: 2.0,
            },
        )]);
        state.record_management(&stats, Instant::now());
        let work = queue.current().unwrap();
        assert_eq!(work.in_flight, 3);
        assert_eq!(work.mean_handling_seconds, Some(1.5));
    }
}
