#!/usr/bin/env python3
"""The images against the manifests (scripts/images.sh runs this, as root).

    check.py plan   --out PLAN.json
    check.py verify --plan PLAN.json --work DIR [--times FILE] [IMAGE...]

`plan` reads the image table of the root Dockerfile and the Deployments of
`kubectl kustomize manifests/overlays/busan` and `.../local`, and fails
unless they agree: every ghcr.io/safecity image the manifests run is a row,
its ports are exactly the containerPorts of the Deployments that run it, its
tag is one version, and every pod runs as 65532:65532. It writes the plan
(one entry per image: package, binary, ports, reference) and prints one line
per image for the shell: `image bin ports reference`.

`verify` checks the built images (`buildah inspect`): user 65532:65532,
entrypoint ["/usr/local/bin/entrypoint"], exposed ports = the table = the
manifests; and starts every Deployment's container of every image as the
manifests configure it (`buildah run --isolation chroot`, host network):
its env, args and volumes, with these differences only, each printed:

- the broker: Secret values that are amqp:// URLs point at the local
  RabbitMQ (127.0.0.1:5672, guest) in a throw-away vhost, the management URL
  at 127.0.0.1:15672; postgres:// URLs at a throw-away database of the local
  PostgreSQL (127.0.0.1:5432, user postgres, trust auth on loopback);
- listen addresses `0.0.0.0:<containerPort>` become `127.0.0.1:<free port>`;
- the model volume (PVC safecity-models) is target/yolo-assets (yolov4-tiny);
- busan's CUDA detector runs as the local overlay's CPU detector.

Each start must pass the container's own startup, liveness and readiness
probes (HTTP or gRPC health) from the host, run as uid and gid 65532 with no
capabilities (read from the host's /proc), write nothing to its root
filesystem outside its volumes (it is read-only in the manifests), and exit
0 on SIGTERM within its terminationGracePeriodSeconds. Then one summary table.
The Dockerfile.cuda entry (`detector-cuda`) is inspected only.

`verify --ref IMAGE=REF --expect REGEX...` checks REF as IMAGE and must find
a problem matching each REGEX (scripts/images.sh feeds it a broken copy of
an image: root user, wrong entrypoint, an extra port) to prove the check can
fail; it then exits 0 and writes no report.
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ["manifests/overlays/busan", "manifests/overlays/local"]
REGISTRY = "ghcr.io/safecity/"
USER = "65532:65532"
ENTRYPOINT = ["/usr/local/bin/entrypoint"]
PVCS = {"safecity-models": ROOT / "target" / "yolo-assets"}
# What `buildah run` itself puts into a container's root filesystem (mount
# points of /dev, /proc, /sys, /etc/hosts, /etc/resolv.conf, /run/.containerenv).
RUN_FILES = {"dev", "proc", "sys", "run", "etc/hosts", "etc/resolv.conf", "etc/hostname"}
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
MANAGEMENT = "http://guest:guest@127.0.0.1:15672"
POSTGRES = "postgres://postgres@127.0.0.1:5432"
PSQL = ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1"]


def fail(message: str) -> None:
    print(f"images: {message}", file=sys.stderr)
    sys.exit(1)


def run(*args, **kwargs) -> str:
    return subprocess.run(args, check=True, text=True, capture_output=True, **kwargs).stdout


def kubectl() -> str:
    venv = ROOT / ".venv" / "bin" / "kubectl"
    return str(venv) if venv.exists() else (shutil.which("kubectl") or fail("no kubectl"))


# --- plan ---------------------------------------------------------------------


def dockerfile_table(path: Path) -> dict:
    """image -> (package, bin, ports), the parse of validate.py's dockerfile_images."""
    table = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.lstrip("#").strip().strip("|").split("|")]
        if (
            len(cells) >= 4
            and re.fullmatch(r"[a-z][a-z0-9-]*", cells[0])
            and cells[1].startswith("safecity-")
        ):
            ports = sorted(int(p) for p in re.split(r"[,\s]+", cells[3]) if p)
            table[cells[0]] = (cells[1], cells[2], ports)
    return table


