"""Folder adapter: drop-folder in and out, the way many legacy systems exchange files.

Features:
- receive: files matching ``pattern`` in ``path`` become messages; once the bus
  has stored them they move to ``processed_dir``; a file the bus parked (bad
  XML, no route) moves to ``error_dir`` with ``NAME.reason.txt`` beside it.
- send: each message is written to ``path`` atomically (a temporary file, then
  a rename), named from its idempotency key, so a redelivery never makes a
  second file and a reader never sees half a file.
- sync source (``direction: sync``, ``snapshot.py``): the newest file matching
  ``sync_pattern`` is a full snapshot of one entity, e.g. an agency's staff list
  dropped by its personnel system; a sync reconciles it into a target (someone
  absent from the file has left). CSV (UTF-8, a header row, ``sync_key`` names
  the key column) or XML turned into records by the XSLT mapping
  ``sync_mapping``. The file is only read: it stays in the folder, and its name
  and SHA-256 are the cursor. A file that is too big, not UTF-8, ragged or
  malformed is refused whole (``RejectedError``), never half-read: a missing row
  would disable a person.
- a file is read only once it has not changed for ``settle_seconds``, so a
  producer still writing it is not cut short.
- safe in a folder others can write (``files.py``): the folder and its side
  folders are opened once and used through their descriptors, files are opened
  without following links and without blocking, and only plain files with one
  name are read, capped at ``bus.max_message_bytes``; a link, a pipe, a hard
  link or a name over 200 bytes is parked with its reason. Output names that do
  not fit the file system are dead letters, not retries. Errors about a sync
  file name lines and columns, never its content.

Connection settings: ``path`` (relative to the config file's folder).

Options: see :class:`FolderAdapter.options` (``lienthong adapters`` shows them);
a sync source uses ``sync_pattern``, ``sync_format``, ``sync_key``,
``sync_fields``, ``sync_delimiter`` and ``sync_mapping``. A sync mapping names its output
``<records><record key="K"><field name="F">value</field>...</record></records>``;
values are stripped and NFC-normalised, an empty value is None, and a field
named ``disabled`` (the sync's reserved flag) is read as true/false.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import ClassVar

from lienthong.adapter import (
    Acceptance,
    Adapter,
    Capability,
    Change,
    Inbox,
    Option,
    SyncBatch,
)
from lienthong.errors import ConfigError, RejectedError
from lienthong.message import Message

from .files import Directory, bounded, kind_of
from .incoming import file_message
from .snapshot import SYNC_FORMATS, Snapshot

DIRECTIONS = ("in", "out", "sync")
REASON_SUFFIX = ".reason.txt"
# A name the file system refuses is a problem of this message, not a passing one.
_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL})


class FolderAdapter(Adapter):
    """Reads files from a drop folder, writes messages into one, or serves one to a sync."""

    name = "folder"
    version = "2"
    summary = "Drop-folder in and out, with atomic writes; the newest file as a sync snapshot."
    options = (
        Option("path", "folder to read from (receive) or write into (send)", example="var/inbox"),
        Option(
            "direction",
            "'in' to read files from the folder, 'out' to write into it, 'sync' to serve "
            "the newest sync_pattern file to a sync (never polled, never moved)",
            default="in",
            example="out",
            choices=DIRECTIONS,
        ),
        Option("pattern", "which files to read", default="*.xml"),
        Option("kind", "kind given to messages read here", default="xml"),
        Option("processed_dir", "where read files go (default PATH/.processed)", default=None),
        Option(
            "error_dir",
            "where parked files go, with a .reason.txt (default PATH/.error)",
            default=None,
        ),
        Option(
            "filename",
            "name of written files; {key}, {message_id}, {kind} and any header",
            default="{key}.xml",
        ),
        Option("batch", "files handed to the bus per poll", default=200, type=int, minimum=1),
        Option(
            "settle_seconds",
            "a file must be this old before it is read",
            default=0.0,
            type=float,
            minimum=0,
        ),
        Option("fsync", "flush written files to disk before the rename", default=True, type=bool),
        Option(
            "sync_pattern",
            "sync: which files hold the snapshot; the newest (modification time) is read",
            default=None,
            example="staff-*.csv",
        ),
        Option(
            "sync_format",
            "sync: 'csv' or 'xml' (default: from the suffix of sync_pattern)",
            default=None,
            example="csv",
            choices=SYNC_FORMATS,
        ),
        Option(
            "sync_key",
            "sync, CSV: the column holding each record's key (not itself a field)",
            default=None,
            example="uid",
        ),
        Option(
            "sync_fields",
            "sync, CSV: renames {csv column: field}; other columns keep their header as name",
            default=None,
            example={"Họ và tên": "full_name", "Chức vụ": "title"},
            type=dict,
        ),
        Option("sync_delimiter", "sync, CSV: the column separator, e.g. ';'", default=","),
        Option(
            "sync_mapping",
            "sync, XML: XSLT mapping (relative to bus.mappings) that outputs "
            '<records><record key="K"><field name="F">V</field></record></records>',
            default=None,
            example="directory/staff-list-to-records.xsl",
        ),
    )
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.RECEIVE, Capability.SEND, Capability.SYNC}
    )
    # A full disk or a vanished network share heals; the core retries.
    transient_errors = (OSError,)

    def start(self) -> None:
        direction = self.settings["direction"]
        if direction not in DIRECTIONS:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': direction must be one of "
                    f"{', '.join(DIRECTIONS)}, not {direction!r}"
                ]
            )
        self.stop()
        self.path = self._path(self.settings["path"])
        self.folder = Directory.open(self.path, what=f"endpoint '{self.endpoint}'")
        if direction == "sync":
            self.snapshot = Snapshot(
                self.endpoint, self.settings, self.services, self.folder, self.path
            )
            return
        stray = [o.name for o in self.options if o.name.startswith("sync_")]
        stray = [n for n in stray if n != "sync_delimiter" and self.settings.get(n) is not None]
        if stray:
            raise self._config(
                f"{', '.join(stray)} only apply to a sync source, not to direction "
                f"{direction!r}. Hint: set 'direction: sync' (a folder a sync reads must not "
                "be polled, or the bus would take its files)"
            )
        pattern = self.settings["pattern"]
        if "/" in pattern:
            raise self._config(
                f"pattern {pattern!r} names a sub-folder; it matches file names in 'path' "
                "only. Hint: point 'path' at the sub-folder"
            )
        if direction == "in":
            self.processed = self._side("processed_dir", ".processed")
            self.errors = self._side("error_dir", ".error")

    def stop(self) -> None:
        self.__dict__.pop("snapshot", None)  # it reads through the folder closed below
        for name in ("folder", "processed", "errors"):
            directory = self.__dict__.pop(name, None)
            if directory is not None:
                directory.close()

    def _config(self, text: str) -> ConfigError:
        return ConfigError([f"endpoint '{self.endpoint}': {text}"])

    def _path(self, value: str | Path) -> Path:
        folder = Path(value)
        return folder if folder.is_absolute() else self.services.base_dir / folder

    def _side(self, option: str, default: str) -> Directory:
        """A side folder, opened once: inside the shared folder, never through a link."""
        what = f"endpoint '{self.endpoint}'"
        if self.settings[option]:
            return Directory.open(self._path(self.settings[option]), what=what)
        return self.folder.subfolder(default, what=what)

    # --- receive ---

    def receive(self, inbox: Inbox) -> int:
        if self.settings["direction"] != "in":
            return 0
        batch: list[tuple[str, Message]] = []
        entries = self.folder.matching(
            self.settings["pattern"],
            settle=self.settings["settle_seconds"],
            limit=self.settings["batch"],
        )
        for name, _ in entries:
            try:
                message = file_message(
                    self.folder,
                    name,
                    endpoint=self.endpoint,
                    kind=self.settings["kind"],
                    max_bytes=self.services.max_message_bytes,
                )
            except FileNotFoundError:
                continue  # another worker took it
            batch.append((name, message))
        if not batch:
            return 0
        acceptances = inbox.accept([m for _, m in batch])
        for (name, _), acceptance in zip(batch, acceptances, strict=True):
            if acceptance.parked:
                self._park(name, acceptance)
            else:
                self.folder.move(name, self.processed)
        return len(batch)

    def _park(self, name: str, acceptance: Acceptance) -> None:
        """Move a parked file to the error folder, with its reason beside it."""
        moved = self.folder.move(name, self.errors)
        if moved is None:
            return
        reason = bounded(moved, len(REASON_SUFFIX)) + REASON_SUFFIX
        self.errors.write(
            reason,
            (
                f"message {acceptance.message_id}\n{acceptance.parked}\n"
                "Replay it with 'lienthong dlq replay' once the cause is fixed.\n"
            ).encode(),
            temporary=f".{acceptance.message_id}.reason.tmp",
            fsync=False,
        )

    # --- send ---

    def send(self, message: Message, *, key: str) -> None:
        if self.settings["direction"] != "out":
            raise RejectedError(
                f"endpoint '{self.endpoint}' is an input folder. Hint: set 'direction: out' "
                "on the endpoint a route writes to"
            )
        name = self._output_name(message, key)
        existing = self.folder.lstat(name)
        if existing is not None:
            self._check_existing(name, existing, message)
            return  # written by an earlier attempt whose outcome was not recorded
        try:
            self.folder.write(
                name,
                message.body,
                temporary=f".{hashlib.sha256(key.encode()).hexdigest()[:32]}.tmp",
                fsync=self.settings["fsync"],
            )
        except OSError as exc:
            if exc.errno in _NAME_ERRNOS:
                raise RejectedError(
                    f"endpoint '{self.endpoint}': the file system refuses the name {name!r}: "
                    f"{exc.strerror}. Hint: change the filename template"
                ) from exc
            raise

    def _output_name(self, message: Message, key: str) -> str:
        values = {**message.headers, "key": key, "message_id": message.id, "kind": message.kind}
        try:
            name = self.settings["filename"].format_map(values)
        except KeyError as exc:
            raise RejectedError(
                f"endpoint '{self.endpoint}': filename template needs header {exc}, which "
                "this message lacks. Hint: use {key} or a header every message has"
            ) from exc
        if not name or any(c in name for c in "/\\\0") or name.startswith("."):
            raise RejectedError(f"endpoint '{self.endpoint}': unsafe file name {name!r}")
        size, limit = len(os.fsencode(name)), self.folder.name_max()
        if size > limit:
            raise RejectedError(
                f"endpoint '{self.endpoint}': the file name made from "
                f"{self.settings['filename']!r} is {size} bytes, over the {limit} a name can "
                "have here; nothing was written. Hint: shorten the filename template, or "
                "use {key}"
            )
        return name

    def _check_existing(self, name: str, info: os.stat_result, message: Message) -> None:
        """Accept an output file already there only if it is this message, as a plain file."""
        if not stat.S_ISREG(info.st_mode):
            raise RejectedError(
                f"endpoint '{self.endpoint}': '{self.path / name}' already exists and is "
                f"{kind_of(info.st_mode)}, not a file the bus wrote; nothing was written. "
                "Hint: remove it (someone who can write the folder made it), then replay"
            )
        read = self.folder.read(name, len(message.body))
        if read.data != message.body:
            raise RejectedError(
                f"endpoint '{self.endpoint}': '{self.path / name}' already exists with other "
                "content. Hint: make the filename template unique per message, e.g. with {key}"
            )

    # --- sync source ---

    def sync_read(self, entity: str, since: str | None) -> SyncBatch:
        """The newest file as a full snapshot, or nothing new when ``since`` is its cursor."""
        if self.settings["direction"] != "sync":
            raise self._config(
                f"direction is {self.settings['direction']!r}, so a sync cannot read it. "
                "Hint: set 'direction: sync' and sync_pattern"
            )
        return self.snapshot.read(entity, since)

    def sync_apply(self, entity: str, change: Change) -> None:
        raise NotImplementedError(
            f"endpoint '{self.endpoint}' (folder) is a sync source only: nothing writes "
            f"'{entity}' records back into a file. Hint: make the folder a sync's 'source' "
            "and the system to update its 'target'"
        )
