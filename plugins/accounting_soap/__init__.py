"""Accounting SOAP adapter: WSDL-driven client for agency accounting packages, and its sandbox."""

from __future__ import annotations

from .plugin import lienthong_register_adapters

__all__ = ["lienthong_register_adapters"]
