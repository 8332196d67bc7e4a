"""Directory lookups for mappings: ``lt:agency-mailbox(code)`` and ``lt:account-mail(uid)``.

XPath functions are registered once, before any endpoint exists, so they find
their directory through this small registry: each started
:class:`~lienthong.plugins.email_directory.adapter.DirectoryAdapter` adds itself
(``start``) and removes itself (``stop``). With one directory endpoint the
functions use it; with several, the mapping names one as a second argument:
``lt:agency-mailbox($code, 'directory-hn')``. A lookup that finds nothing
returns an empty string, so a mapping can test for it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from lienthong.errors import FatalError

if TYPE_CHECKING:
    from .adapter import DirectoryAdapter

_endpoints: dict[str, DirectoryAdapter] = {}
_lock = threading.Lock()


def register(adapter: DirectoryAdapter) -> None:
    """Make a started directory endpoint available to the lookup functions."""
    with _lock:
        _endpoints[adapter.endpoint] = adapter


def unregister(adapter: DirectoryAdapter) -> None:
    with _lock:
        if _endpoints.get(adapter.endpoint) is adapter:
            del _endpoints[adapter.endpoint]


def directory(endpoint: str | None = None) -> DirectoryAdapter:
    """The started directory endpoint called ``endpoint``, or the only one."""
    with _lock:
        started = dict(_endpoints)
    if endpoint:
        if endpoint in started:
            return started[endpoint]
        raise FatalError(
            f"directory lookup: no started email_directory endpoint '{endpoint}' "
            f"(started: {', '.join(sorted(started)) or 'none'}). "
            "Hint: check the endpoint name in the mapping"
        )
    if len(started) == 1:
        return next(iter(started.values()))
    if not started:
        raise FatalError(
            "directory lookup: no email_directory endpoint is started. "
            "Hint: configure an endpoint with adapter 'email_directory'"
        )
    raise FatalError(
        f"directory lookup: {len(started)} directory endpoints are started "
        f"({', '.join(sorted(started))}). Hint: name one, e.g. lt:agency-mailbox($code, 'name')"
    )


def _text(value: Any) -> str:
    """An XPath argument (string, number or node list) as a string."""
    if isinstance(value, list):
        if not value:
            return ""
        value = value[0]
        if hasattr(value, "xpath"):
            return str(value.xpath("string()"))
    return str(value)


def agency_mailbox(_context: Any, code: Any, endpoint: Any = None) -> str:
    """XPath ``lt:agency-mailbox(code[, endpoint])``: the agency's mailbox, or ''."""
    found = directory(_text(endpoint) if endpoint is not None else None).agency_mailbox(_text(code))
    return found or ""


def account_mail(_context: Any, uid: Any, endpoint: Any = None) -> str:
    """XPath ``lt:account-mail(uid[, endpoint])``: the active account's mail, or ''."""
    found = directory(_text(endpoint) if endpoint is not None else None).account_mail(_text(uid))
    return found or ""


FUNCTIONS = {"agency-mailbox": agency_mailbox, "account-mail": account_mail}
