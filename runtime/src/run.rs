//! Running a function: connect, declare, consume, reconnect, drain on shutdown.
//!
//! [`start`] checks what can be checked at once (name, subscriptions, HTTP
//! port) and spawns the supervisor: the shell's broker-session supervisor
//! runs one session per connection, each [`open`] (topology, channels,
//! consumer) then [`consume`] (deliveries to handlers, drain on shutdown).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, Consumer};
use safecity_events::topology::{self, FunctionQueues, TopologyError};
use safecity_events::{Publisher, Subscription};
use safecity_shell::broker::{self, BrokerSession, BrokerSettings, SessionEnd, bounded};
use safecity_shell::env::{EnvError, redact_url};
use safecity_shell::ops::{self, Ops, Readiness};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::RuntimeConfig;
use crate::function::Function;
use crate::metrics::Metrics;
use crate::worker::{Session, Shared, handle_delivery};

/// The first reconnect delay after a lost broker connection.
const RECONNECT_MIN: Duration = Duration::from_millis(100);

/// Why a function process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The environment holds an invalid setting.
    #[error("configuration: {0}")]
    Config(#[from] EnvError),
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
    safecity_shell::telemetry::init(config.log_format);
    let shutdown = safecity_shell::signals::on_signals();
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

    /// The function's metrics as `/metrics` serves them (OpenMetrics text).
    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
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
    let readiness = Readiness::new("consuming", "not consuming");
    let http_stop = CancellationToken::new();
    let (http_addr, http_task) = match config.http_addr {
        Some(addr) => {
            let render = metrics.clone();
            let ops = Ops {
                readiness: readiness.clone(),
                metrics: Arc::new(move || render.encode()),
            };
            let (bound, task) = ops::serve(addr, ops, http_stop.clone())
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

/// What every session of the process shares.
struct Consuming<F> {
    shared: Arc<Shared<F>>,
    subscriptions: Vec<Subscription>,
    tracker: TaskTracker,
    permits: Arc<Semaphore>,
    readiness: Readiness,
    /// The process start, until the first consume measures it.
    first_consume: Option<Instant>,
}

async fn supervise<F: Function>(
    shared: Arc<Shared<F>>,
    subscriptions: Vec<Subscription>,
    readiness: Readiness,
    started: Instant,
) -> Result<(), RunError> {
    let settings = BrokerSettings {
        url: shared.config.amqp_url.clone(),
        connection_name: format!("safecity-{}", shared.name),
        reconnect_min: RECONNECT_MIN,
        reconnect_max: shared.config.reconnect_max_delay,
    };
    let mut state = Consuming {
        permits: Arc::new(Semaphore::new(usize::from(shared.config.concurrency))),
        shared: shared.clone(),
        subscriptions,
        tracker: TaskTracker::new(),
        readiness,
        first_consume: Some(started),
    };
    let result = broker::supervise(&settings, &shared.shutdown, &mut state).await;
    if let Err(fatal) = &result {
        error!(function = %shared.name, error = %fatal, "cannot run");
    }
    drain(&shared, &state.tracker).await;
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

impl<F: Function> BrokerSession for Consuming<F> {
    type Error = RunError;

    async fn run(&mut self, connection: &Connection) -> SessionEnd<RunError> {
        let end = match open(self, connection).await {
            Ok(open) => consume(self, connection, open).await,
            Err(end) => end,
        };
        self.readiness.set(false);
        self.shared.metrics.consuming.set(0);
        end
    }

    fn lost(&mut self, error: &str, retry_in: Duration) {
        warn!(
            function = %self.shared.name,
            %error,
            retry_in = %humantime::format_duration(retry_in),
            "broker connection lost or unavailable"
        );
        self.shared.metrics.reconnects.inc();
    }
}

/// A session ready to consume.
struct OpenSession {
    publisher: Publisher,
    channel: Channel,
    consumer: Consumer,
}

/// Declares the topology and starts the consumer; every request bounded.
async fn open<F: Function>(
    state: &Consuming<F>,
    connection: &Connection,
) -> Result<OpenSession, SessionEnd<RunError>> {
    let shared = &state.shared;
    let publisher = bounded(
        "opening the publishing channel",
        Publisher::open(connection),
    )
    .await
    .map_err(SessionEnd::lost)?
    .map_err(SessionEnd::lost)?;
    let declared = bounded(
        "declaring the topology",
        topology::declare_function_bounded(
            publisher.channel(),
            &shared.queues,
            &state.subscriptions,
            shared.config.queue_type,
            &shared.config.retry_delays,
            shared.config.frame_bounds,
        ),
    )
    .await
    .map_err(SessionEnd::lost)?;
    if let Err(error) = declared {
        return Err(if is_fatal_declare(&error) {
            SessionEnd::Fatal(error.into())
        } else {
            SessionEnd::lost(error)
        });
    }
    let channel = bounded("opening the consuming channel", connection.create_channel())
        .await
        .map_err(SessionEnd::lost)?
        .map_err(SessionEnd::lost)?;
    bounded(
        "setting the prefetch",
        channel.basic_qos(shared.config.concurrency, BasicQosOptions::default()),
    )
    .await
    .map_err(SessionEnd::lost)?
    .map_err(SessionEnd::lost)?;
    let consumer = bounded(
        "starting the consumer",
        channel.basic_consume(
            ShortString::from(shared.queues.work()),
            ShortString::from(format!("safecity-{}-{}", shared.name, uuid::Uuid::new_v4())),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .map_err(SessionEnd::lost)?
    .map_err(SessionEnd::lost)?;
    Ok(OpenSession {
        publisher,
        channel,
        consumer,
    })
}

/// Hands deliveries to handlers (at most `concurrency` at once) until the
/// connection is lost or shutdown starts; on shutdown, drains and closes.
async fn consume<F: Function>(
    state: &mut Consuming<F>,
    connection: &Connection,
    open: OpenSession,
) -> SessionEnd<RunError> {
    let shared = state.shared.clone();
    let OpenSession {
        publisher,
        channel,
        mut consumer,
    } = open;
    state.readiness.set(true);
    shared.metrics.consuming.set(1);
    if let Some(started) = state.first_consume.take() {
        let elapsed = started.elapsed();
        shared.metrics.start_to_consuming.set(elapsed.as_secs_f64());
        info!(function = %shared.name, queue = %shared.queues.work(), start_to_consuming_ms = elapsed.as_secs_f64() * 1000.0, "consuming");
    } else {
        info!(function = %shared.name, queue = %shared.queues.work(), "consuming again after reconnect");
    }
    let session = Session::new(publisher, &shared.config.retry_delays);
    let mut worked = false;
    let shutdown = &shared.shutdown;
    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            permit = state.permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            next = consumer.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                worked = true;
                let shared = shared.clone();
                let session = session.clone();
                state.tracker.spawn(async move {
                    handle_delivery(shared, session, delivery).await;
                    drop(permit);
                });
            }
            Some(Err(error)) => {
                return SessionEnd::Lost {
                    error: error.to_string(),
                    worked,
                };
            }
            None => {
                return SessionEnd::Lost {
                    error: "the broker cancelled the consumer (queue deleted?)".to_owned(),
                    worked,
                };
            }
        }
    }

    // Graceful shutdown: stop deliveries, let in-flight handlers finish and ack.
    state.readiness.set(false);
    shared.metrics.consuming.set(0);
    if let Err(error) = channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
    {
        warn!(%error, "cancelling the consumer failed");
    }
    drain(&shared, &state.tracker).await;
    // Closing the channel returns prefetched-but-unstarted deliveries to the queue.
    let _ = channel.close(200, "shutdown".into()).await;
    let _ = session
        .publisher
        .channel()
        .close(200, "shutdown".into())
        .await;
    let _ = connection.close(200, "shutdown".into()).await;
    SessionEnd::Stopped
}
