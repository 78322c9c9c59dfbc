"""``kizuna knowledge`` and ``kizuna chats sites`` against a real database in a scratch KIZUNA_HOME."""

from __future__ import annotations

import json

from tests.cli import kizuna
from tests.knowledge import evalset


def _run(home, *args: str):  # noqa: ANN001, ANN202
    return kizuna(*args, KIZUNA_HOME=str(home), KIZUNA_DATABASE_URL="")


def test_import_evaluate_and_sites(tmp_path) -> None:  # noqa: ANN001
    home = tmp_path / "home"
    articles = tmp_path / "articles.json"
    articles.write_text(json.dumps(evalset.articles(), ensure_ascii=False), encoding="utf-8")
    made = _run(home, "knowledge", "import", str(articles))
    assert made.returncode == 0, made.stdout + made.stderr
    assert "47 articles added" in made.stdout
    ids = {a["key"]: i for i, a in enumerate(evalset.articles(), start=1)}
    answerable, outside = evalset.question_set("evaluation", ids)
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps({"answerable": answerable, "out_of_scope": outside}, ensure_ascii=False))
    measured = _run(home, "knowledge", "evaluate", str(questions))
    assert measured.returncode == 0 and "top-3 98.3%" in measured.stdout, measured.stdout
    assert _run(home, "chats", "sites", "add", "https://shop.example/").stdout.strip() == "https://shop.example"
    assert "https://shop.example" in _run(home, "chats", "sites", "list").stdout


def test_a_bad_article_adds_nothing_and_names_the_field(tmp_path) -> None:  # noqa: ANN001
    home = tmp_path / "home"
    bad = tmp_path / "bad.json"
    rows = [{"title": "ok", "body": "fine", "language": "ja"}, {"title": "x", "body": "y", "language": "de"}]
    bad.write_text(json.dumps(rows))
    r = _run(home, "knowledge", "import", str(bad))
    assert r.returncode == 2 and "article 2" in r.stdout and "language" in r.stdout
    assert _run(home, "knowledge", "list").stdout.strip() == ""
