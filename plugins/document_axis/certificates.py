"""Certificates: the signing certificates this bus has met, and which expire soon.

Each time the axis adapter verifies a signature it records the signer's
certificate (by its SHA-256 fingerprint): subject, issuer, serial, validity,
the agency it signed for, whether its chain reached a trust anchor, and the
last document it signed. ``lienthong edxml certs [--expiring DAYS]`` lists
them; the gauge ``lienthong_axis_signer_cert_soonest_expiry_timestamp_seconds``
(registered through the ``lienthong_prepare_metrics`` hook) tells Prometheus
when the first of those still valid expires, so an alert can warn a month ahead.

The table (``axis_certificates``) is created by the store's migrations
(``0006_axis_register``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Boolean, Column, MetaData, String, Table, Text, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from lienthong.store import UtcDateTime

from .signature import SignatureInfo

log = logging.getLogger(__name__)

GAUGE = "lienthong_axis_signer_cert_soonest_expiry_timestamp_seconds"

metadata = MetaData()

certificates = Table(
    "axis_certificates",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("subject", Text, nullable=False),
    Column("issuer", Text, nullable=False),
    Column("serial", String(80), nullable=False),
    Column("not_valid_before", UtcDateTime, nullable=False),
    Column("not_valid_after", UtcDateTime, nullable=False, index=True),
    Column("agency", String(64), nullable=False),
    Column("trusted", Boolean, nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("last_document", String(300), nullable=False),
    Column("last_endpoint", String(100), nullable=False),
)


@dataclass(frozen=True)
class Seen:
    """One signer's certificate met in a verified signature (times UTC)."""

    fingerprint: str
    subject: str
    issuer: str
    serial: str
    not_valid_before: datetime
    not_valid_after: datetime
    agency: str
    trusted: bool
    first_seen: datetime
    last_seen: datetime
    last_document: str
    last_endpoint: str

    @classmethod
    def of(
        cls, info: SignatureInfo, *, agency: str, document_id: str, endpoint: str, at: datetime
    ) -> Seen:
        from cryptography.hazmat.primitives import hashes

        return cls(
            fingerprint=info.certificate.fingerprint(hashes.SHA256()).hex(),
            subject=info.subject,
            issuer=info.issuer,
            serial=f"{info.serial_number:x}",
            not_valid_before=info.certificate.not_valid_before_utc,
            not_valid_after=info.not_valid_after,
            agency=agency,
            trusted=info.trusted,
            first_seen=at,
            last_seen=at,
            last_document=document_id,
            last_endpoint=endpoint,
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("not_valid_before", "not_valid_after", "first_seen", "last_seen"):
            data[key] = data[key].isoformat()
        return data


def record(engine: Engine, seen: Sequence[Seen]) -> None:
    """Add or refresh certificates: the last sighting, agency and document win."""
    if not seen:
        return
    from sqlalchemy.dialects import postgresql, sqlite

    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        for s in seen:
            statement = dialect.insert(certificates).values(**asdict(s))
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[certificates.c.fingerprint],
                    set_={
                        "agency": statement.excluded.agency,
                        "trusted": statement.excluded.trusted,
                        "last_seen": statement.excluded.last_seen,
                        "last_document": statement.excluded.last_document,
                        "last_endpoint": statement.excluded.last_endpoint,
                    },
                )
            )


def listed(engine: Engine, *, expiring_before: datetime | None = None) -> list[Seen]:
    """The certificates met, soonest expiry first; only those expiring before a time if given."""
    query = select(certificates).order_by(certificates.c.not_valid_after, certificates.c.subject)
    if expiring_before is not None:
        query = query.where(certificates.c.not_valid_after <= expiring_before)
    with engine.connect() as conn:
        return [Seen(**dict(r._mapping)) for r in conn.execute(query)]


def soonest_expiry(engine: Engine, now: datetime) -> datetime | None:
    """When the first certificate met that is still valid at ``now`` expires."""
    with engine.connect() as conn:
        found = conn.execute(
            select(func.min(certificates.c.not_valid_after)).where(
                certificates.c.not_valid_after > now
            )
        ).scalar()
    return found


class ExpiryCollector(Collector):
    """The soonest expiry among the signing certificates met, read from the store at scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> list[Metric]:
        return []  # read from the store when collected

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            GAUGE,
            "Unix time at which the first signing certificate the axis endpoints have verified, "
            "among those still valid, expires (absent when none is). Alert on it minus time().",
        )
        try:
            soonest = soonest_expiry(self.engine, datetime.now(UTC))
        except SQLAlchemyError as exc:
            log.warning("metrics: signing certificates not read: %s", str(exc).splitlines()[0])
            return
        if soonest is not None:
            gauge.add_metric([], soonest.timestamp())
            yield gauge


def expiring_within(engine: Engine, days: float, now: datetime | None = None) -> list[Seen]:
    """Certificates that expire within ``days`` of ``now`` (expired ones included)."""
    moment = now or datetime.now(UTC)
    return listed(engine, expiring_before=moment + timedelta(days=days))
