"""The attribute map: which LDAP attributes and object classes hold an entity's fields.

A map comes from config, so a directory with another schema needs no code::

    account:
      objectclass: [inetOrgPerson]    # filter on all, written on create
      key: uid                        # the RDN attribute and the sync key
      full_name: [cn, displayName]    # a list: read from the first, write to all
      family_name: sn
      active: {attribute: employeeType, value: active, disabled: disabled}

Every other key is a field name mapped to an attribute (or a list of them).
With an ``active`` marker, records carry the sync's reserved field
``disabled`` (true when the marker holds the disabled value).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lienthong.errors import ConfigError, ConfigProblem
from lienthong.sync import DISABLED

_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_RESERVED = ("objectclass", "key", "active")

DEFAULT_MAPS: dict[str, dict[str, Any]] = {
    "agency": {
        # organizationalUnit allows no mail attribute; extensibleObject lets the
        # sandbox keep the agency mailbox on the same entry.
        "objectclass": ["organizationalUnit", "extensibleObject"],
        "key": "ou",
        "code": "businessCategory",
        "name": "description",
        "mailbox": "mail",
    },
    "account": {
        "objectclass": ["inetOrgPerson"],
        "key": "uid",
        "full_name": "cn",
        "given_name": "givenName",
        "family_name": "sn",
        "mail": "mail",
        "title": "title",
        "agency": "departmentNumber",
        "active": {"attribute": "employeeType", "value": "active", "disabled": "disabled"},
    },
}


def config_error(texts: list[str]) -> ConfigError:
    """A ConfigError from ``"location: message"`` texts, each problem at its location."""
    problems = []
    for text in texts:
        location, sep, message = text.partition(": ")
        problems.append(ConfigProblem(location, message) if sep else ConfigProblem("config", text))
    return ConfigError(problems)


@dataclass(frozen=True)
class ActiveMarker:
    """The attribute and values that tell an enabled entry from a disabled one."""

    attribute: str
    value: str
    disabled: str


@dataclass(frozen=True)
class EntityMap:
    """How one entity (agency, account) is laid out in the directory."""

    entity: str
    object_classes: tuple[str, ...]
    key: str
    fields: Mapping[str, tuple[str, ...]]
    active: ActiveMarker | None

    @property
    def attributes(self) -> list[str]:
        """Every attribute a read needs, with ``modifyTimestamp`` for the cursor."""
        names = [self.key, "modifyTimestamp"]
        for attrs in self.fields.values():
            names += attrs
        if self.active:
            names.append(self.active.attribute)
        return list(dict.fromkeys(names))

    @classmethod
    def parse(
        cls, entity: str, raw: Mapping[str, Any], where: str
    ) -> tuple[EntityMap | None, list[str]]:
        """Build a map from config, or return every problem found with its location."""
        problems: list[str] = []

        def names(value: Any, field: str) -> tuple[str, ...]:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not items:
                problems.append(
                    f"{where}.{field}: expected an attribute name or a list of them, got {value!r}"
                )
                return ()
            bad = [n for n in items if not (isinstance(n, str) and _ATTRIBUTE.match(n))]
            if bad:
                problems.append(
                    f"{where}.{field}: {bad[0]!r} is not an LDAP attribute name. "
                    "Hint: letters, digits and '-', starting with a letter"
                )
            return tuple(str(n) for n in items)

        if not isinstance(raw, Mapping):
            return None, [f"{where}: expected a mapping of field -> attribute, got {raw!r}"]
        for required in ("objectclass", "key"):
            if required not in raw:
                problems.append(f"{where}.{required}: required. Hint: see docs/directory.md")
        object_classes = names(raw.get("objectclass", ["top"]), "objectclass")
        key = names(raw.get("key", "cn"), "key")
        if len(key) > 1:
            problems.append(f"{where}.key: one attribute only, got {list(key)}")
        if DISABLED in raw:
            problems.append(
                f"{where}.{DISABLED}: reserved for the sync's disabled flag. "
                "Hint: map it with active: {attribute: A, value: V, disabled: D}"
            )
        fields = {f: names(v, f) for f, v in raw.items() if f not in (*_RESERVED, DISABLED)}
        active = None
        if raw.get("active") is not None:
            spec = raw["active"]
            if (
                not isinstance(spec, Mapping)
                or set(spec) != {"attribute", "value", "disabled"}
                or not all(isinstance(v, str) and v for v in spec.values())
            ):
                problems.append(
                    f"{where}.active: expected "
                    f"{{attribute: A, value: V, disabled: D}}, got {spec!r}"
                )
            else:
                names(spec["attribute"], "active.attribute")
                active = ActiveMarker(spec["attribute"], spec["value"], spec["disabled"])
        if problems:
            return None, problems
        return cls(entity, object_classes, key[0], fields, active), []

    def filter_clauses(self) -> str:
        return "".join(f"(objectClass={oc})" for oc in self.object_classes)

    def to_fields(self, attrs: Mapping[str, list[bytes]]) -> dict[str, Any]:
        """An entry's attributes as sync fields: first value of the first attribute, or None."""
        return self.reader()(attrs)[1]

    def reader(self) -> Callable[[Mapping[str, list[bytes]]], tuple[bytes | None, dict[str, Any]]]:
        """A fast per-search decoder: entry attributes -> (raw key value, fields).

        Attribute names are case-insensitive but a server spells each one the same
        way every time, so the spelling is learned once per new name instead of
        lowercasing every entry (this is the hot loop of a 44,000-entry read).
        """
        spelling: dict[str, str] = {}
        known: set[str] = set()
        wanted = [(field, names[0].lower()) for field, names in self.fields.items()]
        key = self.key.lower()
        marker = (
            (self.active.attribute.lower(), self.active.disabled.encode("utf-8"))
            if self.active
            else None
        )

        def read(attrs: Mapping[str, list[bytes]]) -> tuple[bytes | None, dict[str, Any]]:
            if not known.issuperset(attrs):
                for name in attrs:
                    spelling[name.lower()] = name
                    known.add(name)
            get = attrs.get
            fields: dict[str, Any] = {}
            for field, name in wanted:
                values = get(spelling.get(name, name))
                fields[field] = values[0].decode("utf-8") if values else None
            if marker is not None:
                fields[DISABLED] = marker[1] in (get(spelling.get(marker[0], marker[0])) or ())
            keys = get(spelling.get(key, key))
            return (keys[0] if keys else None), fields

        return read

    def value(self, attrs: Mapping[str, list[bytes]], attribute: str) -> list[bytes] | None:
        """The values of ``attribute`` in an entry, matching the name case-insensitively."""
        lowered = attribute.lower()
        return next((v for n, v in attrs.items() if n.lower() == lowered), None)

    def to_attributes(self, fields: Mapping[str, Any]) -> dict[str, list[bytes] | None]:
        """Sync fields as attribute values to write; None means remove the attribute."""
        attrs: dict[str, list[bytes] | None] = {}
        for field, value in fields.items():
            if field == DISABLED and self.active:
                marker = self.active.disabled if value else self.active.value
                attrs[self.active.attribute] = [marker.encode("utf-8")]
                continue
            for name in self.fields.get(field, ()):
                attrs[name] = None if value in (None, "") else [str(value).encode("utf-8")]
        return attrs
