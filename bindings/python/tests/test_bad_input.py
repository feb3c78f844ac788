"""Misuse raises the usual Python exceptions; nothing crashes."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

import bhsync


def test_wrong_types_raise_type_error(open_nodes) -> None:
    (node,) = open_nodes(1)
    for key, value in [(None, b"v"), (b"k", None), ("text", b"v"), (b"k", "text"), (1, b"v")]:
        with pytest.raises(TypeError):
            node.put("users", key, value)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        node.get(None, b"k")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        node.counter_add("counters", b"k", "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        node.set_conflict_resolver("custom", None)  # type: ignore[arg-type]


def test_oversized_and_malformed_inputs_raise_value_error(open_nodes) -> None:
    (node,) = open_nodes(1)
    cases = [
        lambda: node.put("users", bytes(bhsync.MAX_KEY_LEN + 1), b""),
        lambda: node.put("users", b"k", bytes(bhsync.MAX_VALUE_LEN + 1)),
        lambda: node.get("users", bytes(bhsync.MAX_KEY_LEN + 1)),
        lambda: node.put("", b"k", b""),
        lambda: node.put("us\0ers", b"k", b""),
        lambda: node.put("c" * 65, b"k", b""),
        lambda: node.connect("not an address"),
        lambda: node.counter_add("counters", b"k", 2**63),
        lambda: node.sync(peer=b"short"),
        lambda: node.sync(timeout=-1),
    ]
    for index, case in enumerate(cases):
        with pytest.raises(ValueError):
            case()
            pytest.fail(f"case {index} did not raise")
    node.put("users", bytes(bhsync.MAX_KEY_LEN), bytes(bhsync.MAX_VALUE_LEN))  # at the bounds: fine


def test_invalid_argument_is_both_the_status_class_and_value_error(open_nodes) -> None:
    (node,) = open_nodes(1)
    with pytest.raises(bhsync.InvalidArgumentError) as caught:
        node.put("users", bytes(bhsync.MAX_KEY_LEN + 1), b"")
    assert isinstance(caught.value, ValueError)
    assert caught.value.status == bhsync.InvalidArgumentError.status
    assert str(caught.value)


@pytest.mark.parametrize(
    "config",
    [
        bhsync.Config(settings={"no_such_key": "1"}),
        bhsync.Config(listen="localhost:notaport"),
        bhsync.Config(categories={"c": "mode=psychic"}),
        bhsync.Config(categories={"c": "merge=vibes"}),
        bhsync.Config(categories={"c": "priority=urgent"}),
        bhsync.Config(settings={"io_backend": "epoll"}),
        bhsync.Config(shards=1 << 20),
        bhsync.Config(categories={"bad name\n": ""}),
        bhsync.Config(identity_secret=b"\x01\x02\x03"),
        bhsync.Config(settings={"listen": "127.0.0.1:0\0"}),
    ],
)
def test_bad_configurations_raise_value_error(config: bhsync.Config) -> None:
    with pytest.raises(ValueError):
        bhsync.Node(config)


def test_a_closed_node_raises_closed_error_and_close_is_idempotent(open_nodes) -> None:
    (node,) = open_nodes(1)
    node.close()
    node.close()
    for call in [
        lambda: node.put("users", b"k", b"v"),
        lambda: node.get("users", b"k"),
        lambda: node.sync(),
        lambda: node.state_hash(),
        lambda: node.poll_event(0),
        lambda: node.id,
    ]:
        with pytest.raises(bhsync.ClosedError):
            call()
    assert list(node.events(timeout=0)) == []


def test_threads_using_and_closing_one_node_are_safe(open_nodes) -> None:
    (node,) = open_nodes(1)
    errors = []
    start = threading.Barrier(9)

    def worker(index: int) -> None:
        start.wait()
        for i in range(200):
            key = f"t{index}-{i}".encode()
            try:
                node.put("users", key, key)
                node.get("users", key)
                node.state_hash()
            except bhsync.ClosedError:
                return
            except Exception as error:  # noqa: BLE001 - any other failure is the bug
                errors.append(error)
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    start.wait()
    node.close()
    for thread in threads:
        thread.join()
    assert not errors, errors


def _header_defines() -> dict:
    header = Path(__file__).resolve().parents[3] / "include" / "bhsync.h"
    if not header.is_file():
        pytest.skip("not run from the source tree")
    return {name: int(value) for name, value in re.findall(r"(?m)^#define (BHS_[A-Z_]+) (\d+)$", header.read_text())}


_NOT_STATUS = ("BHS_MAX_", "BHS_ABI_", "BHS_EVENT_", "BHS_IO_BACKEND_", "BHS_RESOLVE_", "BHS_OK")


def test_every_status_of_the_header_has_its_exception_class() -> None:
    statuses = {name: code for name, code in _header_defines().items() if not name.startswith(_NOT_STATUS)}
    known = bhsync.errors.known_statuses()
    missing = {name: code for name, code in statuses.items() if code not in known}
    assert not missing, f"statuses without a class in errors.py (or new non-status #defines: extend _NOT_STATUS): {missing}"


def test_the_package_constants_match_the_header() -> None:
    defines = _header_defines()
    assert defines["BHS_ABI_VERSION"] == bhsync.ABI_VERSION
    assert defines["BHS_MAX_KEY_LEN"] == bhsync.MAX_KEY_LEN
    assert defines["BHS_MAX_VALUE_LEN"] == bhsync.MAX_VALUE_LEN
    for kind in bhsync.EventKind:
        assert defines[f"BHS_EVENT_{kind.name}"] == kind.value
    kinds = {name: code for name, code in defines.items() if name.startswith("BHS_EVENT_") and "_FLAG_" not in name}
    assert kinds == {f"BHS_EVENT_{kind.name}": kind.value for kind in bhsync.EventKind}, "an event kind lacks its EventKind"
    from bhsync import _capi

    for name in ("BHS_TIMEOUT", "BHS_RESOLVE_LOCAL", "BHS_RESOLVE_REMOTE", "BHS_RESOLVE_MERGED",
                 "BHS_EVENT_FLAG_MERGED", "BHS_EVENT_FLAG_FAILED", "BHS_EVENT_FLAG_REACHABLE"):
        assert defines[name] == getattr(_capi, name), name
