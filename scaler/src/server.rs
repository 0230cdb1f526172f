//! Wires the scaler together: listeners, the broker session, the management
//! poller, the gRPC server (with `grpc.health.v1`) and the ops endpoint
//! (`/healthz`, `/readyz` = broker connected, `/metrics`).

use std::net::SocketAddr;
use std::sync::Arc;

use safecity_shell::ops::{self, Ops, Readiness};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tracing::info;

use crate::activation::PushTiming;
use crate::config::ScalerConfig;
use crate::metrics::ScalerMetrics;
use crate::pb::external_scaler_server::ExternalScalerServer;
use crate::registry::{self, Registry};
use crate::service::{ScalerService, ServiceTiming};
use crate::state::management::{ManagementClient, ManagementError};
use crate::state::{BrokerHealth, ScalerState};
use crate::{broker, state, tls};

/// The gRPC service name reported by the health service.
pub const SERVICE_NAME: &str = "externalscaler.ExternalScaler";

/// Tap-driven pushes of one stream are at least this far apart.
pub const MIN_PUSH_GAP: std::time::Duration = std::time::Duration::from_millis(20);

/// HTTP/2 streams allowed per connection (KEDA holds one per ScaledObject).
pub const MAX_CONCURRENT_STREAMS: u32 = 100_000;

/// Errors starting the scaler.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS files cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The TLS configuration was refused by the server.
    #[error("TLS configuration refused: {0}")]
    TlsConfig(#[from] tonic::transport::Error),
    /// The management URL cannot be used.
    #[error(transparent)]
    Management(#[from] ManagementError),
}

/// A started scaler.
#[derive(Debug)]
pub struct RunningScaler {
    /// The bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// The bound metrics address.
    pub metrics_addr: SocketAddr,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    grpc: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RunningScaler {
    /// Stops gracefully: open streams end with status OK, then the server stops.
    pub async fn shutdown(self) -> Result<(), tonic::transport::Error> {
        self.cancel.cancel();
        self.wait().await
    }

    /// Waits until the scaler stops (its cancellation token was cancelled).
    pub async fn wait(self) -> Result<(), tonic::transport::Error> {
        let result = self.grpc.await.unwrap_or(Ok(()));
        for task in self.tasks {
            let _ = task.await;
        }
        result
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Starts the scaler; it runs until `cancel` is cancelled.
pub async fn start(
    config: ScalerConfig,
    cancel: CancellationToken,
) -> Result<RunningScaler, StartError> {
    let grpc_listener = bind(config.grpc_addr).await?;
    let metrics_listener = bind(config.metrics_addr).await?;
    let grpc_addr = grpc_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.grpc_addr,
            source,
        })?;
    let metrics_addr = metrics_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.metrics_addr,
            source,
        })?;
    let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
    let management = ManagementClient::new(&config.management_url, &config.vhost)?;

    let state = ScalerState::new(config.stats_lag);
    let metrics = ScalerMetrics::new();
    let registry = Registry::new(state.clone(), metrics.clone());
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(registry::run_pruner(
        registry.clone(),
        metrics.clone(),
        config.watch_idle_timeout,
        cancel.clone(),
    )));
    tasks.push(tokio::spawn(broker::run(
        state.clone(),
        metrics.clone(),
        config.amqp_url.clone(),
        config.depth_interval,
        config.reconnect_max_delay,
        cancel.clone(),
    )));
    tasks.push(tokio::spawn(state::management::run(
        state.clone(),
        management,
        config.management_interval,
        cancel.clone(),
    )));
    let readiness = Readiness::new("broker connected", "broker unavailable");
    {
        let (state, metrics) = (state.clone(), metrics.clone());
        let ops = Ops {
            readiness: readiness.clone(),
            metrics: Arc::new(move || metrics.render(&state)),
        };
        tasks.push(ops::serve_on(metrics_listener, ops, cancel.clone()));
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    health
        .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
        .await;
    {
        let mut broker_health = state.subscribe_broker_health();
        let cancel = cancel.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let up = *broker_health.borrow_and_update() == BrokerHealth::Up;
                readiness.set(up);
                let status = if up {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                health.set_service_status(SERVICE_NAME, status).await;
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = broker_health.changed() => if changed.is_err() { return },
                }
            }
        }));
    }

    let service = ScalerService::new(
        state,
        registry,
        metrics,
        ServiceTiming {
            first_sample_timeout: config.first_sample_timeout,
            max_staleness: config.max_staleness,
            management_interval: config.management_interval,
            push: PushTiming {
                resend: config.active_resend,
                min_push_gap: MIN_PUSH_GAP,
            },
        },
        cancel.clone(),
    );
    // KEDA multiplexes every ScaledObject's stream over one HTTP/2 connection:
    // the usual limit of 200 concurrent streams would stall the 201st.
    let mut builder = Server::builder().max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let router = builder
        .add_service(health_service)
        .add_service(ExternalScalerServer::new(service));
    let shutdown = cancel.clone();
    let grpc = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(
                // No Nagle: a pushed `true` is a tiny frame that must leave at once,
                // not wait for the ACK of KEDA's last unary call.
                TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
                shutdown.cancelled_owned(),
            )
            .await
    });
    info!(%grpc_addr, %metrics_addr, tls = config.tls.is_some(), vhost = %config.vhost, "scaler listening");
    Ok(RunningScaler {
        grpc_addr,
        metrics_addr,
        cancel,
        tasks,
        grpc,
    })
}
