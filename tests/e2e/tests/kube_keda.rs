//! The KEDA side of the kube tools against a REAL CRD-serving Kubernetes API
//! server (apiextensions-apiserver + etcd, the dev tool of
//! shared/tools/crd-apiserver): KEDA's ScaledObject CRD is installed, the
//! rendered `manifests/overlays/local` ScaledObjects are created through the
//! API (so the server validates them against KEDA's structural schema), a
//! broken one is refused, and `safecity_cli::kube::objects` — what `status
//! --kube` and `coldstart --kube` read — lists and parses them exactly as
//! the local city parses the manifests.
//!
//! The server is a development tool, not a project dependency: the test
//! skips, saying so, when it is absent (`SAFECITY_CRD_APISERVER_DIR`, or
//! `../shared/tools/crd-apiserver` with the binary built by its build.sh).
//! The core kinds are mocked elsewhere (`tests/kube_tools.rs`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use safecity_cli::city::scaled_object;
use safecity_cli::kube::objects::{scaled_object_resource, scaled_objects};
use safecity_e2e::root;
use serde::Deserialize;

/// The dev tool's folder and the KEDA CRD it serves, if both are here.
fn dev_tool() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let tools = std::env::var_os("SAFECITY_CRD_APISERVER_DIR").map_or_else(
        || root().join("../shared/tools/crd-apiserver"),
        PathBuf::from,
    );
    let binary = std::env::var_os("SAFECITY_CRD_APISERVER_BIN").map_or_else(
        || PathBuf::from("/tmp/crd-apiserver/apiextensions-apiserver"),
        PathBuf::from,
    );
    let crd = tools.join("../../schemas/keda/v2.20.2/keda.sh_scaledobjects.yaml");
    (tools.join("start.sh").is_file() && binary.is_file() && crd.is_file())
        .then_some((tools, binary, crd))
}

/// A CA and an X.509 v3 client certificate in `system:masters`, where
/// start.sh looks for them (it keeps existing ones): kube's TLS (rustls)
/// refuses the v1 certificate start.sh would make, which Go's client takes.
fn client_certificate(pki: &std::path::Path) {
    std::fs::create_dir_all(pki).expect("the pki folder");
    let extensions = pki.join("client.ext");
    std::fs::write(
        &extensions,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    )
    .expect("extensions");
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(pki)
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "admin.key",
        "-out",
        "admin.csr",
        "-subj",
        "/O=system:masters/CN=admin",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "admin.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "admin.crt",
        "-days",
        "2",
        "-extfile",
        "client.ext",
    ]);
}

/// The running server: stopped on drop.
struct Server {
    folder: PathBuf,
    kubeconfig: PathBuf,
}

impl Server {
    fn start(tools: &std::path::Path, binary: &std::path::Path) -> Self {
        let folder =
            std::env::temp_dir().join(format!("safecity-crd-apiserver-{}", std::process::id()));
        let port = |offset: u16| -> String {
            let base = 20000 + u16::try_from(std::process::id() % 20000).unwrap_or(0);
            (base + offset).to_string()
        };
        client_certificate(&folder.join("pki"));
        let output = Command::new("bash")
            .arg(tools.join("start.sh"))
            .env("BIN", binary)
            .env("D", &folder)
            .env("PORT", port(0))
            .env("ETCD_PORT", port(2))
            .output()
            .expect("start.sh runs");
        assert!(
            output.status.success(),
            "the CRD API server did not start:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let kubeconfig = String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .expect("the kubeconfig path")
            .trim()
            .into();
        Server { folder, kubeconfig }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for pid in ["apiserver.pid", "etcd.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.folder.join(pid)) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

fn rendered_local() -> String {
    let output = Command::new(root().join(".venv/bin/kubectl"))
        .arg("kustomize")
        .arg(root().join("manifests/overlays/local"))
        .output()
        .expect("kubectl runs (scripts/python-peers.sh)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaled_objects_created_on_a_real_api_server_are_read_as_the_local_city_reads_the_manifests()
 {
    let Some((tools, binary, crd_file)) = dev_tool() else {
        eprintln!(
            "skipped: no CRD-serving API server here (build it with shared/tools/crd-apiserver/build.sh, \
             or set SAFECITY_CRD_APISERVER_DIR and SAFECITY_CRD_APISERVER_BIN)"
        );
        return;
    };
    let server = Server::start(&tools, &binary);
    let kubeconfig = Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");

    // KEDA's CRD, installed and established.
    let crd: CustomResourceDefinition =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&crd_file).expect("the CRD"))
            .expect("a CRD");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("the CRD is created");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let current = crds.get("scaledobjects.keda.sh").await.expect("the CRD");
        let established = current
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the CRD was never established"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // KEDA serves the kind only once discovery knows it: retry the first create.
    let resource = scaled_object_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "safecity", &resource);
    let text = rendered_local();
    let documents: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde_yaml_ng::Value::deserialize(d).expect("YAML"))
        .filter(|d| d["kind"].as_str() == Some("ScaledObject"))
        .map(|d| serde_json::to_value(d).expect("JSON"))
        .collect();
    assert_eq!(
        documents.len(),
        4,
        "the local overlay scales four functions"
    );
    for document in &documents {
        let object: DynamicObject = serde_json::from_value(document.clone()).expect("an object");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match api.create(&PostParams::default(), &object).await {
                Ok(_) => break,
                Err(error) if tokio::time::Instant::now() < deadline => {
                    eprintln!("retrying create: {error}");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(error) => panic!(
                    "the server refused {}: {error}",
                    document["metadata"]["name"]
                ),
            }
        }
    }

    // The server validates: a wrong type is refused with the field named.
    let mut broken = documents[0].clone();
    broken["metadata"]["name"] = serde_json::json!("broken");
    broken["spec"]["pollingInterval"] = serde_json::json!("often");
    let broken: DynamicObject = serde_json::from_value(broken).expect("an object");
    let refused = api
        .create(&PostParams::default(), &broken)
        .await
        .expect_err("refused");
    assert!(refused.to_string().contains("pollingInterval"), "{refused}");

    // What the kube tools read equals what the local city reads.
    let from_cluster = scaled_objects(&client, "safecity")
        .await
        .expect("listed and parsed");
    let mut from_manifests = scaled_object::parse(&text).expect("the manifests parse");
    from_manifests.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(from_cluster, from_manifests);
    drop(server);
}
