"""Access rules: which source endpoints may send to which targets.

As X-Road grants a client access to a service, the config states who may send
to whom. A message whose route would deliver it to a target its source may not
reach is refused as a whole: parked with the rule's reason, audited, and never
delivered anywhere. Without an ``access`` section everything is allowed; with
one, what no rule allows is denied.

```yaml
access:
  - from: onestop-in          # a source endpoint, or "*"
    to: [docs-receipts]       # target endpoints, or "*"
```
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigProblem


@dataclass(frozen=True)
class Rule:
    """One grant: ``source`` may send to each of ``targets`` ("*" matches any)."""

    source: str
    targets: frozenset[str]

    def allows(self, source: str, target: str) -> bool:
        return self.source in ("*", source) and ("*" in self.targets or target in self.targets)


class AccessPolicy:
    """The grants from config; ``None`` rules means no ``access`` section: all allowed."""

    def __init__(self, rules: Iterable[Rule] | None = None) -> None:
        self.rules = None if rules is None else list(rules)

    def refusal(self, source: str, targets: Iterable[str]) -> str | None:
        """Why ``source`` may not send to one of ``targets``, or ``None`` when it may."""
        if self.rules is None:
            return None
        for target in targets:
            if not any(rule.allows(source, target) for rule in self.rules):
                return (
                    f"access denied: endpoint '{source}' may not send to '{target}'. Hint: "
                    "add a rule under 'access' if this exchange is intended"
                )
        return None


def from_config(
    raw: Any, endpoints: set[str], where: Any
) -> tuple[AccessPolicy, list[ConfigProblem]]:
    """Read an ``access`` section; ``where(*keys)`` gives a problem's location."""
    if raw is None:
        return AccessPolicy(), []
    problems: list[ConfigProblem] = []
    if not isinstance(raw, list):
        return AccessPolicy([]), [ConfigProblem(where("access"), "expected a list of rules")]
    rules = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or set(item) != {"from", "to"}:
            problems.append(
                ConfigProblem(where("access", i), "each rule is {from: SOURCE, to: [TARGET, ...]}")
            )
            continue
        source = str(item["from"])
        targets = item["to"] if isinstance(item["to"], list) else [item["to"]]
        for name, key in [(source, "from"), *[(str(t), "to") for t in targets]]:
            if name != "*" and name not in endpoints:
                problems.append(
                    ConfigProblem(where("access", i, key), f"no endpoint named '{name}'")
                )
        rules.append(Rule(source, frozenset(str(t) for t in targets)))
    return AccessPolicy(rules), problems
