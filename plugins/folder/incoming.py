"""An inbound file as a message: its bytes, or, for a file the bus must not read, its reason.

A file with a name that is not UTF-8 or too long, a link, a pipe or a file over
the size limit still becomes a message, marked invalid and without a body: the
bus parks it with the reason (a dead letter to see and count), and the folder
adapter keeps the file itself in the error folder.
"""

from __future__ import annotations

import hashlib
import os

from lienthong.adapter import INVALID_HEADER
from lienthong.message import Message

from .files import NAME_MAX, Directory, bounded

#: Longest inbound file name, in bytes: it is copied into other names (the output
#: template, ``NAME.reason.txt``) that must still fit the file system's 255.
MAX_NAME_BYTES = 200


def file_message(
    folder: Directory, name: str, *, endpoint: str, kind: str, max_bytes: int
) -> Message:
    """The message for one file; a file the bus must not read is handed over marked invalid.

    Raises ``FileNotFoundError`` when the file is gone (another worker took it).
    """
    shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    problem = name_problem(name, shown)
    if problem is None:
        read = folder.read(name, max_bytes)
        if read.data is not None:
            digest = hashlib.sha256(read.data).hexdigest()[:32]
            return Message(
                body=read.data,
                kind=kind,
                source=endpoint,
                headers={"filename": name},
                source_key=f"{name}:{digest}",
            )
        problem, info = read.problem, read.info
    else:
        found = folder.lstat(name)
        if found is None:
            raise FileNotFoundError(name)
        info = found
    return Message(
        body=b"",
        kind=kind,
        source=endpoint,
        headers={"filename": shown, INVALID_HEADER: problem or "not read"},
        source_key=f"{bounded(shown, 48)}:{info.st_size}:{info.st_mtime_ns}",
    )


def name_problem(name: str, shown: str) -> str | None:
    """Why a file's name keeps it from being read (``shown`` is its UTF-8 rendering), or None."""
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
