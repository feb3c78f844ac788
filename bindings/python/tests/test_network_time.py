"""Network time from Python: a lone node reads its local clock, never going backwards."""

from __future__ import annotations

import datetime
import time

import pytest

import bhsync


def test_network_time_of_a_lone_node_is_the_local_clock_and_never_goes_back(open_nodes) -> None:
    (node,) = open_nodes(1)
    first = node.network_time()
    assert isinstance(first, bhsync.NetworkTime)
    assert isinstance(first.unix_ms, int) and isinstance(first.offset_ms, int)
    assert -1000 < first.offset_ms < 1000, first
    previous = first
    for _ in range(50):
        now = node.network_time()
        assert now.unix_ms >= previous.unix_ms, (previous, now)
        previous = now
    assert abs(previous.timestamp - time.time()) < 2.0, previous
    assert previous.to_datetime() == datetime.datetime.fromtimestamp(previous.unix_ms / 1000, datetime.timezone.utc)
    with pytest.raises(AttributeError):
        previous.unix_ms = 0  # type: ignore[misc]  # frozen
    node.close()
    with pytest.raises(bhsync.ClosedError):
        node.network_time()
