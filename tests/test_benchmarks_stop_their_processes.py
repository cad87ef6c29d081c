"""A benchmark stops every process it started, also a grandchild that left its process group and ignores
SIGTERM (gunicorn workers were found running an hour after bench/webhooks.py ended)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from benchkit import Children, session_members

# A parent that starts a child in a process group of its own (as RQ does with its work horse), both deaf
# to SIGTERM; the child's pid is printed so the test can look for it afterwards.
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import os, signal, time; os.setpgrp(); signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_stopping_a_child_stops_its_whole_session_even_what_ignores_sigterm() -> None:
    children = Children(grace=1.0)
    parent = children.start([sys.executable, "-c", STUBBORN], stdout=-1)
    assert parent.stdout is not None
    grandchild = int(parent.stdout.readline())
    assert alive(grandchild) and set(session_members(parent.pid)) >= {parent.pid, grandchild}
    started = time.monotonic()
    children.stop_all()
    assert not alive(parent.pid) and not alive(grandchild)
    assert session_members(parent.pid) == []
    assert time.monotonic() - started < 10  # SIGTERM ignored: SIGKILL after the grace time
