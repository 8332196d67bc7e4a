"""A reconciling sync (lienthong.sync) from a source into the real directory."""

from __future__ import annotations

from pathlib import Path

import ldap
import pytest

from lienthong.adapter import Adapter, Capability, Record, Services, SyncBatch
from lienthong.store import make_engine, metadata
from lienthong.sync import GuardRefused, SyncSpec, run
from tests.email_directory.directory_fixtures import Tree

pytestmark = pytest.mark.server


class ListSource(Adapter):
    """A source whose full snapshot is a list the test edits between runs."""

    name = "list-source"
    capabilities = frozenset({Capability.SYNC})

    def __init__(self, rows: list[Record]) -> None:
        super().__init__("hr", {}, Services())
        self.rows = rows

    def sync_read(self, entity: str, since: str | None) -> SyncBatch:
        return SyncBatch(records=list(self.rows), complete=True)


def person(i: int, **changes: str) -> Record:
    fields = {
        "full_name": f"Nguyễn Văn Số {i}",
        "given_name": f"Số {i}",
        "family_name": "Nguyễn",
        "mail": f"nvs{i}@tinh.gov.vn",
        "title": "Chuyên viên",
        "agency": "sotc",
        **changes,
    }
    return Record(f"nvs{i}", fields)


def test_reconcile_people_into_the_directory(tree: Tree, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bus.db'}")
    metadata.create_all(engine)
    target = tree.adapter()
    source = ListSource([person(i) for i in range(1, 21)])
    spec = SyncSpec("people", "hr", "directory", "account")

    first = run(spec, source, target, engine)
    assert first.outcome == "ok" and first.counts["create"] == 20 and first.counts["applied"] == 20
    entry = tree.conn.search_s(f"uid=nvs7,{tree.accounts_dn}", ldap.SCOPE_BASE)[0][1]
    assert entry["cn"] == ["Nguyễn Văn Số 7".encode()] and entry["employeeType"] == [b"active"]

    again = run(spec, source, target, engine)
    assert again.counts == {
        "create": 0,
        "update": 0,
        "disable": 0,
        "unchanged": 20,
        "rejected": 0,
        "applied": 0,
        "failed": 0,
    }

    source.rows = [person(1, title="Trưởng phòng"), *[person(i) for i in range(3, 22)]]
    changed = run(spec, source, target, engine)
    counts = changed.counts
    assert (counts["update"], counts["create"], counts["disable"]) == (1, 1, 1)
    assert {(i.key, i.action) for i in changed.items} == {
        ("nvs1", "update"),
        ("nvs21", "create"),
        ("nvs2", "disable"),
    }
    accounts = {r.key: r.fields for r in target.sync_read("account", None).records}
    assert accounts["nvs1"]["title"] == "Trưởng phòng" and accounts["nvs2"]["disabled"] is True
    assert run(spec, source, target, engine).counts["disable"] == 0  # not disabled twice

    # The departed person comes back: re-enabled, nothing else touched.
    source.rows = [person(1, title="Trưởng phòng"), person(2)]
    source.rows += [person(i) for i in range(3, 22)]
    back = run(spec, source, target, engine)
    assert [(i.key, i.action, dict(i.fields)) for i in back.items] == [
        ("nvs2", "update", {"disabled": False})
    ]

    source.rows = source.rows[:10]
    with pytest.raises(GuardRefused, match="would disable 11 of 21"):
        run(spec, source, target, engine)
    assert sum(not r.fields["disabled"] for r in target.sync_read("account", None).records) == 21

    source.rows = [person(i, title="Kế toán") if i == 6 else person(i) for i in range(1, 22)]
    source.rows.append(person(5, title="Bản sao"))
    dup = run(spec, source, target, engine)
    assert dup.outcome == "failed"
    assert [(i.key, i.status) for i in dup.items if i.status != "applied"] == [("nvs5", "rejected")]
    accounts = {r.key: r.fields for r in target.sync_read("account", None).records}
    assert accounts["nvs5"]["title"] == "Chuyên viên"  # neither duplicate row was applied
    assert accounts["nvs6"]["title"] == "Kế toán"  # the rest was
    assert accounts["nvs1"]["title"] == "Chuyên viên"
