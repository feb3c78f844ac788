"""Per-call cost of ``Node.get`` (``bhs_get`` through ctypes) on a present key, in ns/call.

    BHSYNC_LIB=target/release/libbhsync.so python bindings/python/benchmarks/bench_get.py [calls]

Prints the binding's cost (argument checks, the ctypes call, copying the value out and
``bhs_buf_free``) next to a bare ctypes call of ``bhs_abi_version`` for scale.
"""

from __future__ import annotations

import ctypes
import sys
import time

import bhsync
from bhsync import _capi


def per_call_ns(fn, calls: int) -> float:
    for _ in range(min(calls, 10_000)):  # warm up
        fn()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with bhsync.Node(bhsync.Config(categories={"bench": "mode=eventual,merge=lww,priority=high"})) as node:
        node.put("bench", b"key-00000001", b"v" * 64)
        get_ns = per_call_ns(lambda: node.get("bench", b"key-00000001"), calls)
        miss_ns = per_call_ns(lambda: node.get("bench", b"absent"), calls)
        raw_ns = per_call_ns(_raw_get(node), calls)
    bare_ns = per_call_ns(_capi.lib.bhs_abi_version, calls)
    print(f"python Node.get (present, 64-byte value): {get_ns:9.0f} ns/call")
    print(f"python Node.get (absent key):             {miss_ns:9.0f} ns/call")
    print(f"python raw ctypes bhs_get + bhs_buf_free: {raw_ns:9.0f} ns/call (the wrapper costs the difference)")
    print(f"python bare ctypes call (abi_version):    {bare_ns:9.0f} ns/call")


def _raw_get(node: bhsync.Node):
    """bhs_get through ctypes with every argument prepared: the floor under Node.get."""
    lib, handle, buf = _capi.lib, node._handle, _capi.bhs_buf()
    ref, key = ctypes.byref(buf), b"key-00000001"

    def call() -> None:
        lib.bhs_get(handle, b"bench", key, 12, ref)
        lib.bhs_buf_free(ref)

    return call


if __name__ == "__main__":
    main()
