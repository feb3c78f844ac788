"""Shared fixtures: nodes on loopback, connected, closed after each test."""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator, List

import pytest

import bhsync

CATEGORIES = {
    "users": "mode=eventual,merge=lww,priority=high",
    "counters": "mode=eventual,merge=crdt,priority=medium",
    "custom": "mode=eventual,merge=custom,priority=medium",
}


def secret(index: int) -> bytes:
    """A fixed identity for node ``index`` (X25519 clamps byte 0, so byte 1 varies)."""
    raw = bytearray([9] * 32)
    raw[1] = index + 1
    return bytes(raw)


@pytest.fixture
def open_nodes() -> Iterator[Callable[..., List[bhsync.Node]]]:
    """``open_nodes(n, connect=True)``: n nodes, each connected to the ones opened before
    it (or to none yet); all closed after the test."""
    opened: List[bhsync.Node] = []

    def make(count: int, connect: bool = True) -> List[bhsync.Node]:
        nodes: List[bhsync.Node] = []
        for _ in range(count):
            node = bhsync.Node(bhsync.Config(identity_secret=secret(len(opened)), categories=CATEGORIES))
            opened.append(node)
            nodes.append(node)
        if connect:
            connect_all(nodes)
        return nodes

    yield make
    # In parallel: a node with peers takes about a second to say goodbye.
    closers = [threading.Thread(target=node.close) for node in opened]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join()


def connect_all(nodes: List[bhsync.Node]) -> None:
    """Each node dials the ones before it."""
    for index, node in enumerate(nodes):
        for earlier in nodes[:index]:
            node.connect(earlier.local_addr)


def converge(nodes: List[bhsync.Node], within: float = 20.0) -> bytes:
    """Syncs every node with its peers until all state hashes agree (fails after ``within`` s)."""
    deadline = time.monotonic() + within
    rounds = 0
    while True:
        rounds += 1
        for node in nodes:
            try:
                node.sync(timeout=2.0)
            except bhsync.BhsyncError:
                pass  # a peer still connecting; the next round retries
        hashes = [node.state_hash() for node in nodes]
        if len(set(hashes)) == 1:
            return hashes[0]
        if time.monotonic() > deadline:
            pytest.fail(f"no convergence after {rounds} rounds in {within} s: {[h.hex()[:12] for h in hashes]}")
        time.sleep(0.05)
