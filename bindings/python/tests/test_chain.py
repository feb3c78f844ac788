"""A chain category from Python: blocks appended on one node reach the others; misuse
raises the usual exceptions."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

import bhsync
from conftest import connect_all, secret


@pytest.fixture
def chain_nodes(tmp_path: Path) -> Iterator[Callable[[int], List[bhsync.Node]]]:
    """``chain_nodes(n)``: n connected nodes, each with a data directory and the chain
    category "ledger"; closed after the test."""
    opened: List[bhsync.Node] = []

    def make(count: int) -> List[bhsync.Node]:
        for index in range(count):
            config = bhsync.Config(
                data_dir=str(tmp_path / f"node-{index}"),
                identity_secret=secret(20 + index),
                categories={"ledger": "mode=chain"},
            )
            opened.append(bhsync.Node(config))
        connect_all(opened)
        return list(opened)

    yield make
    closers = [threading.Thread(target=node.close) for node in opened]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join()


def test_blocks_appended_on_one_node_reach_every_node_and_read_back(chain_nodes) -> None:
    a, b, c = chain_nodes(3)
    genesis = a.chain_head("ledger")
    assert genesis.height == 0 and len(genesis.id) == 32

    first = a.chain_append("ledger", [b"pay 5", bytearray(b"pay 7")])
    assert first.height == 1 and first.id != genesis.id
    second = a.chain_append("ledger", (tx for tx in [b"pay 9", b""]))  # any iterable; empty allowed
    assert second.height == 2
    assert a.chain_head("ledger") == second
    block = a.chain_block("ledger", 1)
    assert block is not None and len(block) == 176 + 4 + 2 * (4 + 5) and block.endswith(b"pay 7")
    assert len(a.chain_block("ledger", 2) or b"") == 176 + 4 + (4 + 5) + 4

    deadline = time.monotonic() + 30.0
    for peer in (b, c):
        while peer.chain_head("ledger") != second:
            assert time.monotonic() < deadline, f"a peer's head is {peer.chain_head('ledger')} after 30 s"
            time.sleep(0.05)
        assert peer.chain_block("ledger", 1) == block
    assert b.chain_block("ledger", 3) is None  # above the head


def test_chain_calls_refuse_bad_arguments(chain_nodes) -> None:
    (node,) = chain_nodes(1)
    invalid = [
        lambda: node.chain_append("default", [b"tx"]),  # not the chain category
        lambda: node.chain_head("nosuch"),
        lambda: node.chain_block("default", 0),
        lambda: node.chain_append("", [b"tx"]),
        lambda: node.chain_append("led\0ger", [b"tx"]),
        lambda: node.chain_append("ledger", [b""] * (bhsync.MAX_BLOCK_TRANSACTIONS + 1)),
        lambda: node.chain_append("ledger", [bytes(bhsync.MAX_TRANSACTION_LEN + 1)]),
        lambda: node.chain_block("ledger", -1),
        lambda: node.chain_block("ledger", 2**64),
    ]
    for call in invalid:
        with pytest.raises(bhsync.InvalidArgumentError):
            call()
        with pytest.raises(ValueError):  # also the built-in class
            call()
    for wrong_type in [
        lambda: node.chain_append("ledger", b"one bytes object"),  # type: ignore[arg-type]
        lambda: node.chain_append("ledger", ["text"]),  # type: ignore[list-item]
        lambda: node.chain_append("ledger", 5),  # type: ignore[arg-type]
        lambda: node.chain_block("ledger", "1"),  # type: ignore[arg-type]
        lambda: node.chain_block("ledger", True),
        lambda: node.chain_head(None),  # type: ignore[arg-type]
    ]:
        with pytest.raises(TypeError):
            wrong_type()
    with pytest.raises(bhsync.WrongModeError):
        node.put("ledger", b"k", b"v")
    assert node.chain_head("ledger").height == 0  # nothing was appended
