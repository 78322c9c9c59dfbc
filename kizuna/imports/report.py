"""What an import did: counts, every rejected row with its line and reason, and the CSV copy of that list."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from kizuna.config import get_settings


@dataclass(frozen=True)
class Reject:
    """A rejected row: its physical line in the file (header = line 1), the field at fault and why."""

    line: int
    field: str
    reason: str


@dataclass
class ImportReport:
    """Counts are of records (customers, products, orders, events), except ``read`` and ``rejected``: rows."""

    kind: str
    file: str
    encoding: str = ""
    dry_run: bool = False
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    # Rows that described a record another row of the same file already described (same email, order line...).
    duplicates: int = 0
    rejects: list[Reject] = field(default_factory=list)
    # Values left out of rows that were imported without them (a bad birth date, an unknown gender...).
    warnings: list[Reject] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    # Side effects worth a line in the summary: consents recorded, products created, tags added.
    notes: dict[str, int] = field(default_factory=dict)
    report_path: Path | None = None
    seconds: float = 0.0

    @property
    def rejected(self) -> int:
        """Rejected rows (a row with two bad fields counts once)."""
        return len({r.line for r in self.rejects})

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated or self.merged or any(self.notes.values()))

    @property
    def rows_per_second(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0

    def reject(self, line: int, field: str, reason: str) -> None:
        self.rejects.append(Reject(line, field, reason))

    def warn(self, line: int, field: str, reason: str) -> None:
        self.warnings.append(Reject(line, field, reason))

    def note(self, name: str, count: int = 1) -> None:
        if count:
            self.notes[name] = self.notes.get(name, 0) + count

    def counts(self) -> dict[str, int]:
        return {
            "read": self.read,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "merged": self.merged,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            **({"warnings": len(self.warnings)} if self.warnings else {}),
            **self.notes,
        }

    def write_csv(self, path: Path) -> Path:
        """Every rejected row and every warning, in line order, as ``line,field,reason`` (UTF-8 with BOM so Excel
        reads it); a warning's reason starts with ``warning:`` (the row was imported without that value)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["line", "field", "reason"])
            rows = [*self.rejects, *(Reject(w.line, w.field, f"warning: {w.reason}") for w in self.warnings)]
            for r in sorted(rows, key=lambda r: (r.line, r.field)):
                writer.writerow([r.line, r.field, r.reason])
        self.report_path = path
        return path


def default_report_path(kind: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return get_settings().home / "reports" / f"import-{kind}-{stamp}.csv"
