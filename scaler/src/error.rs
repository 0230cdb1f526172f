//! The scaler's errors, mapped to gRPC statuses in exactly one place.

use std::time::Duration;

use crate::metadata::MetadataError;

/// Why an RPC cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum ScalerError {
    /// The ScaledObject's trigger metadata is unusable.
    #[error(transparent)]
    InvalidMetadata(#[from] MetadataError),
    /// GetMetrics asked for a metric this trigger does not define.
    #[error("metricName `{requested}` is not this trigger's metric `{expected}`")]
    UnknownMetric {
        /// The name KEDA asked for.
        requested: String,
        /// The name GetMetricSpec answers.
        expected: String,
    },
    /// The broker cannot be read: KEDA keeps the current replicas (or its fallback).
    #[error("broker unavailable: {0}")]
    BrokerUnavailable(String),
    /// The management API (in-flight counts) cannot be read.
    #[error("management API unavailable (in-flight counts unknown): {0}")]
    ManagementUnavailable(String),
    /// The queue has not been sampled yet.
    #[error("queue `{0}` not sampled yet; retry")]
    NotSampledYet(String),
    /// The last sample is too old to be served.
    #[error("queue `{queue}` last sampled {age:?} ago")]
    Stale {
        /// The queue.
        queue: String,
        /// The sample's age.
        age: Duration,
    },
}

impl ScalerError {
    /// The gRPC status code of this error.
    pub fn code(&self) -> tonic::Code {
        match self {
            ScalerError::InvalidMetadata(_) | ScalerError::UnknownMetric { .. } => {
                tonic::Code::InvalidArgument
            }
            ScalerError::BrokerUnavailable(_)
            | ScalerError::ManagementUnavailable(_)
            | ScalerError::NotSampledYet(_)
            | ScalerError::Stale { .. } => tonic::Code::Unavailable,
        }
    }
}

impl From<ScalerError> for tonic::Status {
    fn from(error: ScalerError) -> Self {
        tonic::Status::new(error.code(), error.to_string())
    }
}
