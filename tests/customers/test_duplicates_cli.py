"""``kizuna duplicates scan|list`` against a real SQLite database in a scratch KIZUNA_HOME."""

from __future__ import annotations

import datetime as dt
import json

from kizuna.db import make_engine, migrate, transaction
from tests import factories
from tests.test_cli import _kizuna


def test_scan_from_the_cli_proposes_pairs_once_and_lists_them(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    engine = make_engine(f"sqlite:///{home / 'kizuna.db'}")
    migrate(engine)
    with transaction(engine) as s:
        for family in ("斎藤", "斉藤"):
            factories.customer(s, family_name=family, given_name="誠", family_name_kana="サイトウ",
                               given_name_kana="マコト", birth_date=dt.date(1985, 4, 1))  # fmt: skip
    engine.dispose()

    first = _kizuna(home, "duplicates", "scan")
    assert first.returncode == 0, first.stderr
    assert "1 candidate pairs, 1 new for review" in " ".join(first.stdout.split())
    again = _kizuna(home, "duplicates", "scan", "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["candidates"], summary["proposed"]) == (1, 0)
    assert summary["rules"]["kana_birth"]["pairs"] == 1
    listed = _kizuna(home, "duplicates", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [pair] = json.loads(listed.stdout)
    assert (pair["reason"], pair["customer"], pair["other_customer"]) == ("same kana_birth", "斎藤 誠", "斉藤 誠")
    queued = _kizuna(home, "duplicates", "scan", "--queue")
    assert queued.returncode == 0 and "queued for the worker" in queued.stdout
