#!/usr/bin/env python3
"""Validates the Grafana dashboard against Grafana's own dashboard schema.

    .venv/bin/python manifests/tests/check_dashboard.py [DASHBOARD.json ...]

Grafana publishes its dashboard model as TypeScript types in the npm package
@grafana/schema (the `Dashboard` interface of raw/dashboard/x, the JSON model
of classic dashboards, which the provisioning sidecar loads). This script

1. installs the pinned npm packages of manifests/tests/grafana-schema/
   (package.json, package-lock.json) with `npm ci` into
   .venv/grafana-schema/node_modules (git-ignored, next to the Python test
   peers, outside manifests/ so that copies of the tree stay small), from the
   npm registry, once per lock file;
2. turns the `Dashboard` type into a JSON Schema with ts-json-schema-generator
   (strict: an object takes only the properties its type declares, so a
   misspelt field is an error, not an ignored extra);
3. validates the dashboard with check-jsonschema (PyPI, in .venv);
4. checks what the schema cannot: every panel and query variable uses the
   `$datasource` variable, panel ids are unique, panels fit the 24-column
   grid, every query parses as PromQL (promql-parser) once Grafana's variables
   are substituted, and every metric it reads is exported by safecity's code,
   by a recording rule, or is a known external series.

Before the real dashboard it validates broken copies of it (a misspelt
top-level field, a misspelt panel field, a grid width that is a string, a
missing schemaVersion, a query with a PromQL syntax error) and fails unless
each is rejected: a check that accepts everything proves nothing.

Exit status 0 when the dashboard is valid, 1 otherwise.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_rules  # noqa: E402
import monitoring_queries as mq  # noqa: E402

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "grafana-schema"
PACKAGE = mq.ROOT / ".venv/grafana-schema"
TYPES = PACKAGE / "node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts"
GENERATOR = PACKAGE / "node_modules/.bin/ts-json-schema-generator"
SCHEMA = PACKAGE / "dashboard.schema.json"
MANIFESTS = ("package.json", "package-lock.json")


def install() -> None:
    """npm ci of the pinned packages, unless this lock file is installed already."""
    current = all(
        (PACKAGE / name).is_file() and (PACKAGE / name).read_bytes() == (SOURCE / name).read_bytes()
        for name in MANIFESTS
    )
    if current and TYPES.is_file() and GENERATOR.is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm not found: install Node.js (Debian: apt-get install -y nodejs npm)")
    PACKAGE.mkdir(parents=True, exist_ok=True)
    for name in MANIFESTS:
        shutil.copy(SOURCE / name, PACKAGE / name)
    print(f"==> npm ci ({SOURCE.relative_to(mq.ROOT)} into {PACKAGE.relative_to(mq.ROOT)})", flush=True)
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PACKAGE, check=True
    )


def generate_schema() -> Path:
    """The JSON Schema of Grafana's `Dashboard` type (regenerated every run: 2 s)."""
    SCHEMA.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            str(GENERATOR),
            "--path",
            str(TYPES),
            "--type",
            "Dashboard",
            # The .d.ts files are generated and consistent; type-checking them
            # would need Grafana's whole dependency tree.
            "--no-type-check",
            "--out",
            str(SCHEMA),
        ],
        check=True,
        capture_output=True,
    )
    return SCHEMA


