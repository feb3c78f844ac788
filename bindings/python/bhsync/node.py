"""The node: open, write and read bytes, sync with peers, events, a conflict resolver.

Follows the C ABI of ``include/bhsync.h`` one call per method, but speaks Python: bytes
in and out, ``None`` for an absent key, exceptions per status (:mod:`bhsync.errors`),
a context manager, an event iterator, and a resolver that is a plain Python callable.
"""

from __future__ import annotations

import atexit
import ctypes
import datetime as _datetime
import enum
import json
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import _capi
from ._capi import lib
from .errors import BhsyncError, ClosedError, InvalidArgumentError, NotFoundError, error_for

BytesLike = Union[bytes, bytearray, memoryview]

ABI_VERSION: int = _capi.BHS_ABI_VERSION
MAX_KEY_LEN: int = _capi.BHS_MAX_KEY_LEN
MAX_VALUE_LEN: int = _capi.BHS_MAX_VALUE_LEN
MAX_CATEGORY_NAME_LEN: int = _capi.BHS_MAX_CATEGORY_NAME_LEN
MAX_BLOCK_TRANSACTIONS: int = _capi.BHS_MAX_BLOCK_TRANSACTIONS
MAX_TRANSACTION_LEN: int = _capi.BHS_MAX_TRANSACTION_LEN

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1
_TIMEOUT_MS_MAX = 2**32 - 1


def abi_version() -> int:
    """The ABI version of the loaded library (``bhs_abi_version``)."""
    return int(lib.bhs_abi_version())


def version() -> str:
    """The library version, for example ``"0.1.0"`` (``bhs_version``)."""
    return str(lib.bhs_version().decode())


def _check(status: int) -> None:
    # The message is thread-local in the library and the call ran on this thread.
    if status != 0:
        raise error_for(status, lib.bhs_last_error().decode(errors="replace"))


