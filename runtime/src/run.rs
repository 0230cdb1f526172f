//! Running a function: connect, declare, consume, reconnect, drain on shutdown.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Connection, ConnectionProperties};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{ConfigError, RuntimeConfig, redact_url};
use crate::function::Function;
use crate::http::{self, Readiness};
use crate::metrics::Metrics;
use crate::publisher::Publisher;
use crate::topology::{self, FunctionQueues, TopologyError};
use crate::worker::{Session, Shared, handle_delivery};

/// Why a function process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The environment holds an invalid setting.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The function's name or subscriptions cannot be declared, or the broker
    /// refused the topology (e.g. a queue exists with other arguments).
    #[error("topology: {0}")]
    Topology(#[from] TopologyError),
    /// The health and metrics port could not be bound.
    #[error("cannot listen on {addr} for /healthz, /readyz and /metrics: {source}")]
    Http {
        /// The configured address.
        addr: SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// The supervisor task died (a bug: please report it).
    #[error("runtime task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Runs `function` until SIGTERM or SIGINT, configured from the environment.
///
/// Reads [`RuntimeConfig::from_env`] (a bad value fails here, naming the
/// variable), installs the log subscriber, serves `/healthz`, `/readyz` and
/// `/metrics`, and returns after a graceful drain.
pub async fn run<F: Function>(function: F) -> Result<(), RunError> {
    let config = RuntimeConfig::from_env()?;
    crate::telemetry::init(config.log_format);
    let shutdown = crate::shutdown::on_signals();
    start(function, config, shutdown).await?.join().await
}

/// A started function: its HTTP address, its metrics, and a handle to wait on.
#[derive(Debug)]
pub struct RunningFunction {
    http_addr: Option<SocketAddr>,
    readiness: Readiness,
    metrics: Arc<Metrics>,
    supervisor: JoinHandle<Result<(), RunError>>,
}

impl RunningFunction {
    /// The bound address of `/healthz`, `/readyz` and `/metrics`, if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// True while the function consumes.
    pub fn is_ready(&self) -> bool {
        self.readiness.get()
    }

    /// The function's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Waits until the function has drained after its shutdown token fired.
    pub async fn join(self) -> Result<(), RunError> {
        self.supervisor.await?
    }
}

/// Starts `function` with an explicit configuration; it stops when `shutdown` fires.
///
/// Fails at once on an invalid name, no subscriptions, or an unbindable HTTP
/// port. A broker that is down is not an error: the function retries with
/// backoff and reports not-ready meanwhile.
pub async fn start<F: Function>(
    function: F,
    config: RuntimeConfig,
    shutdown: CancellationToken,
) -> Result<RunningFunction, RunError> {
    let started = Instant::now();
    let name: Arc<str> = Arc::from(function.name());
    let queues = FunctionQueues::new(&name)?;
    let subscriptions = function.subscriptions();
    if subscriptions.is_empty() {
        return Err(TopologyError::NoSubscriptions(name.to_string()).into());
    }
    let mut metrics = Metrics::new(&name);
    function.register_metrics(metrics.registry_mut());
    let metrics = Arc::new(metrics);
    let readiness = Readiness::default();
    let http_stop = CancellationToken::new();
    let (http_addr, http_task) = match config.http_addr {
        Some(addr) => {
            let (bound, task) =
                http::serve(addr, readiness.clone(), metrics.clone(), http_stop.clone())
                    .await
                    .map_err(|source| RunError::Http { addr, source })?;
            (Some(bound), Some(task))
        }
        None => (None, None),
    };
    info!(
        function = %name,
        broker = %redact_url(&config.amqp_url),
        concurrency = config.concurrency,
        http = ?http_addr,
        "starting"
    );
    let shared = Arc::new(Shared {
        function,
        name,
        queues,
        config,
        metrics: metrics.clone(),
        shutdown,
        hard_stop: CancellationToken::new(),
    });
    let supervisor_readiness = readiness.clone();
    let supervisor = tokio::spawn(async move {
        let result = supervise(shared, subscriptions, supervisor_readiness, started).await;
        http_stop.cancel();
        if let Some(task) = http_task {
            let _ = task.await;
        }
        result
    });
    Ok(RunningFunction {
        http_addr,
        readiness,
        metrics,
        supervisor,
    })
}

enum SessionEnd {
    /// Shutdown requested and drained.
    Drained,
    /// The connection was lost or could not be made.
    Lost { error: String, consumed: bool },
}

async fn supervise<F: Function>(
    shared: Arc<Shared<F>>,
    subscriptions: Vec<crate::function::Subscription>,
    readiness: Readiness,
    started: Instant,
) -> Result<(), RunError> {
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(usize::from(shared.config.concurrency)));
    let mut backoff = Backoff::new(
        Duration::from_millis(100),
        shared.config.reconnect_max_delay,
    );
    let mut first_consume = Some(started);
    let result = loop {
        if shared.shutdown.is_cancelled() {
            break Ok(());
        }
        let end = session(
            &shared,
            &subscriptions,
            &tracker,
            &permits,
            &readiness,
            &mut first_consume,
        )
        .await;
        readiness.set(false);
        shared.metrics.consuming.set(0);
        match end {
            Ok(SessionEnd::Drained) => break Ok(()),
            Ok(SessionEnd::Lost { error, consumed }) => {
                if consumed {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                warn!(
                    function = %shared.name,
                    %error,
                    retry_in = %humantime::format_duration(delay),
                    "broker connection lost or unavailable"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {
                        shared.metrics.reconnects.inc();
                    }
                    () = shared.shutdown.cancelled() => break Ok(()),
                }
            }
            Err(fatal) => {
                error!(function = %shared.name, error = %fatal, "cannot run");
                break Err(fatal);
            }
        }
    };
    drain(&shared, &tracker).await;
    info!(function = %shared.name, "stopped");
    result
}

/// Waits for in-flight handlers up to the grace period, then abandons the rest
/// (they requeue their inputs).
async fn drain<F>(shared: &Shared<F>, tracker: &TaskTracker) {
    tracker.close();
    if tracker.is_empty() {
        return;
    }
    info!(function = %shared.name, in_flight = tracker.len(), grace = %humantime::format_duration(shared.config.shutdown_grace), "draining in-flight handlers");
    if tokio::time::timeout(shared.config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        warn!(function = %shared.name, abandoned = tracker.len(), "shutdown grace expired; returning unfinished inputs to the queue");
        shared.hard_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    }
}

fn is_fatal_declare(error: &TopologyError) -> bool {
    match error {
        TopologyError::Declare { source, .. } => source.is_amqp_soft_error(),
        TopologyError::InvalidName(_) | TopologyError::NoSubscriptions(_) => true,
    }
}

async fn session<F: Function>(
    shared: &Arc<Shared<F>>,
    subscriptions: &[crate::function::Subscription],
    tracker: &TaskTracker,
    permits: &Arc<Semaphore>,
    readiness: &Readiness,
    first_consume: &mut Option<Instant>,
) -> Result<SessionEnd, RunError> {
    let lost = |error: &dyn std::fmt::Display| SessionEnd::Lost {
        error: error.to_string(),
        consumed: false,
    };
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("safecity-{}", shared.name).into());
    let connection = match Connection::connect(&shared.config.amqp_url, properties).await {
        Ok(connection) => connection,
        Err(error) => return Ok(lost(&error)),
    };
    let publisher = match Publisher::open(&connection).await {
        Ok(publisher) => publisher,
        Err(error) => return Ok(lost(&error)),
    };
    if let Err(error) = topology::declare_function(
        publisher.channel(),
        &shared.queues,
        subscriptions,
        shared.config.queue_type,
        &shared.config.retry_delays,
    )
    .await
    {
        if is_fatal_declare(&error) {
            let _ = connection.close(200, "topology refused".into()).await;
            return Err(error.into());
        }
        return Ok(lost(&error));
    }
    let channel = match connection.create_channel().await {
        Ok(channel) => channel,
        Err(error) => return Ok(lost(&error)),
    };
    if let Err(error) = channel
        .basic_qos(shared.config.concurrency, BasicQosOptions::default())
        .await
    {
        return Ok(lost(&error));
    }
    let mut consumer = match channel
        .basic_consume(
            ShortString::from(shared.queues.work()),
            ShortString::from(format!("safecity-{}-{}", shared.name, uuid::Uuid::new_v4())),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
    {
        Ok(consumer) => consumer,
        Err(error) => return Ok(lost(&error)),
    };
    readiness.set(true);
    shared.metrics.consuming.set(1);
    if let Some(started) = first_consume.take() {
        let elapsed = started.elapsed();
        shared.metrics.start_to_consuming.set(elapsed.as_secs_f64());
        info!(function = %shared.name, queue = %shared.queues.work(), start_to_consuming_ms = elapsed.as_secs_f64() * 1000.0, "consuming");
    } else {
        info!(function = %shared.name, queue = %shared.queues.work(), "consuming again after reconnect");
    }

    let session = Session {
        publisher,
        retry_queues: Arc::new(Mutex::new(
            shared
                .config
                .retry_delays
                .iter()
                .copied()
                .collect::<HashSet<_>>(),
        )),
    };
    let mut consumed = false;
    let shutdown = &shared.shutdown;
    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            next = consumer.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                consumed = true;
                let shared = shared.clone();
                let session = session.clone();
                tracker.spawn(async move {
                    handle_delivery(shared, session, delivery).await;
                    drop(permit);
                });
            }
            Some(Err(error)) => {
                return Ok(SessionEnd::Lost {
                    error: error.to_string(),
                    consumed,
                });
            }
            None => {
                return Ok(SessionEnd::Lost {
                    error: "the broker cancelled the consumer (queue deleted?)".to_owned(),
                    consumed,
                });
            }
        }
    }

    // Graceful shutdown: stop deliveries, let in-flight handlers finish and ack.
    readiness.set(false);
    shared.metrics.consuming.set(0);
    if let Err(error) = channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
    {
        warn!(%error, "cancelling the consumer failed");
    }
    drain(shared, tracker).await;
    // Closing the channel returns prefetched-but-unstarted deliveries to the queue.
    let _ = channel.close(200, "shutdown".into()).await;
    let _ = session
        .publisher
        .channel()
        .close(200, "shutdown".into())
        .await;
    let _ = connection.close(200, "shutdown".into()).await;
    Ok(SessionEnd::Drained)
}

/// Exponential backoff with a cap.
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.next.min(self.max);
        self.next = (self.next * 2).min(self.max);
        delay
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<_> = (0..4).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 350, 350]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }
}