def schema_errors(schema: Path, dashboard: dict) -> list[str]:
    """check-jsonschema's complaints about `dashboard` (empty when valid)."""
    checker = Path(sys.executable).parent / "check-jsonschema"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(dashboard, file)
        path = file.name
    try:
        result = subprocess.run(
            [str(checker), "--schemafile", str(schema), path],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        Path(path).unlink()
    if result.returncode == 0:
        return []
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    # The first lines name the failing paths; the rest repeat the object.
    return [line[:300] for line in lines[:6]] or [f"check-jsonschema exited {result.returncode}"]


def rule_records() -> set[str]:
    groups = check_rules.extract_groups()
    return {r["record"] for g in groups["groups"] for r in g["rules"] if "record" in r}


def safecity_errors(dashboard: dict) -> list[str]:
    """What the schema cannot check."""
    errors = []
    names = {v["name"] for v in (dashboard.get("templating") or {}).get("list", [])}
    if "datasource" not in names:
        errors.append("no `datasource` template variable (type datasource, query prometheus)")
    ids = set()
    for panel in mq.panels(dashboard):
        label = f"panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("id") in ids:
            errors.append(f"{label}: duplicate id")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos") or {}
        if grid.get("x", 0) + grid.get("w", 0) > 24:
            errors.append(f"{label}: wider than the 24-column grid")
        if panel.get("type") == "row":
            continue
        if (panel.get("datasource") or {}).get("uid") != "${datasource}":
            errors.append(f"{label}: datasource must be the $datasource variable")
        if not panel.get("targets"):
            errors.append(f"{label}: no query")
        for target in panel.get("targets", []):
            if (target.get("datasource") or {}).get("uid") != "${datasource}":
                errors.append(f"{label} {target.get('refId')}: datasource must be $datasource")
            if not target.get("expr"):
                errors.append(f"{label} {target.get('refId')}: no expr")
    for variable in (dashboard.get("templating") or {}).get("list", []):
        if variable.get("type") == "query" and (variable.get("datasource") or {}).get(
            "uid"
        ) != "${datasource}":
            errors.append(f"variable ${variable['name']}: datasource must be $datasource")
    exported = mq.exported_metrics()
    records = rule_records()
    try:
        queries = mq.dashboard_queries(dashboard)
    except KeyError as error:
        return errors + [str(error)]
    for query in queries:
        try:
            used = mq.metric_names(query.expr)
        except ValueError as error:
            errors.append(f"{query.where}: not PromQL: {error} in `{query.expr}`")
            continue
        for name in used:
            known = (
                name in records
                if ":" in name
                else mq.is_exported(name, exported) or name in mq.EXTERNAL_METRICS
            )
            if not known:
                errors.append(
                    f"{query.where}: reads `{name}`, which neither safecity's code, a "
                    "recording rule nor a known exporter provides"
                )
    return errors


def self_test(schema: Path, dashboard: dict) -> list[str]:
    """Broken copies of `dashboard` that must be rejected; returns those that were not."""
    missed = []
    first_panel = next(i for i, p in enumerate(dashboard["panels"]) if p["type"] != "row")

    def must_fail(label: str, mutate, check) -> None:
        broken = copy.deepcopy(dashboard)
        mutate(broken)
        if not check(broken):
            missed.append(f"accepted a dashboard with {label}")

    def by_schema(d: dict) -> list[str]:
        return schema_errors(schema, d)

    must_fail("`pannels` for `panels`", lambda d: d.__setitem__("pannels", d.pop("panels")), by_schema)
    must_fail(
        "a panel field `titel`",
        lambda d: d["panels"][first_panel].__setitem__("titel", "x"),
        by_schema,
    )
    must_fail(
        'a gridPos width "wide"',
        lambda d: d["panels"][first_panel]["gridPos"].__setitem__("w", "wide"),
        by_schema,
    )
    must_fail("no schemaVersion", lambda d: d.pop("schemaVersion"), by_schema)
    must_fail(
        "a PromQL syntax error",
        lambda d: d["panels"][first_panel]["targets"][0].__setitem__("expr", "sum by (job"),
        safecity_errors,
    )
    must_fail(
        "a misspelt metric name",
        lambda d: d["panels"][first_panel]["targets"][0].__setitem__(
            "expr", "sum(safecity_events_recieved_total)"
        ),
        safecity_errors,
    )
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboards", nargs="*", type=Path, default=[mq.DASHBOARD])
    args = parser.parse_args()
    install()
    schema = generate_schema()
    problems = []
    reference = json.loads(args.dashboards[0].read_text())
    for miss in self_test(schema, reference):
        problems.append(f"self-test: {miss}")
    for path in args.dashboards:
        dashboard = json.loads(path.read_text())
        for error in schema_errors(schema, dashboard) + safecity_errors(dashboard):
            problems.append(f"{path.relative_to(mq.ROOT) if path.is_absolute() else path}: {error}")
    if problems:
        print(f"{len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    version = json.loads((PACKAGE / "node_modules/@grafana/schema/package.json").read_text())[
        "version"
    ]
    for path in args.dashboards:
        count = len([p for p in mq.panels(json.loads(path.read_text())) if p["type"] != "row"])
        print(
            f"{path.name}: valid ({count} panels; Grafana Dashboard schema from "
            f"@grafana/schema {version}, strict; PromQL parsed; metrics known)"
        )
    print("dashboard check rejected every broken copy (schema and PromQL)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