def render(overlay: str) -> list:
    out = run(kubectl(), "kustomize", str(ROOT / overlay))
    return [d for d in yaml.safe_load_all(out) if d]


def safecity_containers(docs: list):
    """(Deployment, container, image, tag) for every safecity container."""
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            ref = container["image"]
            if ref.startswith(REGISTRY):
                image, tag = ref[len(REGISTRY):].rsplit(":", 1)
                yield doc, container, image, tag


def pod_user(doc: dict, container: dict) -> str:
    pod = doc["spec"]["template"]["spec"].get("securityContext") or {}
    own = container.get("securityContext") or {}
    user = own.get("runAsUser", pod.get("runAsUser"))
    group = own.get("runAsGroup", pod.get("runAsGroup"))
    return f"{user}:{group}"


def plan(args) -> None:
    table = dockerfile_table(ROOT / "Dockerfile")
    if not table:
        fail("no image table in the Dockerfile's header")
    problems = []
    ports, tags, users, deployments = {}, {}, {}, {}
    cuda = {"ports": set(), "tags": set(), "env": {}, "deployments": []}
    for overlay in OVERLAYS:
        for doc, container, image, tag in safecity_containers(render(overlay)):
            name = doc["metadata"]["name"]
            container_ports = {p["containerPort"] for p in container.get("ports", [])}
            user = pod_user(doc, container)
            if user != USER:
                problems.append(f"{overlay}: {name} runs as {user}, the images as {USER}")
            if "-cuda" in tag:
                cuda["ports"] |= container_ports
                cuda["tags"].add(tag)
                cuda["deployments"].append(f"{overlay.rsplit('/', 1)[-1]}/{name}")
                continue
            if image not in table:
                problems.append(f"{overlay}: {name} runs {image}, not in the Dockerfile's table")
                continue
            ports.setdefault(image, set()).update(container_ports)
            tags.setdefault(image, set()).add(tag)
            users.setdefault(image, set()).add(user)
            deployments.setdefault(image, []).append(f"{overlay.rsplit('/', 1)[-1]}/{name}")
    entries = []
    for image, (package, binary, table_ports) in table.items():
        if image not in ports:
            problems.append(f"the Dockerfile's table has {image}, which no Deployment runs")
            continue
        if sorted(ports[image]) != table_ports:
            problems.append(
                f"{image}: the Dockerfile's table exposes {table_ports}, the Deployments "
                f"({', '.join(deployments[image])}) have containerPorts {sorted(ports[image])}"
            )
        if len(tags[image]) != 1:
            problems.append(f"{image}: several tags in the manifests: {sorted(tags[image])}")
        tag = sorted(tags[image])[0]
        entries.append(
            {
                "image": image,
                "package": package,
                "bin": binary,
                "ports": table_ports,
                "ref": f"{REGISTRY}{image}:{tag}",
                "deployments": deployments[image],
            }
        )
    if len(cuda["tags"]) > 1:
        problems.append(f"detector: several CUDA tags: {sorted(cuda['tags'])}")
    if problems:
        fail("the Dockerfile and the manifests disagree:\n  " + "\n  ".join(problems))
    result = {"images": entries}
    if cuda["tags"]:
        result["cuda"] = {
            "image": "detector-cuda",
            "bin": "detector",
            "ports": sorted(cuda["ports"]),
            "manifest_ref": f"{REGISTRY}detector:{sorted(cuda['tags'])[0]}",
            "ref": "localhost/safecity/detector-cuda-check:latest",
            "deployments": cuda["deployments"],
        }
    Path(args.out).write_text(json.dumps(result, indent=2))
    for entry in entries:
        print(entry["image"], entry["bin"], " ".join(map(str, entry["ports"])), entry["ref"], sep="\t")
    if "cuda" in result:
        c = result["cuda"]
        print(c["image"], c["bin"], " ".join(map(str, c["ports"])), c["ref"], sep="\t")


