//! `safecity status --kube`: one row per ScaledObject of the namespace —
//! its Deployment's desired and ready replicas (the API server), pending
//! work and activity as the scaler sees them (its gRPC, asked exactly as
//! KEDA asks it), the dead letters (the broker's management API) and the
//! last cold start (the newest pod: created -> Ready).

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};
use safecity_scaler::pb::external_scaler_client::ExternalScalerClient;

use super::KubeError;
use super::objects::{deployment, scaled_objects};
use crate::city::autoscaler::ask_scaler;
use crate::status::{Row, StatusArgs};

/// The rows of `args.namespace`. The scaler and the management API are
/// optional: when one does not answer, its columns are empty and a warning
/// says why.
pub async fn rows(client: &Client, args: &StatusArgs) -> Result<Vec<Row>, KubeError> {
    let objects = scaled_objects(client, &args.namespace).await?;
    let mut scaler = match tonic::transport::Endpoint::from_shared(format!(
        "http://{}",
        args.scaler
    )) {
        Ok(endpoint) => match endpoint
            .connect_timeout(std::time::Duration::from_secs(3))
            .connect()
            .await
        {
            Ok(channel) => Some(ExternalScalerClient::new(channel)),
            Err(error) => {
                eprintln!(
                    "warning: the scaler at {} does not answer ({error}): no PENDING/ACTIVE (kubectl -n {} port-forward svc/safecity-scaler 6000)",
                    args.scaler, args.namespace
                );
                None
            }
        },
        Err(error) => {
            eprintln!("warning: --scaler {}: {error}", args.scaler);
            None
        }
    };
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|error| KubeError::Config(error.to_string()))?;
    let mut rows = Vec::new();
    for so in objects {
        let (desired, ready, selector) = match deployment(client, &args.namespace, &so.target).await
        {
            Ok((deployment, selector)) => (
                deployment.spec.replicas.unwrap_or(0),
                deployment
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0),
                selector,
            ),
            Err(KubeError::NoDeployment(_)) => (0, 0, String::new()),
            Err(error) => return Err(error),
        };
        let view = match (scaler.as_mut(), so.scaler_ref()) {
            (Some(scaler), Some(reference)) => ask_scaler(scaler, &reference).await.ok().flatten(),
            _ => None,
        };
        rows.push(Row {
            function: so.target.clone(),
            scaled_object: so.name.clone(),
            desired: u32::try_from(desired).unwrap_or(0),
            ready: u32::try_from(ready).unwrap_or(0),
            pending: view.as_ref().map(|v| v.metric),
            active: view.as_ref().map(|v| v.active),
            dead_letters: dead_letters(&http, &args.management, &args.vhost, &so.target).await,
            last_cold_start_ms: if selector.is_empty() {
                None
            } else {
                last_cold_start(client, &args.namespace, &selector).await?
            },
        });
    }
    Ok(rows)
}

/// Messages in `function`'s dead-letter queue, from the management API.
async fn dead_letters(
    http: &reqwest::Client,
    management: &str,
    vhost: &str,
    function: &str,
) -> Option<u64> {
    let vhost: String = vhost
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let url = format!(
        "{}/api/queues/{vhost}/safecity.fn.{function}.dead",
        management.trim_end_matches('/')
    );
    let queue: serde_json::Value = http
        .get(url)
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .json()
        .await
        .ok()?;
    queue["messages"].as_u64()
}

/// The newest pod's time from creation to Ready, in milliseconds: the cold
/// start a probe would see, at the API server's one-second resolution.
async fn last_cold_start(
    client: &Client,
    namespace: &str,
    selector: &str,
) -> Result<Option<u64>, KubeError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods.list(&ListParams::default().labels(selector)).await?;
    let newest = list
        .items
        .iter()
        .filter_map(|pod| {
            let created = pod.metadata.creation_timestamp.as_ref()?.0;
            let ready = pod
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready" && c.status == "True")?
                .last_transition_time
                .as_ref()?
                .0;
            Some((created, ready))
        })
        .max_by_key(|(created, _)| *created);
    Ok(newest.map(|(created, ready)| {
        u64::try_from(ready.duration_since(created).as_millis()).unwrap_or(0)
    }))
}
