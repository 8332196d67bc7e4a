"""The contract suite's lifecycle checks: what an adapter declares, its options, start and stop."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from .adapter import resolve_options
from .contract_base import ContractBase, broken, describe


class LifecycleChecks(ContractBase):
    """Declarations and configuration: rules declares-itself, options, starts-and-stops,
    stop-without-start."""

    def test_declares_itself(self) -> None:
        cls = self.adapter_class
        if not (cls.name and cls.name.isidentifier()):
            broken("declares-itself", f"name {cls.name!r} must be a short identifier")
        if not cls.summary:
            broken("declares-itself", "summary: one line saying what system it talks to")
        if not cls.capabilities:
            broken("declares-itself", "declare at least one Capability")
        if not inspect.getdoc(cls):
            broken("declares-itself", "the class needs a docstring")
        for option in cls.options:
            if not option.description:
                broken("declares-itself", f"option {option.name!r} needs a description")
            if not option.required and option.default is not None and not option.secret:
                try:
                    option.check(option.default)
                except ValueError as exc:
                    broken(
                        "declares-itself",
                        f"option {option.name!r}: its default fails its own rules: {exc}",
                    )

    def test_rejects_unknown_option_with_a_suggestion(self, tmp_path: Path) -> None:
        raw = self.settings(tmp_path)
        if not raw:
            pytest.skip("the adapter has no options")
        first = next(iter(raw))
        misspelt = {**{k: v for k, v in raw.items() if k != first}, first + "x": raw[first]}
        _, problems = resolve_options(self.adapter_class, misspelt, "endpoint")
        if not any(f"Did you mean '{first}'" in p.message for p in problems):
            broken(
                "options", f"option {first + 'x'!r} got no \"Did you mean '{first}'\": {problems}"
            )

    def test_rejects_missing_required_options(self) -> None:
        required = [o.name for o in self.adapter_class.options if o.required]
        if not required:
            pytest.skip("the adapter has no required options")
        _, problems = resolve_options(self.adapter_class, {}, "endpoint")
        named = " ".join(p.location for p in problems)
        if not all(name in named for name in required):
            broken("options", f"not every required option is reported when missing: {problems}")

    def test_starts_and_stops(self, tmp_path: Path) -> None:
        adapter = self.make(tmp_path)
        adapter.start()
        adapter.stop()

    def test_stops_without_starting(self, tmp_path: Path) -> None:
        for raw in (self.receive_settings(tmp_path), self.send_settings(tmp_path)):
            adapter = self._build(tmp_path, raw)
            try:
                adapter.stop()
            except Exception as exc:
                broken(
                    "stop-without-start",
                    f"stop() before start() raised {describe(exc)}. The bus stops every "
                    "endpoint at shutdown, those whose start() failed too. Hint: release only "
                    "what start() opened (check for None)",
                )
            adapter.start()
            adapter.stop()
            try:
                adapter.stop()
            except Exception as exc:
                broken(
                    "stop-without-start",
                    f"a second stop() raised {describe(exc)}. Hint: forget what stop() "
                    "released, so a second call has nothing to do",
                )
