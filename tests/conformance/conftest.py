"""The axis vendor's own Java SDK and edXML library as the oracle for lienthong's axis code.

The jars are read from ``../shared/reference/vxp-sdk/lib`` relative to the
repository (never copied into it); the Java programs in ``java/`` are compiled
with ``javac`` once per test session. Where Java or the jars are missing, every
test here skips and says what to install or where to put the jars.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from tests.conformance.vendor import LIB, SOURCES, Vendor, missing


@pytest.fixture(scope="session")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> Vendor:
    """The vendor SDK and edXML library, with our Java drivers compiled against them."""
    absent = missing()
    if absent:
        pytest.skip(absent)
    classes = tmp_path_factory.mktemp("java-classes")
    sources: Sequence[str] = sorted(str(p) for p in SOURCES.glob("*.java"))
    done = subprocess.run(
        ["javac", "-encoding", "UTF-8", "-d", str(classes), "-cp", f"{LIB}/*", *sources],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"javac failed:\n{done.stdout}\n{done.stderr}")
    return Vendor(classes)
