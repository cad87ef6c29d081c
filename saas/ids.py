"""Application-generated, time-ordered 64-bit ids (no per-table sequences, DESIGN law 1)."""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import zlib

EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
_NODE_BITS = 10
_SEQUENCE_BITS = 12
_lock = threading.Lock()
_state = {"pid": -1, "node": 0, "last_ms": 0, "sequence": 0}


def _node_for_this_process() -> int:
    """Derive a node number from host and pid, so concurrent processes rarely share one."""
    return zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) & ((1 << _NODE_BITS) - 1)


def new_id() -> int:
    """Return a new id: 41 bits of milliseconds since 2020, 10 bits of node, 12 bits of sequence.

    Ids grow with time within a process and fit a signed BIGINT until 2089. The sequence starts at a
    random point each millisecond, so two processes that share a node number still rarely collide.
    """
    with _lock:
        pid = os.getpid()
        if _state["pid"] != pid:  # forked: a new process needs its own node number
            _state.update(pid=pid, node=_node_for_this_process(), last_ms=0)
        now = int(time.time() * 1000) - EPOCH_MS
        if now > _state["last_ms"]:
            _state["last_ms"] = now
            _state["sequence"] = random.getrandbits(_SEQUENCE_BITS - 2)
        else:
            _state["sequence"] += 1
            if _state["sequence"] >= 1 << _SEQUENCE_BITS:
                _state["last_ms"] += 1  # borrow the next millisecond rather than wait
                _state["sequence"] = 0
        return (
            (_state["last_ms"] << (_NODE_BITS + _SEQUENCE_BITS))
            | (_state["node"] << _SEQUENCE_BITS)
            | (_state["sequence"])
        )


def new_ids(count: int) -> list[int]:
    """Return `count` new ids in increasing order."""
    return [new_id() for _ in range(count)]
