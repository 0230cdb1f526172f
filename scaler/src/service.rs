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
use crate::metadata::TriggerSpec;
use crate::metrics::ScalerMetrics;
use crate::pb::external_scaler_server::ExternalScaler;
use crate::pb::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};
use crate::state::{BrokerHealth, PendingWork, ScalerState, WatchedQueue};

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
#[derive(Debug, Clone)]
pub struct ScalerService {
    state: Arc<ScalerState>,
    metrics: Arc<ScalerMetrics>,
    timing: ServiceTiming,
    cancel: CancellationToken,
}

impl ScalerService {
    /// A service answering from `state`.
    pub fn new(
        state: Arc<ScalerState>,
        metrics: Arc<ScalerMetrics>,
        timing: ServiceTiming,
        cancel: CancellationToken,
    ) -> Self {
        ScalerService {
            state,
            metrics,
            timing,
            cancel,
        }
    }

    fn spec(object: &ScaledObjectRef) -> Result<TriggerSpec, ScalerError> {
        TriggerSpec::parse(&object.name, &object.scaler_metadata).map_err(|error| {
            warn!(scaled_object = %object.name, namespace = %object.namespace, %error, "invalid trigger metadata");
            error.into()
        })
    }

    fn watch(&self, spec: &TriggerSpec) -> Arc<WatchedQueue> {
        let event_type = match spec.source {
            crate::metadata::WorkSource::Event(event_type) => Some(event_type),
            _ => None,
        };
        self.state.watch_queue(&spec.queue, event_type)
    }

    fn tap_count(&self, queue: &WatchedQueue) -> u64 {
        queue
            .event_type()
            .map_or(0, |t| *self.state.tap_counter(t).borrow())
    }

    fn check_broker(&self) -> Result<(), ScalerError> {
        match self.state.broker_health() {
            BrokerHealth::Down(reason) => Err(ScalerError::BrokerUnavailable(reason)),
            BrokerHealth::Connecting | BrokerHealth::Up => Ok(()),
        }
    }

    /// The current pending work of `queue`, if fresh enough to be served.
    async fn pending(&self, queue: &WatchedQueue) -> Result<PendingWork, ScalerError> {
        self.check_broker()?;
        let work = match queue.current() {
            Some(work) => work,
            None => {
                let mut rx = queue.subscribe();
                let first = tokio::time::timeout(
                    self.timing.first_sample_timeout,
                    rx.wait_for(Option::is_some),
                )
                .await;
                match first {
                    Ok(Ok(work)) => (*work).expect("waited for Some"),
                    _ => {
                        self.check_broker()?;
                        return Err(ScalerError::NotSampledYet(queue.name.clone()));
                    }
                }
            }
        };
        self.check_broker()?;
        let age = work.sampled_at.elapsed();
        if age > self.timing.max_staleness {
            return Err(ScalerError::Stale {
                queue: queue.name.clone(),
                age,
            });
        }
        let (management_ok_at, management_error) = self.state.management_status();
        let management_fresh = management_ok_at.is_some_and(|at| {
            at.elapsed() <= self.timing.max_staleness + self.timing.management_interval
        });
        if !management_fresh {
            return Err(ScalerError::ManagementUnavailable(
                management_error.unwrap_or_else(|| "no successful read yet".into()),
            ));
        }
        Ok(work)
    }

    fn finish<T>(
        &self,
        method: &'static str,
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
                debug!(method, %error, "RPC refused");
                Err(error.into())
            }
        }
    }

    async fn is_active_inner(
        &self,
        object: &ScaledObjectRef,
    ) -> Result<IsActiveResponse, ScalerError> {
        let spec = Self::spec(object)?;
        let queue = self.watch(&spec);
        let work = self.pending(&queue).await?;
        Ok(IsActiveResponse {
            result: formula::is_active(&spec, &work, self.tap_count(&queue)),
        })
    }

    fn metric_spec(spec: &TriggerSpec) -> GetMetricSpecResponse {
        let target = spec.target();
        #[allow(deprecated)]
        let metric = MetricSpec {
            metric_name: spec.metric_name.clone(),
            target_size: target.ceil() as i64,
            target_size_float: target,
        };
        GetMetricSpecResponse {
            metric_specs: vec![metric],
        }
    }

    async fn get_metrics_inner(
        &self,
        request: &GetMetricsRequest,
    ) -> Result<GetMetricsResponse, ScalerError> {
        let object = request.scaled_object_ref.clone().unwrap_or_default();
        let spec = Self::spec(&object)?;
        if request.metric_name != spec.metric_name {
            return Err(ScalerError::UnknownMetric {
                requested: request.metric_name.clone(),
                expected: spec.metric_name,
            });
        }
        let queue = self.watch(&spec);
        let work = self.pending(&queue).await?;
        let value = formula::metric_value(&spec, &work);
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
        self.finish("IsActive", started, result)
    }

    type StreamIsActiveStream = ActivationStream;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let started = Instant::now();
        let result = Self::spec(request.get_ref()).map(|spec| {
            let queue = self.watch(&spec);
            debug!(scaled_object = %request.get_ref().name, queue = %queue.name, "activation stream opened");
            activation::spawn(
                self.state.clone(),
                self.metrics.clone(),
                queue,
                spec,
                self.timing.push,
                self.cancel.clone(),
            )
        });
        self.finish("StreamIsActive", started, result)
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let started = Instant::now();
        let result = Self::spec(request.get_ref()).map(|spec| {
            self.watch(&spec);
            Self::metric_spec(&spec)
        });
        self.finish("GetMetricSpec", started, result)
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let started = Instant::now();
        let result = self.get_metrics_inner(request.get_ref()).await;
        self.finish("GetMetrics", started, result)
    }

    type StreamMetricSpecStream = MetricSpecStream;

    async fn stream_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        let started = Instant::now();
        let cancel = self.cancel.clone();
        let result = Self::spec(request.get_ref()).map(|spec| {
            self.watch(&spec);
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let specs = Self::metric_spec(&spec);
            tokio::spawn(async move {
                // The spec of a trigger never changes: send it once, hold the
                // stream open until shutdown or until KEDA goes away.
                if tx.send(Ok(specs)).await.is_ok() {
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = tx.closed() => {}
                    }
                }
            });
            Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)) as MetricSpecStream
        });
        self.finish("StreamMetricSpec", started, result)
    }
}
