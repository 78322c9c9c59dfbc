"""An SMTP sink in a process of its own: accepts every mail and counts them by Message-ID.

    python benchmarks/smtp_sink.py PORT [DELAY_MS]

DELAY_MS (default 0): how long the sink takes to accept each mail, as a relay across a network does.

Prints ``ready`` once listening. Then reads commands on stdin, one per line: ``stats`` prints a JSON line
``{"received": n, "unique": u, "most": m}`` (mails, distinct Message-IDs, most copies of one); ``reset`` forgets
everything. It stops at end of input. Used by the email benchmarks, so client and sink never share a process
(or a GIL).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections import Counter
from typing import Any

from aiosmtpd.controller import Controller

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


class Counting:
    def __init__(self, delay: float = 0.0) -> None:
        self.by_id: Counter[bytes] = Counter()
        self.delay = delay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)
        head = envelope.original_content.split(b"\r\n\r\n", 1)[0]
        found = _MESSAGE_ID.search(head)
        self.by_id[found.group(1) if found else b""] += 1
        return "250 2.0.0 OK"


def main() -> None:
    handler = Counting(float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.0)
    controller = Controller(handler, hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            counts = handler.by_id
            stats = {"received": sum(counts.values()), "unique": len(counts), "most": max(counts.values(), default=0)}
            print(json.dumps(stats), flush=True)
        elif command == "reset":
            handler.by_id = Counter()
            print("ok", flush=True)
    controller.stop()


if __name__ == "__main__":
    main()
