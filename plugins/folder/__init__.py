"""Folder adapter: drop-folder in and out, the way many legacy systems exchange files.

Features:
- receive: files matching ``pattern`` in ``path`` become messages; once the bus
  has stored them they move to ``processed_dir``; a file the bus parked (bad
  XML, no route) moves to ``error_dir`` with ``NAME.reason.txt`` beside it.
- send: each message is written to ``path`` atomically (a temporary file, then
  a rename), named from its idempotency key, so a redelivery never makes a
  second file and a reader never sees half a file.
- a file is read only once it has not changed for ``settle_seconds``, so a
  producer still writing it is not cut short.

Connection settings: ``path`` (relative to the config file's folder).

Options: see :class:`FolderAdapter.options`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path
from typing import ClassVar

from lienthong.adapter import Adapter, Capability, Inbox, Option
from lienthong.errors import ConfigError, RejectedError
from lienthong.hookspecs import hookimpl
from lienthong.message import Message


class FolderAdapter(Adapter):
    """Reads files from a drop folder, or writes messages into one."""

    name = "folder"
    version = "1"
    summary = "Drop-folder in and out, with atomic writes."
    options = (
        Option("path", "folder to read from (receive) or write into (send)", example="var/inbox"),
        Option(
            "direction",
            "'in' to read files from the folder, 'out' to write into it",
            default="in",
            example="out",
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
        Option("batch", "files handed to the bus per poll", default=200, type=int),
        Option(
            "settle_seconds", "a file must be this old before it is read", default=0.0, type=float
        ),
        Option("fsync", "flush written files to disk before the rename", default=True, type=bool),
    )
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.RECEIVE, Capability.SEND})
    # A full disk or a vanished network share heals; the core retries.
    transient_errors = (OSError,)

    def start(self) -> None:
        if self.settings["direction"] not in ("in", "out"):
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': direction must be 'in' or 'out', "
                    f"not {self.settings['direction']!r}"
                ]
            )
        self.path = self._folder(self.settings["path"])
        self.processed = self._folder(self.settings["processed_dir"] or self.path / ".processed")
        self.errors = self._folder(self.settings["error_dir"] or self.path / ".error")

    def _folder(self, value: str | Path) -> Path:
        folder = Path(value)
        if not folder.is_absolute():
            folder = self.services.base_dir / folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                [
                    f"endpoint '{self.endpoint}': folder '{folder}' cannot be created: "
                    f"{exc.strerror}. Hint: check the path and its permissions"
                ]
            ) from exc
        return folder

    # --- receive ---

    def _ready_files(self) -> list[Path]:
        settle = self.settings["settle_seconds"]
        now = time.time()
        files = []
        for entry in sorted(self.path.glob(self.settings["pattern"])):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            try:
                if settle and now - entry.stat().st_mtime < settle:
                    continue
            except FileNotFoundError:
                continue  # another worker took it
            files.append(entry)
            if len(files) >= self.settings["batch"]:
                break
        return files

    def receive(self, inbox: Inbox) -> int:
        if self.settings["direction"] != "in":
            return 0
        batch: list[tuple[Path, Message]] = []
        for file in self._ready_files():
            try:
                body = file.read_bytes()
            except FileNotFoundError:
                continue
            digest = hashlib.sha256(body).hexdigest()[:32]
            batch.append(
                (
                    file,
                    Message(
                        body=body,
                        kind=self.settings["kind"],
                        source=self.endpoint,
                        headers={"filename": file.name},
                        source_key=f"{file.name}:{digest}",
                    ),
                )
            )
        if not batch:
            return 0
        acceptances = inbox.accept([m for _, m in batch])
        for (file, _), acceptance in zip(batch, acceptances, strict=True):
            if acceptance.parked:
                self._move(file, self.errors)
                reason = self.errors / f"{file.name}.reason.txt"
                reason.write_text(
                    f"message {acceptance.message_id}\n{acceptance.parked}\n"
                    "Replay it with 'lienthong dlq replay' once the cause is fixed.\n",
                    encoding="utf-8",
                )
            else:
                self._move(file, self.processed)
        return len(batch)

    def _move(self, file: Path, folder: Path) -> None:
        target = folder / file.name
        if target.exists():
            target = folder / f"{file.stem}.{int(time.time() * 1000)}{file.suffix}"
        # Another worker may have moved it after the store had it: nothing is lost.
        with contextlib.suppress(FileNotFoundError):
            file.replace(target)

    # --- send ---

    def send(self, message: Message, *, key: str) -> None:
        if self.settings["direction"] != "out":
            raise RejectedError(
                f"endpoint '{self.endpoint}' is an input folder. Hint: set 'direction: out' "
                "on the endpoint a route writes to"
            )
        values = {**message.headers, "key": key, "message_id": message.id, "kind": message.kind}
        try:
            name = self.settings["filename"].format_map(values)
        except KeyError as exc:
            raise RejectedError(
                f"endpoint '{self.endpoint}': filename template needs header {exc}, which "
                "this message lacks. Hint: use {key} or a header every message has"
            ) from exc
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise RejectedError(f"endpoint '{self.endpoint}': unsafe file name {name!r}")
        final = self.path / name
        if final.exists():
            if final.read_bytes() == message.body:
                return  # written by an earlier attempt whose outcome was not recorded
            raise RejectedError(
                f"endpoint '{self.endpoint}': '{final}' already exists with other content. "
                "Hint: make the filename template unique per message, e.g. with {key}"
            )
        temporary = self.path / f".{name}.{key}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(message.body)
            if self.settings["fsync"]:
                handle.flush()
                os.fsync(handle.fileno())
        temporary.replace(final)


@hookimpl
def lienthong_register_adapters(register):  # type: ignore[no-untyped-def]
    register(FolderAdapter)
