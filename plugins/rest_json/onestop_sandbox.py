"""SANDBOX provincial one-stop-shop system: dossiers received, their steps, a JSON API.

For tests and demos only. It stands in for a province's one-stop-shop
("một cửa") system as the provincial integration platform (LGSP) exposes it:

- the platform's gateway in front of it (``gateway_sandbox.py``): ``POST
  /oauth2/token`` gives a bearer token for OAuth2 client credentials; other
  schemes for tests: ``auth="api_key"``, ``"basic"``, ``"hmac"``, ``"none"``;
- answers wrapped as the platform wraps them, ``{code, status, correlationId,
  response}``; errors 401 (no or bad token), 403 (not allowed), 404, 400, 429;
- ``GET /api/v1/dossiers?updated_since=&page=&per_page=``: dossiers changed at
  or after a time, oldest first, by page number;
- ``GET /api/v1/steps?cursor=&limit=``: processing steps in the order they were
  recorded, by an opaque cursor (``next_cursor``, ``has_more``);
- ``GET /api/v1/procedures?limit=``: the service catalogue, pages linked by
  ``links.next``;
- ``GET /api/v1/dossiers/{dossierNo}``; ``POST /api/v1/dossiers/{dossierNo}/steps``
  records a step (an opinion from another agency moves the dossier on), once per
  ``Idempotency-Key``.

Field names follow OpenCPS, a one-stop-shop system in use in several provinces
(``dossierNo``, ``serviceCode``, ``receiveDate``, ``dueDate``, ``dossierStatus``,
``govAgencyName``, ``actionUser``, ``actionNote``...). Dossier numbers follow the
government office's circular 01/2018: ``<agency code>-<YYMMDD>-<daily number>``.

:meth:`OneStopSandbox.synthetic_year` serves a whole year (the province's 156,815
dossiers and their steps) computed on the fly, for the benchmark.
"""

from __future__ import annotations

import base64
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .gateway_sandbox import GatewaySandbox
from .sandbox import Reply, SandboxRequest, lgsp, lgsp_error

ICT = "+07:00"
AGENCIES = [
    ("000.00.15.H41", "Sở Xây dựng tỉnh Nghệ An"),
    ("000.00.16.H41", "Sở Tư pháp tỉnh Nghệ An"),
    ("000.00.17.H41", "Sở Tài nguyên và Môi trường tỉnh Nghệ An"),
    ("000.00.18.H41", "Sở Kế hoạch và Đầu tư tỉnh Nghệ An"),
    ("000.00.19.H41", "Sở Giao thông vận tải tỉnh Nghệ An"),
    ("000.00.20.H41", "Sở Lao động - Thương binh và Xã hội tỉnh Nghệ An"),
    ("000.00.21.H41", "Sở Y tế tỉnh Nghệ An"),
    ("000.00.22.H41", "Sở Giáo dục và Đào tạo tỉnh Nghệ An"),
]
SERVICES = [
    ("1.009972", "Cấp giấy phép xây dựng mới đối với công trình cấp III", "XD01", "Xây dựng"),
    ("2.000908", "Cấp bản sao từ sổ gốc", "TP02", "Chứng thực"),
    ("1.004082", "Đăng ký biến động quyền sử dụng đất", "DD03", "Đất đai"),
    ("2.001610", "Đăng ký thành lập doanh nghiệp tư nhân", "DN04", "Thành lập doanh nghiệp"),
    ("1.002804", "Cấp mới giấy phép lái xe", "GT05", "Đường bộ"),
]
NAMES = ["Nguyễn Văn An", "Trần Thị Bình", "Lê Hoàng Cường", "Phạm Thị Dung", "Hoàng Văn Em"]
OFFICERS = [
    ("Lê Thị Hương", "Cán bộ một cửa", "Bộ phận một cửa", "Tiếp nhận hồ sơ", "received"),
    ("Võ Văn Minh", "Chuyên viên", "Phòng chuyên môn", "Thẩm định hồ sơ", "processing"),
    ("Đặng Thị Lan", "Trưởng phòng", "Phòng chuyên môn", "Trình ký kết quả", "processing"),
    ("Bùi Văn Nam", "Phó Giám đốc", "Ban Giám đốc", "Ký duyệt kết quả", "releasing"),
    ("Lê Thị Hương", "Cán bộ một cửa", "Bộ phận một cửa", "Trả kết quả cho công dân", "done"),
]
MAX_PAGE = 1000


