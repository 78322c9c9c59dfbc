"""What an import did: counts, every rejected row with its line and reason, and the CSV copy of that list.

Each reason is English text (the CLI's and the API's language) plus a catalog key and its params, so the UI
shows it in the viewer's language when it is read: the report file keeps both (``reason_code`` is the key
without its ``error.`` prefix, ``params`` its values as JSON).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kizuna.config import get_settings

# The report's own columns, before the rejected row's cells as the file had them (see ``write_csv``).
REPORT_COLUMNS = ("line", "field", "reason", "reason_code", "severity")
_STORED_COLUMNS = (*REPORT_COLUMNS, "params")
_WARNING = "warning: "


@dataclass(frozen=True)
class Reason:
    """Why a row or a value was refused: English ``text`` and the catalog ``key`` + ``params`` of its
    translation (``params`` hold plain JSON values: they are stored in the report file)."""

    text: str
    key: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", plain_params(self.params))

    def __str__(self) -> str:
        return self.text

    def reworded(self, text: str) -> Reason:
        """The same reason (key and params) with other English text (a prefix or a consequence added)."""
        return Reason(text, self.key, self.params)


def plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Params as JSON values: numbers and text kept, anything else (Decimal, dates) as its text."""
    return {str(k): v if v is None or isinstance(v, (str, int, float, bool)) else str(v) for k, v in params.items()}


@dataclass(frozen=True)
class Reject:
    """A rejected row: its physical line in the file (header = line 1), the field at fault and why (English
    ``reason``, and the catalog ``key`` + ``params`` the UI translates it with)."""

    line: int
    field: str
    reason: str
    key: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def code(self) -> str:
        """The reason's code for scripts (the key without ``error.``): ``email_invalid``, ``date_invalid`` ..."""
        return self.key.removeprefix("error.")


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

    def reject(self, line: int, field: str, reason: Reason) -> None:
        self.rejects.append(Reject(line, field, reason.text, reason.key, reason.params))

    def warn(self, line: int, field: str, reason: Reason) -> None:
        self.warnings.append(Reject(line, field, reason.text, reason.key, reason.params))

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

    def write_csv(
        self, path: Path, originals: Callable[[set[int]], tuple[list[str], dict[int, list[str]]]] | None = None
    ) -> Path:
        """Every rejected row and every warning, in line order, as ``line,field,reason,reason_code,severity,params``
        and then the row's own cells under the file's own header (UTF-8 with BOM so Excel reads it).

        A warning (the row was imported without that value) has severity ``warning`` and a reason starting with
        ``warning:``; a rejected row has severity ``error``. ``originals(lines)`` gives the file's header and
        the cells of those lines as the file has them.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = sorted(
            [*((r, False) for r in self.rejects), *((w, True) for w in self.warnings)],
            key=lambda item: (item[0].line, item[0].field),
        )
        headers: list[str] = []
        cells: dict[int, list[str]] = {}
        if rows and originals is not None:
            headers, cells = originals({r.line for r, _ in rows})
        with path.open("w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow([*_STORED_COLUMNS, *headers])
            for r, warning in rows:
                writer.writerow(
                    [
                        r.line,
                        r.field,
                        f"{_WARNING}{r.reason}" if warning else r.reason,
                        r.code,
                        "warning" if warning else "error",
                        json.dumps(r.params, ensure_ascii=False) if r.params else "",
                        *cells.get(r.line, []),
                    ]
                )
        self.report_path = path
        return path


@dataclass(frozen=True)
class ReportEntry:
    """One line of a report file read back: the reject or warning and the row's cells as the file had them."""

    reject: Reject
    warning: bool
    cells: list[str]


def read_report(path: Path) -> tuple[list[str], Iterator[ReportEntry]]:
    """The file's own header and the entries of a report written by ``write_csv`` (also of the older
    ``line,field,reason`` reports, whose reasons have no key and are shown as written)."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh), None) or []
    own = len(_STORED_COLUMNS) if tuple(header[: len(_STORED_COLUMNS)]) == _STORED_COLUMNS else 3

    def entries() -> Iterator[ReportEntry]:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for row in reader:
                if len(row) < 3 or not row[0].isdigit():
                    continue
                line, field_name, reason = int(row[0]), row[1], row[2]
                warning = row[4] == "warning" if own > 3 else reason.startswith(_WARNING)
                if warning:
                    reason = reason.removeprefix(_WARNING)
                code = row[3] if own > 3 else ""
                try:
                    params = json.loads(row[5]) if own > 3 and row[5] else {}
                except ValueError:
                    params = {}
                key = f"error.{code}" if code else ""
                reject = Reject(line, field_name, reason, key, params if isinstance(params, dict) else {})
                yield ReportEntry(reject, warning, row[own:])

    return header[own:], entries()


def default_report_path(kind: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return get_settings().home / "reports" / f"import-{kind}-{stamp}.csv"
