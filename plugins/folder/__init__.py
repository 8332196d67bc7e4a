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

import csv
import errno
import hashlib
import io
import os
import stat
import unicodedata
from pathlib import Path
from typing import Any, ClassVar

from lienthong import xml
from lienthong.adapter import (
    INVALID_HEADER,
    Acceptance,
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
from lienthong.suggest import closest
from lienthong.sync import DISABLED

from .files import NAME_MAX, Directory, bounded, kind_of

DIRECTIONS = ("in", "out", "sync")
SYNC_FORMATS = ("csv", "xml")
_TRUE = ("true", "yes", "1", "x")
_FALSE = ("false", "no", "0", "")
_SHOWN_LINES = 5
#: Longest inbound file name, in bytes: it is copied into other names (the output
#: template, ``NAME.reason.txt``) that must still fit the file system's 255.
MAX_NAME_BYTES = 200
REASON_SUFFIX = ".reason.txt"
# A name the file system refuses is a problem of this message, not a passing one.
_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL})


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
        self.stop()
        self.path = self._path(self.settings["path"])
        self.folder = Directory.open(self.path, what=f"endpoint '{self.endpoint}'")
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
                message = self._message(name)
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

    def _message(self, name: str) -> Message:
        """The message for one file; a file the bus must not read is handed over marked invalid.

        An invalid one carries no body: the bus parks it with the reason (a dead
        letter to see and count), and the file itself is kept in the error folder.
        """
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        problem = self._name_problem(name, shown)
        if problem is None:
            read = self.folder.read(name, self.services.max_message_bytes)
            if read.data is not None:
                digest = hashlib.sha256(read.data).hexdigest()[:32]
                return Message(
                    body=read.data,
                    kind=self.settings["kind"],
                    source=self.endpoint,
                    headers={"filename": name},
                    source_key=f"{name}:{digest}",
                )
            problem, info = read.problem, read.info
        else:
            found = self.folder.lstat(name)
            if found is None:
                raise FileNotFoundError(name)
            info = found
        return Message(
            body=b"",
            kind=self.settings["kind"],
            source=self.endpoint,
            headers={"filename": shown, INVALID_HEADER: problem or "not read"},
            source_key=f"{bounded(shown, 48)}:{info.st_size}:{info.st_mtime_ns}",
        )

    @staticmethod
    def _name_problem(name: str, shown: str) -> str | None:
        if shown != name:
            return (
                f"the file name {shown!r} is not valid UTF-8. Hint: rename the file "
                "(the original is kept in the error folder)"
            )
        size = len(os.fsencode(name))
        if size > MAX_NAME_BYTES:
            return (
                f"the file name is {size} bytes long, over the {MAX_NAME_BYTES} the folder "
                "accepts (names are copied into other names, which must fit the file "
                f"system's {NAME_MAX}). Hint: shorten the name (the file is kept in the "
                "error folder)"
            )
        return None

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
        twice = sorted({n for n in named if named.count(n) > 1}, key=str)
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
        name = self._newest()
        read = self.folder.read(name, self.services.max_message_bytes)
        file = self.path / name
        if read.data is None:
            raise RejectedError(
                f"endpoint '{self.endpoint}': nothing was read from '{file}': {read.problem}"
            )
        data = read.data
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

    def _newest(self) -> str:
        """The newest entry matching sync_pattern, by its own time (a link is not followed)."""
        pattern = self.settings["sync_pattern"]
        settle = self.settings["settle_seconds"]
        found = self.folder.matching(pattern, settle=settle)
        if not found:
            raise TransientError(
                f"endpoint '{self.endpoint}': no file matching '{pattern}' in '{self.path}'"
                + (f" older than settle_seconds ({settle:g} s)" if settle else "")
                + ". Hint: check that the personnel system drops "
                "its export there; the sync runs again at its next tick"
            )
        return max(found, key=lambda item: (item[1].st_mtime, item[0]))[0]

    def _reject(self, file: Path, text: str) -> RejectedError:
        return RejectedError(
            f"endpoint '{self.endpoint}': nothing was read from '{file}': it {text}"
        )

    def _csv_records(self, file: Path, data: bytes) -> list[Record]:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise self._reject(
                file,
                f"is not UTF-8 (line {line}, byte {exc.start + 1:,}). Hint: export it as "
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
                where = f"the record on line {reader.line_num}"
                records.append(Record(key, self._flagged(file, where, fields)))
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
        twice = _repeated(columns)
        if twice:
            raise self._reject(file, f"repeats a column name in its header ({twice})")
        key = self.settings["sync_key"]
        if key not in columns:
            close = closest(key, columns)
            typo = f"; column {columns.index(close[0]) + 1} has a close name" if close else ""
            raise self._reject(
                file,
                f"has no column named '{key}' (sync_key) among the {len(columns)} of its "
                f"header row{typo}. Hint: check sync_key and sync_delimiter "
                f"('{self.settings['sync_delimiter']}')",
            )
        missing = [c for c in self.renames if c not in columns]
        if missing:
            raise self._reject(
                file,
                f"lacks column(s) {missing} named in sync_fields. Hint: the export's header "
                "changed, or fix sync_fields",
            )
        return columns

    def _field_names(self, file: Path, columns: list[str], key_at: int) -> list[str]:
        names = [self.renames.get(c) or c for c in columns]
        twice = _repeated([n if i != key_at else "" for i, n in enumerate(names)])
        if twice:
            raise self._reject(
                file,
                f"would give two columns the same field name ({twice}): sync_fields renames "
                "a column to the name of another. Hint: rename that other column too, or "
                "choose another name",
            )
        return names

    def _flagged(self, file: Path, where: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Read the reserved field ``disabled`` as a boolean, as the sync engine expects."""
        if DISABLED in fields:
            raw = (fields[DISABLED] or "").lower()
            if raw not in _TRUE + _FALSE:
                raise self._reject(
                    file,
                    f"has {where} whose field '{DISABLED}' is neither true nor false. "
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
                    f"{where}: child {position} is <{element.tag}>, not a <record key=...>. {hint}"
                )
            key = _clean(element.get("key")) or ""
            fields: dict[str, Any] = {}
            for number, item in enumerate(element.iterchildren("*"), start=1):
                name = _clean(item.get("name"))
                if item.tag != "field" or not name or name in fields:
                    problem = "repeats a field" if name in fields else "is not a <field name=...>"
                    raise RejectedError(
                        f"{where}: child {number} of record {position} {problem}. {hint}"
                    )
                fields[name] = _clean("".join(item.itertext()))
            records.append(Record(key, self._flagged(file, f"record {position}", fields)))
        return records


def _repeated(names: list[str]) -> str:
    """Where the first name that appears twice is, by column number ('' names are ignored)."""
    for i, name in enumerate(names):
        if name and name in names[i + 1 :]:
            return f"columns {i + 1} and {names.index(name, i + 1) + 1}"
    return ""


@hookimpl
def lienthong_register_adapters(register):  # type: ignore[no-untyped-def]
    register(FolderAdapter)