def _bytes(what: str, data: Any, bound: int) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes-like, not {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > bound:
        raise InvalidArgumentError(f"{what} is {len(raw)} bytes, over the bound of {bound}")
    return raw


def _text(what: str, text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be str, not {type(text).__name__}")
    if "\0" in text:
        raise InvalidArgumentError(f"{what} contains a NUL character")
    return text.encode()


def _category(name: Any) -> bytes:
    raw = _text("category", name)
    if not raw or len(raw) > MAX_CATEGORY_NAME_LEN:
        raise InvalidArgumentError(f"a category name is 1 to {MAX_CATEGORY_NAME_LEN} bytes")
    return raw


def _timeout_ms(timeout: Any) -> int:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    if not 0 <= timeout * 1000 <= _TIMEOUT_MS_MAX:
        raise InvalidArgumentError(f"timeout must be 0 to {_TIMEOUT_MS_MAX // 1000} seconds")
    return int(timeout * 1000)


@dataclass
class Config:
    """How to open a :class:`Node`; the defaults run one in-memory node on a free port.

    ``categories`` maps a name to its spec string (see ``bhs_config_add_category`` in
    the header), for example ``{"users": "mode=eventual,merge=lww,priority=high"}``;
    ``settings`` holds further ``bhs_config_set`` keys, applied after the fields.
    """

    listen: Optional[str] = None
    peers: Sequence[str] = ()
    data_dir: Optional[str] = None
    identity_secret: Optional[bytes] = None
    shards: Optional[int] = None
    categories: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, str] = field(default_factory=dict)

    def _pairs(self) -> List[Tuple[str, str]]:
        pairs = []
        if self.listen is not None:
            pairs.append(("listen", self.listen))
        if self.peers:
            pairs.append(("peers", ",".join(self.peers)))
        if self.data_dir is not None:
            pairs.append(("data_dir", str(self.data_dir)))
        if self.identity_secret is not None:
            pairs.append(("identity_secret", _bytes("identity_secret", self.identity_secret, 64).hex()))
        if self.shards is not None:
            pairs.append(("shards", str(self.shards)))
        pairs.extend(sorted(self.settings.items()))
        return pairs


class EventKind(enum.IntEnum):
    """What an :class:`Event` reports (the ``BHS_EVENT_*`` codes)."""

    PEER_UP = 1
    PEER_DOWN = 2
    UPDATED = 3
    STREAMED = 4
    SYNC_FINISHED = 5
    FATAL = 6
    CONFLICT = 7
    #: The Raft group of the strong ``category`` has a new leader, ``peer`` (``b""``
    #: when unknown), in term ``count``.
    LEADER = 8
    #: The strong ``category`` lost (``reachable`` false) or regained a quorum of its
    #: Raft group. With an empty ``category``: membership saw this node on a minority
    #: side (or a majority reachable again); ``count`` members are reachable and
    #: ``message`` says how many are known.
    PARTITION = 9
    #: Membership (SWIM) counts ``peer`` as a live member: it joined or came back.
    MEMBER_UP = 10
    #: Membership suspects ``peer``; it may still refute.
    MEMBER_SUSPECT = 11
    #: Membership declared ``peer`` dead.
    MEMBER_DEAD = 12
    #: ``peer`` left the membership on purpose.
    MEMBER_LEFT = 13
    #: This node refuted a suspicion about itself; ``count`` is its new incarnation.
    MEMBER_REFUTED = 14


# The kinds whose ``peer`` names a node (for LEADER, all zero means no leader known).
_PEER_KINDS = frozenset(
    {
        EventKind.PEER_UP,
        EventKind.PEER_DOWN,
        EventKind.SYNC_FINISHED,
        EventKind.LEADER,
        EventKind.MEMBER_UP,
        EventKind.MEMBER_SUSPECT,
        EventKind.MEMBER_DEAD,
        EventKind.MEMBER_LEFT,
    }
)


@dataclass(frozen=True)
class Event:
    """Something that happened on a node; fields a kind does not use are empty.

    ``peer`` is the 32-byte id of the peer (``PEER_UP``, ``PEER_DOWN``,
    ``SYNC_FINISHED``), the leader (``LEADER``) or the member (``MEMBER_*``);
    ``count`` is the entries applied (``SYNC_FINISHED``) or streamed (``STREAMED``),
    the term (``LEADER``), the members reachable (``PARTITION`` without a category) or
    the new incarnation (``MEMBER_REFUTED``); ``merged``: a conflict stored a merged
    value; ``failed``: the sync or the resolution failed, and ``message`` says why
    (also the fatal error, or how many members a ``PARTITION`` knows); ``reachable``: a
    ``PARTITION`` reports a quorum reachable again."""

    kind: EventKind
    peer: bytes = b""
    category: str = ""
    key: bytes = b""
    count: int = 0
    sync_id: int = 0
    merged: bool = False
    failed: bool = False
    message: str = ""
    reachable: bool = False


@dataclass(frozen=True)
class SyncReport:
    """What one :meth:`Node.sync` did, summed over the peers it synced with (a peer that
    is not connected counts in ``peers_failed``; the events say why a sync failed)."""

    peers: int = 0
    peers_succeeded: int = 0
    peers_failed: int = 0
    categories_failed: int = 0
    round_trips: int = 0
    items_applied: int = 0
    items_sent: int = 0


@dataclass(frozen=True)
class NetworkTime:
    """Network time (:meth:`Node.network_time`): ``unix_ms``, milliseconds since the Unix
    epoch as the node's peers agree on it (never lower than at the node's previous read),
    and ``offset_ms``, network time minus the local clock (0 while too few peers agree)."""

    unix_ms: int
    offset_ms: int

    @property
    def timestamp(self) -> float:
        """``unix_ms`` in seconds, as :func:`time.time` counts."""
        return self.unix_ms / 1000

    def to_datetime(self) -> _datetime.datetime:
        """``unix_ms`` as an aware datetime in UTC."""
        return _datetime.datetime.fromtimestamp(self.unix_ms / 1000, tz=_datetime.timezone.utc)


@dataclass(frozen=True)
class ChainHead:
    """A block of a chain category: its ``height`` (genesis at 0) and its 32-byte ``id``."""

    height: int
    id: bytes


@dataclass(frozen=True)
class Versioned:
    """One side of a conflict handed to a resolver: the value and the version that
    wrote it (``hlc``: hybrid logical timestamp, milliseconds << 16 | logical;
    ``counter``: the write's counter at ``origin``, the 32-byte id of its node)."""

    value: bytes
    hlc: int = 0
    counter: int = 0
    origin: bytes = b""
    tombstone: bool = False


@dataclass(frozen=True)
class Resolution:
    """What a resolver decided: keep one side, or store ``merged`` as a new version
    superseding both. Make one with :meth:`keep_local`, :meth:`keep_remote` or :meth:`merge`."""

    choice: int
    merged: bytes = b""

    @staticmethod
    def keep_local() -> "Resolution":
        return Resolution(_capi.BHS_RESOLVE_LOCAL)

    @staticmethod
    def keep_remote() -> "Resolution":
        return Resolution(_capi.BHS_RESOLVE_REMOTE)

    @staticmethod
    def merge(value: BytesLike) -> "Resolution":
        return Resolution(_capi.BHS_RESOLVE_MERGED, _bytes("merged value", value, MAX_VALUE_LEN))


Resolver = Callable[[Versioned, Versioned], Resolution]


class Node:
    """A running bhsync node; use it as a context manager or call :meth:`close`.

    Every method may be called from several threads at once; blocking calls release
    the GIL. After :meth:`close`, calls raise :class:`ClosedError`.
    """

    def __init__(self, config: Optional[Config] = None) -> None:
        if lib.bhs_abi_version() != ABI_VERSION:
            raise BhsyncError(f"library ABI {lib.bhs_abi_version()}, this package expects {ABI_VERSION}")
        self._handle: Optional[ctypes.c_void_p] = None
        self._lock = threading.Condition()
        self._in_flight = 0
        self._resolvers: List[Any] = []  # ctypes thunks registered with the library
        self._handle = _open(config or Config())
        _LIVE_NODES.add(self)

    # -- life cycle -------------------------------------------------------------------

    def __enter__(self) -> "Node":
        return self

    def __repr__(self) -> str:
        if self.closed:
            return "<bhsync.Node closed>"
        return f"<bhsync.Node {self.id.hex()[:12]} at {self.local_addr}>"

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass

    @property
    def closed(self) -> bool:
        return self._handle is None

    def close(self) -> None:
        """Stops the node; waits for calls in flight on other threads. Idempotent."""
        with self._lock:
            handle, self._handle = self._handle, None
            while self._in_flight:
                self._lock.wait()
        if handle is not None:
            lib.bhs_node_close(handle)
        self._resolvers.clear()

    def _enter(self) -> ctypes.c_void_p:
        with self._lock:
            if self._handle is None:
                raise ClosedError("the node is closed")
            self._in_flight += 1
            return self._handle

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if not self._in_flight:
                self._lock.notify_all()

    def _call(self, fn: Callable[..., int], *args: Any) -> None:
        handle = self._enter()
        try:
            _check(fn(handle, *args))
        finally:
            self._leave()

    # -- identity and peers -----------------------------------------------------------

    @property
    def id(self) -> bytes:
        """The node id: its 32-byte public key."""
        out = (ctypes.c_uint8 * 32)()
        self._call(lib.bhs_node_id, out)
        return bytes(out)

    @property
    def local_addr(self) -> str:
        """The address the node listens on, as "host:port"."""
        buf = _capi.bhs_buf()
        self._call(lib.bhs_node_local_addr, ctypes.byref(buf))
        return _capi.take_buf(buf).decode()

    def connect(self, addr: str) -> None:
        """Dials a peer at "host:port" (and keeps re-dialling it when the link drops)."""
        self._call(lib.bhs_node_connect, _text("addr", addr))

    # -- data -------------------------------------------------------------------------

    def put(self, category: str, key: BytesLike, value: BytesLike) -> None:
        """Stores ``value`` under ``key`` in ``category``."""
        cat = _category(category)
        key_b = _bytes("key", key, MAX_KEY_LEN)
        value_b = _bytes("value", value, MAX_VALUE_LEN)
        self._call(lib.bhs_put, cat, key_b, len(key_b), value_b, len(value_b))

    def get(self, category: str, key: BytesLike) -> Optional[bytes]:
        """The live value of ``key``, or ``None`` when it is absent or deleted."""
        cat = _category(category)
        key_b = _bytes("key", key, MAX_KEY_LEN)
        buf = _capi.bhs_buf()
        try:
            self._call(lib.bhs_get, cat, key_b, len(key_b), ctypes.byref(buf))
        except NotFoundError:
            return None
        return _capi.take_buf(buf)

    def delete(self, category: str, key: BytesLike) -> bool:
        """Deletes ``key`` (a tombstone that syncs); ``False`` when it had no live value."""
        cat = _category(category)
        key_b = _bytes("key", key, MAX_KEY_LEN)
        try:
            self._call(lib.bhs_delete, cat, key_b, len(key_b))
        except NotFoundError:
            return False
        return True

    def counter_add(self, category: str, key: BytesLike, delta: int) -> int:
        """Adds ``delta`` to a counter (a CRDT category) and returns its new value."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be int, not {type(delta).__name__}")
        if not _INT64_MIN <= delta <= _INT64_MAX:
            raise InvalidArgumentError("delta must fit in 64 signed bits")
        cat = _category(category)
        key_b = _bytes("key", key, MAX_KEY_LEN)
        out = ctypes.c_int64()
        self._call(lib.bhs_counter_add, cat, key_b, len(key_b), delta, ctypes.byref(out))
        return out.value

    def counter_get(self, category: str, key: BytesLike) -> int:
        """The value of a counter (0 when never written)."""
        cat = _category(category)
        key_b = _bytes("key", key, MAX_KEY_LEN)
        out = ctypes.c_int64()
        self._call(lib.bhs_counter_get, cat, key_b, len(key_b), ctypes.byref(out))
        return out.value

    def state_hash(self, category: Optional[str] = None) -> bytes:
        """The 32-byte state hash of the node, or the Merkle root of one category."""
        cat = None if category is None else _category(category)
        out = (ctypes.c_uint8 * 32)()
        self._call(lib.bhs_state_hash, cat, out)
        return bytes(out)

    # -- time -------------------------------------------------------------------------

    def network_time(self) -> NetworkTime:
        """Network time: the node's clock corrected by the offset its peers agree on,
        never going backwards between two calls; the local clock while too few peers
        agree (``bhs_network_time``)."""
        unix_ms = ctypes.c_uint64()
        offset_ms = ctypes.c_int64()
        self._call(lib.bhs_network_time, ctypes.byref(unix_ms), ctypes.byref(offset_ms))
        return NetworkTime(unix_ms=unix_ms.value, offset_ms=offset_ms.value)

    # -- chain ------------------------------------------------------------------------

    def chain_append(self, category: str, transactions: Iterable[BytesLike]) -> ChainHead:
        """Appends ``transactions`` to a ``mode=chain`` category (the node needs a
        ``data_dir``) as one block signed by this node, on its current head; returns the
        new block once it is durable (the GIL is released meanwhile). Peers learn it by
        the chain's sync; fork choice keeps the highest chain (ties: the lowest head id),
        so a block appended on a losing branch may later leave the main chain. Over
        :data:`MAX_BLOCK_TRANSACTIONS` or :data:`MAX_TRANSACTION_LEN`, or in a category
        that is not the node's chain: :class:`InvalidArgumentError`, nothing appended."""
        cat = _category(category)
        if isinstance(transactions, (bytes, bytearray, memoryview, str)):
            raise TypeError("transactions must be an iterable of bytes-like objects, not one bytes or str")
        txs = [_bytes("transaction", tx, MAX_TRANSACTION_LEN) for tx in transactions]
        if len(txs) > MAX_BLOCK_TRANSACTIONS:
            raise InvalidArgumentError(f"{len(txs)} transactions, over the bound of {MAX_BLOCK_TRANSACTIONS}")
        pointers = (ctypes.c_char_p * len(txs))(*txs)
        lengths = (ctypes.c_size_t * len(txs))(*(len(tx) for tx in txs))
        height = ctypes.c_uint64()
        block_id = (ctypes.c_uint8 * 32)()
        self._call(lib.bhs_chain_append, cat, pointers, lengths, len(txs), ctypes.byref(height), block_id)
        return ChainHead(height=height.value, id=bytes(block_id))

    def chain_head(self, category: str) -> ChainHead:
        """The head of a chain category: the last block of its main chain (the genesis
        block, height 0, on a fresh chain)."""
        cat = _category(category)
        height = ctypes.c_uint64()
        block_id = (ctypes.c_uint8 * 32)()
        self._call(lib.bhs_chain_head, cat, ctypes.byref(height), block_id)
        return ChainHead(height=height.value, id=bytes(block_id))

    def chain_block(self, category: str, height: int) -> Optional[bytes]:
        """The encoded block at ``height`` of the main chain (genesis at 0), or ``None``
        above the head. The encoding: a 176-byte header (height, timestamp ms, parent id,
        transactions' Merkle root, proposer key, Ed25519 signature; little endian), a u32
        transaction count, then each transaction as a u32 length and its bytes."""
        if isinstance(height, bool) or not isinstance(height, int):
            raise TypeError(f"height must be int, not {type(height).__name__}")
        if not 0 <= height <= _UINT64_MAX:
            raise InvalidArgumentError("height must fit in 64 unsigned bits")
        cat = _category(category)
        buf = _capi.bhs_buf()
        try:
            self._call(lib.bhs_chain_block, cat, height, ctypes.byref(buf))
        except NotFoundError:
            return None
        return _capi.take_buf(buf)

    # -- sync and events --------------------------------------------------------------

    def sync(self, peer: Optional[BytesLike] = None, timeout: float = 10.0) -> SyncReport:
        """Syncs with ``peer`` (a 32-byte id) or with every connected peer; blocks up to
        ``timeout`` seconds with the GIL released."""
        peer_b = None if peer is None else _bytes("peer", peer, 32)
        if peer_b is not None and len(peer_b) != 32:
            raise InvalidArgumentError("a peer id is 32 bytes")
        timeout_ms = _timeout_ms(timeout)
        out = _capi.bhs_sync_report()
        self._call(lib.bhs_sync, peer_b, timeout_ms, ctypes.byref(out))
        return SyncReport(
            peers=out.peers,
            peers_succeeded=out.peers_succeeded,
            peers_failed=out.peers_failed,
            categories_failed=out.categories_failed,
            round_trips=out.round_trips,
            items_applied=out.items_applied,
            items_sent=out.items_sent,
        )

    def poll_event(self, timeout: float = 0.0) -> Optional[Event]:
        """The next event, waiting up to ``timeout`` seconds (GIL released); ``None`` if
        none came. Kinds this package does not know (from a newer library) are skipped."""
        deadline = time.monotonic() + _timeout_ms(timeout) / 1000
        while True:
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            raw = _capi.bhs_event()
            handle = self._enter()
            try:
                status = lib.bhs_poll_event(handle, ctypes.byref(raw), left_ms)
                if status == _capi.BHS_TIMEOUT:
                    return None
                _check(status)
            finally:
                self._leave()
            try:
                event = _event(raw)
            finally:
                lib.bhs_event_free(ctypes.byref(raw))
            if event is not None:
                return event

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Yields events as they come. With ``timeout``, stops after that many idle
        seconds; without, runs until the node is closed (from another thread)."""
        slice_s = 0.1 if timeout is None else timeout
        while True:
            try:
                event = self.poll_event(slice_s)
            except ClosedError:
                return
            if event is not None:
                yield event
            elif timeout is not None:
                return

    def set_conflict_resolver(self, category: str, resolver: Resolver) -> None:
        """Decides conflicts of a ``merge=custom`` category with ``resolver(local, remote)``.

        It runs on an engine thread (taking the GIL); if it raises or returns something
        other than a :class:`Resolution`, the conflict falls back to last-writer-wins and
        a conflict event carries the message. The node keeps it alive until closed."""
        if not callable(resolver):
            raise TypeError("resolver must be callable")
        cat = _category(category)
        thunk = _resolver_thunk(resolver)
        self._call(lib.bhs_set_conflict_resolver, cat, thunk, None)
        # A replaced resolver may still be running on the engine thread: every thunk
        # stays alive until close(), after the engine has stopped.
        self._resolvers.append(thunk)

    # -- observability ----------------------------------------------------------------

    def metrics(self) -> Dict[str, Any]:
        """Counters of the node since it opened (``bhs_metrics``): ``peers_connected``,
        ``items_in``, ``syncs_failed``, ``conflicts``, ``bytes_out``, … and ``io_backend``
        ("io_uring", "mio" or "unknown")."""
        raw = _capi.bhs_node_metrics()
        self._call(lib.bhs_metrics, ctypes.byref(raw))
        metrics: Dict[str, Any] = {name: getattr(raw, name) for name in _capi._METRIC_NAMES}
        metrics["io_backend"] = _capi.IO_BACKENDS.get(raw.io_backend, "unknown")
        return metrics

    def health_json(self) -> str:
        """The health report as JSON text (``bhs_health_json``)."""
        buf = _capi.bhs_buf()
        self._call(lib.bhs_health_json, ctypes.byref(buf))
        return _capi.take_buf(buf).decode()

    def health(self) -> Dict[str, Any]:
        """The health report, parsed."""
        report: Dict[str, Any] = json.loads(self.health_json())
        return report


# Nodes still open at interpreter exit are closed first, so that no engine thread calls
# a Python resolver while the interpreter is being torn down.
_LIVE_NODES: "weakref.WeakSet[Node]" = weakref.WeakSet()


@atexit.register
def _close_live_nodes() -> None:
    for node in list(_LIVE_NODES):
        try:
            node.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _versioned(raw: "_capi.bhs_versioned") -> Versioned:
    return Versioned(
        value=ctypes.string_at(raw.value, raw.value_len) if raw.value_len else b"",
        hlc=raw.hlc,
        counter=raw.counter,
        origin=bytes(raw.origin),
        tombstone=bool(raw.tombstone),
    )


def _resolver_thunk(resolver: Resolver) -> Any:
    """The C callback for ``resolver``. It runs on an engine thread (ctypes takes the
    GIL); nothing may escape into the engine, so any failure answers "cannot decide"."""

    def resolve(_user_data: Any, conflict: Any, out: Any) -> int:
        try:
            answer = resolver(_versioned(conflict.contents.local), _versioned(conflict.contents.remote))
            if not isinstance(answer, Resolution):
                return 1
            if answer.choice == _capi.BHS_RESOLVE_MERGED:
                merged = answer.merged
                if lib.bhs_buf_copy(merged, len(merged), ctypes.byref(out.contents.merged)) != 0:
                    return 1
            elif answer.choice not in (_capi.BHS_RESOLVE_LOCAL, _capi.BHS_RESOLVE_REMOTE):
                return 1
            out.contents.choice = answer.choice
            return 0
        except BaseException:  # noqa: BLE001 - an exception must not cross into the engine
            return 1

    return _capi.bhs_conflict_resolver(resolve)


def _event(raw: "_capi.bhs_event") -> Optional[Event]:
    try:
        kind = EventKind(raw.kind)
    except ValueError:
        return None  # a kind from a newer library: skipped, as the header asks
    return Event(
        kind=kind,
        peer=_peer(kind, bytes(raw.peer)),
        category=_capi.buf_bytes(raw.category).decode(errors="replace"),
        key=_capi.buf_bytes(raw.key),
        count=raw.count,
        sync_id=raw.sync_id,
        merged=bool(raw.flags & _capi.BHS_EVENT_FLAG_MERGED),
        failed=bool(raw.flags & _capi.BHS_EVENT_FLAG_FAILED),
        message=_capi.buf_bytes(raw.message).decode(errors="replace"),
        reachable=kind == EventKind.PARTITION and bool(raw.flags & _capi.BHS_EVENT_FLAG_REACHABLE),
    )


def _peer(kind: EventKind, raw: bytes) -> bytes:
    """The event's peer id, or ``b""`` when its kind names none (or no leader is known)."""
    if kind not in _PEER_KINDS or raw == bytes(len(raw)):
        return b""
    return raw


def _open(config: Config) -> ctypes.c_void_p:
    if not isinstance(config, Config):
        raise TypeError(f"config must be bhsync.Config, not {type(config).__name__}")
    cfg = ctypes.c_void_p()
    _check(lib.bhs_config_new(ctypes.byref(cfg)))
    try:
        for key, value in config._pairs():
            _check(lib.bhs_config_set(cfg, _text("setting", key), _text(f"value of {key}", value)))
        for name, spec in config.categories.items():
            _check(lib.bhs_config_add_category(cfg, _category(name), _text("category spec", spec)))
        node = ctypes.c_void_p()
        _check(lib.bhs_node_open(cfg, ctypes.byref(node)))
        return node
    finally:
        lib.bhs_config_free(cfg)
