"""docs/dashboard.json against a running node: every metric the Grafana dashboard
queries is one a node exports.

Each panel query is parsed by promql-parser (a PromQL parser, with Grafana's variables
replaced by sample values), the metric names are taken from its syntax tree, and each must
appear among the samples of /metrics of a node with a connected peer (so that per-peer
series exist), read as tests/python/test_admin.py reads it. Run by `make admin-test`:

    build/venv/bin/python tests/python/test_dashboard.py target/debug/bhsync
"""

import json
import os
import re
import sys
import tempfile
import time

import promql_parser
from prometheus_client.parser import text_string_to_metric_families

import test_admin  # the node helpers; takes the binary from sys.argv[1] as this script does

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "dashboard.json")
# Grafana's variables, replaced by values of their kind so that PromQL parses.
VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s", "$instance": ".*"}
# What the issue asks the dashboard to show, by a metric each such panel must query.
REQUIRED = {
    "sync latency": "bhsync_sync_latency_seconds_bucket",
    "items per second": "bhsync_items_per_second",
    "bytes per second": "bhsync_bytes_per_second",
    "consistency lag per peer": "bhsync_peer_consistency_lag_seconds",
    "conflict rate": "bhsync_conflicts_total",
    "peer connectivity": "bhsync_peer_connectivity_ratio",
    "partition events": "bhsync_partition_events_total",
}


def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def queried_metrics(dashboard):
    """{metric name: [panel titles]} over every panel query and template variable."""
    queried = {}
    ids = set()
    for panel in panels(dashboard["panels"]):
        assert panel["id"] not in ids, f"panel id {panel['id']} is used twice"
        ids.add(panel["id"])
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", f"{panel['title']}: not on the data source input"
            expr = target["expr"]
            for variable, value in VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: unknown variable in {target['expr']!r}"
            try:
                tree = promql_parser.parse(expr)
            except Exception as error:  # the parser raises ValueError with the position
                raise AssertionError(f"{panel['title']}: {target['expr']!r} is not PromQL: {error}") from error
            names = []
            promql_parser.walk(tree, lambda node: names.append(node.name)
                               if isinstance(node, promql_parser.VectorSelector) else None)
            assert names, f"{panel['title']}: {expr!r} queries no metric"
            for name in names:
                queried.setdefault(name, []).append(panel["title"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            name = re.fullmatch(r"label_values\((\w+), *\w+\)", variable["definition"]).group(1)
            queried.setdefault(name, []).append(f"variable {variable['name']}")
    return queried


def exported_samples(bin_path):
    """Sample names of /metrics of a node whose peer is connected and synced once."""
    data = tempfile.mkdtemp(prefix="bhsync-dashboard-")
    b, b_addr, _ = test_admin.start([])
    a, _, admin = test_admin.start(["--data-dir", os.path.join(data, "a"), "--admin", "127.0.0.1:0",
                                    "--peer", b_addr])
    try:
        deadline = time.time() + 10
        while True:
            health = json.loads(test_admin.get(admin + "/health")[2])
            if health["peers"]["connected"] == 1 and health["figures"]["sync_latency_ms"]["count"] > 0:
                break
            assert time.time() < deadline, f"no peer or sync within 10 s: {health}"
            time.sleep(0.2)
        text = test_admin.get(admin + "/metrics")[2]
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                test_admin.stop(proc)
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def main():
    with open(DASHBOARD, encoding="utf-8") as file:
        dashboard = json.load(file)
    queried = queried_metrics(dashboard)
    for what, name in REQUIRED.items():
        assert name in queried, f"the dashboard does not show {what} (no query of {name})"
    exported = exported_samples(test_admin.BIN)
    missing = {name: titles for name, titles in queried.items() if name not in exported}
    assert not missing, f"the dashboard queries metrics a node does not export: {missing}"
    print(f"dashboard test: {len(queried)} metrics in {sum(1 for _ in panels(dashboard['panels']))} panels "
          "parse as PromQL and are exported by a running node: ok")


if __name__ == "__main__":
    sys.exit(main())
