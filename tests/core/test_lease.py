"""The lease: one holder at a time, freed when the holder dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HELPERS = Path(__file__).parent / "sync_helpers"
sys.path.insert(0, str(HELPERS))

from sync_fixtures import *  # noqa: E402, F403  (the shared fixtures)

from lienthong.lease import Lease, LeaseHeld, LeaseLost, advisory_key  # noqa: E402


def test_one_holder_at_a_time(any_engine):
    first = Lease(any_engine, "job:a", "host1:1", ttl_s=30)
    second = Lease(any_engine, "job:a", "host2:2", ttl_s=30)
    assert first.acquire() and first.held
    assert not second.acquire() and not second.held
    assert second.current().holder == "host1:1"
    assert first.acquire()  # re-entrant for its holder
    first.release()
    assert not first.held
    assert second.acquire()
    second.release()
    assert second.current() is None


def test_other_names_are_independent(any_engine):
    a = Lease(any_engine, "job:a", "h:1")
    b = Lease(any_engine, "job:b", "h:2")
    assert a.acquire() and b.acquire()
    a.release()
    b.release()


def test_hold_refuses_naming_the_holder(any_engine):
    owner = Lease(any_engine, "job:nightly", "dir-host:4242")
    assert owner.acquire()
    with pytest.raises(LeaseHeld) as info, Lease(any_engine, "job:nightly", "cli:1").hold():
        pass
    message = str(info.value)
    assert "dir-host:4242" in message and "job:nightly" in message and "--wait" in message
    owner.release()


def test_wait_takes_the_lease_when_the_holder_lets_go(any_engine):
    owner = Lease(any_engine, "job:w", "sched:1")
    assert owner.acquire()
    threading.Timer(0.6, owner.release).start()
    waiter = Lease(any_engine, "job:w", "cli:2")
    started = time.monotonic()
    assert waiter.wait(5, poll_s=0.1)
    assert 0.5 < time.monotonic() - started < 5
    waiter.release()


def test_sqlite_expired_lease_is_taken_over(sqlite_engine):
    dead = Lease(sqlite_engine, "job:x", "gone:1", ttl_s=0.3)
    assert dead.acquire()
    other = Lease(sqlite_engine, "job:x", "alive:2", ttl_s=30)
    assert not other.acquire()
    time.sleep(0.4)
    assert dead.current() is None
    assert other.acquire()
    with pytest.raises(LeaseLost, match="taken over"):
        dead.renew()
    assert not dead.held
    other.release()


def test_hold_renews_in_the_background(sqlite_engine):
    lease = Lease(sqlite_engine, "job:long", "me:1", ttl_s=0.6)
    with lease.hold():
        time.sleep(1.0)  # longer than the ttl: only renewal keeps it ours
        assert not Lease(sqlite_engine, "job:long", "other:2").acquire()
    assert Lease(sqlite_engine, "job:long", "other:2").acquire()


def test_bad_ttl_is_refused(sqlite_engine):
    with pytest.raises(ValueError, match="ttl_s must be positive"):
        Lease(sqlite_engine, "job:a", "h", ttl_s=0)


def test_advisory_key_is_stable_and_signed_64_bit():
    assert advisory_key("job:a") == advisory_key("job:a") != advisory_key("job:b")
    assert -(2**63) <= advisory_key("job:a") < 2**63


@pytest.mark.server
def test_postgres_lease_of_a_killed_holder_is_free_at_once(pg_schema):
    engine, schema, url = pg_schema
    holder = subprocess.Popen(
        [sys.executable, str(HELPERS / "hold_lease.py"), url, schema, "job:k", "victim:1", "300"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        mine = Lease(engine, "job:k", "survivor:2", ttl_s=300)
        assert not mine.acquire()
        assert mine.current().holder == "victim:1"
        holder.send_signal(signal.SIGKILL)
        holder.wait(5)
        deadline = time.monotonic() + 5
        while not mine.acquire():
            assert time.monotonic() < deadline, "the killed holder's advisory lock was not freed"
            time.sleep(0.05)
        # Freed long before the 300 s ttl: the lock died with the connection.
        assert mine.current().holder == "survivor:2"
        mine.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
