"""bhsync: Python bindings of the synchronization engine of Blackhole nodes.

A :class:`Node` keeps categories of key/value state in sync with its peers::

    import bhsync

    with bhsync.Node(bhsync.Config(categories={"users": "mode=eventual,merge=lww"})) as node:
        node.put("users", b"alice", b"admin")
        assert node.get("users", b"alice") == b"admin"

An asyncio surface sits beside the blocking one: :class:`bhsync.aio.Node` (also
``bhsync.AsyncNode``), with ``async with``, ``await node.sync()`` and ``async for event
in node.events()``.

The package is ctypes over ``libbhsync.so``, which ``pip install`` builds and puts inside
it (see :mod:`bhsync._library` for where it is looked for; ``BHSYNC_LIB`` overrides). Keys and values are bytes in and out; a
failing call raises the exception class of its status (:mod:`bhsync.errors`); blocking
calls release the GIL.
"""

from .errors import (
    BhsyncError,
    BusyError,
    ClosedError,
    InternalError,
    InvalidArgumentError,
    IoError,
    NotFoundError,
    ProofInvalidError,
    TimedOutError,
    WrongMergeRuleError,
    NotLeaderError,
    ReadOnlyError,
    IndeterminateError,
    WrongModeError,
)
from ._library import LIBRARY_ENV, LibraryNotFoundError, find_library
from .node import (
    ABI_VERSION,
    MAX_BLOCK_TRANSACTIONS,
    MAX_KEY_LEN,
    MAX_TRANSACTION_LEN,
    MAX_VALUE_LEN,
    ChainHead,
    Config,
    Event,
    EventKind,
    NetworkTime,
    Node,
    Resolution,
    SyncReport,
    Versioned,
    abi_version,
    version,
)
from . import aio
from .aio import Node as AsyncNode

__all__ = [
    "ABI_VERSION",
    "AsyncNode",
    "BhsyncError",
    "BusyError",
    "ChainHead",
    "ClosedError",
    "IoError",
    "TimedOutError",
    "WrongMergeRuleError",
    "NotLeaderError",
    "ReadOnlyError",
    "IndeterminateError",
    "WrongModeError",
    "Config",
    "Event",
    "EventKind",
    "InternalError",
    "InvalidArgumentError",
    "LIBRARY_ENV",
    "LibraryNotFoundError",
    "MAX_BLOCK_TRANSACTIONS",
    "MAX_KEY_LEN",
    "MAX_TRANSACTION_LEN",
    "MAX_VALUE_LEN",
    "NetworkTime",
    "Node",
    "NotFoundError",
    "ProofInvalidError",
    "Resolution",
    "SyncReport",
    "Versioned",
    "abi_version",
    "aio",
    "find_library",
    "version",
]
