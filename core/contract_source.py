"""The contract suite's source checks: receiving each item once, acknowledged only after
the bus stored it, with source keys and a cursor that survive a crash and a restart."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from .adapter import Adapter
from .contract_base import ContractBase, broken, describe
from .contract_parts import RecordingInbox
from .message import Message

_KIND_OPTIONS = ("kind", "message_kind")
_CONTRACT_KIND = "contract.kind"
_POLLS = 12


class SourceChecks(ContractBase):
    """Receiving: rules receives-once, source, source-key, kind, ack-after-accept,
    stable-source-key, cursor-in-store, bounded-batch, malformed-item."""

    def _receive(self, adapter: Adapter, inbox: RecordingInbox) -> int:
        """One poll, with the order of its accepts and cursor moves checked."""
        self.timeline.add("receive")
        try:
            return adapter.receive(inbox)
        finally:
            self._check_cursor_order()

    def _check_cursor_order(self) -> None:
        events = self.timeline.since("receive")
        accepted = pending = failed = False
        for i, event in enumerate(events):
            if event[0] == "accept":
                pending = True
            elif event[0] == "accepted":
                pending, accepted = False, True
            elif event[0] == "accept failed":
                failed = True
            elif event[0] == "cursor":
                later = any(e[0] == "accept" for e in events[i + 1 :])
                if pending or failed or (later and not accepted):
                    when = "after inbox.accept raised" if failed else "before inbox.accept returned"
                    broken(
                        "ack-after-accept",
                        f"receive() stored cursor {event[1]!r} = {event[2]!r} {when}. A crash "
                        "there loses the items: the store never had them and the cursor is "
                        "already past them. Hint: call services.cursors.set only after "
                        "inbox.accept returned",
                    )

    def _drain(self, adapter: Adapter, inbox: RecordingInbox, rule: str) -> list[Message]:
        """Poll until a poll hands over nothing; what was handed over, in order."""
        start = len(inbox.handed)
        for _ in range(_POLLS):
            before = len(inbox.handed)
            count = self._receive(adapter, inbox)
            handed = len(inbox.handed) - before
            if count != handed:
                broken(
                    "receives-once",
                    f"receive() returned {count} but handed {handed} message(s) to "
                    "inbox.accept. Hint: return how many messages were handed over",
                )
            if count == 0:
                return inbox.handed[start:]
        broken(
            rule,
            f"receive() still handed over messages after {_POLLS} polls; the items put were "
            f"{len(inbox.handed) - start} handed over so far. An item must come once: "
            "acknowledge it at the source, or move the cursor past it, once inbox.accept "
            "returned. Otherwise 'lienthong run --once' never ends",
        )

    def _kind_override(self) -> dict[str, Any]:
        name = self.kind_option or next(
            (o.name for o in self.adapter_class.options if o.name in _KIND_OPTIONS), None
        )
        return {name: _CONTRACT_KIND} if name else {}

    def _check_received(self, adapter: Adapter, messages: Sequence[Message], kind: bool) -> None:
        keys = [m.source_key for m in messages]
        for message in messages:
            if message.source != adapter.endpoint:
                broken(
                    "source",
                    f"a received message has source {message.source!r}, not the endpoint's "
                    f"name {adapter.endpoint!r}. Hint: Message(source=self.endpoint, ...)",
                )
            if not message.source_key:
                broken(
                    "source-key",
                    "a received message has no source_key, so the store cannot recognise it "
                    "when the source offers it again after a crash, and it is delivered twice. "
                    "Hint: set source_key to what identifies the item in its source (its id, "
                    "or name and a digest of its content)",
                )
            if kind and message.kind != _CONTRACT_KIND:
                broken(
                    "kind",
                    f"a received message has kind {message.kind!r}, not the configured "
                    f"{_CONTRACT_KIND!r}: routes match on kind. Hint: "
                    "Message(kind=self.settings[...], ...)",
                )
            if not message.kind:
                broken("kind", "a received message has no kind: routes match on kind")
        if len(set(keys)) != len(keys):
            broken(
                "source-key",
                f"two messages of one receive() share a source key ({keys}): the store would "
                "keep only one of them. Hint: make the key unique per item",
            )

    def test_receives_a_message_once(self, tmp_path: Path) -> None:
        override = self._kind_override()
        adapter = self._receiver(tmp_path, **override)
        with self._running(adapter):
            self.put(adapter, self.sample(0))
            inbox = self.inbox()
            handed = self._drain(adapter, inbox, "receives-once")
            self._same_bodies(
                "receives-once", [m.body for m in handed], [self.sample(0)], "the item put"
            )
            self._check_received(adapter, handed, kind=bool(override))

    def test_acks_only_after_the_inbox_accepted(self, tmp_path: Path) -> None:
        adapter = self._receiver(tmp_path)
        bodies = [self.sample(0), self.sample(1)]
        with self._running(adapter):
            for body in bodies:
                self.put(adapter, body)
            failing = self.inbox(fail=1)
            try:
                self._receive(adapter, failing)
            except Exception:
                pass  # as it should: the bus must know that nothing was stored
            else:
                broken(
                    "ack-after-accept",
                    "receive() returned normally although inbox.accept raised "
                    "StoreUnavailable. Hint: let the error propagate (the bus then knows "
                    "nothing was stored) and acknowledge nothing",
                )
            if not failing.handed:
                broken(
                    "ack-after-accept",
                    "receive() raised before it handed anything to inbox.accept, although two "
                    "items were put",
                )
            handed = self._drain(adapter, self.inbox(), "ack-after-accept")
            self._same_bodies(
                "ack-after-accept",
                [m.body for m in handed],
                bodies,
                "after an inbox.accept that failed, the next polls must hand over the same "
                "items again, once each (nothing lost, nothing twice)",
            )

    def test_source_keys_are_stable_across_a_re_read(self, tmp_path: Path) -> None:
        adapter = self._receiver(tmp_path)
        with self._running(adapter):
            for index in range(2):
                self.put(adapter, self.sample(index))
            failing = self.inbox(fail=1)
            with contextlib.suppress(Exception):
                self._receive(adapter, failing)
            handed = self._drain(adapter, self.inbox(), "stable-source-key")
            self._check_received(adapter, handed, kind=False)
            first = {m.source_key for m in failing.handed}
            again = {m.source_key for m in handed}
            if not first <= again:
                broken(
                    "stable-source-key",
                    f"the items came with source keys {sorted(map(str, first))}, then with "
                    f"{sorted(map(str, again))} when read again, so the store cannot tell a "
                    "repeat. Hint: derive the key from the item (its id in the source, a "
                    "digest of its content), never from the time, a counter or a random id",
                )

    def test_cursor_survives_a_new_adapter_instance(self, tmp_path: Path) -> None:
        first = self._receiver(tmp_path)
        with self._running(first):
            self.put(first, self.sample(0))
            self._drain(first, self.inbox(), "receives-once")
        second = self._receiver(tmp_path)
        with self._running(second):
            self.put(second, self.sample(1))
            handed = self._drain(second, self.inbox(), "cursor-in-store")
        old = self.canonical(self.sample(0))
        if any(self.canonical(m.body) == old for m in handed):
            broken(
                "cursor-in-store",
                "a new adapter instance (a restart) handed over again an item the previous "
                "instance had handed over. Hint: keep the position in services.cursors (the "
                "bus's store), not in the adapter object",
            )
        self._same_bodies(
            "cursor-in-store", [m.body for m in handed], [self.sample(1)], "after a restart"
        )

    def test_reads_a_backlog_in_bounded_batches(self, tmp_path: Path) -> None:
        overrides = self.batch_settings(2)
        if overrides is None:
            broken(
                "bounded-batch",
                "the adapter declares no option that bounds one receive (batch, batch_size, "
                "page_size). Hint: declare one and read at most that many items per poll, or "
                "name it in batch_option / batch_settings()",
            )
        adapter = self._receiver(tmp_path, **overrides)
        bodies = [self.sample(i) for i in range(5)]
        with self._running(adapter):
            for body in bodies:
                self.put(adapter, body)
            inbox = self.inbox()
            sizes = []
            for _ in range(_POLLS):
                before = len(inbox.handed)
                if not self._receive(adapter, inbox):
                    break
                sizes.append(len(inbox.handed) - before)
            if max(sizes, default=0) > 2:
                broken(
                    "bounded-batch",
                    f"with {overrides} one receive() handed over {max(sizes)} messages "
                    f"(polls: {sizes}). Hint: read at most the batch per poll, so a backlog "
                    "never has to fit in memory at once",
                )
            self._same_bodies(
                "bounded-batch",
                [m.body for m in inbox.handed],
                bodies,
                "a backlog of five items, over several polls",
            )

    def test_hands_over_a_malformed_item_to_be_parked(self, tmp_path: Path) -> None:
        if not self._implements("put_malformed"):
            pytest.skip(
                "the contract has no put_malformed() to offer an item the adapter cannot read"
            )
        adapter = self._receiver(tmp_path)
        with self._running(adapter):
            self.put_malformed(adapter)
            inbox = self.inbox()
            try:
                self._receive(adapter, inbox)
            except Exception as exc:
                broken(
                    "malformed-item",
                    f"receive() raised {describe(exc)} on an item it cannot read. Every poll "
                    "would fail on it again and nothing behind it would move. Hint: hand it "
                    "over with headers[INVALID_HEADER] (lienthong.adapter) set to the problem: "
                    "the bus keeps it as a dead letter with that reason",
                )
            if not any(a.parked for a in inbox.acceptances):
                broken(
                    "malformed-item",
                    "the item the adapter cannot read was not handed over to be parked "
                    f"(handed: {len(inbox.handed)}). Hint: never drop it silently: set "
                    "headers[INVALID_HEADER] on its message",
                )
            if self._receive(adapter, inbox):
                broken(
                    "malformed-item",
                    "the parked item came again on the next poll. Hint: acknowledge it at "
                    "the source like any other item",
                )
