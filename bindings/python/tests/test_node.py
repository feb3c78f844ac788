"""The node from Python: three nodes converge, values read back, counters, ids, health."""

from __future__ import annotations

import json
import time
from typing import Callable

import pytest

import bhsync
from conftest import converge


def test_version_and_abi_match_the_header() -> None:
    assert bhsync.abi_version() == bhsync.ABI_VERSION
    assert bhsync.version()


def test_three_nodes_write_sync_and_agree(open_nodes) -> None:
    nodes = open_nodes(3)
    for i, node in enumerate(nodes):
        for j in range(5):
            node.put("users", f"user-{i}-{j}".encode(), f"value-{i}-{j}".encode())
        node.counter_add("counters", b"hits", i + 1)
    converge(nodes)
    for n, node in enumerate(nodes):
        for i in range(len(nodes)):
            for j in range(5):
                assert node.get("users", f"user-{i}-{j}".encode()) == f"value-{i}-{j}".encode(), (n, i, j)
        assert node.counter_get("counters", b"hits") == 6
        assert node.state_hash("users") == nodes[0].state_hash("users")


def test_get_of_an_absent_key_is_none_and_delete_removes(open_nodes) -> None:
    (node,) = open_nodes(1)
    assert node.get("users", b"nobody") is None
    node.put("users", b"", b"")
    assert node.get("users", b"") == b""
    assert node.delete("users", b"") is True
    assert node.delete("users", b"") is False
    assert node.get("users", b"") is None


def test_bytes_like_values_are_accepted_and_bytes_come_back(open_nodes) -> None:
    (node,) = open_nodes(1)
    node.put("users", bytearray(b"k1"), memoryview(b"v1"))
    value = node.get("users", b"k1")
    assert value == b"v1" and type(value) is bytes


def test_ids_are_32_bytes_distinct_and_addresses_are_host_port(open_nodes) -> None:
    a, b = open_nodes(2)
    assert len(a.id) == 32 and a.id != b.id
    host, _, port = a.local_addr.rpartition(":")
    assert host and int(port) > 0


def test_health_and_metrics(open_nodes) -> None:
    (node,) = open_nodes(1)
    assert isinstance(json.loads(node.health_json()), dict)
    assert isinstance(node.health(), dict)
    assert node.metrics() is not None


def test_the_context_manager_closes_the_node() -> None:
    with bhsync.Node() as node:
        node.put("default", b"k", b"v")
        assert not node.closed
    assert node.closed
    with pytest.raises(bhsync.ClosedError):
        node.get("default", b"k")


def test_the_library_is_found_from_bhsync_lib(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(bhsync.LIBRARY_ENV, str(tmp_path / "missing.so"))
    with pytest.raises(bhsync.LibraryNotFoundError):
        bhsync.find_library()
    fake = tmp_path / "libbhsync.so"
    fake.write_bytes(b"")
    monkeypatch.setenv(bhsync.LIBRARY_ENV, str(fake))
    assert bhsync.find_library() == str(fake)


def test_sync_with_one_peer_by_id_and_with_an_unknown_peer(open_nodes) -> None:
    a, b = open_nodes(2)
    a.put("users", b"k", b"v")
    converge([a, b])
    report = b.sync(peer=a.id, timeout=5.0)
    assert report.peers == 1 and report.peers_failed == 0, report
    stranger = b.sync(peer=bytes(range(32)), timeout=1.0)
    assert stranger.peers_failed == 1, stranger  # not connected: a failed peer, not an exception
    assert repr(a).startswith("<bhsync.Node ")


def _wait(what: str, done: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.05)


def test_two_nodes_keep_syncing_after_their_only_seed_leaves(open_nodes) -> None:
    # B and C are given only A's address: they learn each other's through A (issue 16).
    a, b, c = open_nodes(3, connect=False)
    b.connect(a.local_addr)
    c.connect(a.local_addr)
    _wait("b and c link through a", lambda: b.metrics()["peers_connected"] == 2 and c.metrics()["peers_connected"] == 2)
    a.close()
    b.put("users", b"after", b"the seed left")
    _wait("the write reaches c", lambda: c.get("users", b"after") == b"the seed left")