# --- verify: inspect ------------------------------------------------------------


STORAGE = Path("/var/lib/containers/storage")


def layer_sizes(ref: str) -> tuple:
    """(whole image, its top layer) in bytes, uncompressed, from the store's
    layer records (buildah prints sizes rounded)."""
    image_id = run("buildah", "images", "-q", "--no-trunc", ref).split()[0].split(":")[-1]
    images = json.loads((STORAGE / "overlay-images" / "images.json").read_text())
    layers = {l["id"]: l for l in json.loads((STORAGE / "overlay-layers" / "layers.json").read_text())}
    top = next(i["layer"] for i in images if i["id"] == image_id)
    total, layer = 0, top
    while layer:
        total += layers[layer].get("diff-size", 0)
        layer = layers[layer].get("parent")
    return total, layers[top].get("diff-size", 0)


def compressed_size(ref: str, work: Path) -> int:
    """What a pull transfers: the gzip-compressed layers, as `buildah push`
    writes them (here to an OCI layout folder, not a registry)."""
    folder = work / "oci"
    shutil.rmtree(folder, ignore_errors=True)
    try:
        run("buildah", "push", "--quiet", ref, f"oci:{folder}:image")
        index = json.loads((folder / "index.json").read_text())
        digest = index["manifests"][0]["digest"].split(":", 1)[1]
        manifest = json.loads((folder / "blobs" / "sha256" / digest).read_text())
        return sum(layer["size"] for layer in manifest["layers"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def inspect(ref: str, work: Path) -> dict:
    data = json.loads(run("buildah", "inspect", "--type", "image", ref))
    config = data["OCIv1"]["config"]
    size, top = layer_sizes(ref)
    return {
        "user": config.get("User", ""),
        "entrypoint": config.get("Entrypoint") or [],
        "cmd": config.get("Cmd") or [],
        "ports": sorted(int(p.split("/")[0]) for p in (config.get("ExposedPorts") or {})),
        "env": dict(e.split("=", 1) for e in config.get("Env") or []),
        "size": size,
        "top_layer": top,
        "compressed": compressed_size(ref, work),
    }


def check_config(entry: dict, config: dict) -> list:
    problems = []
    if config["user"] != USER:
        problems.append(f"user {config['user']!r}, not {USER}")
    if config["entrypoint"] != ENTRYPOINT:
        problems.append(f"entrypoint {config['entrypoint']}, not {ENTRYPOINT}")
    if config["ports"] != entry["ports"]:
        problems.append(f"exposes {config['ports']}, the table and manifests {entry['ports']}")
    return problems


# --- verify: smoke ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A throw-away vhost on the local RabbitMQ and a throw-away database on
    the local PostgreSQL, both deleted on exit."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.vhost = f"safecity-images-{tag}"
        run("rabbitmqctl", "-q", "add_vhost", self.vhost)
        run("rabbitmqctl", "-q", "set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        self.amqp = AMQP + self.vhost
        self.database = f"safecity_images_{tag}"
        run(*PSQL, "-c", f"CREATE DATABASE {self.database}")
        self.postgres = f"{POSTGRES}/{self.database}"

    def close(self) -> None:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.vhost], capture_output=True)
        subprocess.run([*PSQL, "-c", f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)"], capture_output=True)


def local_value(value: str, key: str, broker: Broker) -> tuple:
    """A Secret's value for the smoke run, and what was replaced (or None)."""
    if re.match(r"amqps?://", value):
        return broker.amqp, f"{key}: local broker, vhost {broker.vhost}"
    if re.match(r"https?://[^/]*:15672", value):
        return MANAGEMENT, f"{key}: local management API"
    if re.match(r"postgres(ql)?://", value):
        return broker.postgres, f"{key}: local PostgreSQL, database {broker.database}"
    return value, None


def resolve_in(root: Path, path: str, depth: int = 0) -> str:
    """`path` inside the filesystem at `root`, its symbolic links followed
    within that root (absolute targets are relative to it)."""
    if depth > 40:
        fail(f"{path}: too many symbolic links")
    parts = [p for p in path.split("/") if p]
    current = "/"
    for i, part in enumerate(parts):
        candidate = os.path.join(current, part)
        on_host = root / candidate.lstrip("/")
        if on_host.is_symlink():
            target = os.readlink(on_host)
            joined = target if target.startswith("/") else os.path.join(current, target)
            rest = "/".join(parts[i + 1:])
            return resolve_in(root, os.path.normpath(os.path.join(joined, rest)), depth + 1)
        current = candidate
    return current


class Pod:
    """One Deployment's container, started from its image as the manifests say."""

    def __init__(self, doc, container, by_kind, entry, config, broker, work: Path):
        self.name = doc["metadata"]["name"]
        self.doc, self.container, self.entry, self.config = doc, container, entry, config
        self.work = work / self.name
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.notes = []
        self.secrets = {}
        for name, secret in by_kind.get("Secret", {}).items():
            data = {}
            for key, raw in (secret.get("data") or {}).items():
                value, note = local_value(base64.b64decode(raw).decode(), key, broker)
                data[key] = value
                if note:
                    self.secrets.setdefault(name, []).append(note)
            for key, value in (secret.get("stringData") or {}).items():
                data[key] = value
            by_kind["Secret"][name]["_plain"] = data
        self.by_kind = by_kind
        self.ports = {}  # containerPort -> host port
        self.mounted = []  # the volumes' mount paths, resolved in the image
        self.env = self.resolve_env()
        self.volumes = self.resolve_volumes()

    def lookup(self, kind: str, ref: dict) -> str:
        obj = self.by_kind.get(kind, {}).get(ref["name"])
        if obj is None:
            fail(f"{self.name}: no {kind} {ref['name']}")
        data = obj["_plain"] if kind == "Secret" else obj.get("data") or {}
        if ref["key"] not in data:
            fail(f"{self.name}: {kind} {ref['name']} has no key {ref['key']}")
        if kind == "Secret":
            for note in self.secrets.get(ref["name"], []):
                if note.startswith(ref["key"] + ":") and note not in self.notes:
                    self.notes.append(note)
        return data[ref["key"]]

    def listen(self, value: str, what: str) -> str:
        match = re.fullmatch(r"0\.0\.0\.0:(\d+)", value)
        if not match:
            return value
        port = int(match.group(1))
        host = self.ports.setdefault(port, free_port())
        self.notes.append(f"{what}: 127.0.0.1:{host} (containerPort {port})")
        return f"127.0.0.1:{host}"

    def resolve_env(self) -> dict:
        env = {}
        for source in self.container.get("envFrom", []):
            if "configMapRef" in source:
                env.update(self.by_kind["ConfigMap"][source["configMapRef"]["name"]].get("data", {}))
            if "secretRef" in source:
                env.update(self.by_kind["Secret"][source["secretRef"]["name"]]["_plain"])
        for item in self.container.get("env", []):
            if "value" in item:
                value = item["value"]
            elif "secretKeyRef" in item["valueFrom"]:
                value = self.lookup("Secret", item["valueFrom"]["secretKeyRef"])
            elif "configMapKeyRef" in item["valueFrom"]:
                value = self.lookup("ConfigMap", item["valueFrom"]["configMapKeyRef"])
            elif "fieldRef" in item["valueFrom"]:
                path = item["valueFrom"]["fieldRef"]["fieldPath"]
                value = {"metadata.name": f"{self.name}-smoke", "metadata.namespace": "safecity"}.get(
                    path, "127.0.0.1"
                )
            else:
                fail(f"{self.name}: env {item['name']}: unsupported valueFrom {item['valueFrom']}")
            env[item["name"]] = self.listen(value, item["name"])
        return env

    def resolve_volumes(self) -> list:
        """(host path, container path, read-only) for every volumeMount."""
        volumes = {v["name"]: v for v in self.doc["spec"]["template"]["spec"].get("volumes", [])}
        mounts = []
        for mount in self.container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            host = self.work / "volumes" / mount["name"]
            if "configMap" in volume or "secret" in volume:
                kind, ref = ("ConfigMap", volume["configMap"]) if "configMap" in volume else (
                    "Secret",
                    volume["secret"],
                )
                name = ref.get("name") or ref.get("secretName")
                obj = self.by_kind.get(kind, {}).get(name) or fail(f"{self.name}: no {kind} {name}")
                data = obj["_plain"] if kind == "Secret" else obj.get("data") or {}
                items = ref.get("items") or [{"key": k, "path": k} for k in data]
                host.mkdir(parents=True, exist_ok=True)
                for item in items:
                    (host / item["path"]).parent.mkdir(parents=True, exist_ok=True)
                    (host / item["path"]).write_text(data[item["key"]])
                    if kind == "Secret":
                        for note in self.secrets.get(name, []):
                            if note.startswith(item["key"] + ":"):
                                self.notes.append(f"{mount['mountPath']}/{item['path']}: " + note.split(": ", 1)[1])
            elif "emptyDir" in volume:
                host.mkdir(parents=True, exist_ok=True)
                os.chmod(host, 0o777)
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                if claim not in PVCS:
                    fail(f"{self.name}: no local stand-in for the PVC {claim}")
                host = PVCS[claim]
                self.notes.append(f"{mount['mountPath']}: {host.relative_to(ROOT)} (PVC {claim})")
            else:
                fail(f"{self.name}: unsupported volume {volume}")
            if mount.get("subPath"):
                host = host / mount["subPath"]
            mounts.append((host, mount["mountPath"], bool(mount.get("readOnly"))))
        return mounts

    def command(self) -> list:
        command = self.container.get("command") or self.config["entrypoint"]
        args = self.container.get("args")
        if args is None and not self.container.get("command"):
            args = self.config["cmd"]
        return command + (args or [])

    def probe(self, spec: dict) -> bool:
        named = {p.get("name"): p["containerPort"] for p in self.container.get("ports", [])}
        if "httpGet" in spec:
            port = spec["httpGet"]["port"]
            port = named.get(port, port)
            url = f"http://127.0.0.1:{self.ports[int(port)]}{spec['httpGet'].get('path', '/')}"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return 200 <= response.status < 400
            except (urllib.error.URLError, OSError):
                return False
        if "grpc" in spec:
            import grpc

            port = self.ports[int(spec["grpc"]["port"])]
            service = spec["grpc"].get("service", "").encode()
            request = b"\x0a" + bytes([len(service)]) + service if service else b""
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                check = channel.unary_unary(
                    "/grpc.health.v1.Health/Check",
                    request_serializer=lambda b: b,
                    response_deserializer=lambda b: b,
                )
                try:
                    return check(request, timeout=2) == b"\x08\x01"  # status: SERVING
                except grpc.RpcError:
                    return False
        fail(f"{self.name}: unsupported probe {spec}")
        return False

    def smoke(self) -> dict:
        result = {"deployment": self.name, "image": self.entry["image"], "ok": False, "problems": []}
        problems = result["problems"]
        container_name = f"safecity-smoke-{self.name}"
        subprocess.run(["buildah", "rm", container_name], capture_output=True)
        cid = run("buildah", "from", "--pull=never", "--quiet", "--name", container_name, self.entry["ref"]).strip()
        log_path = self.work / "log"
        started = time.monotonic()
        process = None
        try:
            # Mount paths are resolved in the image, as the kubelet's runtime
            # does: the base's /var/run is a link to /run, and buildah would
            # follow such a link on the host instead.
            root = Path(run("buildah", "mount", cid).strip())
            self.mounted = []
            for host, path, read_only in self.volumes:
                inside = resolve_in(root, path)
                if inside != path:
                    print(f"    {path}: mounted at {inside} (a link in the image)")
                self.mounted.append(inside)
            run("buildah", "umount", cid)
            command = ["buildah", "run", "--isolation", "chroot", "--network", "host"]
            for (host, _, read_only), inside in zip(self.volumes, self.mounted):
                command += ["--volume", f"{host}:{inside}:{'ro' if read_only else 'rw'}"]
            for key, value in self.env.items():
                command += ["--env", f"{key}={value}"]
            command += [cid, "--"] + self.command()
            with open(log_path, "w") as log:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            probes = {
                kind: self.container[kind]
                for kind in ("startupProbe", "livenessProbe", "readinessProbe")
                if kind in self.container
            }
            passed = {}
            deadline = started + (120 if self.entry["image"] == "detector" else 60)
            while len(passed) < len(probes) and time.monotonic() < deadline and process.poll() is None:
                for kind, spec in probes.items():
                    if kind not in passed and self.probe(spec):
                        passed[kind] = time.monotonic() - started
                time.sleep(0.2)
            result["healthy_s"] = passed.get("livenessProbe")
            result["ready_s"] = passed.get("readinessProbe")
            for kind in probes:
                if kind not in passed:
                    what = probes[kind].get("httpGet", probes[kind].get("grpc"))
                    problems.append(f"{kind} {what} never passed")
            if process.poll() is not None:
                problems.append(f"exited early with {process.returncode}")
            pid = self.find_process(process.pid)
            if pid is None:
                problems.append(f"no process /usr/local/bin/{self.entry['bin']} found")
            else:
                status = dict(
                    line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                )
                uids, gids = status["Uid"].split(), status["Gid"].split()
                groups = status["Groups"].split()
                result["uid"] = f"{uids[0]}:{gids[0]}"
                if set(uids) != {"65532"} or set(gids) != {"65532"}:
                    problems.append(f"runs as uid {uids} gid {gids}")
                if any(g != "65532" for g in groups):
                    problems.append(f"supplementary groups {groups}")
                if int(status["CapEff"], 16) != 0:
                    problems.append(f"effective capabilities {status['CapEff'].strip()}")
                os.kill(pid, signal.SIGTERM)
            grace = self.doc["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
            stop = time.monotonic()
            try:
                code = process.wait(timeout=grace)
                result["stop_s"] = time.monotonic() - stop
                if code != 0 and pid is not None:
                    problems.append(f"exit code {code} after SIGTERM")
            except subprocess.TimeoutExpired:
                problems.append(f"still running {grace} s after SIGTERM")
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                process.wait(timeout=30)
            written = self.rootfs_writes(cid)
            if written:
                problems.append(f"wrote to its read-only root filesystem: {', '.join(written[:5])}")
        finally:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
            subprocess.run(["buildah", "rm", cid], capture_output=True)
        result["total_s"] = time.monotonic() - started
        result["ok"] = not problems
        if problems:
            print(f"--- {self.name}: last lines of its log ({log_path})", file=sys.stderr)
            lines = log_path.read_text(errors="replace").splitlines()
            print("\n".join(lines[-30:]), file=sys.stderr)
        return result

    def find_process(self, parent: int):
        """The binary among the descendants of `buildah run` (by its exe)."""
        wanted = f"/usr/local/bin/{self.entry['bin']}"
        queue = [parent]
        while queue:
            pid = queue.pop()
            try:
                if os.readlink(f"/proc/{pid}/exe").endswith(wanted):
                    return pid
            except OSError:
                pass
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                try:
                    queue += [int(c) for c in task.read_text().split()]
                except OSError:
                    pass
        return None

    def rootfs_writes(self, cid: str) -> list:
        """Paths the run created or changed in the container's own layer,
        less `buildah run`'s own mount points and the volumes' mount points."""
        container_id = json.loads(run("buildah", "inspect", "--type", "container", cid))["ContainerID"]
        diff = None
        records = STORAGE / "overlay-containers" / "containers.json"
        if records.exists():
            for item in json.loads(records.read_text()):
                if item["id"] == container_id:
                    diff = STORAGE / "overlay" / item["layer"] / "diff"
        if diff is None or not diff.is_dir():
            return ["(could not find the container's layer)"]
        allowed = set()
        for path in list(RUN_FILES) + [m.lstrip("/") for m in self.mounted]:
            parts = Path(path).parts
            for i in range(1, len(parts) + 1):
                allowed.add("/".join(parts[:i]))
        written = []
        for dirpath, dirnames, filenames in os.walk(diff):
            for name in dirnames + filenames:
                relative = os.path.relpath(os.path.join(dirpath, name), diff)
                if relative not in allowed and not any(
                    relative.startswith(a + "/") for a in ("dev", "proc", "sys", "run")
                ):
                    written.append("/" + relative)
        return written


# --- verify ---------------------------------------------------------------------


def by_kind_of(docs: list) -> dict:
    out = {}
    for doc in docs:
        out.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    return out


def human(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size else "?"


def seconds(value) -> str:
    return "-" if value is None else f"{value:.1f} s"


BASE = "localhost/safecity-base:bookworm"


def verify(args) -> None:
    plan_data = json.loads(Path(args.plan).read_text())
    entries = {e["image"]: e for e in plan_data["images"]}
    if "cuda" in plan_data:
        entries["detector-cuda"] = plan_data["cuda"]
    wanted = args.images or list(entries)
    unknown = [image for image in wanted if image not in entries]
    if unknown:
        fail(f"not in the plan: {', '.join(unknown)}")
    for override in args.ref:
        image, ref = override.split("=", 1)
        entries[image] = dict(entries[image], ref=ref)
    times, modes = {}, {}
    if args.times and Path(args.times).exists():
        for line in Path(args.times).read_text().splitlines():
            image, took, mode = line.split("\t")
            times[image], modes[image] = float(took), mode
    work = Path(args.work) / "smoke"
    work.mkdir(parents=True, exist_ok=True)
    configs, problems = {}, []
    for image in wanted:
        entry = entries[image]
        configs[image] = inspect(entry["ref"], work)
        for problem in check_config(entry, configs[image]):
            problems.append(f"{image}: {problem}")
        if image == "detector-cuda" and configs[image]["env"].get("SAFECITY_DETECTOR_DEVICE") != "cuda":
            problems.append("detector-cuda: SAFECITY_DETECTOR_DEVICE is not cuda")
    base_size = layer_sizes(BASE)[0]
    base_compressed = compressed_size(BASE, work)
    # Every Deployment of every built CPU image, busan first (the local
    # overlay adds the CPU detector).
    runs, seen = [], set()
    for overlay in OVERLAYS:
        docs = render(overlay)
        kinds = by_kind_of(docs)
        for doc, container, image, tag in safecity_containers(docs):
            name = doc["metadata"]["name"]
            if image in configs and "-cuda" not in tag and name not in seen:
                seen.add(name)
                runs.append((doc, container, kinds, image))
    results = []
    broker = Broker()
    try:
        for doc, container, kinds, image in runs:
            pod = Pod(doc, container, kinds, entries[image], configs[image], broker, work)
            print(f"==> {doc['metadata']['name']} ({entries[image]['ref']}): {' '.join(pod.command())}")
            for note in pod.notes:
                print(f"    {note}")
            result = pod.smoke()
            print(
                f"    {'ok' if result['ok'] else 'FAILED'}: healthy {seconds(result.get('healthy_s'))}, "
                f"ready {seconds(result.get('ready_s'))}, uid {result.get('uid', '?')}, "
                f"stopped in {seconds(result.get('stop_s'))}"
            )
            for problem in result["problems"]:
                print(f"    - {problem}")
                problems.append(f"{result['deployment']}: {problem}")
            results.append(result)
    finally:
        broker.close()
    if args.expect:
        missed = [e for e in args.expect if not any(re.search(e, p) for p in problems)]
        if missed:
            fail("the check let a broken image through: no problem matches " + ", ".join(missed))
        print(f"    the check caught the broken image: {len(problems)} problems, as expected")
        return
    rows = [
        ("image", "binaries", "build", "size", "gzip", "own layer", "user", "entrypoint", "ports", "smoke")
    ]
    rows.append(
        (
            BASE,
            "debootstrap" if "base" in times else "(kept)",
            seconds(times.get("base")),
            human(base_size),
            human(base_compressed),
            "",
            "65532:65532",
            "",
            "",
            "",
        )
    )
    report = {"base": {"ref": BASE, "build_s": times.get("base"), "size": base_size,
                       "compressed": base_compressed}, "images": [], "runs": results}
    for image in wanted:
        config, own = configs[image], [r for r in results if r["image"] == image]
        if image == "detector-cuda":
            smoke = "config only"
        else:
            smoke = f"{sum(r['ok'] for r in own)}/{len(own)} ok" if own else "no Deployment"
        ref = entries[image]["ref"] if image != "detector-cuda" else f"{image} ({entries[image]['manifest_ref']})"
        rows.append(
            (
                ref,
                modes.get(image, "?"),
                seconds(times.get(image)),
                human(config["size"]),
                human(config["compressed"]),
                human(config["top_layer"]),
                config["user"],
                " ".join(config["entrypoint"]),
                ",".join(map(str, config["ports"])),
                smoke,
            )
        )
        report["images"].append(
            {
                "image": image,
                "ref": entries[image]["ref"],
                "binaries": modes.get(image),
                "build_s": times.get(image),
                "size": config["size"],
                "compressed": config["compressed"],
                "top_layer": config["top_layer"],
                "user": config["user"],
                "entrypoint": config["entrypoint"],
                "ports": config["ports"],
                "smoke": smoke,
            }
        )
    runs_rows = [("deployment", "image", "healthy", "ready", "uid:gid", "SIGTERM", "result")]
    for r in results:
        runs_rows.append(
            (
                r["deployment"],
                r["image"],
                seconds(r.get("healthy_s")),
                seconds(r.get("ready_s")),
                r.get("uid", "?"),
                f"exit 0 in {seconds(r.get('stop_s'))}" if r.get("stop_s") is not None and r["ok"] else "-",
                "ok" if r["ok"] else "FAILED",
            )
        )
    print()
    print("build: seconds of `buildah bud` (the base: debootstrap to commit); size: uncompressed;")
    print("gzip: the compressed layers a pull transfers; own layer: what the Dockerfile adds to the base")
    print_table(rows)
    print()
    print_table(runs_rows)
    report["problems"] = problems
    (Path(args.work) / "report.json").write_text(json.dumps(report, indent=2))
    if problems:
        fail("the images do not match the manifests:\n  " + "\n  ".join(problems))


def print_table(rows: list) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("plan")
    p.add_argument("--out", required=True)
    v = commands.add_parser("verify")
    v.add_argument("--plan", required=True)
    v.add_argument("--work", required=True)
    v.add_argument("--times")
    v.add_argument("--ref", action="append", default=[], metavar="IMAGE=REF",
                   help="check REF as IMAGE (a deliberately broken copy)")
    v.add_argument("--expect", action="append", default=[], metavar="REGEX",
                   help="the check must fail with a problem matching each REGEX (then exit 0)")
    v.add_argument("images", nargs="*")
    args = parser.parse_args()
    {"plan": plan, "verify": verify}[args.command](args)


if __name__ == "__main__":
    main()
