"""Our agencies' clerks, answering in their document systems what the axis brought."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lienthong import config as config_module

from .sandboxes import Sandboxes
from .seed import make_status


class Clerks:
    """Our agencies' clerks: each status they give is a file in their document system's outbox."""

    def __init__(self, cfg: config_module.Config, sandboxes: Sandboxes) -> None:
        self.cfg = cfg
        self.sandboxes = sandboxes
        # The files they have read, the documents to finish next cycle, the statuses dropped.
        self.handled: set[Path] = set()
        self.accepted: dict[str, list[tuple[str, str]]] = {}
        self.dropped = 0

    def answer(self) -> int:
        """Our agencies' clerks answer in their document systems; returns the statuses dropped.

        A document that arrived is accepted (03) and assigned (04) at once,
        processed (05) and completed (06) a cycle later; a recall request (13)
        is agreed to (15). Each status is a file in the document system's
        outbox, which the bus sends through the agency's axis endpoint.
        """
        from ..document_axis import edxml

        dropped = 0
        for organ, (inbox, outbox) in self.dms_folders.items():
            finishing = self.accepted.pop(organ, [])
            for sender, doc_id in finishing:
                for code, text in (("05", "Đang xử lý"), ("06", "Đã xử lý xong")):
                    dropped += self._drop_status(
                        outbox, make_status(organ, sender, doc_id, code, text)
                    )
            for path in sorted(inbox.glob("*.xml")) if inbox.is_dir() else []:
                if path in self.handled:
                    continue
                self.handled.add(path)
                message = edxml.read(path.read_bytes())
                doc_id = message.document_id or ""
                if isinstance(message, edxml.Document):
                    sender = message.sender.organ_id or ""
                    for code, text in (
                        ("03", "Đã tiếp nhận, vào sổ văn bản đến"),
                        ("04", "Lãnh đạo đã phân công xử lý"),
                    ):
                        dropped += self._drop_status(
                            outbox, make_status(organ, sender, doc_id, code, text)
                        )
                    self.accepted.setdefault(organ, []).append((sender, doc_id))
                elif message.status_code == "13":
                    sender = message.response_for.organ_id or ""
                    status = make_status(organ, sender, doc_id, "15", "Đồng ý thu hồi văn bản")
                    dropped += self._drop_status(outbox, status)
        return dropped

    def _drop_status(self, outbox: Path, status: Any) -> int:
        from ..document_axis import edxml

        outbox.mkdir(parents=True, exist_ok=True)
        self.dropped += 1
        (outbox / f"trang-thai-{self.dropped:04d}.xml").write_bytes(edxml.build(status))
        return 1

    @property
    def dms_folders(self) -> dict[str, tuple[Path, Path]]:
        """Each of our agencies' document system: (inbox, outbox), by agency code.

        The inbox is the folder its axis endpoint's documents go to; the outbox
        the folder whose statuses a route sends through that endpoint.
        """
        folders = {
            name: self.cfg.base_dir / Path(ep.settings["path"])
            for name, ep in self.cfg.endpoints.items()
            if ep.adapter == "folder"
        }
        found: dict[str, tuple[Path, Path]] = {}
        for name, organ in self.sandboxes.organs.items():
            inbox = outbox = None
            for route in self.cfg.routes:
                targets = {t.endpoint for t in route.targets}
                if name in route.sources and "edxml.document" in route.kinds:
                    inbox = inbox or next((folders[t] for t in targets if t in folders), None)
                if name in targets and route.sources & set(folders):
                    outbox = outbox or folders[next(iter(route.sources & set(folders)))]
            if inbox is not None and outbox is not None:
                found[organ] = (inbox, outbox)
        return found
