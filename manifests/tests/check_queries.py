#!/usr/bin/env python3
"""Proves the monitoring's queries against a real Prometheus scraping real processes.

    .venv/bin/python manifests/tests/check_queries.py [--city FILE] [--targets FILE]
                                                      [--wait SECONDS] [--keep DIR]

Every recording rule, alert and dashboard query is checked on live data from
the local city (`safecity up`, or any processes you list):

1. reads the scrape targets: the local city's discovery file (default
   $TMPDIR/safecity-city.json) — its `scrape_targets` list, or else its
   `control` API's Prometheus HTTP service discovery (`/api/scrape-targets`,
   which also lists function replicas as they come and go) — or a JSON file
   given with --targets (a list). A target is either
       {"job": "scaler", "url": "http://127.0.0.1:PORT/metrics",
        "labels": {"pod": "scaler-0", ...}}
   or a Prometheus service-discovery group
       {"targets": ["127.0.0.1:PORT"],
        "labels": {"job": "scaler", "pod": "scaler-0", "__metrics_path__": "/metrics"}};
2. gives every target the labels the PodMonitors give pods on a cluster (the
   label contract in components/monitoring/podmonitors.yaml and the README:
   `job`, `namespace`, `pod`), so that the cluster's queries run unchanged;
3. writes a prometheus.yml (scrape and rule evaluation every second; rule_files
   = the rules extracted from the PrometheusRule by check_rules.py) and starts
   Debian's `prometheus` on a free loopback port with a temporary storage
   folder;
4. waits --wait seconds, then asks it, over its HTTP API, with range queries
   over the whole time it scraped (as a dashboard does: a function that scaled
   back to zero a minute ago still shows):
   (a) that every expression parses (Prometheus' own parser answers);
   (b) that it returns at least one series: for recording rules, dashboard
       panels and variables, the whole expression; for alerts, the part that
       carries the signal (the left side of each comparison with a number, each
       operand of and/or, the argument of absent()), since a healthy city's
       alert expressions are rightly empty. An empty one is reported with the
       selectors (metric names and labels) that have no series.

A few series exist only after something went wrong (a dropped frame, a
failed RPC); they are listed in ALLOWED_EMPTY with the reason and reported,
but do not fail the run (--strict fails on them too).

Exit status 0 when every query parses and has data, 1 otherwise, 2 when the
targets or Prometheus are missing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_rules  # noqa: E402
import monitoring_queries as mq  # noqa: E402

# The contract's namespace of every safecity target (the local city has no
# namespaces; the cluster's is `safecity`, the broker's `messaging`).
DEFAULT_NAMESPACE = {"rabbitmq": "messaging"}
NAMESPACE = "safecity"
# Jobs that expose other objects' series with their own `namespace` label:
# keep it (kube-prometheus-stack's kube-state-metrics ServiceMonitor does
# the same with honorLabels).
HONOR_LABELS_JOBS = {"kube-state-metrics"}

# Selectors that are empty in a healthy city, and why. Matched against the
# selector text (regex search).
ALLOWED_EMPTY = {
    r"safecity_gate_frames_dropped_total": "created at the first dropped frame",
    r"safecity_gate_camera_reconnects_total": "created at a camera's first reconnect",
    r'safecity_scaler_rpc_requests_total\{code!~"Ok\|Cancelled"\}': "created at the first failed RPC",
    r"^ALERTS": "exists only while an alert is pending or firing",
}
# Selectors empty in the local city only: it runs the gates as processes, not
# Deployments, so it has no kube-state-metrics series for them.
ALLOWED_EMPTY_LOCALLY = {
    r'deployment=~"motion-gate-\.\+"': "the local city's gates are processes, not Deployments",
}


def function_names() -> set[str]:
    """The functions of the base (Deployments labelled component=function)."""
    names = set()
    for path in sorted((mq.ROOT / "manifests/base").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if (
                doc
                and doc.get("kind") == "Deployment"
                and (doc["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
                == "function"
            ):
                names.add(doc["metadata"]["name"])
    return names


def contract_jobs() -> set[str]:
    return {"scaler", "motion-gate", "rabbitmq", "kube-state-metrics"} | function_names()


# --- targets ------------------------------------------------------------------------


def read_city(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(
            f"{path} is missing: start the local city (scripts/up.sh), or pass --targets FILE"
        )
    return json.loads(path.read_text())


def fetch_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def normalise(item: dict) -> dict:
    """One target in service-discovery form: {"targets": [...], "labels": {...}}."""
    if "url" in item:
        url = urllib.parse.urlsplit(item["url"])
        labels = {k: str(v) for k, v in (item.get("labels") or {}).items()}
        labels["job"] = item["job"]
        # A bare address means the ops server's /metrics.
        labels["__metrics_path__"] = url.path if url.path not in ("", "/") else "/metrics"
        labels["__scheme__"] = url.scheme or "http"
        for key, values in urllib.parse.parse_qs(url.query).items():
            labels[f"__param_{key}"] = values[0]
        port = url.port or (443 if url.scheme == "https" else 80)
        return {"targets": [f"{url.hostname}:{port}"], "labels": labels}
    return {"targets": list(item["targets"]), "labels": dict(item.get("labels") or {})}


def contract_labels(group: dict) -> tuple[dict, list[str]]:
    """The group with the contract's labels (job, namespace, pod) filled in, and
    warnings for labels outside the contract, which are dropped: a target label
    `function` would rename the series' own `function` to `exported_function`."""
    labels = dict(group["labels"])
    warnings = []
    if labels.get("__metrics_path__", "/") in ("", "/"):
        labels["__metrics_path__"] = "/metrics"
    job = labels.get("job", "")
    if job not in contract_jobs():
        warnings.append(
            f"target {group['targets']}: job {job!r} is not in the label contract "
            f"({sorted(contract_jobs())}); queries that select it by job will miss it"
        )
    labels.setdefault("namespace", DEFAULT_NAMESPACE.get(job, NAMESPACE))
    port = group["targets"][0].rsplit(":", 1)[-1]
    labels.setdefault("pod", f"{job}-{port}")
    kept = {"job", "namespace", "pod"}
    for key in sorted(labels):
        if not key.startswith("__") and key not in kept:
            warnings.append(f"target {group['targets']}: label {key!r} dropped (not in the contract)")
            del labels[key]
    return {"targets": group["targets"], "labels": labels}, warnings


