//! The cluster side of `safecity status --kube` and `safecity coldstart
//! --kube`, with the `kube` crate: the KEDA ScaledObjects of a namespace
//! ([`objects`]), one status row per function ([`status`]), and cold starts
//! watched on the cluster, from the published probe to the ready pod and
//! the handled event ([`coldstart`]).
//!
//! The client comes from the usual places (`KUBECONFIG`, `~/.kube/config`,
//! or the pod's service account). The scaler's gRPC and the broker's
//! management API are reached at addresses given on the command line
//! (`kubectl port-forward` them, or run the tools in the cluster).

pub mod coldstart;
pub mod objects;
pub mod status;

/// What can go wrong talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No configuration to reach a cluster.
    #[error("no Kubernetes configuration (KUBECONFIG, ~/.kube/config or a service account): {0}")]
    Config(String),
    /// The API server answered with an error, or could not be reached.
    #[error("the Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// A ScaledObject that KEDA would refuse.
    #[error("ScaledObject `{name}`: {reason}")]
    ScaledObject {
        /// Its name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// No ScaledObject scales the function asked about.
    #[error("no ScaledObject in namespace `{namespace}` scales `{function}` (found: {found})")]
    NoScaledObject {
        /// The namespace.
        namespace: String,
        /// The function asked about.
        function: String,
        /// The ScaledObjects there.
        found: String,
    },
    /// The Deployment a ScaledObject targets does not exist.
    #[error("Deployment `{0}` (the ScaledObject's target) does not exist")]
    NoDeployment(String),
}

/// A client for the cluster of the current kubeconfig (or service account).
pub async fn client() -> Result<kube::Client, KubeError> {
    kube::Client::try_default()
        .await
        .map_err(|error| KubeError::Config(error.to_string()))
}
