"""The peers' time limit (checker_peers._timed) against an alarm that falls while the garbage
collector runs.

JAX registers a gc callback; an exception raised there, or in a weakref callback or finalizer the
collector calls, is swallowed and reported as unraisable, which pytest turns into a failure of
the test that was running. The alarm's handler puts itself off there, and the repeating alarm
stops the peer once the collector is done.
"""

import gc
import sys
import time
import weakref

import pytest

from . import checker_peers


@pytest.mark.skipif(sys.platform == "win32", reason="the time limit is a SIGALRM, not on Windows")
def test_an_alarm_inside_a_gc_callback_stops_the_peer_after_the_collector(monkeypatch):
    inside = []

    def slow_callback(phase, info):
        if phase == "start" and not inside:  # the first collection outlasts the alarm's 0.1 s
            inside.append(True)
            deadline = time.perf_counter() + 0.3
            while time.perf_counter() < deadline:
                pass

    class Node:  # cycles with weak references: the collector calls their callbacks
        pass

    def peer_that_collects(peer, problem, dtype):
        while True:  # collections now and then, as a peer's allocations trigger them
            for _ in range(200):
                node = Node()
                node.self, node.ref = node, weakref.ref(node, lambda ref: None)
            # the youngest generation, as allocations trigger: a full collection takes 0.2 s or
            # more once the suite has imported JAX and torch, and alarm after alarm fell inside it
            gc.collect(0)
            deadline = time.perf_counter() + 0.05
            while time.perf_counter() < deadline:
                pass

    monkeypatch.setattr(checker_peers, "_run_one", peer_that_collects)
    gc.callbacks.append(slow_callback)
    try:
        start = time.perf_counter()
        outcome, message = checker_peers._timed("a peer", None, None, 0.1)
    finally:
        gc.callbacks.remove(slow_callback)
    assert (outcome, message) == ("timeout", "stopped after 0.1 s")
    assert inside and 0.3 < time.perf_counter() - start < 5.0  # the next alarm (0.6 s) stopped it
