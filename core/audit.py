"""The tamper-evident audit trail: every hop's record chained to the one before, keyed, anchored.

Each record's ``hash`` covers the previous record's hash and this record's own
fields, so altering a record breaks its own hash, and removing or inserting
one breaks the link of the next. :func:`verify` walks the chain in id order
and names the first record that does not fit.

A chain alone does not stop whoever can write the database: they can delete
the end of the trail, or edit a record and recompute every hash after it. Two
anchors outside the database close that:

- **A key.** With an HMAC key (``bus.audit_key`` from ``{file:}``/``{env:}``,
  or on the embedded default ``var/audit.key``, made on first start with mode
  0600), each hash is an HMAC-SHA256: without the key, no one can compute a
  hash that verifies. The keyed part of the trail starts with an ``audit-key``
  record naming the key by an id derived from it (never the key itself); the
  records before it stay plain SHA-256 and are sealed by it.
- **An anchor file.** Every few seconds the bus writes the chain's head (last
  id, its hash, the number of records up to it) to ``var/audit.anchor`` and
  logs it. ``lienthong audit verify`` checks the trail still reaches that head
  with that hash, so a cut-off end is found even where no key is set. The bus
  never moves the anchor back: a trail that no longer matches it is reported,
  and the file left as evidence.

Writers append under a lock (a transaction-level advisory lock on PostgreSQL;
SQLite has one writer at a time anyway), so concurrent workers extend one chain.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from .errors import ConfigError
from .store.schema import naive_utc

log = logging.getLogger(__name__)

GENESIS = "0" * 64
#: The event of the record that starts a part of the trail kept with one key.
KEY_EVENT = "audit-key"
KEY_FILE = "audit.key"
ANCHOR_FILE = "audit.anchor"
MIN_KEY_CHARS = 32
_LOCK_KEY = 0x6C74_6175  # "ltau": one advisory lock for the audit chain


# --- hashes and keys ---------------------------------------------------------


def record_hash(previous: str, row: dict[str, Any], key: bytes | None = None) -> str:
    """The hash of one record, given the previous record's hash: HMAC-SHA256 with a key."""
    at = row["at"]
    # The time as the store keeps it (naive UTC), so a hash made before the store
    # read times back aware still verifies.
    stamp = naive_utc(at).isoformat(" ", "microseconds") if isinstance(at, datetime) else str(at)
    fields = [
        previous,
        row["message_id"],
        stamp,
        row["event"],
        row.get("endpoint") or "",
        row.get("detail") or "",
    ]
    data = "\x1f".join(fields).encode("utf-8")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A short name for a key that tells keys apart and reveals nothing of it."""
    return hmac.new(key, b"lienthong audit key id", hashlib.sha256).hexdigest()[:16]


def load_key(
    configured: Any, var_dir: Path, *, embedded: bool, create: bool = True
) -> bytes | None:
    """The audit key: ``configured`` (a Secret), else on the embedded default ``var/audit.key``.

    With ``create``, a missing key file of the embedded default is made (0600);
    a check (``audit verify``) only reads it.
    """
    if configured is not None:
        value = configured.reveal()
        if len(value) < MIN_KEY_CHARS:
            raise ConfigError(
                [
                    f"bus.audit_key ({configured.origin}) is {len(value)} characters; an audit "
                    f"key needs at least {MIN_KEY_CHARS}. Hint: python3 -c 'import secrets; "
                    "print(secrets.token_hex(32))' > /etc/lienthong/audit.key"
                ]
            )
        return value.encode("utf-8")
    if not embedded:
        return None
    path = var_dir / KEY_FILE
    if create and not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it first
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_hex(32) + "\n")
            log.info(
                "made the audit key %s (keep it, and a copy away from the database: without "
                "it the audit trail cannot be verified)",
                path,
            )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(
            [f"audit key file '{path}' cannot be read: {exc.strerror}. Hint: check its owner"]
        ) from exc
    with os.fdopen(fd, "r", encoding="utf-8") as handle:
        if stat.S_IMODE(os.fstat(handle.fileno()).st_mode) & 0o077:
            log.warning(
                "audit key file %s can be read by other users; whoever reads it can rewrite "
                "the audit trail undetected. Hint: chmod 600 %s",
                path,
                path,
            )
        value = handle.read().strip()
    if len(value) < MIN_KEY_CHARS:
        raise ConfigError(
            [
                f"audit key file '{path}' holds {len(value)} characters, not a key. Hint: "
                "restore it from your copy; remove it only to start a new key on purpose"
            ]
        )
    return value.encode("utf-8")


def _key_record(key: bytes, at: datetime) -> dict[str, Any]:
    return {
        "message_id": "",
        "at": at,
        "event": KEY_EVENT,
        "endpoint": None,
        "detail": f"key {key_id(key)}",
    }


def _last(conn: Connection, table: Any) -> Any:
    return conn.execute(select(table).order_by(table.c.id.desc()).limit(1)).mappings().first()


def _written_with(row: Any, key: bytes | None) -> bool:
    return bool(record_hash(row["prev_hash"], dict(row), key) == row["hash"])


# --- writing -------------------------------------------------------------------


def chain(
    conn: Connection, table: Any, rows: Sequence[dict[str, Any]], key: bytes | None = None
) -> list[dict[str, Any]]:
    """Give ``rows`` their ``prev_hash`` and ``hash``, continuing the stored chain.

    With a key, a chain whose last record was not written with it first gets the
    key's ``audit-key`` record (returned among the rows). Call inside the
    transaction that inserts them; on PostgreSQL this takes the chain's lock
    until that transaction ends.
    """
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    last = _last(conn, table)
    previous = last["hash"] if last is not None else GENESIS
    if key is not None and (last is None or not _written_with(last, key)):
        rows = [_key_record(key, rows[0]["at"]), *rows]
    chained = []
    for row in rows:
        digest = record_hash(previous, row, key)
        chained.append({**row, "prev_hash": previous, "hash": digest})
        previous = digest
    return chained


def check_key(engine: Engine, table: Any, key: bytes | None) -> None:
    """Refuse to write plain records after keyed ones; warn when the key changed.

    Called once per process before it writes, so a worker that lost its key
    setting cannot break the chain for the others.
    """
    with engine.connect() as conn:
        last = _last(conn, table)
    if last is None or _written_with(last, key):
        return
    if key is None:
        raise ConfigError(
            [
                f"bus.audit_key is not set, but the audit trail is keyed (its last record "
                f"#{last['id']} was not written without a key). Hint: set bus.audit_key to "
                "the key file the other workers use"
            ]
        )
    if not _written_with(last, None):
        log.warning(
            "the audit trail's last record #%s was written with another key than bus.audit_key "
            "(id %s); a new keyed part starts here, and 'lienthong audit verify' needs the "
            "old key too (--key-file) to check what came before",
            last["id"],
            key_id(key),
        )


# --- the anchor ------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """The chain's head as seen at ``at``: its last record's id and hash, and how many records."""

    records: int
    last_id: int
    hash: str
    at: str


_LOGGED = re.compile(r"audit anchor: (\d+) records, head #(\d+) ([0-9a-f]{64})")
_LOGGED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")


def read_anchor(path: Path) -> Anchor | None:
    """The anchor in ``path``: the bus's anchor file, or a log (text or JSON) holding anchor
    lines, of which the last counts. None when there is none; a damaged file is a
    ``ConfigError``."""
    try:
        content = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError([f"audit anchor '{path}' cannot be read: {exc.strerror}"]) from exc
    try:
        data = json.loads(content)
        return Anchor(int(data["records"]), int(data["last_id"]), str(data["hash"]), data["at"])
    except (ValueError, KeyError, TypeError):
        pass
    logged = [line for line in content.splitlines() if _LOGGED.search(line)]
    if not logged:
        raise ConfigError(
            [
                f"audit anchor '{path}' is neither an anchor file nor a log with "
                "'audit anchor:' lines. Hint: give var/audit.anchor, or the bus's log"
            ]
        )
    records, last_id, digest = _LOGGED.findall(logged[-1])[-1]
    when = _LOGGED_AT.search(logged[-1])
    return Anchor(int(records), int(last_id), digest, when.group() if when else "the log")


def _write_anchor(path: Path, anchor: Anchor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(anchor)) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _mismatch(conn: Connection, table: Any, anchor: Anchor) -> str | None:
    """Why the stored trail does not reach ``anchor``; None when it does."""
    stored = conn.execute(
        select(table.c.hash).where(table.c.id == anchor.last_id)
    ).scalar_one_or_none()
    if stored is None:
        last = conn.execute(select(func.max(table.c.id))).scalar_one_or_none()
        return (
            f"the anchor of {anchor.at} names record #{anchor.last_id} ({anchor.records} "
            f"records), but the trail now ends at #{last or 0}: records were removed from the "
            "end (or the store was restored from an older backup)"
        )
    if stored != anchor.hash:
        return (
            f"record #{anchor.last_id} no longer has the hash the anchor of {anchor.at} "
            "recorded: the trail up to it was rewritten"
        )
    return None


class AnchorKeeper:
    """Writes the chain's head to the anchor file every ``interval`` seconds, on its own thread."""

    def __init__(self, engine: Engine, table: Any, path: Path, interval: float) -> None:
        self.engine = engine
        self.table = table
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._alarm: str | None = None

    def export(self) -> Anchor | None:
        """Write the head if it moved on; never move the anchor back or past a mismatch."""
        if self._alarm is not None:
            return None
        previous = read_anchor(self.path)
        with self.engine.connect() as conn:
            last = conn.execute(
                select(self.table.c.id, self.table.c.hash).order_by(self.table.c.id.desc()).limit(1)
            ).first()
            problem = _mismatch(conn, self.table, previous) if previous else None
            if problem:
                self._alarm = problem
                log.error(
                    "the audit trail does not match its anchor %s: %s. The anchor is kept as "
                    "evidence and no longer moved. Hint: run 'lienthong audit verify'; after "
                    "a deliberate restore, move the anchor file aside",
                    self.path,
                    problem,
                )
                return None
            if last is None or (previous is not None and last.id <= previous.last_id):
                return None
            if previous is None:
                count = conn.execute(
                    select(func.count()).where(self.table.c.id <= last.id)
                ).scalar_one()
            else:
                count = (
                    previous.records
                    + conn.execute(
                        select(func.count()).where(
                            self.table.c.id > previous.last_id, self.table.c.id <= last.id
                        )
                    ).scalar_one()
                )
        anchor = Anchor(count, last.id, last.hash, datetime.now(UTC).isoformat(timespec="seconds"))
        _write_anchor(self.path, anchor)
        log.info(
            "audit anchor: %d records, head #%d %s", anchor.records, anchor.last_id, anchor.hash
        )
        return anchor

    def start(self) -> None:
        self._stop.clear()
        self._safe_export()
        self._thread = threading.Thread(target=self._loop, name="audit-anchor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write the head one last time."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._safe_export()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._safe_export()

    def _safe_export(self) -> None:
        try:
            self.export()
        except (SQLAlchemyError, OSError, ConfigError) as exc:
            log.warning("the audit anchor could not be written; the next try follows: %s", exc)


# --- verifying -------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found."""

    records: int
    broken_at: int | None = None
    problem: str | None = None
    keyed_from: int | None = None
    anchor: Anchor | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(
    engine: Engine,
    table: Any,
    keys: Sequence[bytes | None] = (),
    anchor: Anchor | None = None,
) -> Verdict:
    """Walk the chain in id order; name the first record altered, removed or inserted.

    ``keys`` are the audit keys that may have written it (the configured one
    first; None for "no key configured" is skipped); ``anchor`` is the head the
    trail must still reach. With a key, a
    trail whose records were not written with it is not intact, since only the
    key proves who wrote them.
    """
    known = [k for k in keys if k is not None]
    by_id = {key_id(k): k for k in known}
    previous, count = GENESIS, 0
    key: bytes | None = None
    keyed_from: int | None = None
    anchored = False
    with engine.connect() as conn:
        rows: Iterable[Any] = conn.execute(select(table).order_by(table.c.id)).mappings()
        for row in rows:
            count += 1
            if row["prev_hash"] != previous:
                return Verdict(
                    count,
                    row["id"],
                    (
                        f"record #{row['id']} does not follow the record before it: a record "
                        "was removed or inserted just before it"
                    ),
                )
            if row["event"] == KEY_EVENT:
                named = (row["detail"] or "").removeprefix("key ")
                key = by_id.get(named)
                if key is None:
                    return Verdict(
                        count,
                        row["id"],
                        (
                            f"record #{row['id']} starts a part of the trail kept with a key "
                            f"this check does not have (key id {named}; "
                            + (
                                f"the configured key's is {key_id(known[0])}"
                                if known
                                else "no key is configured"
                            )
                            + "). Hint: give that key with --key-file; if no one holds it, the "
                            "record was forged"
                        ),
                    )
                keyed_from = keyed_from or row["id"]
            if record_hash(previous, dict(row), key) != row["hash"]:
                return Verdict(
                    count,
                    row["id"],
                    (
                        f"record #{row['id']} ({row['event']} of message {row['message_id']}) "
                        "was altered after it was written"
                        + (" (or written without the audit key)" if key else "")
                    ),
                )
            previous = row["hash"]
            if anchor is not None and row["id"] == anchor.last_id:
                anchored = True
                if row["hash"] != anchor.hash or count != anchor.records:
                    return Verdict(
                        count,
                        row["id"],
                        (
                            f"record #{row['id']} is not the head the anchor of {anchor.at} "
                            f"recorded (there: {anchor.records} records, hash "
                            f"{anchor.hash[:16]}…; here: {count} records, hash "
                            f"{row['hash'][:16]}…): the trail up to it was rewritten"
                        ),
                    )
    if anchor is not None and not anchored:
        return Verdict(
            count,
            None,
            (
                f"the trail ends after {count} records, but the anchor of {anchor.at} names "
                f"record #{anchor.last_id} with {anchor.records}: records were removed from "
                "the end (or the store was restored from an older backup)"
            ),
            keyed_from,
            anchor,
        )
    if known and count and keyed_from is None:
        return Verdict(
            count,
            None,
            (
                "no record of the trail was written with the audit key, though one is "
                "configured: the trail was rewritten without it, or no bus has written since "
                "the key was set (start it once, then verify again)"
            ),
        )
    return Verdict(count, keyed_from=keyed_from, anchor=anchor)
