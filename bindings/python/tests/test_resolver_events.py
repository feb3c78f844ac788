"""A conflict resolver written in Python, and events through an iterator."""

from __future__ import annotations

import gc
import threading
import time

import bhsync
from conftest import connect_all, converge


def test_a_python_resolver_decides_conflicts(open_nodes) -> None:
    # Keeps the larger value. Node 0 writes b"zzz" first, node 1 b"aaa" later, so
    # last-writer-wins would keep b"aaa": b"zzz" on both proves the resolver decided.
    a, b = open_nodes(2, connect=False)  # the writes must not see each other: a true conflict
    calls = []
    lock = threading.Lock()

    def larger(local: bhsync.Versioned, remote: bhsync.Versioned) -> bhsync.Resolution:
        with lock:
            calls.append((local.value, remote.value))
        return bhsync.Resolution.keep_remote() if remote.value > local.value else bhsync.Resolution.keep_local()

    a.set_conflict_resolver("custom", larger)
    b.set_conflict_resolver("custom", larger)
    del larger
    gc.collect()  # the node keeps the callback (and its ctypes thunk) alive
    a.put("custom", b"k", b"zzz")
    time.sleep(0.005)
    b.put("custom", b"k", b"aaa")
    connect_all([a, b])
    converge([a, b])
    assert a.get("custom", b"k") == b"zzz"
    assert b.get("custom", b"k") == b"zzz"
    assert calls, "the resolver was never called"


def test_a_raising_resolver_falls_back_to_last_writer_wins(open_nodes) -> None:
    a, b = open_nodes(2, connect=False)

    def broken(local: bhsync.Versioned, remote: bhsync.Versioned) -> bhsync.Resolution:
        raise RuntimeError("no opinion")

    a.set_conflict_resolver("custom", broken)
    b.set_conflict_resolver("custom", broken)
    a.put("custom", b"k", b"first")
    time.sleep(0.005)
    b.put("custom", b"k", b"second")
    connect_all([a, b])
    converge([a, b])
    assert a.get("custom", b"k") == b"second" == b.get("custom", b"k")


def test_events_arrive_through_an_iterator(open_nodes) -> None:
    a, b = open_nodes(2)
    a.put("users", b"news", b"hello")
    converge([a, b])
    kinds = set()
    deadline = time.monotonic() + 10
    for event in b.events(timeout=0.2):
        kinds.add(event.kind)
        if event.kind in (bhsync.EventKind.UPDATED, bhsync.EventKind.STREAMED):
            assert event.category == "users"
        if bhsync.EventKind.PEER_UP in kinds and kinds & {bhsync.EventKind.UPDATED, bhsync.EventKind.STREAMED}:
            break
        if time.monotonic() > deadline:
            break
    assert bhsync.EventKind.PEER_UP in kinds, kinds
    assert kinds & {bhsync.EventKind.UPDATED, bhsync.EventKind.STREAMED}, kinds


def test_poll_event_times_out_with_none(open_nodes) -> None:
    (node,) = open_nodes(1)
    start = time.monotonic()
    while node.poll_event(timeout=0.05) is not None:
        pass  # drains start-up events
    assert time.monotonic() - start < 5


def test_a_blocking_poll_releases_the_gil(open_nodes) -> None:
    (node,) = open_nodes(1)
    ticks = []
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    spinner = threading.Thread(target=spin)
    spinner.start()
    node.poll_event(timeout=0.3)
    stop.set()
    spinner.join()
    assert len(ticks) > 20, "the other thread did not run while poll_event blocked"


def _answer(resolver, local: bytes = b"a", remote: bytes = b"b"):
    """Runs a resolver through its C callback, as the engine would."""
    import ctypes

    from bhsync import _capi
    from bhsync.node import _resolver_thunk

    local_buf, remote_buf = ctypes.create_string_buffer(local), ctypes.create_string_buffer(remote)
    conflict = _capi.bhs_conflict(size=ctypes.sizeof(_capi.bhs_conflict))
    conflict.local.value = ctypes.cast(local_buf, ctypes.POINTER(ctypes.c_uint8))
    conflict.local.value_len = len(local)
    conflict.remote.value = ctypes.cast(remote_buf, ctypes.POINTER(ctypes.c_uint8))
    conflict.remote.value_len = len(remote)
    out = _capi.bhs_resolution(size=ctypes.sizeof(_capi.bhs_resolution))
    code = _resolver_thunk(resolver)(None, ctypes.byref(conflict), ctypes.byref(out))
    return code, out.choice, _capi.take_buf(out.merged)


def test_the_resolver_callback_answers_for_every_kind_of_resolution() -> None:
    R = bhsync.Resolution
    assert _answer(lambda l, r: R.keep_local()) == (0, 1, b"")
    assert _answer(lambda l, r: R.keep_remote()) == (0, 2, b"")
    assert _answer(lambda l, r: R.merge(l.value + r.value)) == (0, 3, b"ab")
    assert _answer(lambda l, r: 1 / 0) == (1, 0, b"")
    assert _answer(lambda l, r: "local") == (1, 0, b"")
    assert _answer(lambda l, r: R(choice=99)) == (1, 0, b"")
    seen = []
    _answer(lambda l, r: seen.append((l, r)) or R.keep_local(), b"x" * 10, b"")
    assert seen[0][0].value == b"x" * 10 and seen[0][1].value == b""
