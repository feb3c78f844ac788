"""The admin endpoint of `bhsync node --admin`, read by real clients.

/metrics is parsed by prometheus_client's text parser (the reference Python
implementation of the exposition format), /health by json.loads. Two nodes run so that
per-peer figures exist. Run by `make python-test`:

    build/venv/bin/python tests/python/test_admin.py target/debug/bhsync
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/debug/bhsync"

HEALTH_FIELDS = ["status", "node", "warnings", "peers", "io_backend", "metrics", "figures",
                 "per_peer", "categories", "thresholds"]
FIGURES = ["uptime_ms", "sync_latency_ms", "items_per_s", "bytes_per_s", "conflicts_per_s",
           "consistency_lag_ms", "partition_events", "partitions_injected", "peer_connectivity"]
FAMILIES = {
    "bhsync_sync_latency_seconds": "histogram",
    "bhsync_peer_sync_latency_seconds": "histogram",
    "bhsync_items_received": "counter",
    "bhsync_bytes_sent": "counter",
    "bhsync_conflicts": "counter",
    "bhsync_partition_events": "counter",
    "bhsync_consistency_lag_seconds": "gauge",
    "bhsync_peer_connectivity_ratio": "gauge",
    "bhsync_items_per_second": "gauge",
    "bhsync_bytes_per_second": "gauge",
    "bhsync_conflicts_per_second": "gauge",
    "bhsync_peer_connected": "gauge",
    "bhsync_peer_consistency_lag_seconds": "gauge",
    "bhsync_category_syncs": "counter",
}


def start(args):
    proc = subprocess.Popen([BIN, "node", "--listen", "127.0.0.1:0"] + args,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("bhsync node "):
        proc.kill()
        raise SystemExit(f"node did not start: {line!r} {proc.stderr.read()!r}")
    words = line.split()
    admin = words[words.index("admin") + 1] if "admin" in words else None
    return proc, words[5], admin


def get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers.get("Content-Type"), response.read().decode()


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=10)
    assert code == 0, f"node exited {code} on SIGTERM: {proc.stderr.read()}"


def main():
    data = tempfile.mkdtemp(prefix="bhsync-admin-")
    b, b_addr, _ = start([])
    a, _, admin = start(["--data-dir", os.path.join(data, "a"), "--admin", "127.0.0.1:0",
                         "--peer", b_addr])
    try:
        deadline = time.time() + 10
        while True:
            health = json.loads(get(admin + "/health")[2])
            if health["peers"]["connected"] == 1 and health["figures"]["sync_latency_ms"]["count"] > 0:
                break
            assert time.time() < deadline, f"no peer or sync within 10 s: {health}"
            time.sleep(0.2)

        for field in HEALTH_FIELDS:
            assert field in health, f"/health lacks {field}: {health}"
        for field in FIGURES:
            assert field in health["figures"], f"/health figures lack {field}"
        assert health["status"] in ("healthy", "degraded", "critical")
        assert health["per_peer"][0]["connected"] is True

        status, content_type, text = get(admin + "/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4"), content_type
        families = {family.name: family for family in text_string_to_metric_families(text)}
        for name, kind in FAMILIES.items():
            assert name in families, f"/metrics lacks {name}; has {sorted(families)}"
            assert families[name].type == kind, f"{name} is {families[name].type}, not {kind}"
        latency = families["bhsync_sync_latency_seconds"]
        buckets = [s for s in latency.samples if s.name.endswith("_bucket")]
        counts = [s.value for s in buckets]
        assert counts == sorted(counts), f"buckets not cumulative: {counts}"
        assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value >= 1
        peers = {s.labels["peer"] for s in families["bhsync_peer_connected"].samples}
        assert len(peers) == 1, peers

        try:
            get(admin + "/nope")
            raise AssertionError("/nope answered")
        except urllib.error.HTTPError as error:
            assert error.code == 404
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                stop(proc)
    print("python admin test: /metrics parsed by prometheus_client, /health by json: ok")


if __name__ == "__main__":
    main()
