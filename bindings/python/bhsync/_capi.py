"""The C ABI of ``include/bhsync.h`` as ctypes declarations, and the conversions of its
structs into the package's Python types. Nothing here is public.

Pointer arguments that the library only reads for the duration of a call (keys, values,
names) are declared ``c_char_p`` so that ``bytes`` pass without a copy.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_char_p, c_int64, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p

from typing import Any

from ._library import load

BHS_ABI_VERSION = 1
BHS_MAX_KEY_LEN = 1024
BHS_MAX_VALUE_LEN = 1048576
BHS_MAX_CATEGORY_NAME_LEN = 64
BHS_MAX_BLOCK_TRANSACTIONS = 10000
BHS_MAX_TRANSACTION_LEN = 65536

status = c_uint32


class bhs_buf(ctypes.Structure):
    _fields_ = [("data", POINTER(c_uint8)), ("len", c_size_t), ("reserved", c_uint64)]


class bhs_sync_report(ctypes.Structure):
    _fields_ = [
        ("size", c_uint32),
        ("peers", c_uint32),
        ("peers_succeeded", c_uint32),
        ("peers_failed", c_uint32),
        ("categories_failed", c_uint32),
        ("round_trips", c_uint32),
        ("items_applied", c_uint64),
        ("items_sent", c_uint64),
        ("reserved", c_uint64 * 8),
    ]


class bhs_event(ctypes.Structure):
    _fields_ = [
        ("size", c_uint32),
        ("kind", c_uint32),
        ("peer", c_uint8 * 32),
        ("category", bhs_buf),
        ("key", bhs_buf),
        ("message", bhs_buf),
        ("count", c_uint64),
        ("sync_id", c_uint32),
        ("flags", c_uint32),
        ("reserved", c_uint64 * 8),
    ]


class bhs_versioned(ctypes.Structure):
    _fields_ = [
        ("value", POINTER(c_uint8)),
        ("value_len", c_size_t),
        ("hlc", c_uint64),
        ("counter", c_uint64),
        ("origin", c_uint8 * 32),
        ("tombstone", c_uint32),
        ("reserved0", c_uint32),
        ("reserved", c_uint64 * 2),
    ]


class bhs_conflict(ctypes.Structure):
    _fields_ = [
        ("size", c_uint32),
        ("reserved0", c_uint32),
        ("category", POINTER(c_uint8)),
        ("category_len", c_size_t),
        ("local", bhs_versioned),
        ("remote", bhs_versioned),
        ("reserved", c_uint64 * 4),
    ]


class bhs_resolution(ctypes.Structure):
    _fields_ = [("size", c_uint32), ("choice", c_uint32), ("merged", bhs_buf), ("reserved", c_uint64 * 4)]


_METRIC_NAMES = (
    "peers_connected items_in items_out syncs_started syncs_succeeded syncs_failed bulk_syncs conflicts "
    "conflicts_unresolved events_dropped pushes_dropped bytes_in bytes_out frames_in frames_out accepted dials "
    "dial_failures handshakes_completed handshakes_failed bad_frames peer_faults disconnected_misbehaviour"
).split()


class bhs_node_metrics(ctypes.Structure):
    _fields_ = [("size", c_uint32), ("io_backend", c_uint32)] + [(name, c_uint64) for name in _METRIC_NAMES] + [
        ("reserved", c_uint64 * 16)
    ]


# int32_t (*bhs_conflict_resolver)(void *user_data, const bhs_conflict *, bhs_resolution *)
bhs_conflict_resolver = ctypes.CFUNCTYPE(ctypes.c_int32, c_void_p, POINTER(bhs_conflict), POINTER(bhs_resolution))

BHS_RESOLVE_LOCAL = 1
BHS_RESOLVE_REMOTE = 2
BHS_RESOLVE_MERGED = 3
IO_BACKENDS = {1: "io_uring", 2: "mio"}
BHS_TIMEOUT = 64
BHS_EVENT_FLAG_MERGED = 1
BHS_EVENT_FLAG_FAILED = 2
BHS_EVENT_FLAG_REACHABLE = 4

# The layouts of the header (the library asserts the same sizes on its side).
assert ctypes.sizeof(bhs_buf) == 24 and ctypes.sizeof(bhs_sync_report) == 104 and ctypes.sizeof(bhs_event) == 192
assert ctypes.sizeof(bhs_versioned) == 88 and ctypes.sizeof(bhs_conflict) == 232
assert ctypes.sizeof(bhs_resolution) == 64 and ctypes.sizeof(bhs_node_metrics) == 320

lib = load()


def _declare(name: str, restype: Any, *argtypes: Any) -> None:
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


_node = c_void_p
_out32 = POINTER(c_uint8)
_declare("bhs_abi_version", c_uint32)
_declare("bhs_version", c_char_p)
_declare("bhs_status_str", c_char_p, status)
_declare("bhs_last_error", c_char_p)
_declare("bhs_buf_free", None, POINTER(bhs_buf))
_declare("bhs_config_new", status, POINTER(c_void_p))
_declare("bhs_config_set", status, c_void_p, c_char_p, c_char_p)
_declare("bhs_config_add_category", status, c_void_p, c_char_p, c_char_p)
_declare("bhs_config_free", None, c_void_p)
_declare("bhs_node_open", status, c_void_p, POINTER(c_void_p))
_declare("bhs_node_close", status, _node)
_declare("bhs_node_id", status, _node, _out32)
_declare("bhs_node_local_addr", status, _node, POINTER(bhs_buf))
_declare("bhs_node_connect", status, _node, c_char_p)
_declare("bhs_put", status, _node, c_char_p, c_char_p, c_size_t, c_char_p, c_size_t)
_declare("bhs_get", status, _node, c_char_p, c_char_p, c_size_t, POINTER(bhs_buf))
_declare("bhs_delete", status, _node, c_char_p, c_char_p, c_size_t)
_declare("bhs_counter_add", status, _node, c_char_p, c_char_p, c_size_t, c_int64, POINTER(c_int64))
_declare("bhs_counter_get", status, _node, c_char_p, c_char_p, c_size_t, POINTER(c_int64))
_declare("bhs_state_hash", status, _node, c_char_p, _out32)
_declare("bhs_sync", status, _node, c_char_p, c_uint32, POINTER(bhs_sync_report))
_declare("bhs_poll_event", status, _node, POINTER(bhs_event), c_uint32)
_declare("bhs_event_free", None, POINTER(bhs_event))
_declare("bhs_set_conflict_resolver", status, _node, c_char_p, bhs_conflict_resolver, c_void_p)
_declare("bhs_buf_copy", status, c_char_p, c_size_t, POINTER(bhs_buf))
_declare("bhs_metrics", status, _node, POINTER(bhs_node_metrics))
_declare("bhs_health_json", status, _node, POINTER(bhs_buf))
_declare("bhs_network_time", status, _node, POINTER(c_uint64), POINTER(c_int64))
_declare(
    "bhs_chain_append",
    status,
    _node,
    c_char_p,
    POINTER(c_char_p),
    POINTER(c_size_t),
    c_size_t,
    POINTER(c_uint64),
    _out32,
)
_declare("bhs_chain_head", status, _node, c_char_p, POINTER(c_uint64), _out32)
_declare("bhs_chain_block", status, _node, c_char_p, c_uint64, POINTER(bhs_buf))


def take_buf(buf: bhs_buf) -> bytes:
    """Copies a library buffer into ``bytes`` and releases it."""
    try:
        return buf_bytes(buf)
    finally:
        lib.bhs_buf_free(ctypes.byref(buf))


def buf_bytes(buf: bhs_buf) -> bytes:
    """Copies a library buffer into ``bytes`` (it stays owned by the library)."""
    return ctypes.string_at(buf.data, buf.len) if buf.len else b""