def iso(moment: datetime) -> str:
    """A time as the system writes it: ISO 8601 in Vietnam's zone, to the second."""
    return moment.astimezone(_VN).strftime("%Y-%m-%dT%H:%M:%S") + ICT


def stamp(moment: datetime) -> str:
    """A change stamp: UTC with microseconds, so stamps sort as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_VN = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass
class Year:
    """A synthetic year of dossiers and steps, computed from an index instead of stored.

    Dossier ``i`` is received ``i * 365 days / dossiers`` after midnight of
    ``first_day`` (Vietnam's time); its number counts, per agency, the dossiers of
    its day.
    """

    dossiers: int
    steps_per_dossier: int
    first_day: date
    #: How many of the year's dossiers (and their steps) the feeds show so far.
    released: int = -1

    def __post_init__(self) -> None:
        if self.released < 0:
            self.released = self.dossiers
        self.start = datetime(
            self.first_day.year, self.first_day.month, self.first_day.day, tzinfo=_VN
        )

    def _seconds(self, i: int) -> int:
        return i * 365 * 86400 // self.dossiers

    def receive_time(self, i: int) -> datetime:
        return self.start + timedelta(seconds=self._seconds(i))

    def dossier(self, i: int) -> dict[str, Any]:
        received = self.receive_time(i)
        code, agency = AGENCIES[i % len(AGENCIES)]
        day = i * 365 // self.dossiers  # = self._seconds(i) // 86400
        first = -(-day * self.dossiers // 365)  # the day's first index
        number = (i - first) // len(AGENCIES) + 1
        service = SERVICES[i % len(SERVICES)]
        return {
            "dossierNo": f"{code}-{received.astimezone(_VN):%y%m%d}-{number:04d}",
            "serviceCode": service[0],
            "serviceName": service[1],
            "domainCode": service[2],
            "domainName": service[3],
            "applicantName": NAMES[i % len(NAMES)],
            "applicantIdType": "business" if i % 7 == 0 else "citizen",
            "applicantIdNo": f"0{40000000000 + i:011d}",
            "contactTelNo": f"09{i % 100000000:08d}",
            "contactEmail": f"congdan{i}@example.vn",
            "dossierNote": f"Hồ sơ {service[1].lower()}",
            "receiveDate": iso(received),
            "dueDate": iso(received + timedelta(days=10)),
            "finishDate": None,
            "dossierStatus": "received",
            "viaPostal": 0,
            "online": i % 3 != 0,
            "govAgencyCode": code,
            "govAgencyName": agency,
            "version": 1,
            "updatedAt": stamp(received),
        }

    def step(self, seq: int) -> dict[str, Any]:
        i, j = divmod(seq, self.steps_per_dossier)
        dossier = self.dossier(i)
        user, title, department, note, status = OFFICERS[j % len(OFFICERS)]
        at = self.receive_time(i) + timedelta(hours=j * 20)
        return {
            "id": seq + 1,
            "dossierNo": dossier["dossierNo"],
            "actionUser": user,
            "actionTitle": title,
            "department": department,
            "actionNote": note,
            "stepStatus": status,
            "createDate": iso(at),
            "startDate": iso(at - timedelta(hours=4)),
            "dueDate": iso(at + timedelta(days=2)),
        }


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"step:{seq}".encode()).decode().rstrip("=")


def _seq(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, number = text.partition(":")
        if kind != "step":
            raise ValueError(kind)
        return int(number)
    except (ValueError, UnicodeDecodeError) as exc:
        raise lgsp_error(400, f"cursor {cursor!r} is not one this system gave") from exc


class OneStopSandbox(GatewaySandbox):
    """SANDBOX one-stop-shop system (see the module docstring)."""

    name = "onestop"

    def __init__(self, *, procedures: int = 25, **gateway: Any) -> None:
        """``gateway``: the platform's credentials (:class:`GatewaySandbox`), then the server's."""
        super().__init__(**gateway)
        self.dossiers: dict[str, dict[str, Any]] = {}
        self.steps: list[dict[str, Any]] = []
        self.year: Year | None = None
        self.procedures = procedures
        self._idempotent: dict[str, dict[str, Any]] = {}
        self._clock = 0
        self.route("GET", r"/api/v1/dossiers", self._list_dossiers, "dossiers")
        self.route("GET", r"/api/v1/dossiers/(?P<no>[^/]+)", self._get_dossier, "dossier")
        self.route("POST", r"/api/v1/dossiers/(?P<no>[^/]+)/steps", self._post_step, "add-step")
        self.route("GET", r"/api/v1/steps", self._list_steps, "steps")
        self.route("GET", r"/api/v1/procedures", self._list_procedures, "procedures")

    # --- data, for tests and the demo ---

    def add_dossier(self, **fields: Any) -> dict[str, Any]:
        """Record a dossier (received now unless ``receiveDate`` says otherwise)."""
        with self.lock:
            now = self._now()
            number = len(self.dossiers) + 1
            code, agency = AGENCIES[(number - 1) % len(AGENCIES)]
            service = SERVICES[(number - 1) % len(SERVICES)]
            dossier: dict[str, Any] = {
                "dossierNo": f"{code}-{now.astimezone(_VN):%y%m%d}-{number:04d}",
                "serviceCode": service[0],
                "serviceName": service[1],
                "domainCode": service[2],
                "domainName": service[3],
                "applicantName": NAMES[(number - 1) % len(NAMES)],
                "applicantIdType": "citizen",
                "applicantIdNo": f"0{40000000000 + number:011d}",
                "contactTelNo": "0912345678",
                "contactEmail": f"congdan{number}@example.vn",
                "dossierNote": f"Hồ sơ {service[1].lower()}",
                "receiveDate": iso(now),
                "dueDate": iso(now + timedelta(days=10)),
                "finishDate": None,
                "dossierStatus": "received",
                "viaPostal": 0,
                "online": True,
                "govAgencyCode": code,
                "govAgencyName": agency,
                "version": 1,
                "updatedAt": stamp(now),
            }
            dossier.update(fields)
            self.dossiers[dossier["dossierNo"]] = dossier
            return dict(dossier)

    def update_dossier(self, number: str, **changes: Any) -> dict[str, Any]:
        """Change a dossier: a new version with a new change stamp."""
        with self.lock:
            dossier = self.dossiers[number]
            dossier.update(changes)
            dossier["version"] += 1
            dossier["updatedAt"] = stamp(self._now())
            return dict(dossier)

    def add_step(self, number: str, **fields: Any) -> dict[str, Any]:
        """Record a processing step of a dossier (and its status, when the step has one)."""
        with self.lock:
            if number not in self.dossiers:
                raise KeyError(number)
            user, title, department, note, status = OFFICERS[len(self.steps) % len(OFFICERS)]
            now = self._now()
            step = {
                "id": len(self.steps) + 1,
                "dossierNo": number,
                "actionUser": user,
                "actionTitle": title,
                "department": department,
                "actionNote": note,
                "stepStatus": status,
                "createDate": iso(now),
                "startDate": iso(now - timedelta(hours=4)),
                "dueDate": iso(now + timedelta(days=2)),
            }
            step.update(fields)
            self.steps.append(step)
            if step["stepStatus"] != self.dossiers[number]["dossierStatus"]:
                self.update_dossier(number, dossierStatus=step["stepStatus"])
            return dict(step)

    def seed_demo(self) -> None:
        """Three dossiers of the demo: one done, one in progress, one just received."""
        for steps in (5, 3, 1):
            dossier = self.add_dossier()
            for n in range(steps):
                self.add_step(dossier["dossierNo"], **_officer(n))

    def synthetic_year(
        self, dossiers: int, *, steps_per_dossier: int = 5, released: int | None = None
    ) -> None:
        """Serve ``dossiers`` dossiers and their steps, computed on the fly (for benchmarks).

        ``released`` shows only the first that many (and their steps) until
        ``POST /_sandbox/release {"dossiers": N}`` shows more: a benchmark can then
        feed the year in slices.
        """
        self.year = Year(
            dossiers, steps_per_dossier, date(2025, 1, 1), -1 if released is None else released
        )
        self.route("POST", r"/_sandbox/release", self._release, "release")

    def _release(self, request: SandboxRequest) -> Reply:
        body = request.json()
        assert self.year is not None
        with self.lock:
            self.year.released = max(0, min(int(body["dossiers"]), self.year.dossiers))
        return Reply(200, {"released": self.year.released})

    def stats(self) -> dict[str, Any]:
        base = super().stats()
        with self.lock:
            base.update(
                dossiers=self.year.dossiers if self.year else len(self.dossiers),
                steps=self.year.dossiers * self.year.steps_per_dossier
                if self.year
                else len(self.steps),
                tokens_issued=self.tokens_issued,
            )
        return base

    def _now(self) -> datetime:
        # Strictly increasing times, even for changes within the same microsecond.
        self._clock += 1
        return datetime.now(UTC).replace(microsecond=0) + timedelta(microseconds=self._clock)

    # --- resources ---

    def _list_dossiers(self, request: SandboxRequest) -> Reply:
        self.authorize(request)
        since = request.query.get("updated_since", "")
        page = _positive(request.query.get("page", "1"), "page")
        per_page = min(_positive(request.query.get("per_page", "100"), "per_page"), MAX_PAGE)
        if self.year is not None:
            year = self.year
            shown = year.released
            first = bisect_left(range(shown), since, key=lambda i: stamp(year.receive_time(i)))
            begin = first + (page - 1) * per_page
            items = [year.dossier(i) for i in range(begin, min(begin + per_page, shown))]
            total = shown - first
        else:
            with self.lock:
                found = sorted(
                    (d for d in self.dossiers.values() if d["updatedAt"] >= since),
                    key=lambda d: (d["updatedAt"], d["dossierNo"]),
                )
            total = len(found)
            items = [dict(d) for d in found[(page - 1) * per_page : page * per_page]]
        return Reply(
            200, lgsp({"items": items, "page": page, "per_page": per_page, "total": total})
        )

    def _get_dossier(self, request: SandboxRequest) -> Reply:
        self.authorize(request)
        with self.lock:
            dossier = self.dossiers.get(request.params["no"])
        if dossier is None:
            return lgsp_error(404, f"no dossier {request.params['no']}")
        return Reply(200, lgsp(dict(dossier)))

    def _list_steps(self, request: SandboxRequest) -> Reply:
        self.authorize(request)
        after = _seq(request.query.get("cursor", ""))
        limit = min(_positive(request.query.get("limit", "100"), "limit"), MAX_PAGE)
        if self.year is not None:
            total = self.year.released * self.year.steps_per_dossier
            items = [self.year.step(s) for s in range(after, min(after + limit, total))]
        else:
            with self.lock:
                total = len(self.steps)
                items = [dict(s) for s in self.steps[after : after + limit]]
        last = after + len(items)
        return Reply(
            200, lgsp({"items": items, "next_cursor": _cursor(last), "has_more": last < total})
        )

    def _list_procedures(self, request: SandboxRequest) -> Reply:
        self.authorize(request)
        start = _positive(request.query.get("from", "1"), "from")
        limit = min(_positive(request.query.get("limit", "10"), "limit"), MAX_PAGE)
        end = min(start + limit, self.procedures + 1)
        items = []
        for n in range(start, end):
            code, name, domain, domain_name = SERVICES[(n - 1) % len(SERVICES)]
            items.append(
                {
                    "code": f"{code}.{n:04d}",
                    "name": name,
                    "domain": domain_name,
                    "online": n % 2 == 0,
                }
            )
        links = {"self": f"/api/v1/procedures?from={start}&limit={limit}"}
        if end <= self.procedures:
            links["next"] = f"/api/v1/procedures?from={end}&limit={limit}"
        return Reply(200, lgsp({"items": items, "links": links}))

    def _post_step(self, request: SandboxRequest) -> Reply:
        self.authorize(request)
        number = request.params["no"]
        key = request.headers.get("Idempotency-Key", "")
        with self.lock:
            if key and key in self._idempotent:
                return Reply(200, lgsp(self._idempotent[key]))
            if number not in self.dossiers:
                return lgsp_error(404, f"no dossier {number}")
        body = request.json()
        if not isinstance(body, dict):
            return lgsp_error(400, "the body must be a JSON object")
        missing = [f for f in ("actionUser", "actionNote", "stepStatus") if not body.get(f)]
        if missing:
            return lgsp_error(400, f"missing fields: {', '.join(missing)}")
        with self.lock:
            step = self.add_step(number, **{k: body[k] for k in body if k != "id"})
            if key:
                self._idempotent[key] = step
        return Reply(201, lgsp(step))


def _positive(value: str, name: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise lgsp_error(400, f"{name} must be a positive number, not {value!r}")
    return int(value)


def _officer(n: int) -> dict[str, Any]:
    user, title, department, note, status = OFFICERS[n % len(OFFICERS)]
    return {
        "actionUser": user,
        "actionTitle": title,
        "department": department,
        "actionNote": note,
        "stepStatus": status,
    }
