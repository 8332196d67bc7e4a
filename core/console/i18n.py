"""The console's languages and dates: Vietnamese first, English on request; dd/mm/yyyy, Hanoi time.

Texts are written in English in the templates and code (the gettext message
ids); ``translations/vi/LC_MESSAGES/messages.po`` holds the Vietnamese. The
catalogue is compiled in memory when the console starts (Babel), so no binary
``.mo`` file is kept in the repository or needs a build step; a fuzzy or missing
entry shows the English text.
"""

from __future__ import annotations

import gettext
import io
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue for ``language`` (English is the message ids themselves)."""
    if language == "en":
        return gettext.NullTranslations()
    source = resources.files(__package__) / "translations" / language / "LC_MESSAGES"
    with (source / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def local_time(value: datetime | None) -> datetime | None:
    """A stored time (naive means UTC) in Asia/Ho_Chi_Minh."""
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(TIMEZONE)


def when(value: datetime | date | None, seconds: bool = True) -> str:
    """dd/mm/yyyy HH:MM[:SS] in Asia/Ho_Chi_Minh, as Vietnamese offices write dates."""
    if value is None:
        return "–"
    if not isinstance(value, datetime):
        return value.strftime("%d/%m/%Y")
    shown = local_time(value)
    assert shown is not None
    return shown.strftime("%d/%m/%Y %H:%M:%S" if seconds else "%d/%m/%Y %H:%M")


def number(value: int | float, language: str) -> str:
    """1.234.567 in Vietnamese, 1,234,567 in English."""
    return format_decimal(value, locale=language)


def duration(seconds: float | None) -> str:
    """A lag as a person reads it: 0.4 s, 12 s, 5 min, 3 h (the same in both languages)."""
    if seconds is None:
        return "–"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
