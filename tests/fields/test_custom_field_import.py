"""CSV import into custom fields: ``attributes.<key>`` headers (or a mapping to them) fill the fields, typed;
a wrong value rejects its row with the field named, and nothing of that row is written. Both backends."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from kizuna.auth.permissions import Actor
from kizuna.customers.models import Customer
from kizuna.db import transaction
from kizuna.fields import service
from kizuna.fields.schemas import CustomFieldCreate
from kizuna.imports import jobs
from kizuna.imports.runner import run_import

SYSTEM = Actor.system("test")


def _fields(db) -> None:  # noqa: ANN001
    with transaction(db) as s:
        for body in (
            {"entity": "customer", "key": "visits", "type": "number", "label": "来店回数"},
            {"entity": "customer", "key": "since", "type": "date", "label": "初回来店日"},
            {"entity": "customer", "key": "plan", "type": "choice", "label": "プラン", "choices": ["gold", "silver"]},
        ):
            service.create_field(s, actor=SYSTEM, data=CustomFieldCreate(**body))


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def test_attributes_headers_fill_typed_custom_fields_and_a_wrong_value_is_a_row_error(db, tmp_path):
    _fields(db)
    path = _write(
        tmp_path,
        [
            "email,attributes.visits,初回,attributes.plan,attributes.note",
            "ok@example.jp,12,2025/04/01,gold,自由なメモ",
            "bad@example.jp,abc,2025-04-02,silver,",
            "plan@example.jp,3,,bronze,",
        ],
    )
    report = run_import(db, "customers", path, actor=SYSTEM, mapping={"初回": "attributes.since"})
    assert report.mapping["attributes.visits"] == "attributes.visits" and report.mapping["初回"] == "attributes.since"
    assert (report.inserted, report.rejected) == (1, 2)
    assert [(r.line, r.field) for r in report.rejects] == [(3, "attributes.visits"), (4, "attributes.plan")]
    assert "'abc' is not a number" in report.rejects[0].reason
    assert "'bronze' is not one of gold, silver" in report.rejects[1].reason
    with transaction(db) as s:
        rows = {c.email: c.attributes for c in s.scalars(select(Customer))}
    # Typed as the fields store them; a key no field defines is kept as given; the rejected rows left nothing.
    assert rows == {"ok@example.jp": {"visits": 12, "since": "2025-04-01", "plan": "gold", "note": "自由なメモ"}}


def test_the_mapping_page_offers_the_custom_fields(db):
    _fields(db)
    with transaction(db) as s:
        choices = jobs.field_choices("customers", s)
    assert {"attributes.visits", "attributes.since", "attributes.plan"} <= set(choices)
    assert not any(c.startswith("attributes.") for c in jobs.field_choices("orders"))
