"""Processes a command leaves behind, read from /proc (Linux)."""

import time
from pathlib import Path


def children_of(pid: int) -> list[str]:
    """The child processes of every thread of ``pid`` (a cluster's event loop starts workers)."""
    return [child for task in Path(f"/proc/{pid}/task").glob("*/children")
            for child in task.read_text().split()]  # fmt: skip


def left_running(pids, wait=5.0) -> list[str]:
    """Those of ``pids`` still running after ``wait`` seconds (a dying process takes a moment)."""
    deadline = time.monotonic() + wait
    while True:
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)
