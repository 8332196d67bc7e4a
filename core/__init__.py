"""lienthong: an integration bus between the legacy systems of government agencies."""

from __future__ import annotations

__version__ = "0.1.0"
