"""The vendor's jars and Java drivers: where they are, what is missing, how to run them."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIB = REPO.parent / "shared" / "reference" / "vxp-sdk" / "lib"
SOURCES = Path(__file__).parent / "java"
JARS = ("SDKVXP-2.0.1.jar", "EdXML102-0.0.3.jar")


@dataclass(frozen=True)
class Vendor:
    """Runs the compiled Java programs against the vendor jars."""

    classes: Path

    @property
    def classpath(self) -> str:
        return f"{LIB}/*:{self.classes}"

    def run(self, program: str, *args: str, timeout: float = 120) -> list[str]:
        """Run ``program``; its own lines (``RESULT``, ``FIELD``, ``OUT``), the SDK's chatter dropped.

        A Java failure fails the test with the program's output.
        """
        done = subprocess.run(
            ["java", "-Dfile.encoding=UTF-8", "-cp", self.classpath, program, *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
        )
        if done.returncode != 0:
            pytest.fail(
                f"java {program} {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
        return [
            line
            for line in done.stdout.splitlines()
            if line.startswith(("RESULT ", "FIELD ", "OUT "))
        ]

    def fields(self, program: str, *args: str) -> dict[str, list[str]]:
        """The ``FIELD name=value`` lines of a run, by name (a name may repeat)."""
        found: dict[str, list[str]] = {}
        for line in self.run(program, *args):
            if line.startswith("FIELD "):
                name, _, value = line[len("FIELD ") :].partition("=")
                found.setdefault(name, []).append(value)
        return found


def missing(lib: Path = LIB) -> str | None:
    for tool in ("java", "javac"):
        if shutil.which(tool) is None:
            return (
                f"'{tool}' is not on PATH: the axis conformance tests drive the vendor's Java "
                "SDK. Hint: apt-get install default-jdk-headless"
            )
    absent = [jar for jar in JARS if not (lib / jar).is_file()]
    if absent:
        return (
            f"the vendor jars {', '.join(absent)} are not in {lib}. Hint: the shared reference "
            "folder (shared/reference/vxp-sdk/lib) must sit beside the repository"
        )
    return None
