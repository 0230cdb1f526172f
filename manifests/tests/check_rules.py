#!/usr/bin/env python3
"""Checks safecity's Prometheus rules with Prometheus' own tool, promtool.

    .venv/bin/python manifests/tests/check_rules.py [--out DIR] [--promtool PATH]

The rules live once, in the PrometheusRule of the monitoring component
(manifests/components/monitoring/prometheus-rule.yaml). This script

1. extracts its spec.groups into a plain Prometheus rules file (what a
   Prometheus without the Operator loads, and what promtool reads);
2. `promtool check rules` on it (PromQL syntax, templates, duplicate names);
3. checks that the unit tests (manifests/tests/monitoring/rules.test.yaml)
   cover every alert both ways: at least one evaluation that expects it to
   fire and one that expects it quiet (a test that only ever expects silence
   passes for a rule that can never fire);
4. `promtool test rules` on them.

Before that it proves that steps 2 and 4 can fail: a rules file with a PromQL
syntax error must be refused by `promtool check rules`, and the tests run
against a copy of the rules with one threshold changed must fail.

Exit status 0 when everything holds, 1 otherwise (promtool's output shown).
promtool comes from Debian's `prometheus` package (scripts/check-monitoring.sh
installs it).
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULE_SOURCE = ROOT / "manifests/components/monitoring/prometheus-rule.yaml"
TESTS = ROOT / "manifests/tests/monitoring/rules.test.yaml"
# The file name the unit tests' `rule_files` refer to.
RULES_FILE = "safecity.rules.yaml"


def extract_groups(source: Path = RULE_SOURCE) -> dict:
    """The PrometheusRule's spec.groups as a Prometheus rules file document."""
    documents = [d for d in yaml.safe_load_all(source.read_text()) if d]
    rules = [d for d in documents if d.get("kind") == "PrometheusRule"]
    if len(rules) != 1:
        raise SystemExit(f"{source}: expected one PrometheusRule, found {len(rules)}")
    return {"groups": rules[0]["spec"]["groups"]}


def write_rules(directory: Path, groups: dict | None = None) -> Path:
    """Writes the extracted rules to `directory`/safecity.rules.yaml."""
    path = directory / RULES_FILE
    header = (
        f"# GENERATED from {RULE_SOURCE.relative_to(ROOT)} by "
        "manifests/tests/check_rules.py: edit that file, not this one.\n"
    )
    path.write_text(header + yaml.safe_dump(groups or extract_groups(), sort_keys=False))
    return path


def alerts(groups: dict) -> list[str]:
    return [r["alert"] for g in groups["groups"] for r in g["rules"] if "alert" in r]


def coverage(groups: dict, tests: dict) -> list[str]:
    """Alerts without a firing test or without a quiet test."""
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in tests.get("tests", []):
        for case in test.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    problems = []
    for name in alerts(groups):
        if name not in fired:
            problems.append(f"alert {name}: no unit test expects it to fire")
        if name not in quiet:
            problems.append(f"alert {name}: no unit test expects it to stay quiet")
    known = set(alerts(groups))
    for name in sorted((fired | quiet) - known):
        problems.append(f"the unit tests name alert {name}, which no rule defines")
    return problems


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def self_test(promtool: str, work: Path, groups: dict) -> list[str]:
    """Breaks the rules in known ways; returns the breaks promtool did not catch."""
    missed = []
    broken = copy.deepcopy(groups)
    broken["groups"][0]["rules"][0]["expr"] += " by by"
    path = write_rules(work, broken)
    if run([promtool, "check", "rules", str(path)]).returncode == 0:
        missed.append("promtool check rules accepted a rule with a PromQL syntax error")
    # Raise one alert's threshold out of reach: its firing test must fail.
    broken = copy.deepcopy(groups)
    for group in broken["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "SafecityEventsLate":
                rule["expr"] = rule["expr"].replace("> 30", "> 30000")
    write_rules(work, broken)
    if run([promtool, "test", "rules", str(work / TESTS.name)]).returncode == 0:
        missed.append(
            "promtool test rules passed with SafecityEventsLate's threshold at 30000 s"
        )
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    parser.add_argument(
        "--out", type=Path, help="also write the extracted rules file into this folder"
    )
    args = parser.parse_args()
    if not shutil.which(args.promtool) and not Path(args.promtool).is_file():
        print(
            "promtool not found: apt-get install -y --no-install-recommends prometheus "
            "(scripts/check-monitoring.sh does)",
            file=sys.stderr,
        )
        return 2
    groups = extract_groups()
    tests = yaml.safe_load(TESTS.read_text())
    problems = coverage(groups, tests)
    with tempfile.TemporaryDirectory(prefix="safecity-rules-") as tmp:
        work = Path(tmp)
        shutil.copy(TESTS, work / TESTS.name)
        problems += [f"self-test: {m}" for m in self_test(args.promtool, work, groups)]
        rules = write_rules(work, groups)
        checked = run([args.promtool, "check", "rules", str(rules)])
        print(checked.stdout.strip() or checked.stderr.strip())
        if checked.returncode != 0:
            problems.append(f"promtool check rules failed:\n{checked.stdout}{checked.stderr}")
        tested = run([args.promtool, "test", "rules", str(work / TESTS.name)])
        print(tested.stdout.strip())
        if tested.returncode != 0:
            problems.append(f"promtool test rules failed:\n{tested.stdout}{tested.stderr}")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            shutil.copy(rules, args.out / RULES_FILE)
    if problems:
        print(f"{len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    names = alerts(groups)
    records = sum(1 for g in groups["groups"] for r in g["rules"] if "record" in r)
    print(
        f"rules: valid ({records} recording rules, {len(names)} alerts, each tested firing "
        "and quiet; promtool rejected the broken rules and the moved threshold)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
