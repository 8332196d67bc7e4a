"""A bounded pool of daemon threads that runs at most one task per key at a time.

The bus polls its sources and runs its scheduled jobs here. Each task is keyed
(an endpoint, a job), so one endpoint is never polled by two threads at once.
The threads are daemons and :meth:`DaemonPool.shutdown` waits only so long: a
call that hangs (a service that never answers) cannot keep the process from
stopping. Whatever such a call had not yet stored is offered again by its
source, so nothing is lost by leaving it behind.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)


class DaemonPool:
    """``threads`` daemon threads working through keyed tasks, one per key at a time."""

    def __init__(self, threads: int, name: str) -> None:
        if threads < 1:
            raise ValueError(f"a pool needs at least one thread, got {threads}")
        self.name = name
        self._tasks: queue.SimpleQueue[tuple[str, Callable[[], object]] | None] = (
            queue.SimpleQueue()
        )
        self._busy: set[str] = set()
        self._changed = threading.Condition()
        self._size = threads
        self._threads: list[threading.Thread] = []

    def submit(self, key: str, task: Callable[[], object]) -> bool:
        """Queue ``task`` unless a task of ``key`` is queued or running; True if queued."""
        with self._changed:
            if key in self._busy:
                return False
            self._busy.add(key)
            if not self._threads:  # started on first use: an unused pool costs nothing
                self._threads = [
                    threading.Thread(target=self._work, name=f"{self.name}-{n}", daemon=True)
                    for n in range(self._size)
                ]
                for thread in self._threads:
                    thread.start()
        self._tasks.put((key, task))
        return True

    def busy(self, keys: Iterable[str] | None = None) -> set[str]:
        """The keys (of ``keys``, or all) with a task queued or running."""
        with self._changed:
            return set(self._busy) if keys is None else self._busy.intersection(keys)

    def wait(self, keys: Iterable[str], timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the tasks of ``keys`` to end; True if they did."""
        wanted = set(keys)
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._busy & wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def shutdown(self, timeout: float) -> set[str]:
        """Stop taking tasks; wait up to ``timeout`` s for running ones; returns those left."""
        with self._changed:
            threads = list(self._threads)
        for _ in threads:
            self._tasks.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.busy()

    def _work(self) -> None:
        while True:
            item = self._tasks.get()
            if item is None:
                return
            key, task = item
            try:
                task()
            except Exception:  # a task reports its own errors; this keeps the thread alive
                log.exception("%s: task %s failed", self.name, key)
            finally:
                with self._changed:
                    self._busy.discard(key)
                    self._changed.notify_all()
