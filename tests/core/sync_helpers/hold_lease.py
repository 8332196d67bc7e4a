"""Take a lease and keep it until killed: the holder a test SIGKILLs.

    python hold_lease.py URL SCHEMA NAME HOLDER TTL_S
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync_db import engine_for  # noqa: E402

from lienthong.lease import Lease  # noqa: E402


def main(url: str, schema: str, name: str, holder: str, ttl: str) -> None:
    lease = Lease(engine_for(url, schema or None), name, holder, float(ttl))
    if not lease.acquire():
        print("busy", flush=True)
        sys.exit(3)
    print("held", flush=True)
    while True:
        time.sleep(0.2)


if __name__ == "__main__":
    main(*sys.argv[1:])
