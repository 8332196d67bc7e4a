"""The axis's agency list as ``agency`` records, for a sync into the email directory.

Each record is keyed by the agency code, with the fields of the directory's
agency map: ``code``, ``name``, ``mailbox`` and ``parent`` (the parent agency's
code; the axis names it by its internal id). Empty values are ``None``, as the
directory reads absent attributes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from lienthong.adapter import Record

from .client import Agency

# The adapter's logger, as before this module was split from it: log filters keep matching.
log = logging.getLogger(f"{__package__}.adapter")


def records(endpoint: str, agencies: Sequence[Agency]) -> list[Record]:
    """One record per agency; a parent not on the list is logged and left out."""
    code_of = {a.id: a.code for a in agencies if a.id}
    codes = {a.code for a in agencies}
    found = []
    for agency in agencies:
        parent = code_of.get(agency.pid) or (agency.pid if agency.pid in codes else None)
        if agency.pid and parent is None:
            log.warning(
                "endpoint '%s': agency %s names parent %r, which is not on the axis list",
                endpoint,
                agency.code,
                agency.pid,
            )
        found.append(
            Record(
                key=agency.code,
                fields={
                    "code": agency.code,
                    "name": agency.name or None,
                    "mailbox": agency.mail or None,
                    "parent": parent,
                },
            )
        )
    return found
