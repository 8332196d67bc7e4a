"""The daemon pool: one task per key at a time, bounded, never holding up a stop."""

from __future__ import annotations

import threading
import time

from lienthong.threads import DaemonPool


def test_one_task_per_key_at_a_time_and_no_more_threads_than_the_bound() -> None:
    pool = DaemonPool(2, "test")
    release = threading.Event()
    running: list[str] = []

    def blocked(key: str) -> None:
        running.append(key)
        release.wait(10)

    assert pool.submit("a", lambda: blocked("a"))
    assert not pool.submit("a", lambda: blocked("a again")), "a is still running"
    assert pool.submit("b", lambda: blocked("b"))
    assert pool.submit("c", lambda: blocked("c"))  # queued: both threads are busy
    deadline = time.monotonic() + 5
    while len(running) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert sorted(running) == ["a", "b"] and pool.busy() == {"a", "b", "c"}
    release.set()
    assert pool.wait(["a", "b", "c"], timeout=5)
    assert sorted(running) == ["a", "b", "c"] and pool.busy() == set()
    assert pool.shutdown(timeout=5) == set()


def test_a_steady_task_stays_on_the_thread_that_ran_it_last() -> None:
    pool = DaemonPool(4, "test")
    threads: list[str] = []
    for _ in range(10):
        assert pool.submit("poll", lambda: threads.append(threading.current_thread().name))
        assert pool.wait(["poll"], timeout=5)
    assert len(set(threads)) == 1, threads
    pool.shutdown(timeout=5)


def test_shutdown_leaves_a_hung_task_behind_after_its_timeout() -> None:
    pool = DaemonPool(2, "test")
    hang = threading.Event()
    pool.submit("hung", lambda: hang.wait(60))
    pool.submit("quick", lambda: None)
    started = time.monotonic()
    assert pool.shutdown(timeout=0.5) == {"hung"}
    assert time.monotonic() - started < 5
    assert not pool.submit("later", lambda: None), "a stopped pool takes nothing"
    hang.set()
