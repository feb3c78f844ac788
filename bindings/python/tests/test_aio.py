"""The asyncio surface (bhsync.aio): the same node awaited, never blocking the loop."""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, List, Optional, TypeVar

import pytest

import bhsync
from bhsync import aio

from conftest import CATEGORIES, secret

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(main(), 60))


def config(index: int) -> bhsync.Config:
    return bhsync.Config(identity_secret=secret(index), categories=CATEGORIES)


def received(event: bhsync.Event, key: bytes) -> bool:
    """An update of ``key`` in "users" arrived: one UPDATED event, or a STREAMED one when
    the whole category was streamed."""
    if event.category != "users":
        return False
    return (event.kind == bhsync.EventKind.UPDATED and event.key == key) or event.kind == bhsync.EventKind.STREAMED


async def converge(nodes: List[aio.Node], within: float = 20.0) -> bytes:
    deadline = time.monotonic() + within
    while True:
        for node in nodes:
            try:
                await node.sync(timeout=2.0)
            except bhsync.BhsyncError:
                pass  # a peer still connecting
        hashes = [await node.state_hash() for node in nodes]
        if len(set(hashes)) == 1:
            return hashes[0]
        assert time.monotonic() < deadline, f"no convergence within {within} s"
        await asyncio.sleep(0.05)


def test_two_nodes_converge_with_async_with_await_and_async_for() -> None:
    async def main() -> None:
        async with aio.Node(config(0)) as alice, aio.Node(config(1)) as bob:
            await bob.connect(alice.local_addr)
            await alice.put("users", b"alice", b"admin")
            assert await alice.counter_add("counters", b"visits", 3) == 3
            await converge([alice, bob])
            assert await bob.get("users", b"alice") == b"admin"
            assert await bob.get("users", b"nobody") is None
            assert await bob.counter_get("counters", b"visits") == 3

            updated: Optional[bhsync.Event] = None
            async for event in bob.events():
                if received(event, b"alice"):
                    updated = event
                    break
            assert updated is not None and updated.category == "users"
            assert (await bob.health())["status"] in ("healthy", "degraded", "critical")
            assert (await bob.metrics())["peers_connected"] >= 1

    run(main)


def test_blocking_calls_never_stall_the_event_loop() -> None:
    async def main() -> None:
        gaps: List[float] = []

        async def ticker(stop: asyncio.Event) -> None:
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        async with aio.Node(config(0)) as node:
            stop = asyncio.Event()
            ticking = asyncio.create_task(ticker(stop))
            # One second inside bhs_poll_event (no event comes), and a sync with no peer.
            assert await node.poll_event(timeout=1.0) is None
            await node.sync(timeout=0.5)
            stop.set()
            await ticking
        assert len(gaps) > 30, f"the loop ran only {len(gaps)} ticks in 1.5 s"
        assert max(gaps) < 0.25, f"the loop stalled for {max(gaps):.3f} s"

    run(main)


def test_closing_ends_async_for_and_later_calls_raise_closed() -> None:
    async def main() -> None:
        node = await aio.Node.open(config(0))
        seen: List[bhsync.Event] = []

        async def consume() -> None:
            async for event in node.events():
                seen.append(event)

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        await node.close()
        await asyncio.wait_for(consumer, 5)  # ended by the close, not cancelled
        assert node.closed
        with pytest.raises(bhsync.ClosedError):
            await node.put("users", b"k", b"v")
        await node.close()  # idempotent

        not_open = aio.Node(config(1))
        with pytest.raises(bhsync.ClosedError):
            await not_open.get("users", b"k")

    run(main)


def test_events_still_come_after_a_consumer_gave_up_waiting() -> None:
    async def main() -> None:
        async with aio.Node(config(0)) as alice, aio.Node(config(1)) as bob:
            await bob.connect(alice.local_addr)
            await converge([alice, bob])
            # Consumers that time out (are cancelled) while waiting, until bob is idle.
            while True:
                try:
                    await asyncio.wait_for(bob.events().__anext__(), 0.3)
                except asyncio.TimeoutError:
                    break
            await alice.put("users", b"late", b"value")
            await converge([alice, bob])
            async for event in bob.events():
                if received(event, b"late"):
                    break

    run(main)


def test_errors_and_type_checks_are_those_of_the_blocking_node() -> None:
    async def main() -> None:
        async with aio.Node(config(0)) as node:
            with pytest.raises(TypeError):
                await node.put("users", "not bytes", b"v")  # type: ignore[arg-type]
            with pytest.raises(bhsync.InvalidArgumentError):
                await node.put("users", b"k" * (bhsync.MAX_KEY_LEN + 1), b"v")
            assert isinstance(node.blocking, bhsync.Node)
            assert len(node.id) == 32

    run(main)


def test_network_time_and_a_chain_are_awaited_too(tmp_path) -> None:
    async def main() -> None:
        chain = bhsync.Config(data_dir=str(tmp_path), identity_secret=secret(30), categories={"ledger": "mode=chain"})
        async with aio.Node(chain) as node:
            first = await node.network_time()
            assert (await node.network_time()).unix_ms >= first.unix_ms
            head = await node.chain_append("ledger", [b"pay 5"])
            assert head.height == 1 and await node.chain_head("ledger") == head
            block = await node.chain_block("ledger", 1)
            assert block is not None and block.endswith(b"pay 5")
            assert await node.chain_block("ledger", 2) is None
            with pytest.raises(bhsync.InvalidArgumentError):
                await node.chain_head("users")

    run(main)
