"""A folder's sync snapshot: the newest file matching ``sync_pattern``, read whole into records.

The sync side of :class:`~lienthong.plugins.folder.FolderAdapter` (``direction:
sync``): its options are checked when the endpoint starts, and each read takes
the newest settled file, CSV or XML through an XSLT mapping, as a full snapshot
of one entity. A file that is too big, not UTF-8, ragged or malformed is refused
whole (``RejectedError``), never half-read: a missing row would disable a person.
Errors name lines and columns, never the file's content.
"""

from __future__ import annotations

import csv
import hashlib
import io
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lienthong import xml
from lienthong.adapter import Record, Services, SyncBatch
from lienthong.errors import ConfigError, RejectedError, TransientError
from lienthong.mapping import Mapping as XsltMapping
from lienthong.mapping import MappingLibrary
from lienthong.suggest import closest
from lienthong.sync import DISABLED

from .files import Directory

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


class Snapshot:
    """The newest snapshot file of a sync source folder, read as records.

    Built when the endpoint starts, so a missing or contradictory option (or a
    broken mapping) refuses to start rather than failing at the first sync.
    """

    def __init__(
        self,
        endpoint: str,
        settings: Mapping[str, Any],
        services: Services,
        folder: Directory,
        path: Path,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.services = services
        self.folder = folder
        self.path = path
        pattern = settings["sync_pattern"]
        if not pattern:
            raise self._config(
                "direction 'sync' needs sync_pattern, the files that hold the snapshot. "
                "Hint: e.g. sync_pattern: 'staff-*.csv'"
            )
        fmt = settings["sync_format"] or Path(pattern).suffix.lstrip(".").lower()
        if fmt not in SYNC_FORMATS:
            raise self._config(
                f"sync_format must be one of {', '.join(SYNC_FORMATS)}, got {fmt!r}. Hint: "
                "set sync_format, or end sync_pattern with .csv or .xml"
            )
        self.sync_format = fmt
        self.mapping: XsltMapping | None = None
        self.renames: dict[str | None, str | None] = {}
        if fmt == "csv":
            self._start_csv()
        else:
            self._start_xml()

    def _config(self, text: str) -> ConfigError:
        return ConfigError([f"endpoint '{self.endpoint}': {text}"])

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

    def read(self, entity: str, since: str | None) -> SyncBatch:
        """The newest file as a full snapshot, or nothing new when ``since`` is its cursor."""
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
