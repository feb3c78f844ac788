"""The asyncio surface: the same node, awaited instead of blocked on.

::

    import bhsync
    from bhsync import aio

    async def main() -> None:
        async with aio.Node(bhsync.Config(categories={"notes": "merge=lww"})) as node:
            await node.put("notes", b"greeting", b"hello")
            report = await node.sync(timeout=5.0)
            async for event in node.events():
                print(event.kind.name, event.key)

**Nothing blocks the event loop.** Every call that waits on the library — opening and
closing, reads and writes (each a round trip to the engine thread), ``sync``,
``poll_event`` — runs the blocking :class:`bhsync.Node` method in a thread of an
executor (the loop's default one unless ``executor=`` is given); ctypes releases the GIL
for the foreign call. ``id`` and ``local_addr`` stay properties: the library answers them
without the engine.

**Events** come from one pump thread per node, started by the first :meth:`Node.events`:
it polls the library in short slices and hands each event to the loop through a bounded
:class:`asyncio.Queue`. When the queue is full the pump waits, so a slow consumer leaves
events in the library's own bounded queue, which counts what it drops
(``bhsync_events_dropped_total``). Once ``events()`` has been called, events go to its
iterators (several share one stream); mixing in :meth:`Node.poll_event` would steal some.
Iterators end when the node closes.

**Cancellation.** Cancelling an awaited call returns at once, but the C call it started
finishes in its thread (``sync`` within its own timeout), and :meth:`Node.close` waits
for it, as the blocking node does. A cancelled ``async for`` loses no event.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
from concurrent.futures import Executor
from typing import Any, AsyncIterator, Callable, Deque, Dict, Iterable, Optional, TypeVar

from . import node as _blocking
from .errors import ClosedError
from .node import BytesLike, ChainHead, Config, Event, NetworkTime, Resolver, SyncReport

__all__ = ["Node"]

T = TypeVar("T")

# How long one poll of the pump waits in the library: the most a close waits for the pump.
_POLL_SLICE_S = 0.1
_EVENT_QUEUE_SIZE = 1024


class Node:
    """A bhsync node driven from asyncio; open it with ``async with Node(config)`` or
    ``await Node.open(config)``, close it with ``await node.close()``.

    Methods mirror :class:`bhsync.Node` and raise the same exceptions; the blocking node
    underneath is :attr:`blocking`.
    """

    def __init__(
        self,
        config: Optional[Config] = None,
        *,
        executor: Optional[Executor] = None,
        event_queue_size: int = _EVENT_QUEUE_SIZE,
    ) -> None:
        if event_queue_size < 1:
            raise ValueError("event_queue_size must be at least 1")
        self._config = config
        self._executor = executor
        self._event_queue_size = event_queue_size
        self._node: Optional[_blocking.Node] = None
        self._pump: Optional[_EventPump] = None
        self._was_opened = False

    @classmethod
    async def open(cls, config: Optional[Config] = None, *, executor: Optional[Executor] = None) -> "Node":
        """Opens a node (in the executor: opening binds sockets and may recover a log)."""
        node = cls(config, executor=executor)
        await node._open()
        return node

    # -- life cycle -------------------------------------------------------------------

    async def __aenter__(self) -> "Node":
        if self._node is None:
            await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        if self._node is None:
            return "<bhsync.aio.Node closed>" if self._was_opened else "<bhsync.aio.Node not open>"
        return f"<bhsync.aio.Node {self._node.id.hex()[:12]} at {self._node.local_addr}>"

    async def _open(self) -> None:
        if self._was_opened:
            raise ClosedError("this node was opened before; make a new bhsync.aio.Node")
        self._was_opened = True
        config = self._config
        self._node = await self._call(lambda: _blocking.Node(config))

    @property
    def closed(self) -> bool:
        return self._node is None

    @property
    def blocking(self) -> _blocking.Node:
        """The blocking :class:`bhsync.Node` underneath (for a call from another thread)."""
        if self._node is None:
            raise ClosedError("the node is not open: use `async with bhsync.aio.Node(...)` or `await Node.open(...)`")
        return self._node

    async def close(self) -> None:
        """Stops the event pump and the node; waits (in the executor) for calls in
        flight. Idempotent."""
        node, self._node = self._node, None
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.stop()
        if node is not None:
            await self._call(node.close)
        if pump is not None:
            await self._call(lambda: pump.join(timeout=5.0))

    async def _call(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)

    # -- identity and peers -----------------------------------------------------------

    @property
    def id(self) -> bytes:
        """The node id, its 32-byte public key (answered without the engine)."""
        return self.blocking.id

    @property
    def local_addr(self) -> str:
        """The address the node listens on, as "host:port" (answered without the engine)."""
        return self.blocking.local_addr

    async def connect(self, addr: str) -> None:
        node = self.blocking
        await self._call(lambda: node.connect(addr))

    # -- data -------------------------------------------------------------------------

    async def put(self, category: str, key: BytesLike, value: BytesLike) -> None:
        node = self.blocking
        await self._call(lambda: node.put(category, key, value))

    async def get(self, category: str, key: BytesLike) -> Optional[bytes]:
        node = self.blocking
        return await self._call(lambda: node.get(category, key))

    async def delete(self, category: str, key: BytesLike) -> bool:
        node = self.blocking
        return await self._call(lambda: node.delete(category, key))

    async def counter_add(self, category: str, key: BytesLike, delta: int) -> int:
        node = self.blocking
        return await self._call(lambda: node.counter_add(category, key, delta))

    async def counter_get(self, category: str, key: BytesLike) -> int:
        node = self.blocking
        return await self._call(lambda: node.counter_get(category, key))

    async def state_hash(self, category: Optional[str] = None) -> bytes:
        node = self.blocking
        return await self._call(lambda: node.state_hash(category))

    # -- time and chain ---------------------------------------------------------------

    async def network_time(self) -> NetworkTime:
        node = self.blocking
        return await self._call(node.network_time)

    async def chain_append(self, category: str, transactions: Iterable[BytesLike]) -> ChainHead:
        """Appends one block of ``transactions``; returns once it is durable."""
        node = self.blocking
        return await self._call(lambda: node.chain_append(category, transactions))

    async def chain_head(self, category: str) -> ChainHead:
        node = self.blocking
        return await self._call(lambda: node.chain_head(category))

    async def chain_block(self, category: str, height: int) -> Optional[bytes]:
        node = self.blocking
        return await self._call(lambda: node.chain_block(category, height))

    # -- sync and events --------------------------------------------------------------

    async def sync(self, peer: Optional[BytesLike] = None, timeout: float = 10.0) -> SyncReport:
        """Syncs with ``peer`` or every connected peer, up to ``timeout`` seconds, in the
        executor (see the module doc for cancellation)."""
        node = self.blocking
        return await self._call(lambda: node.sync(peer, timeout))

    async def poll_event(self, timeout: float = 0.0) -> Optional[Event]:
        """The next event within ``timeout`` seconds, or ``None``; do not mix with
        :meth:`events`."""
        node = self.blocking
        return await self._call(lambda: node.poll_event(timeout))

    async def events(self) -> AsyncIterator[Event]:
        """Yields events as they come, until the node closes."""
        if self._pump is None:
            self._pump = _EventPump(self.blocking, asyncio.get_running_loop(), self._event_queue_size)
        pump = self._pump
        while True:
            event = await pump.get()
            if event is None:
                return
            yield event

    async def set_conflict_resolver(self, category: str, resolver: Resolver) -> None:
        """Registers ``resolver(local, remote) -> Resolution`` for a ``merge=custom``
        category. It is a plain function, called on an engine thread (not in the event
        loop), so it must not await and should be quick."""
        node = self.blocking
        await self._call(lambda: node.set_conflict_resolver(category, resolver))

    # -- observability ----------------------------------------------------------------

    async def metrics(self) -> Dict[str, Any]:
        node = self.blocking
        return await self._call(node.metrics)

    async def health(self) -> Dict[str, Any]:
        node = self.blocking
        return await self._call(node.health)

    async def health_json(self) -> str:
        node = self.blocking
        return await self._call(node.health_json)


class _EventPump:
    """One thread that polls a node's events and feeds them to an asyncio queue."""

    def __init__(self, node: _blocking.Node, loop: asyncio.AbstractEventLoop, queue_size: int) -> None:
        self._node = node
        self._loop = loop
        self._queue: "asyncio.Queue[Event]" = asyncio.Queue(queue_size)
        # Events taken from the queue by a consumer that was cancelled before it could
        # yield them: handed to the next consumer first, so none is lost.
        self._put_back: Deque[Event] = collections.deque()
        self._finished = asyncio.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bhsync-aio-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    async def get(self) -> Optional[Event]:
        """The next event, or ``None`` once the pump has stopped and nothing is left."""
        while True:
            if self._put_back:
                return self._put_back.popleft()
            if not self._queue.empty():
                return self._queue.get_nowait()
            if self._finished.is_set():
                return None
            getter = asyncio.ensure_future(self._queue.get())
            finished = asyncio.ensure_future(self._finished.wait())
            try:
                await asyncio.wait({getter, finished}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                # The consumer was cancelled: an event its getter already took goes to
                # the next consumer (a getter not done yet leaves its event queued).
                finished.cancel()
                if getter.done() and not getter.cancelled():
                    self._put_back.append(getter.result())
                else:
                    getter.cancel()
                raise
            finished.cancel()
            if getter.done():
                return getter.result()
            getter.cancel()

    # -- the pump thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    event = self._node.poll_event(_POLL_SLICE_S)
                except ClosedError:
                    return
                if event is not None and not self._deliver(event):
                    return
        finally:
            self._signal_finished()

    def _deliver(self, event: Event) -> bool:
        """Hands ``event`` to the loop, waiting while the queue is full; ``False`` when
        the pump should stop (closing, or the loop is gone)."""
        try:
            future = asyncio.run_coroutine_threadsafe(self._queue.put(event), self._loop)
        except RuntimeError:
            return False  # the loop is closed
        while True:
            try:
                future.result(timeout=_POLL_SLICE_S)
                return True
            except concurrent.futures.TimeoutError:
                if self._stopping.is_set() or self._loop.is_closed():
                    future.cancel()
                    return False
            except concurrent.futures.CancelledError:
                return False

    def _signal_finished(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._finished.set)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting
