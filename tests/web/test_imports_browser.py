"""Import from the browser in a real Chromium, in Japanese: upload, mapping, preview, background run, rejects."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from kizuna.config import get_settings
from kizuna.customers.models import Customer
from kizuna.db import transaction
from kizuna.outbox import worker

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KIZUNA_UI_SCREENSHOTS")  # a folder: save screenshots of the pages there

CP932_FILE = (
    "会員番号,氏名,メールアドレス,電話番号,メモ\r\n"
    "M001,髙橋 一郎,ichiro@example.jp,090-1234-5678,①優良\r\n"
    "M002,山田 花子,broken-address,,\r\n"
    "M003,佐藤 三郎,saburo@example.jp,03-1111-2222,紹介\r\n"
).encode("cp932")


def _shot(page, name: str, size: tuple[int, int]) -> None:  # noqa: ANN001
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / f"imports-{name}-{size[0]}.png"), full_page=True)


def _no_sideways_scroll(page) -> None:  # noqa: ANN001
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.evaluate("window.innerWidth"), f"page is {width}px wide"


@pytest.mark.parametrize("size", [(1280, 900), (390, 844)], ids=["desktop", "phone"])
def test_import_in_japanese_runs_in_the_worker_with_a_progress_bar_to_100(
    sign_in, db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    monkeypatch.setattr(get_settings(), "import_inline_rows", 1)  # so the worker runs it
    page = sign_in("marketer")
    page.set_viewport_size({"width": size[0], "height": size[1]})
    assert page.locator("html").get_attribute("lang") == "ja"
    page.get_by_role("link", name="インポート").click()
    page.wait_for_url(re.compile(r".*/imports$"))
    page.get_by_label("取り込む内容").select_option("customers")
    source = tmp_path / "会員一覧.csv"
    source.write_bytes(CP932_FILE)
    page.get_by_label("ファイル").set_input_files(str(source))
    page.get_by_test_id("upload").click()
    page.wait_for_url(re.compile(r".*/imports/\d+$"))

    assert page.get_by_label("文字コード").input_value() == "cp932"
    assert "自動判定: Shift_JIS(CP932)" in page.content()
    assert page.get_by_label("電話番号").input_value() == "phone"
    page.get_by_label("メモ").select_option("+attributes")
    page.get_by_test_id("update-preview").click()
    page.wait_for_load_state()
    assert page.get_by_label("メモ").input_value() == "+attributes"
    bad = page.get_by_test_id("preview-row-3")
    assert "取り込めません" in bad.inner_text()
    assert "メールアドレス: 「broken-address」はメールアドレスとして正しくありません。" in bad.inner_text()
    assert "取り込み可" in page.get_by_test_id("preview-row-2").inner_text()
    assert "①優良" in page.get_by_test_id("preview-row-2").inner_text()
    _shot(page, "mapping", size)
    _no_sideways_scroll(page)

    page.get_by_test_id("run-import").click()
    page.wait_for_url(re.compile(r".*/imports/\d+$"))
    bar = page.get_by_test_id("progress-bar")
    assert bar.get_attribute("value") == "0"
    assert "待機中" in page.get_by_test_id("job-status").inner_text()
    _no_sideways_scroll(page)

    # The worker picks the job up while the page polls its progress.
    assert worker.run_once(db).done == 1
    page.wait_for_selector("[data-testid=import-counts]", timeout=15_000)
    assert page.get_by_test_id("progress-bar").get_attribute("value") == "100"
    assert page.get_by_test_id("progress-percent").inner_text() == "100"
    assert "完了" in page.get_by_test_id("job-status").inner_text()
    assert page.get_by_test_id("count-inserted").inner_text() == "2"
    assert page.get_by_test_id("count-rejected").inner_text() == "1"
    assert not re.search(r"\b(done|inserted|rejected|customers)\b", page.locator("main").inner_text())
    # The rejected row is listed with its reason in Japanese.
    listed = page.get_by_test_id("reject-3").inner_text()
    assert "メールアドレス" in listed and "「broken-address」はメールアドレスとして正しくありません。" in listed
    assert not re.search(r"[A-Za-z]{3,}", listed.replace("broken-address", ""))
    _shot(page, "done", size)
    _no_sideways_scroll(page)

    with page.expect_download() as download:
        page.get_by_test_id("download-rejects").click()
    assert download.value.suggested_filename == "会員一覧-rejects.csv"
    text = Path(download.value.path()).read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    # In the viewer's language with the reason's code, then the row as the file had it, to correct and re-import.
    assert rows[0] == [
        "line",
        "field",
        "reason",
        "reason_code",
        "severity",
        "会員番号",
        "氏名",
        "メールアドレス",
        "電話番号",
        "メモ",
    ]
    assert rows[1] == [
        "3", "メールアドレス", "「broken-address」はメールアドレスとして正しくありません。", "email_invalid", "error",
        "M002", "山田 花子", "broken-address", "", "",
    ]  # fmt: skip

    page.get_by_role("link", name="インポート一覧へ戻る").click()
    assert "会員一覧.csv" in page.get_by_test_id("import-jobs").inner_text()
    _shot(page, "list", size)
    with transaction(db) as s:
        stored = s.scalar(select(Customer).where(Customer.external_id == "M001"))
        assert stored.attributes == {"メモ": "①優良"}
