"""A bounded pool of daemon threads that runs at most one task per key at a time.

The bus polls its sources and runs its scheduled jobs here. Each task is keyed
(an endpoint, a job), so one endpoint is never polled by two threads at once.
The threads are daemons and :meth:`DaemonPool.shutdown` waits only so long: a
call that hangs (a service that never answers) cannot keep the process from
stopping. Whatever such a call had not yet stored is offered again by its
source, so nothing is lost by leaving it behind.

A task goes to the thread that became idle last: a steady poll keeps running on
the same thread, which keeps what it prepared per thread (compiled mappings)
warm, instead of making every thread of the pool prepare it too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

Task = tuple[str, Callable[[], object]]


class _Worker:
    """One daemon thread and the task handed to it."""

    def __init__(self, pool: DaemonPool, name: str) -> None:
        self.pool = pool
        self.task: Task | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            self.ready.wait()
            self.ready.clear()
            task = self.task
            if task is None:
                return  # shut down
            while task is not None:
                key, run = task
                try:
                    run()
                except Exception:  # a task reports its own errors; this keeps the thread alive
                    log.exception("%s: task %s failed", self.pool.name, key)
                task = self.pool._done(self, key)
            if self.pool._stopping:
                return


class DaemonPool:
    """``threads`` daemon threads working through keyed tasks, one per key at a time."""

    def __init__(self, threads: int, name: str) -> None:
        if threads < 1:
            raise ValueError(f"a pool needs at least one thread, got {threads}")
        self.name = name
        self._size = threads
        self._busy: set[str] = set()
        self._changed = threading.Condition()
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []  # the one idle last at the end
        self._backlog: deque[Task] = deque()
        self._stopping = False

    def submit(self, key: str, task: Callable[[], object]) -> bool:
        """Queue ``task`` unless a task of ``key`` is queued or running; True if queued."""
        with self._changed:
            if key in self._busy or self._stopping:
                return False
            self._busy.add(key)
            if not self._workers:  # started on first use: an unused pool costs nothing
                self._workers = [_Worker(self, f"{self.name}-{n}") for n in range(self._size)]
                self._idle = list(reversed(self._workers))
            if not self._idle:
                self._backlog.append((key, task))
                return True
            worker = self._idle.pop()
            worker.task = (key, task)
        worker.ready.set()
        return True

    def _done(self, worker: _Worker, key: str) -> Task | None:
        """A worker finished ``key``: its next task from the backlog, or None (now idle)."""
        with self._changed:
            self._busy.discard(key)
            self._changed.notify_all()
            if self._backlog and not self._stopping:
                return self._backlog.popleft()
            worker.task = None
            if not self._stopping:
                self._idle.append(worker)
            return None

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
            self._stopping = True
            for key, _ in self._backlog:
                self._busy.discard(key)
            self._backlog.clear()
            idle, self._idle = self._idle, []
            workers = list(self._workers)
        for worker in idle:
            worker.ready.set()  # with no task: the thread ends
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
        for worker in workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
        return self.busy()
