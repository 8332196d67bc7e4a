"""The contract suite every adapter passes, and the real parts it hands an adapter.

:class:`AdapterContract` runs an adapter against the real system it talks to and
checks the rules in :data:`RULES`: what it declares, that it receives each item
once and acknowledges it only after the bus stored it, that its source keys and
cursor positions survive a crash and a restart, that it sends once per key, and
that its errors tell the bus what to do next without showing a secret. Every
failure names its rule. Use it through the pytest plugin, ``lienthong.testing``.

The checks are grouped by area, one module each: ``contract_lifecycle``
(declarations, options, start and stop), ``contract_source`` (receiving),
``contract_target`` (sending) and ``contract_hostile`` (errors and secrets), on
``contract_base`` (the rules, the hooks an author writes, how the suite builds
and compares) and ``contract_parts`` (the recording inbox and cursor store).
"""

from __future__ import annotations

from .contract_base import RULES, broken
from .contract_hostile import HostileChecks
from .contract_lifecycle import LifecycleChecks
from .contract_parts import RecordingCursors, RecordingInbox, SilentServer, Timeline, closed_port
from .contract_source import SourceChecks
from .contract_target import TargetChecks

__all__ = [
    "RULES",
    "AdapterContract",
    "RecordingCursors",
    "RecordingInbox",
    "SilentServer",
    "Timeline",
    "broken",
    "closed_port",
]


# Bases are listed last area first: pytest runs inherited tests base class first,
# so the suite runs lifecycle, source, target, then hostile checks, as RULES lists them.
class AdapterContract(HostileChecks, TargetChecks, SourceChecks, LifecycleChecks):
    """The contract suite every adapter must pass. Subclass it as ``TestMyAdapterContract``.

    Set ``adapter_class`` and implement :meth:`settings`. An adapter that
    receives needs :meth:`put`, one that sends :meth:`fetch`; both translate
    between the bus's messages (XML, like :meth:`sample`) and the system's own
    format. One subclass serves an adapter that receives and sends:
    :meth:`receive_settings` and :meth:`send_settings` tell the two endpoints apart.
    The other hooks switch further checks on; a check whose hook is missing skips
    and says which hook it needs.
    """
