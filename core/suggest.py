"""Suggestions for misspelt names: one "Did you mean" and one unknown-key message.

Config sections, adapter options, job names, mapping paths and adapter names are
all checked against what is known; every check words its suggestion the same way
through these helpers, so a user meets one form everywhere:

    bus.pol_interval: unknown key. Did you mean 'poll_interval'? Known: store, broker, ...
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "did_you_mean", "unknown_key"]


def closest(
    name: object, known: Iterable[object], *, n: int = 1, cutoff: float = 0.6, within: bool = False
) -> list[str]:
    """The known names closest to ``name``, best first; ``within`` adds names containing it.

    ``within`` finds 'accounting_soap' for 'soap', which is too short a part of
    the whole for a similarity ratio to find.
    """
    names = [str(k) for k in known]
    found = difflib.get_close_matches(str(name), names, n=n, cutoff=cutoff)
    if within:
        found += [k for k in names if str(name) in k and k not in found]
    return found[:n]


def did_you_mean(
    name: object, known: Iterable[object], *, n: int = 1, cutoff: float = 0.6, within: bool = False
) -> str:
    """`` Did you mean 'x'?`` (with its leading space) for the closest names, or ``""``.

    Meant to follow a sentence: ``f"no endpoint named 'inbx'.{did_you_mean(...)}"``.
    """
    found = closest(name, known, n=n, cutoff=cutoff, within=within)
    if not found:
        return ""
    return " Did you mean " + ", ".join(f"'{f}'" for f in found) + "?"


def unknown_key(key: object, known: Iterable[object], what: str = "unknown key") -> str:
    """The message for a key that is not among ``known``: a suggestion, then every known key.

    ``what`` names the kind of key ("unknown option for adapter 'folder'").
    """
    names = [str(k) for k in known]
    return f"{what}.{did_you_mean(key, names)} Known: {', '.join(names) or 'none'}"
