"""Two bhsync nodes driven from asyncio: a write on one becomes visible on the other.

With the package installed (`pip install ./bindings/python` builds libbhsync into it):

    python examples/python/two_nodes_async.py

Every await runs the library call in a thread, so the event loop keeps serving other
tasks while a sync or an event wait is in progress.
"""

from __future__ import annotations

import asyncio

import bhsync
from bhsync import aio

CATEGORIES = {"notes": "mode=eventual,merge=lww,priority=high"}


async def wait_for_update(node: aio.Node, key: bytes) -> bhsync.Event:
    """The event that says ``key`` arrived (one update, or a streamed category)."""
    async for event in node.events():
        if event.kind == bhsync.EventKind.UPDATED and event.key == key:
            return event
        if event.kind == bhsync.EventKind.STREAMED and event.category == "notes":
            return event
    raise RuntimeError("the node closed before the update arrived")


async def main() -> None:
    async with aio.Node(bhsync.Config(categories=CATEGORIES)) as alice, \
               aio.Node(bhsync.Config(categories=CATEGORIES)) as bob:
        await bob.connect(alice.local_addr)
        arrived = asyncio.create_task(wait_for_update(bob, b"greeting"))
        await alice.put("notes", b"greeting", b"hello from alice")

        # Gossip usually delivers the write by itself; syncs make sure.
        async def sync_until_arrived() -> None:
            while not arrived.done():
                try:
                    await bob.sync(timeout=1.0)
                except bhsync.BhsyncError:
                    pass  # the connection is still coming up
                await asyncio.sleep(0.05)

        await asyncio.wait_for(asyncio.gather(arrived, sync_until_arrived()), timeout=10)
        value = await bob.get("notes", b"greeting")
        print(f"bob ({bob.id.hex()[:12]}) reads {value!r} written by alice ({alice.id.hex()[:12]}), "
              f"event {arrived.result().kind.name}")


if __name__ == "__main__":
    asyncio.run(main())