def alarm_companions(groups: list[dict]) -> list[dict]:
    """RabbitMQ 3.10's /metrics/per-object (what the local city scrapes for
    per-queue series) lacks the node-wide families such as the resource
    alarms, which /metrics has; a cluster's broker serves both on /metrics
    (prometheus.return_per_object_metrics). Scrape /metrics of the same broker
    for those families, under job `rabbitmq-node` so that `up{job="rabbitmq"}`
    stays one series per node."""
    companions = []
    for group in groups:
        labels = group["labels"]
        if labels.get("job") == "rabbitmq" and labels.get("__metrics_path__", "").endswith(
            "/per-object"
        ):
            extra = dict(labels, job="rabbitmq-node", __metrics_path__="/metrics")
            companions.append({"targets": group["targets"], "labels": extra})
    return companions


# --- prometheus --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape_configs(
    static: list[dict], http_sd: str | None, vhost: str | None, companions: list[dict]
) -> list[dict]:
    metric_relabel = []
    if vhost:
        # A shared development broker holds other virtual hosts (tests): keep
        # the city's per-queue series and the node-wide ones only.
        metric_relabel.append(
            {"source_labels": ["vhost"], "regex": f"|{re.escape(vhost)}", "action": "keep"}
        )
    configs = []
    if companions:
        configs.append(
            {
                "job_name": "rabbitmq-node",
                "static_configs": companions,
                "metric_relabel_configs": [
                    {"source_labels": ["__name__"], "regex": "rabbitmq_alarms_.+", "action": "keep"}
                ],
            }
        )
    for honor in (False, True):
        chosen = [g for g in static if (g["labels"].get("job") in HONOR_LABELS_JOBS) == honor]
        config: dict = {
            "job_name": f"safecity-static{'-honor' if honor else ''}",
            "honor_labels": honor,
            "metric_relabel_configs": metric_relabel,
        }
        if chosen:
            configs.append(dict(config, static_configs=chosen))
        if http_sd:
            jobs = "|".join(sorted(HONOR_LABELS_JOBS))
            configs.append(
                dict(
                    config,
                    job_name=f"safecity-http-sd{'-honor' if honor else ''}",
                    http_sd_configs=[{"url": http_sd, "refresh_interval": "2s"}],
                    relabel_configs=[
                        {
                            "source_labels": ["job"],
                            "regex": jobs,
                            "action": "keep" if honor else "drop",
                        },
                        # The contract's namespace where discovery gave none.
                        {
                            "source_labels": ["namespace"],
                            "regex": "",
                            "target_label": "namespace",
                            "replacement": NAMESPACE,
                        },
                        # A bare address means the ops server's /metrics.
                        {
                            "source_labels": ["__metrics_path__"],
                            "regex": "/?",
                            "target_label": "__metrics_path__",
                            "replacement": "/metrics",
                        },
                    ],
                )
            )
    return configs


