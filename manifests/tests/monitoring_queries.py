"""The PromQL queries of safecity's monitoring, and what they read.

Shared by validate.py (static checks), check_dashboard.py and check_queries.py:

- `rule_queries()`: every recording rule and alert of the PrometheusRule;
- `dashboard_queries()`: every panel target and query variable of the
  Grafana dashboard, with Grafana's variables replaced by values a plain
  Prometheus accepts (`substitute`);
- `selectors()`, `metric_names()`: the series an expression reads (parsed with
  promql-parser, a PromQL parser built from Prometheus' grammar);
- `exported_metrics()`: the metric names safecity's code registers, read from
  the Rust sources (so that a misspelt name fails without a running city).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import promql_parser

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "manifests/components/monitoring"
DASHBOARD = MONITORING / "dashboards/safecity.json"

# Grafana's built-in interval variables, as a plain Prometheus needs them. The
# local check scrapes every second, so one minute holds plenty of samples.
BUILTIN_DURATIONS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "5m",
}

# Series that come from outside safecity's code, and who exports them.
EXTERNAL_METRICS = {
    "up": "Prometheus (one per scrape target)",
    "ALERTS": "Prometheus (firing and pending alerts)",
    "kube_deployment_spec_replicas": "kube-state-metrics (locally: safecity up's control API)",
    "kube_deployment_status_replicas_ready": "kube-state-metrics (locally: safecity up's control API)",
    "rabbitmq_queue_messages_ready": "RabbitMQ rabbitmq_prometheus, per-object",
    "rabbitmq_queue_messages": "RabbitMQ rabbitmq_prometheus, per-object",
    "rabbitmq_alarms_memory_used_watermark": "RabbitMQ rabbitmq_prometheus",
    "rabbitmq_alarms_free_disk_space_watermark": "RabbitMQ rabbitmq_prometheus",
}

# Crates whose metrics the monitoring reads; their sources name the metrics.
METRIC_SOURCES = ["runtime/src", "scaler/src", "functions/detector/src", "edge/motion-gate/src"]


@dataclass(frozen=True)
class Query:
    """One PromQL expression and where it comes from."""

    where: str  # e.g. "alert SafecityBrokerDown", "panel 12 'Cameras up' A"
    kind: str  # "record", "alert", "panel", "variable"
    expr: str


def rule_queries(groups: dict) -> list[Query]:
    out = []
    for group in groups["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                out.append(Query(f"record {rule['record']}", "record", rule["expr"]))
            else:
                out.append(Query(f"alert {rule['alert']}", "alert", rule["expr"]))
    return out


def load_dashboard(path: Path = DASHBOARD) -> dict:
    return json.loads(path.read_text())


def variables(dashboard: dict) -> dict[str, str]:
    """Each template variable's value for a plain Prometheus: its `allValue`
    (a regex matching every value) where it has one."""
    values = {}
    for variable in (dashboard.get("templating") or {}).get("list", []):
        values[variable["name"]] = variable.get("allValue") or ".+"
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replaces $var, ${var}, ${var:format} and [[var]] as Grafana would."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name in BUILTIN_DURATIONS:
            return BUILTIN_DURATIONS[name]
        if name in values:
            return values[name]
        if name.isdigit():
            # A regex group reference ("$1" in label_replace): Grafana leaves it.
            return match.group(0)
        raise KeyError(f"unknown Grafana variable ${name}")

    expr = re.sub(r"\$\{(\w+)(?::\w+)?\}", value, expr)
    expr = re.sub(r"\[\[(\w+)\]\]", value, expr)
    return re.sub(r"\$(\w+)", value, expr)


def panels(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows included."""
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_queries(dashboard: dict) -> list[Query]:
    values = variables(dashboard)
    out = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            where = f"panel {panel.get('id')} {panel.get('title')!r} {target.get('refId')}"
            out.append(Query(where, "panel", substitute(target["expr"], values)))
    for variable in (dashboard.get("templating") or {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") != "query" or not isinstance(query, str):
            continue
        # label_values(<selector>, <label>): Grafana asks for the series of
        # the selector; check that it has some.
        match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query)
        expr = match.group(1) if match else query
        out.append(Query(f"variable ${variable['name']}", "variable", substitute(expr, values)))
    return out


def parse(expr: str) -> promql_parser.Expr:
    """Parses `expr`; raises ValueError with the parser's message."""
    return promql_parser.parse(expr)


def selectors(expr: str) -> list[str]:
    """The vector selectors `expr` reads, as PromQL text (e.g. `up{job="rabbitmq"}`)."""
    found: list[str] = []

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            text = str(node)
            if text not in found:
                found.append(text)

    promql_parser.walk(parse(expr), pre_visit=visit)
    return found


def metric_names(expr: str) -> list[str]:
    names: list[str] = []

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name and node.name not in names:
            names.append(node.name)

    promql_parser.walk(parse(expr), pre_visit=visit)
    return names


def signal(expr: str) -> list[str]:
    """The parts of an alert expression that must have data in a healthy city.

    An alert's whole expression is empty while all is well (`x > 30` when x is
    5). What must not be empty is what it compares: the left side of each
    comparison with a number, and each operand of and/or/unless."""
    tree = parse(expr)
    out: list[str] = []

    def walk(node) -> None:
        while isinstance(node, promql_parser.ParenExpr):
            node = node.expr
        if isinstance(node, promql_parser.BinaryExpr):
            op = str(node.op).strip()
            if op in ("and", "or", "unless"):
                walk(node.lhs)
                walk(node.rhs)
                return
            returns_bool = bool(node.modifier and node.modifier.return_bool)
            if op in ("==", "!=", ">", "<", ">=", "<=") and not returns_bool:
                if isinstance(node.rhs, promql_parser.NumberLiteral):
                    walk(node.lhs)
                    return
        if isinstance(node, promql_parser.Call) and node.func.name in ("absent", "absent_over_time"):
            # absent(x) has data exactly when x has none: x is the signal.
            for arg in node.args:
                walk(arg)
            return
        out.append(str(node))

    walk(tree)
    return out


def exported_metrics() -> set[str]:
    """Metric names registered in the Rust sources of METRIC_SOURCES.

    prometheus_client registers `name` under a registry prefix
    (`Registry::with_prefix("p")` or `sub_registry_with_prefix("p")`) as
    `p_name`; counters get `_total`, histograms `_bucket`, `_sum`, `_count`
    in the exposition (handled by `is_exported`)."""
    names = set()
    for folder in METRIC_SOURCES:
        for path in sorted((ROOT / folder).rglob("*.rs")):
            text = path.read_text()
            prefixes = re.findall(r'(?:with_prefix|sub_registry_with_prefix)\(\s*"([a-z_]+)"', text)
            registered = re.findall(r'\.register\(\s*"([a-z_]+)"', text)
            for prefix in prefixes:
                for name in registered:
                    names.add(f"{prefix}_{name}")
    return names


def is_exported(name: str, exported: set[str]) -> bool:
    if name in exported:
        return True
    for suffix in ("_total", "_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in exported:
            return True
    return False
