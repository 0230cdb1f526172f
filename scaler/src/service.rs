//! The `externalscaler.ExternalScaler` gRPC service. Every RPC answers from
//! memory; `tonic::Status` appears only here, converted from [`ScalerError`].

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

use crate::activation::{self, ActivationStream, PushTiming};
use crate::error::ScalerError;
use crate::formula;
use crate::metrics::{Method, ScalerMetrics};
use crate::pb::external_scaler_server::ExternalScaler;
use crate::pb::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricValue,
    ScaledObjectRef,
};
use crate::registry::{Registration, Registry};
use crate::state::{PendingWork, ScalerState, WatchedQueue};

/// Timing settings of the service.
#[derive(Debug, Clone, Copy)]
pub struct ServiceTiming {
    /// How long the first RPC of a new queue waits for its first sample.
    pub first_sample_timeout: Duration,
    /// Samples older than this are not served.
    pub max_staleness: Duration,
    /// How often the management API is read.
    pub management_interval: Duration,
    /// Stream push timing.
    pub push: PushTiming,
}

/// The external scaler service.
///
/// The hot path (`GetMetrics`, `IsActive` of a known trigger) finds the parsed
/// trigger in the [`Registry`] under a read lock, copies the queue's last
/// published sample, and allocates nothing but the response. It awaits only
/// for the first sample of a queue nobody asked about before.
#[derive(Debug, Clone)]
pub struct ScalerService {
    state: Arc<ScalerState>,
    registry: Arc<Registry>,
    metrics: Arc<ScalerMetrics>,
    timing: ServiceTiming,
    cancel: CancellationToken,
}

impl ScalerService {
    /// A service answering from `state`, for the triggers of `registry`.
    pub fn new(
        state: Arc<ScalerState>,
        registry: Arc<Registry>,
        metrics: Arc<ScalerMetrics>,
        timing: ServiceTiming,
        cancel: CancellationToken,
    ) -> Self {
        ScalerService {
            state,
            registry,
            metrics,
            timing,
            cancel,
        }
    }

    fn registration(&self, object: &ScaledObjectRef) -> Result<Arc<Registration>, ScalerError> {
        self.registry.resolve(object).map_err(|error| {
            // KEDA asks again every poll: warn once per ScaledObject and metadata.
            if self.registry.first_rejection(object) {
                warn!(scaled_object = %object.name, namespace = %object.namespace, %error, "invalid trigger metadata (logged once; every RPC answers InvalidArgument)");
            } else {
                debug!(scaled_object = %object.name, %error, "invalid trigger metadata");
            }
            error.into()
        })
    }

    fn tap_count(&self, queue: &WatchedQueue) -> u64 {
        queue.event_type().map_or(0, |t| self.state.tap_count(t))
    }

    fn check_broker(&self) -> Result<(), ScalerError> {
        match self.state.broker_down() {
            Some(reason) => Err(ScalerError::BrokerUnavailable(reason)),
            None => Ok(()),
        }
    }

    /// Waits for the first sample of a queue nobody asked about before, but
    /// only while one can come: with the broker down, still unreachable after
    /// the first-sample timeout, or the management API failing, the answer is
    /// `Unavailable` at once (KEDA sets no deadline; a wait would hold its
    /// ScaledObject's lock).
    async fn first_sample(&self, queue: &WatchedQueue) -> Result<PendingWork, ScalerError> {
        let unavailable = || {
            self.check_broker()?;
            if let Some(error) = self.state.management_error() {
                return Err(ScalerError::ManagementUnavailable(error));
            }
            Err(ScalerError::NotSampledYet(queue.name.clone()))
        };
        let Some(deadline) = self
            .state
            .first_sample_deadline(self.timing.first_sample_timeout)
        else {
            return unavailable();
        };
        let mut rx = queue.subscribe();
        match tokio::time::timeout_at(deadline, rx.wait_for(Option::is_some)).await {
            Ok(Ok(work)) => Ok((*work).expect("waited for Some")),
            _ => unavailable(),
        }
    }

