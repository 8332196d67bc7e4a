"""Files in a shared folder, handled so that others who write the folder cannot redirect the bus.

A drop folder is written by other systems and often by people. Anyone who can
write it can also replace a file or a side folder (``.processed``, ``.error``)
with a symbolic link, a named pipe or a hard link at any moment, including
between two calls of the bus. So a :class:`Directory` is opened once and every
operation goes through its descriptor (``openat``, ``renameat``): a side folder
swapped for a link later changes nothing, because the bus never looks it up by
name again. A file is opened with ``O_NOFOLLOW|O_NONBLOCK`` and checked on the
open descriptor (``fstat``: a plain file, one link, within the size limit)
before a capped read, so a file swapped for a link after it was listed is never
read through the link, and a FIFO never blocks the bus.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import os
import stat
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from lienthong.errors import ConfigError

#: Most file systems allow 255 bytes in one name.
NAME_MAX = 255
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Read:
    """What reading one file gave: its bytes, or why it was not read (``problem``)."""

    name: str
    info: os.stat_result
    data: bytes | None = None
    problem: str | None = None


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a plain file"


def _not_plain(name: str, mode: int) -> str:
    what = kind_of(mode)
    if stat.S_ISLNK(mode):
        return (
            f"'{name}' is a symbolic link; the folder reads only plain files, so a link "
            "cannot feed it files from elsewhere. Hint: copy the file in instead"
        )
    return (
        f"'{name}' is {what}, not a plain file; it was not read. Hint: drop plain files "
        "only (write to a temporary name, then rename)"
    )


def bounded(name: str, room: int = 0) -> str:
    """``name``, cut (and marked with a hash of the whole) so that ``room`` more bytes still fit."""
    raw = os.fsencode(name)
    if len(raw) + room <= NAME_MAX:
        return name
    mark = "~" + hashlib.sha256(raw).hexdigest()[:12]
    keep = max(0, NAME_MAX - room - len(mark))
    while keep and (raw[keep] & 0xC0) == 0x80:  # not inside a UTF-8 character
        keep -= 1
    return os.fsdecode(raw[:keep]) + mark


class Directory:
    """A folder opened once; names inside it are looked up relative to its descriptor."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)

    @classmethod
    def open(cls, path: Path, *, what: str) -> Directory:
        """Create (if needed) and open a folder the config names; its own path is trusted."""
        try:
            path.mkdir(parents=True, exist_ok=True)
            return cls(path, os.open(path, _DIRECTORY_FLAGS))
        except OSError as exc:
            raise ConfigError(
                [
                    f"{what}: folder '{path}' cannot be created or opened: {exc.strerror}. "
                    "Hint: check the path and its permissions"
                ]
            ) from exc

    def subfolder(self, name: str, *, what: str) -> Directory:
        """Create (if needed) and open ``name`` inside this folder, never through a link."""
        try:
            os.mkdir(name, dir_fd=self.fd)
        except FileExistsError:
            pass  # a folder from an earlier start, or something else: the open below tells
        except OSError as exc:
            raise ConfigError(
                [
                    f"{what}: folder '{self.path / name}' cannot be created: {exc.strerror}. "
                    "Hint: check the permissions of the folder it is in"
                ]
            ) from exc
        try:
            fd = os.open(name, _DIRECTORY_FLAGS | os.O_NOFOLLOW, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
                raise ConfigError(
                    [
                        f"{what}: '{self.path / name}' is {kind_of(info.st_mode)}, not a "
                        "folder; the bus will not follow it out of the shared folder. Hint: "
                        "remove it (whoever can write the folder made it) and start again, "
                        "or set the folder outside the shared one"
                    ]
                ) from exc
            raise ConfigError(
                [
                    f"{what}: folder '{self.path / name}' cannot be opened: {exc.strerror}. "
                    "Hint: check its permissions"
                ]
            ) from exc
        return Directory(self.path / name, fd)

    def close(self) -> None:
        self._finalizer()

    def name_max(self) -> int:
        try:
            return min(NAME_MAX, os.fpathconf(self.fd, "PC_NAME_MAX"))
        except (OSError, ValueError):
            return NAME_MAX

    # --- looking ---

    def lstat(self, name: str) -> os.stat_result | None:
        """The entry itself (a link is not followed); None when there is none."""
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def matching(
        self, pattern: str, *, settle: float = 0.0, limit: int | None = None
    ) -> list[tuple[str, os.stat_result]]:
        """Up to ``limit`` entries matching ``pattern``, by name: not hidden, not folders, and
        (with ``settle``) unchanged for that many seconds. Links and pipes are listed too, so
        the caller can refuse them by name."""
        with os.scandir(self.fd) as entries:
            names = sorted(
                entry.name
                for entry in entries
                if not entry.name.startswith(".")
                and fnmatch.fnmatchcase(entry.name, pattern)
                and not entry.is_dir(follow_symlinks=False)
            )
        now = time.time()
        found = []
        for name in names:
            info = self.lstat(name)
            if info is None or stat.S_ISDIR(info.st_mode):
                continue  # gone since the listing, or replaced by a folder
            if settle and now - info.st_mtime < settle:
                continue
            found.append((name, info))
            if limit is not None and len(found) >= limit:
                break
        return found

    # --- reading ---

    def read(self, name: str, max_bytes: int) -> Read:
        """Read a plain file of at most ``max_bytes``; anything else comes back with a problem.

        Raises ``FileNotFoundError`` when the file is gone (another worker took it).
        """
        info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            return Read(name, info, problem=_not_plain(name, info.st_mode))
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENXIO):
                raise
            # Swapped for a link (ELOOP) or a socket (ENXIO) since the look above.
            info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            return Read(name, info, problem=_not_plain(name, info.st_mode))
        try:
            info = os.fstat(fd)  # the file actually opened, whatever the name points at now
            if not stat.S_ISREG(info.st_mode):
                return Read(name, info, problem=_not_plain(name, info.st_mode))
            if info.st_nlink > 1:
                return Read(
                    name,
                    info,
                    problem=(
                        f"'{name}' has {info.st_nlink} hard links; the folder reads only files "
                        "with one name, so a link cannot feed it files from elsewhere. "
                        "Hint: copy the file in instead"
                    ),
                )
            if info.st_size > max_bytes:
                return Read(name, info, problem=_too_big(name, info.st_size, max_bytes))
            chunks, size = [], 0
            while size <= max_bytes:
                chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size > max_bytes:  # it grew while being read
                return Read(name, info, problem=_too_big(name, size, max_bytes, growing=True))
            return Read(name, info, data=b"".join(chunks))
        finally:
            os.close(fd)

    # --- writing ---

    def write(self, name: str, data: bytes, *, temporary: str, fsync: bool) -> None:
        """Write ``name`` atomically: a new temporary file (never an old one), then a rename."""
        try:
            fd = os.open(temporary, _NEW_FILE_FLAGS, 0o666, dir_fd=self.fd)
        except FileExistsError:
            # Left by an interrupted attempt, or planted (a link, a pipe): removed, not followed.
            os.unlink(temporary, dir_fd=self.fd)
            fd = os.open(temporary, _NEW_FILE_FLAGS, 0o666, dir_fd=self.fd)
        try:
            with os.fdopen(fd, "wb", closefd=False) as handle:
                handle.write(data)
                handle.flush()
            if fsync:
                os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self.fd)
            raise
        finally:
            os.close(fd)
        try:
            os.rename(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self.fd)
            raise

    def move(self, name: str, to: Directory) -> str | None:
        """Move ``name`` into ``to`` under a free name; returns it, or None if the file is gone."""
        target = bounded(name)
        if to.lstat(target) is not None:
            stem, dot, suffix = target.rpartition(".")
            stem, suffix = (stem, f".{suffix}") if dot and stem else (target, "")
            mark = f".{int(time.time() * 1000)}"
            target = bounded(stem, len(mark) + len(os.fsencode(suffix))) + mark + suffix
        try:
            os.rename(name, target, src_dir_fd=self.fd, dst_dir_fd=to.fd)
        except FileNotFoundError:
            return None  # another worker moved it after the store had it: nothing is lost
        return target


def _too_big(name: str, size: int, limit: int, *, growing: bool = False) -> str:
    what = "grew past" if growing else f"is {size:,} bytes, over"
    return (
        f"'{name}' {what} the limit of {limit:,} bytes; it was not read. Hint: raise "
        "bus.max_message_bytes if such files are expected, then drop it again"
    )
