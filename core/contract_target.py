"""The contract suite's target checks: one effect per delivery key, bad bodies rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

from .contract_base import ContractBase, broken, describe, shorten
from .errors import RejectedError
from .message import Message


class TargetChecks(ContractBase):
    """Sending: rules sends-once, rejected-input."""

    def _message(self, index: int) -> Message:
        return Message(body=self.send_sample(index), kind=self.sample_kind)

    def test_sends_a_message_once(self, tmp_path: Path) -> None:
        adapter = self._sender(tmp_path)
        with self._running(adapter):
            first = self._message(0)
            adapter.send(first, key="contract-key-1")
            adapter.send(first, key="contract-key-1")  # a redelivery: no second effect
            got = list(self.fetch(adapter))
            if len(got) != 1:
                broken(
                    "sends-once",
                    f"after two send() calls with one key the system shows {len(got)} "
                    "effects. The bus sends again with the same key when it cannot know "
                    "whether a send took effect. Hint: give the key to the system as its "
                    "idempotency key (a unique column, the file name, an external reference)",
                )
            self._same_bodies("sends-once", got, [first.body], "what was sent")
            second = self._message(1)
            adapter.send(second, key="contract-key-2")
            self._same_bodies(
                "sends-once",
                list(self.fetch(adapter)),
                [first.body, second.body],
                "two messages sent with two keys are two effects",
            )

    def test_rejects_a_body_the_system_cannot_take(self, tmp_path: Path) -> None:
        bad = list(self.bad_bodies())
        if not bad:
            pytest.skip("bad_bodies() names no body the system refuses")
        adapter = self._sender(tmp_path)
        with self._running(adapter):
            for index, body in enumerate(bad):
                try:
                    adapter.send(Message(body=body, kind=self.sample_kind), key=f"bad-{index}")
                except RejectedError as exc:
                    self._no_secrets("send() of a bad body", exc, self._secrets(tmp_path))
                    continue
                except Exception as exc:
                    broken(
                        "rejected-input",
                        f"send() raised {describe(exc)} for bad_bodies()[{index}], which the "
                        "system can never take. Hint: raise RejectedError naming the problem: "
                        "the bus dead-letters it at once instead of retrying it for hours",
                    )
                broken(
                    "rejected-input",
                    f"send() returned normally for bad_bodies()[{index}] {shorten(body)}",
                )
