"""Folder adapter: drop-folder in and out, the way many legacy systems exchange files.

Features:
- receive: files matching ``pattern`` in ``path`` become messages; once the bus
  has stored them they move to ``processed_dir``; a file the bus parked (bad
  XML, no route) moves to ``error_dir`` with ``NAME.reason.txt`` beside it.
- send: each message is written to ``path`` atomically (a temporary file, then
  a rename), named from its idempotency key, so a redelivery never makes a
  second file and a reader never sees half a file.
- sync source (``direction: sync``): the newest file matching ``sync_pattern``
  is a full snapshot of one entity, e.g. an agency's staff list dropped by its
  personnel system; a sync reconciles it into a target (someone absent from the
  file has left). CSV (UTF-8, a header row, ``sync_key`` names the key column)
  or XML turned into records by the XSLT mapping ``sync_mapping``. The file is
  only read: it stays in the folder, and its name and SHA-256 are the cursor.
  A file that is too big, not UTF-8, ragged or malformed is refused whole
  (``RejectedError``), never half-read: a missing row would disable a person.
- a file is read only once it has not changed for ``settle_seconds``, so a
  producer still writing it is not cut short.

Connection settings: ``path`` (relative to the config file's folder).

Options: see :class:`FolderAdapter.options` (``lienthong adapters`` shows them);
a sync source uses ``sync_pattern``, ``sync_format``, ``sync_key``,
``sync_fields``, ``sync_delimiter`` and ``sync_mapping``. A sync mapping names its output
``<records><record key="K"><field name="F">value</field>...</record></records>``;
values are stripped and NFC-normalised, an empty value is None, and a field
named ``disabled`` (the sync's reserved flag) is read as true/false.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import hashlib
import io
import os
import time
import unicodedata
from pathlib import Path
from typing import Any, ClassVar

from lienthong import xml
from lienthong.adapter import (
    INVALID_HEADER,
    Adapter,
    Capability,
    Change,
    Inbox,
    Option,
    Record,
    SyncBatch,
)
from lienthong.errors import ConfigError, RejectedError, TransientError
from lienthong.hookspecs import hookimpl
from lienthong.mapping import Mapping as XsltMapping
from lienthong.mapping import MappingLibrary
from lienthong.message import Message
from lienthong.sync import DISABLED

DIRECTIONS = ("in", "out", "sync")
SYNC_FORMATS = ("csv", "xml")
_TRUE = ("true", "yes", "1", "x")
_FALSE = ("false", "no", "0", "")
_SHOWN_LINES = 5


def _clean(value: str | None) -> str | None:
    """A file's value as a sync compares it: stripped, NFC, None when empty.

    NFC gives each Vietnamese letter one spelling, whatever tool made the export,
    so a re-export in another normal form plans no updates.
    """
    if value is None:
        return None
    text = unicodedata.normalize("NFC", value.strip())
    return text or None


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
        self.path = self._folder(self.settings["path"])
        if direction == "sync":
            self._start_sync()
            return
        stray = [o.name for o in self.options if o.name.startswith("sync_")]
        stray = [n for n in stray if n != "sync_delimiter" and self.settings.get(n) is not None]
        if stray:
            raise self._config(
                f"{', '.join(stray)} only apply to a sync source, not to direction "
                f"{direction!r}. Hint: set 'direction: sync' (a folder a sync reads must not "
                "be polled, or the bus would take its files)"
            )
        self.processed = self._folder(self.settings["processed_dir"] or self.path / ".processed")
        self.errors = self._folder(self.settings["error_dir"] or self.path / ".error")

    def _config(self, text: str) -> ConfigError:
        return ConfigError([f"endpoint '{self.endpoint}': {text}"])

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
            if entry.name.startswith(".") or not (entry.is_file() or entry.is_symlink()):
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
                message = self._message(file)
            except FileNotFoundError:
                continue  # another worker took it
            batch.append((file, message))
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

    def _message(self, file: Path) -> Message:
        """The message for one file; a file the bus must not read is handed over marked invalid.

        An invalid one carries no body: the bus parks it with the reason (a dead
        letter to see and count), and the file itself is kept in the error folder.
        """
        name = file.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        stat = file.lstat()
        problem = None
        if file.is_symlink():
            problem = (
                f"'{name}' is a symbolic link; the folder reads only plain files, so a "
                "link cannot feed it files from elsewhere. Hint: copy the file in instead"
            )
        elif name != file.name:
            problem = (
                f"the file name {name!r} is not valid UTF-8. Hint: rename the file "
                "(the original is kept in the error folder)"
            )
        elif stat.st_size > self.services.max_message_bytes:
            problem = (
                f"'{name}' is {stat.st_size:,} bytes, over the limit of "
                f"{self.services.max_message_bytes:,} bytes; it was not read. Hint: raise "
                "bus.max_message_bytes if such files are expected, then drop it again"
            )
        if problem:
            return Message(
                body=b"",
                kind=self.settings["kind"],
                source=self.endpoint,
                headers={"filename": name, INVALID_HEADER: problem},
                source_key=f"{name}:{stat.st_size}:{stat.st_mtime_ns}",
            )
        body = file.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:32]
        return Message(
            body=body,
            kind=self.settings["kind"],
            source=self.endpoint,
            headers={"filename": name},
            source_key=f"{name}:{digest}",
        )

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

    # --- sync source ---

    def _start_sync(self) -> None:
        pattern = self.settings["sync_pattern"]
        if not pattern:
            raise self._config(
                "direction 'sync' needs sync_pattern, the files that hold the snapshot. "
                "Hint: e.g. sync_pattern: 'staff-*.csv'"
            )
        fmt = self.settings["sync_format"] or Path(pattern).suffix.lstrip(".").lower()
        if fmt not in SYNC_FORMATS:
            raise self._config(
                f"sync_format must be one of {', '.join(SYNC_FORMATS)}, got {fmt!r}. Hint: "
                "set sync_format, or end sync_pattern with .csv or .xml"
            )
        self.sync_format = fmt
        self.mapping: XsltMapping | None = None
        if fmt == "csv":
            self._start_csv()
        else:
            self._start_xml()

    def _start_csv(self) -> None:
        if not self.settings["sync_key"]:
            raise self._config(
                "a CSV sync source needs sync_key, the column with each record's key. "
                "Hint: e.g. sync_key: uid"
            )
        renames = self.settings["sync_fields"] or {}
        bad = {
            k: v
            for k, v in renames.items()
            if not str(k).strip() or not isinstance(v, str) or not v.strip()
        }
        if bad:
            raise self._config(
                f"sync_fields maps a CSV column to a field name, got {bad!r}. "
                "Hint: sync_fields: {'Họ và tên': full_name}"
            )
        self.renames = {_clean(str(k)): _clean(v) for k, v in renames.items()}
        named = list(self.renames.values())
        twice = sorted({n for n in named if named.count(n) > 1})
        if twice:
            raise self._config(f"sync_fields names field(s) {twice} for more than one column")
        delimiter = self.settings["sync_delimiter"]
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise self._config(
                f"sync_delimiter must be one character other than a quote, got {delimiter!r}"
            )

    def _start_xml(self) -> None:
        name = self.settings["sync_mapping"]
        if not name:
            raise self._config(
                "an XML sync source needs sync_mapping, the XSLT that turns the file into "
                "<records>. Hint: e.g. sync_mapping: directory/staff-list-to-records.xsl"
            )
        root = self.services.mappings_dir or self.services.base_dir / "mappings"
        library = MappingLibrary(root, max_bytes=self.services.max_message_bytes)
        self.mapping = library.get(name)  # a missing or broken mapping refuses to start

    def sync_read(self, entity: str, since: str | None) -> SyncBatch:
        """The newest file as a full snapshot, or nothing new when ``since`` is its cursor."""
        if self.settings["direction"] != "sync":
            raise self._config(
                f"direction is {self.settings['direction']!r}, so a sync cannot read it. "
                "Hint: set 'direction: sync' and sync_pattern"
            )
        file = self._newest()
        size = file.stat().st_size
        limit = self.services.max_message_bytes
        if size > limit:
            raise RejectedError(
                f"endpoint '{self.endpoint}': '{file}' is {size:,} bytes, over the limit of "
                f"{limit:,} bytes; nothing was read. Hint: raise bus.max_message_bytes if "
                "staff lists are this big"
            )
        data = file.read_bytes()
        if len(data) > limit:  # replaced by a bigger file since the stat
            raise RejectedError(
                f"endpoint '{self.endpoint}': '{file}' is over the limit of {limit:,} bytes; "
                "nothing was read. Hint: raise bus.max_message_bytes if staff lists are this big"
            )
        cursor = f"{file.name}:{hashlib.sha256(data).hexdigest()}"
        if since == cursor:
            return SyncBatch(records=[], complete=False, cursor=cursor)
        if self.sync_format == "csv":
            records = self._csv_records(file, data)
        else:
            records = self._xml_records(file, data, entity)
        return SyncBatch(records=records, complete=True, cursor=cursor)

    def sync_apply(self, entity: str, change: Change) -> None:
        raise NotImplementedError(
            f"endpoint '{self.endpoint}' (folder) is a sync source only: nothing writes "
            f"'{entity}' records back into a file. Hint: make the folder a sync's 'source' "
            "and the system to update its 'target'"
        )

    def _newest(self) -> Path:
        pattern = self.settings["sync_pattern"]
        settle = self.settings["settle_seconds"]
        now = time.time()
        found: list[tuple[float, str, Path]] = []
        for entry in self.path.glob(pattern):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            try:
                mtime = entry.stat().st_mtime
            except FileNotFoundError:
                continue
            if settle and now - mtime < settle:
                continue  # still being written: the previous file stands
            found.append((mtime, entry.name, entry))
        if not found:
            raise TransientError(
                f"endpoint '{self.endpoint}': no file matching '{pattern}' in '{self.path}'"
                + (f" older than settle_seconds ({settle:g} s)" if settle else "")
                + ". Hint: check that the personnel system drops "
                "its export there; the sync runs again at its next tick"
            )
        return max(found)[2]

    def _reject(self, file: Path, text: str) -> RejectedError:
        return RejectedError(
            f"endpoint '{self.endpoint}': nothing was read from '{file}': it {text}"
        )

    def _csv_records(self, file: Path, data: bytes) -> list[Record]:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            bad = data[exc.start : exc.start + 2]
            raise self._reject(
                file,
                f"is not UTF-8 (line {line}, bytes {bad!r}). Hint: export it as "
                "'CSV UTF-8' (Excel: Save As > CSV UTF-8)",
            ) from exc
        reader = csv.reader(
            io.StringIO(text, newline=""), delimiter=self.settings["sync_delimiter"], strict=True
        )
        try:
            header = next(reader, None)
            if header is None:
                raise self._reject(
                    file, "is empty: no header row. Hint: the first line names the columns"
                )
            columns = self._columns(file, header)
            key_at = columns.index(self.settings["sync_key"])
            names = self._field_names(file, columns, key_at)
            records: list[Record] = []
            ragged: list[str] = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # a blank line
                if len(row) != len(columns):
                    ragged.append(f"line {reader.line_num} has {len(row)} columns")
                    continue
                fields = {
                    n: _clean(v)
                    for i, (n, v) in enumerate(zip(names, row, strict=True))
                    if i != key_at
                }
                key = _clean(row[key_at]) or ""
                records.append(Record(key, self._flagged(file, key, fields)))
        except csv.Error as exc:
            raise self._reject(
                file,
                f"is not valid CSV at line {reader.line_num}: {exc}. Hint: quote values "
                "that hold the delimiter, a quote or a line break",
            ) from exc
        if ragged:
            shown = "; ".join(ragged[:_SHOWN_LINES])
            more = f" (and {len(ragged) - _SHOWN_LINES} more)" if len(ragged) > _SHOWN_LINES else ""
            raise self._reject(
                file,
                f"has rows whose column count differs from the header's {len(columns)} "
                f"({shown}{more}). Hint: quote values that contain "
                f"'{self.settings['sync_delimiter']}', or check sync_delimiter",
            )
        return records

    def _columns(self, file: Path, header: list[str]) -> list[str]:
        columns = [_clean(c) or "" for c in header]
        if "" in columns:
            raise self._reject(
                file, f"column {columns.index('') + 1} of the header row has no name"
            )
        twice = sorted({c for c in columns if columns.count(c) > 1})
        if twice:
            raise self._reject(file, f"names column(s) {twice} more than once in its header")
        key = self.settings["sync_key"]
        if key not in columns:
            close = difflib.get_close_matches(key, columns, n=1)
            hint = f"Did you mean '{close[0]}'? " if close else ""
            raise self._reject(
                file,
                f"has no key column '{key}' (sync_key); its columns: {', '.join(columns)}. "
                f"{hint}Hint: check sync_key and sync_delimiter "
                f"('{self.settings['sync_delimiter']}')",
            )
        missing = [c for c in self.renames if c not in columns]
        if missing:
            raise self._reject(
                file,
                f"lacks column(s) {missing} named in sync_fields; its columns: "
                f"{', '.join(columns)}. Hint: the export's header changed, or fix sync_fields",
            )
        return columns

    def _field_names(self, file: Path, columns: list[str], key_at: int) -> list[str]:
        names = [self.renames.get(c) or c for c in columns]
        fields = [n for i, n in enumerate(names) if i != key_at]
        twice = sorted({n for n in fields if fields.count(n) > 1})
        if twice:
            raise self._reject(
                file,
                f"would give field(s) {twice} twice: sync_fields renames a column to the "
                "name of another. Hint: rename that other column too, or choose another name",
            )
        return names

    def _flagged(self, file: Path, key: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Read the reserved field ``disabled`` as a boolean, as the sync engine expects."""
        if DISABLED in fields:
            raw = (fields[DISABLED] or "").lower()
            if raw not in _TRUE + _FALSE:
                raise self._reject(
                    file,
                    f"has record '{key}' whose field '{DISABLED}' is {fields[DISABLED]!r}. "
                    f"Hint: use one of {', '.join(repr(v) for v in _TRUE + _FALSE)}",
                )
            fields[DISABLED] = raw in _TRUE
        return fields

    def _xml_records(self, file: Path, data: bytes, entity: str) -> list[Record]:
        assert self.mapping is not None
        tree = xml.parse(
            data, max_bytes=self.services.max_message_bytes, what=f"'{file}' of '{self.endpoint}'"
        )
        root = self.mapping.apply(tree, {"entity": entity}).getroot()
        where = f"mapping '{self.mapping.name}' on '{file.name}'"
        hint = (
            'Hint: output <records><record key="K"><field name="F">value</field></record></records>'
        )
        if root.tag != "records":
            raise RejectedError(f"{where} produced <{root.tag}>, not <records>. {hint}")
        records: list[Record] = []
        for position, element in enumerate(root.iterchildren("*"), start=1):
            if element.tag != "record" or element.get("key") is None:
                raise RejectedError(
                    f"{where}: child {position} is <{element.tag}> "
                    f"{dict(element.attrib)!r}, not a <record key=...>. {hint}"
                )
            key = _clean(element.get("key")) or ""
            fields: dict[str, Any] = {}
            for item in element.iterchildren("*"):
                name = _clean(item.get("name"))
                if item.tag != "field" or not name or name in fields:
                    problem = "repeats field" if name in fields else "has a bad child"
                    raise RejectedError(
                        f"{where}: record '{key}' {problem} <{item.tag}> "
                        f"{dict(item.attrib)!r}. {hint}"
                    )
                fields[name] = _clean("".join(item.itertext()))
            records.append(Record(key, self._flagged(file, key, fields)))
        return records


@hookimpl
def lienthong_register_adapters(register):  # type: ignore[no-untyped-def]
    register(FolderAdapter)