    /// The current pending work of `queue`, if fresh enough to be served.
    async fn pending(&self, queue: &WatchedQueue) -> Result<PendingWork, ScalerError> {
        self.check_broker()?;
        let work = match queue.current() {
            Some(work) => work,
            None => self.first_sample(queue).await?,
        };
        self.check_broker()?;
        let age = work.sampled_at.elapsed();
        if age > self.timing.max_staleness {
            return Err(ScalerError::Stale {
                queue: queue.name.clone(),
                age,
            });
        }
        if work.management_at.elapsed()
            > self.timing.max_staleness + self.timing.management_interval
        {
            return Err(ScalerError::ManagementUnavailable(
                self.state
                    .management_error()
                    .unwrap_or_else(|| "no successful read recently".into()),
            ));
        }
        Ok(work)
    }

    fn finish<T>(
        &self,
        method: Method,
        started: Instant,
        result: Result<T, ScalerError>,
    ) -> Result<Response<T>, Status> {
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(error) => error.code(),
        };
        self.metrics.observe_rpc(method, code, started.elapsed());
        match result {
            Ok(value) => Ok(Response::new(value)),
            Err(error) => {
                debug!(method = method.as_str(), %error, "RPC refused");
                Err(error.into())
            }
        }
    }

    async fn is_active_inner(
        &self,
        object: &ScaledObjectRef,
    ) -> Result<IsActiveResponse, ScalerError> {
        let registration = self.registration(object)?;
        let work = self.pending(&registration.queue).await?;
        Ok(IsActiveResponse {
            result: formula::is_active(
                &registration.spec,
                &work,
                self.tap_count(&registration.queue),
            ),
        })
    }

    async fn get_metrics_inner(
        &self,
        request: &GetMetricsRequest,
    ) -> Result<GetMetricsResponse, ScalerError> {
        let registration = match &request.scaled_object_ref {
            Some(object) => self.registration(object)?,
            None => self.registration(&ScaledObjectRef::default())?,
        };
        let spec = &registration.spec;
        if request.metric_name != spec.metric_name {
            return Err(ScalerError::UnknownMetric {
                requested: request.metric_name.clone(),
                expected: spec.metric_name.clone(),
            });
        }
        let work = self.pending(&registration.queue).await?;
        let value = formula::metric_value(spec, &work, self.tap_count(&registration.queue));
        #[allow(deprecated)]
        let metric = MetricValue {
            metric_name: request.metric_name.clone(),
            metric_value: value.ceil() as i64,
            metric_value_float: value,
        };
        Ok(GetMetricsResponse {
            metric_values: vec![metric],
        })
    }
}

/// The stream of `StreamMetricSpec`.
pub type MetricSpecStream =
    Pin<Box<dyn Stream<Item = Result<GetMetricSpecResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ExternalScaler for ScalerService {
    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        let started = Instant::now();
        let result = self.is_active_inner(request.get_ref()).await;
        self.finish(Method::IsActive, started, result)
    }

    type StreamIsActiveStream = ActivationStream;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let started = Instant::now();
        let result = self.registration(request.get_ref()).map(|registration| {
            debug!(scaled_object = %request.get_ref().name, queue = %registration.queue.name, "activation stream opened");
            activation::spawn(
                self.state.clone(),
                self.metrics.clone(),
                self.registry.open_stream(registration),
                self.timing.push,
                self.cancel.clone(),
            )
        });
        self.finish(Method::StreamIsActive, started, result)
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let started = Instant::now();
        let result = self
            .registration(request.get_ref())
            .map(|registration| registration.metric_spec.clone());
        self.finish(Method::GetMetricSpec, started, result)
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let started = Instant::now();
        let result = self.get_metrics_inner(request.get_ref()).await;
        self.finish(Method::GetMetrics, started, result)
    }

    type StreamMetricSpecStream = MetricSpecStream;

    async fn stream_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        let started = Instant::now();
        let cancel = self.cancel.clone();
        let result = self.registration(request.get_ref()).map(|registration| {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let specs = registration.metric_spec.clone();
            // The stream holds the trigger like a StreamIsActive stream does.
            let lease = self.registry.open_stream(registration);
            tokio::spawn(async move {
                // The spec of a trigger never changes: send it once, hold the
                // stream open until shutdown or until KEDA goes away.
                if tx.send(Ok(specs)).await.is_ok() {
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = tx.closed() => {}
                    }
                }
                drop(lease);
            });
            Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)) as MetricSpecStream
        });
        self.finish(Method::StreamMetricSpec, started, result)
    }
}
