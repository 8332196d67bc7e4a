"""Writing a sync's changes into the directory: create, update or disable one entry.

A change is made idempotent here: a create that finds its entry (a redelivery
after a crash) updates it instead, an update changes only the attributes that
differ, and disabling an entry already gone does nothing. A failure of this one
entry is ``RejectedError``; a lost server is transient, a bind that may not
write is fatal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ldap
import ldap.dn

from lienthong.adapter import Change
from lienthong.errors import FatalError, RejectedError, TransientError
from lienthong.sync import DISABLED

from .attrmap import EntityMap
from .connection import TRANSIENT_LDAP, Connection, describe


class Writer:
    """Applies a sync's changes to one endpoint's directory, entry by entry."""

    def __init__(
        self,
        endpoint: str,
        settings: Mapping[str, Any],
        connection: Connection,
        containers: Mapping[str, str],
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.connection = connection
        self.containers = containers

    @property
    def _where(self) -> str:
        return f"endpoint '{self.endpoint}': directory {self.settings['url']}"

    def apply(self, entity: str, emap: EntityMap, change: Change) -> None:
        """Create, update or disable one entry; a failure of this entry alone is RejectedError."""
        what = f"{entity} {emap.key}={change.key!r}"
        try:
            if change.action == "create":
                self._create(emap, change)
            elif change.action == "update":
                self._update(emap, change, what)
            elif change.action == "disable":
                self._disable(emap, change, what)
            else:
                raise RejectedError(
                    f"{self._where}: {what}: unknown action {change.action!r}. "
                    "Hint: create, update or disable"
                )
        except TRANSIENT_LDAP as exc:
            self.connection.drop()
            raise TransientError(f"{self._where}: {what}: {describe(exc)}") from exc
        except ldap.INSUFFICIENT_ACCESS as exc:
            raise FatalError(
                f"{self._where}: bind_dn {self.settings['bind_dn']!r} may not write "
                f"{what}: {describe(exc)}. Hint: grant it write access"
            ) from exc
        except ldap.LDAPError as exc:
            raise RejectedError(
                f"{self._where}: {what} ({change.action}) refused: {describe(exc)}"
            ) from exc

    def _create(self, emap: EntityMap, change: Change) -> None:
        if not change.key.strip():
            raise RejectedError(f"{self._where}: {emap.entity} with an empty {emap.key}")
        fields = dict(change.fields)
        if emap.active:
            fields.setdefault(DISABLED, False)
        attrs = {name: values for name, values in emap.to_attributes(fields).items() if values}
        attrs[emap.key] = [change.key.encode("utf-8")]
        attrs["objectClass"] = [oc.encode("utf-8") for oc in emap.object_classes]
        dn = f"{emap.key}={ldap.dn.escape_dn_chars(change.key)},{self.containers[emap.entity]}"
        try:
            self.connection.get().add_s(dn, list(attrs.items()))
        except ldap.ALREADY_EXISTS:
            # A redelivered create after a crash: make the entry match instead.
            self._update(emap, Change("update", change.key, fields), f"{emap.entity} {dn}")

    def _one(self, emap: EntityMap, key: str, what: str) -> tuple[str, dict] | None:
        found = self.connection.find(self.containers[emap.entity], emap, emap.key, key)
        if len(found) > 1:
            raise RejectedError(
                f"{self._where}: {what} matches {len(found)} entries "
                f"({', '.join(dn for dn, _ in found)}). Hint: keys must be unique"
            )
        return found[0] if found else None

    def _update(self, emap: EntityMap, change: Change, what: str) -> None:
        found = self._one(emap, change.key, what)
        if found is None:
            raise RejectedError(
                f"{self._where}: {what} is not in the directory under "
                f"'{self.containers[emap.entity]}'. Hint: plan a create"
            )
        dn, current = found
        lowered = {name.lower(): values for name, values in current.items()}
        mods: list[tuple[int, str, list[bytes] | None]] = []
        for name, wanted in emap.to_attributes(change.fields).items():
            have = lowered.get(name.lower())
            if wanted is None and have:
                mods.append((ldap.MOD_DELETE, name, None))
            elif wanted is not None and have != wanted:
                mods.append((ldap.MOD_REPLACE, name, wanted))
        if mods:
            self.connection.get().modify_s(dn, mods)

    def _disable(self, emap: EntityMap, change: Change, what: str) -> None:
        found = self._one(emap, change.key, what)
        if found is None:
            return  # already gone: disabling it again is a no-op
        dn, current = found
        if self.settings["delete_on_disable"]:
            self.connection.get().delete_s(dn)
            return
        if emap.active is None:
            raise RejectedError(
                f"{self._where}: {what} cannot be disabled: {emap.entity}_map has no 'active' "
                "marker. Hint: add active: {attribute: A, value: V, disabled: D} or set "
                "delete_on_disable: true"
            )
        marker = emap.active.disabled.encode("utf-8")
        lowered = {name.lower(): values for name, values in current.items()}
        if lowered.get(emap.active.attribute.lower()) != [marker]:
            self.connection.get().modify_s(
                dn, [(ldap.MOD_REPLACE, emap.active.attribute, [marker])]
            )
