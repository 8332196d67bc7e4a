"""Run one sync from table ``src`` into table ``dst`` in its own process, to be killed midway.

    python sync_once.py URL SCHEMA MODE APPLY_DELAY_S
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync_db import engine_for  # noqa: E402
from sync_table_adapter import make  # noqa: E402

from lienthong.sync import SyncSpec, run  # noqa: E402


def main(url: str, schema: str, mode: str, delay: str) -> None:
    engine = engine_for(url, schema or None)
    source = make(engine, "src", "src")
    target = make(engine, "dst", "dst", apply_delay=float(delay))
    spec = SyncSpec("people", "src", "dst", "person", mode=mode, max_disable_share=1.0)
    print("running", flush=True)
    report = run(spec, source, target, engine)
    print(report.outcome, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