def start_prometheus(binary: str, work: Path, configs: list[dict], rules: Path) -> tuple[subprocess.Popen, str]:
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": configs,
    }
    # Through JSON first: shared lists would come out as YAML anchors.
    plain = json.loads(json.dumps(config))
    (work / "prometheus.yml").write_text(yaml.safe_dump(plain, sort_keys=False))
    port = free_port()
    log = (work / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"prometheus exited:\n{(work / 'prometheus.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return process, base
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    process.terminate()
    raise SystemExit("prometheus did not become ready within 30 s")


def first_scrapes(base: str, limit: float = 20) -> float:
    """Waits until every discovered target has been scraped once; returns then."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        targets = fetch_json(f"{base}/api/v1/targets")["data"]["activeTargets"]
        if targets and all(t["health"] != "unknown" for t in targets):
            break
        time.sleep(0.5)
    return time.time()


def query(base: str, expr: str, window: tuple[float, float] | None = None) -> tuple[list | None, str | None]:
    """(result series, None) or (None, Prometheus' error). With `window`
    (start, end), a range query at a 1 s step; otherwise an instant query."""
    if window:
        parameters = {"query": expr, "start": f"{window[0]:.3f}", "end": f"{window[1]:.3f}", "step": "1s"}
        url = f"{base}/api/v1/query_range?" + urllib.parse.urlencode(parameters)
    else:
        url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = json.loads(error.read() or b"{}")
    if body.get("status") != "success":
        return None, f"{body.get('errorType')}: {body.get('error')}"
    data = body["data"]
    if data["resultType"] == "scalar":
        return [data["result"]], None
    return data["result"], None


def allowed_reason(selector: str, local: bool) -> str | None:
    table = dict(ALLOWED_EMPTY, **(ALLOWED_EMPTY_LOCALLY if local else {}))
    for pattern, reason in table.items():
        if re.search(pattern, selector):
            return reason
    return None


# --- the check -----------------------------------------------------------------------


def check(
    base: str, queries: list[mq.Query], local: bool, strict: bool, window: tuple[float, float]
) -> tuple[list[str], list[str]]:
    """(failures, notes)."""
    failures: list[str] = []
    notes: list[str] = []
    for q in queries:
        result, error = query(base, q.expr, window)
        if error:
            failures.append(f"{q.where}: Prometheus refuses it: {error}\n      {q.expr}")
            continue
        parts = mq.signal(q.expr) if q.kind == "alert" else [q.expr]
        empty_parts = []
        for part in parts:
            found, error = query(base, part, window)
            if error:
                failures.append(f"{q.where}: Prometheus refuses `{part}`: {error}")
            elif not found:
                empty_parts.append(part)
        if q.kind == "alert" and result:
            notes.append(f"{q.where}: its condition held during the run ({len(result)} series)")
        if not empty_parts:
            continue
        for part in empty_parts:
            empty_selectors = []
            for selector in mq.selectors(part):
                found, _ = query(base, selector, window)
                if not found:
                    empty_selectors.append(selector)
            unexplained = [s for s in empty_selectors if not allowed_reason(s, local)]
            detail = ", ".join(
                f"{s} ({allowed_reason(s, local) or 'no series'})" for s in empty_selectors
            ) or "every selector has series; the combination is empty (label mismatch?)"
            message = f"{q.where}: no series from `{part}`\n      empty: {detail}"
            if unexplained or not empty_selectors or strict:
                failures.append(message)
            else:
                notes.append(message + "  [allowed]")
    return failures, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--city",
        type=Path,
        default=Path(tempfile.gettempdir()) / "safecity-city.json",
        help="the local city's discovery file (default: $TMPDIR/safecity-city.json)",
    )
    parser.add_argument("--targets", type=Path, help="a JSON list of targets instead of --city")
    parser.add_argument("--wait", type=float, default=20, help="seconds of scraping before querying")
    parser.add_argument(
        "--wait-for-city",
        type=float,
        default=0,
        metavar="SECONDS",
        help="wait up to this long for the discovery file to appear (start this check first, "
        "then the city, to see it from its first event)",
    )
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    parser.add_argument("--vhost", help="keep only this RabbitMQ vhost's per-queue series "
                        "(default: the city's, from its amqp_url)")
    parser.add_argument("--strict", action="store_true", help="fail on ALLOWED_EMPTY series too")
    parser.add_argument("--keep", type=Path, help="keep prometheus.yml, the rules and the log here")
    args = parser.parse_args()
    if not Path(args.prometheus).is_file():
        print("prometheus not found: apt-get install -y --no-install-recommends prometheus",
              file=sys.stderr)
        return 2

    http_sd = None
    vhost = args.vhost
    if args.targets:
        raw = json.loads(args.targets.read_text())
        items = raw["scrape_targets"] if isinstance(raw, dict) else raw
        local = True
    else:
        deadline = time.monotonic() + args.wait_for_city
        while not args.city.is_file() and time.monotonic() < deadline:
            time.sleep(0.5)
        city = read_city(args.city)
        local = True
        if vhost is None and city.get("amqp_url"):
            vhost = urllib.parse.unquote(urllib.parse.urlsplit(city["amqp_url"]).path.lstrip("/")) or "/"
        if city.get("scrape_targets"):
            items = city["scrape_targets"]
        elif city.get("control"):
            http_sd = city["control"].rstrip("/") + "/api/scrape-targets"
            items = fetch_json(http_sd)
        else:
            print(f"{args.city} has neither `scrape_targets` nor `control`", file=sys.stderr)
            return 2
    warnings: list[str] = []
    groups = []
    for item in items:
        group, problems = contract_labels(normalise(item))
        groups.append(group)
        warnings += problems
    companions = alarm_companions(groups)
    # With HTTP discovery, Prometheus follows the live list (replicas come and
    # go); otherwise the list read here is the list scraped.
    static = [] if http_sd else groups

    work = Path(tempfile.mkdtemp(prefix="safecity-queries-"))
    process = None
    try:
        rules = check_rules.write_rules(work)
        process, base = start_prometheus(
            args.prometheus, work, scrape_configs(static, http_sd, vhost, companions), rules
        )
        print(f"==> Prometheus on {base}, {len(groups)} targets"
              f"{' (HTTP discovery: ' + http_sd + ')' if http_sd else ''}; scraping for {args.wait:g} s",
              flush=True)
        started = first_scrapes(base)
        time.sleep(args.wait)
        targets = fetch_json(f"{base}/api/v1/targets")["data"]["activeTargets"]
        for target in sorted(targets, key=lambda t: (t["labels"].get("job", ""), t["labels"].get("pod", ""))):
            labels = target["labels"]
            state = target["health"]
            error = f" ({target['lastError']})" if target.get("lastError") else ""
            print(f"    target job={labels.get('job')} pod={labels.get('pod')} "
                  f"{target['scrapeUrl']}: {state}{error}")
        groups_rules = check_rules.extract_groups()
        queries = mq.rule_queries(groups_rules) + mq.dashboard_queries(mq.load_dashboard())
        # From the first scrapes on (before them every `up` is missing).
        window = (started, time.time())
        failures, notes = check(base, queries, local, args.strict, window)
        # The check must be able to fail: a misspelt metric is empty, a syntax
        # error refused, on this very Prometheus.
        broken = [
            mq.Query("self-test misspelt", "panel", "sum(rate(safecity_events_recieved_total[1m]))"),
            mq.Query("self-test syntax", "panel", "sum by (job"),
        ]
        caught, _ = check(base, broken, local, args.strict, window)
        if len(caught) != len(broken):
            failures.append(f"self-test: the check let a broken query pass ({caught})")
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for name in ("prometheus.yml", check_rules.RULES_FILE, "prometheus.log"):
                if (work / name).is_file():
                    shutil.copy(work / name, args.keep / name)
        shutil.rmtree(work, ignore_errors=True)

    for warning in warnings:
        print(f"warning: {warning}")
    for note in notes:
        print(f"note: {note}")
    if failures:
        print(f"{len(failures)} of {len(queries)} queries failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print(f"queries: all {len(queries)} parse and return data on the local city "
          f"({sum(q.kind == 'record' for q in queries)} recording rules, "
          f"{sum(q.kind == 'alert' for q in queries)} alerts, "
          f"{sum(q.kind in ('panel', 'variable') for q in queries)} dashboard queries); "
          "a misspelt metric and a syntax error were caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
