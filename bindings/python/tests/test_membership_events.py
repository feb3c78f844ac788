"""Membership events: members up when nodes join, dead (or left) when one closes."""

from __future__ import annotations

import time
from typing import Callable, Collection, Dict, List

import pytest

import bhsync
from conftest import connect_all

# Generous: SWIM's suspicion timeout is 2-12 s at this size (Lifeguard, ADR 020), and
# the machine running the tests may be busy.
MEMBER_EVENT_LIMIT = 40.0


def await_peers(
    node: bhsync.Node, kinds: Collection[bhsync.EventKind], want: Collection[bytes], within: float
) -> Dict[bytes, bhsync.EventKind]:
    """Polls ``node`` until each id of ``want`` was named by an event of one of ``kinds``;
    returns the kind seen for each, or fails after ``within`` seconds."""
    seen: Dict[bytes, bhsync.EventKind] = {}
    membership: List[str] = []  # what membership said meanwhile, for the failure message
    deadline = time.monotonic() + within
    while len(seen) < len(want):
        left = deadline - time.monotonic()
        if left <= 0:
            wanted = sorted(kind.name for kind in kinds)
            pytest.fail(f"only {len(seen)} of {len(want)} peers named by {wanted} in {within} s; saw {membership}")
        event = node.poll_event(timeout=min(left, 0.5))
        if event is None:
            continue
        if event.kind.name.startswith("MEMBER_"):
            membership.append(f"{event.kind.name} {event.peer.hex()[:12]}")
        if event.kind in kinds and event.peer in want:
            seen[event.peer] = event.kind
    return seen


NodeOpener = Callable[..., List[bhsync.Node]]


def test_members_come_up_on_join_and_a_closed_node_is_reported_dead(open_nodes: NodeOpener) -> None:
    a, b, c = open_nodes(3, connect=False)
    connect_all([a, b, c])
    up = {bhsync.EventKind.MEMBER_UP}
    await_peers(a, up, {b.id, c.id}, MEMBER_EVENT_LIMIT)
    await_peers(b, up, {a.id, c.id}, MEMBER_EVENT_LIMIT)

    gone = c.id
    c.close()
    down = {bhsync.EventKind.MEMBER_DEAD, bhsync.EventKind.MEMBER_LEFT}
    for node in (a, b):
        seen = await_peers(node, down, {gone}, MEMBER_EVENT_LIMIT)
        assert seen[gone] in down


def test_an_event_of_a_later_library_is_skipped_and_peers_are_kept_only_where_named() -> None:
    from bhsync import _capi
    from bhsync.node import _event

    raw = _capi.bhs_event(size=192, kind=99)
    assert _event(raw) is None
    raw = _capi.bhs_event(size=192, kind=bhsync.EventKind.MEMBER_DEAD)
    raw.peer[:] = list(range(1, 33))
    event = _event(raw)
    assert event is not None and event.kind is bhsync.EventKind.MEMBER_DEAD
    assert event.peer == bytes(range(1, 33))
    raw = _capi.bhs_event(size=192, kind=bhsync.EventKind.LEADER, count=7)  # no leader known: zero id
    event = _event(raw)
    assert event is not None and event.peer == b"" and event.count == 7
    raw = _capi.bhs_event(size=192, kind=bhsync.EventKind.PARTITION, count=2, flags=_capi.BHS_EVENT_FLAG_REACHABLE)
    event = _event(raw)
    assert event is not None and event.reachable and event.count == 2
    raw = _capi.bhs_event(size=192, kind=bhsync.EventKind.CONFLICT, flags=_capi.BHS_EVENT_FLAG_REACHABLE)
    event = _event(raw)
    assert event is not None and not event.reachable  # the flag belongs to PARTITION only
