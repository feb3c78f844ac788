"""Two bhsync nodes on loopback: a write on one becomes visible on the other.

Run it after `pip install ./bindings/python` (which builds libbhsync into the package);
`make python-test` runs it too:

    python examples/python/two_nodes.py
"""

from __future__ import annotations

import time

import bhsync

CATEGORIES = {"notes": "mode=eventual,merge=lww,priority=high"}


def main() -> None:
    with bhsync.Node(bhsync.Config(categories=CATEGORIES)) as alice, \
         bhsync.Node(bhsync.Config(categories=CATEGORIES)) as bob:
        bob.connect(alice.local_addr)
        alice.put("notes", b"greeting", b"hello from alice")

        # Gossip usually delivers the write by itself; an explicit sync makes sure.
        deadline = time.monotonic() + 10
        value = bob.get("notes", b"greeting")
        while value is None and time.monotonic() < deadline:
            try:
                bob.sync(timeout=1.0)
            except bhsync.BhsyncError:
                time.sleep(0.05)  # the connection is still coming up
            value = bob.get("notes", b"greeting")
        if value is None:
            raise SystemExit("bob never saw alice's write")
        print(f"bob ({bob.id.hex()[:12]}) reads {value!r} written by alice ({alice.id.hex()[:12]})")


if __name__ == "__main__":
    main()
