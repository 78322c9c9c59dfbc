"""Field accuracy of the business-card reader over the generated cards (real Tesseract, Noto Sans CJK JP).

    .venv/bin/python benchmarks/card_ocr_accuracy.py

Prints, per field, how many cards gave exactly what was printed, and the seconds per card.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kizuna.customers.card_scan import read_card  # noqa: E402
from tests.customers.card_images import CARDS, field_hits, render  # noqa: E402


def main() -> None:
    totals: dict[str, list[int]] = {}
    started = time.perf_counter()
    for fmt in ("PNG", "JPEG"):
        for card in CARDS:
            hits = field_hits(card, read_card(render(card, fmt=fmt)))
            for name, ok in hits.items():
                got = totals.setdefault(f"{name}", [0, 0])
                got[0] += ok
                got[1] += 1
    seconds = (time.perf_counter() - started) / (2 * len(CARDS))
    for name, (ok, n) in totals.items():
        print(f"{name:12} {ok}/{n}")
    print(f"{seconds:.1f} s per card ({2 * len(CARDS)} readings: {len(CARDS)} cards as PNG and as JPEG)")


if __name__ == "__main__":
    main()
