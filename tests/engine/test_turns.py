"""Turns: engines sharing the CPU alternate step by step, in the order they asked."""

from __future__ import annotations

import itertools
import threading
import time

from streamserve.engine.turns import Turns


def test_two_busy_engines_alternate_and_never_step_at_once() -> None:
    turns = Turns()
    order: list[str] = []
    inside = 0
    overlaps = 0
    lock = threading.Lock()

    def engine(name: str) -> None:
        nonlocal inside, overlaps
        for _ in range(50):
            with turns:
                with lock:
                    inside += 1
                    overlaps += inside > 1
                order.append(name)
                time.sleep(0.001)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=engine, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == 0 and len(order) == 100
    # Once both are waiting, the turn passes to the other every step: no long runs of one engine.
    runs = sum(1 for x, y in itertools.pairwise(order) if x == y)
    assert runs <= 3, order


def test_one_engine_alone_takes_the_turn_at_once() -> None:
    turns = Turns()
    start = time.perf_counter()
    for _ in range(10_000):
        with turns:
            pass
    assert time.perf_counter() - start < 1.0
