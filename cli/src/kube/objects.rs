//! The KEDA objects of a namespace, read through the API server and parsed
//! with the same code that reads them from `manifests/` for the local city
//! ([`crate::city::scaled_object::parse`]), so both see the same defaults.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

use super::KubeError;
use crate::city::scaled_object::{self, ScaledObject};

/// KEDA's ScaledObject resource (`keda.sh/v1alpha1`).
pub fn scaled_object_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "keda.sh",
        "v1alpha1",
        "ScaledObject",
    ))
}

/// The ScaledObjects of `namespace`, sorted by name.
pub async fn scaled_objects(
    client: &Client,
    namespace: &str,
) -> Result<Vec<ScaledObject>, KubeError> {
    let resource = scaled_object_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let list = api.list(&ListParams::default()).await?;
    let mut found = Vec::new();
    for item in list.items {
        let name = item.metadata.name.clone().unwrap_or_default();
        let mut value = serde_json::to_value(&item).map_err(|error| KubeError::ScaledObject {
            name: name.clone(),
            reason: error.to_string(),
        })?;
        // List items may come without their type; the parser wants it.
        value["apiVersion"] = serde_json::Value::from(resource.api_version.clone());
        value["kind"] = serde_json::Value::from(resource.kind.clone());
        if value["metadata"]["namespace"].is_null() {
            value["metadata"]["namespace"] = serde_json::Value::from(namespace);
        }
        // JSON is YAML: one parser for the manifests and the cluster.
        let parsed =
            scaled_object::parse(&value.to_string()).map_err(|error| KubeError::ScaledObject {
                name: name.clone(),
                reason: error.to_string(),
            })?;
        found.extend(parsed);
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The ScaledObject named `function`, or the one whose target is the
/// Deployment `function`.
pub async fn scaled_object_of(
    client: &Client,
    namespace: &str,
    function: &str,
) -> Result<ScaledObject, KubeError> {
    let all = scaled_objects(client, namespace).await?;
    let found = all
        .iter()
        .map(|so| so.name.clone())
        .collect::<Vec<_>>()
        .join(", ");
    all.into_iter()
        .find(|so| so.name == function || so.target == function)
        .ok_or_else(|| KubeError::NoScaledObject {
            namespace: namespace.to_owned(),
            function: function.to_owned(),
            found: if found.is_empty() {
                "none".to_owned()
            } else {
                found
            },
        })
}

/// The Deployment `name` and its pods' label selector (`key=value,...`).
pub async fn deployment(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(Deployment, String), KubeError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = api
        .get_opt(name)
        .await?
        .ok_or_else(|| KubeError::NoDeployment(name.to_owned()))?;
    let selector = deployment
        .spec
        .selector
        .match_labels
        .as_ref()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Ok((deployment, selector))
}
