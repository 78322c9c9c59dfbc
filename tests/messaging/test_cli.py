"""``kizuna messages send-test`` and ``kizuna messages status``, run as a real process against the test database."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kizuna.db import transaction
from tests.cli import kizuna as run_kizuna
from tests.messaging.conftest import consented_customer, queue_mail, send_all

ROOT = Path(__file__).resolve().parents[2]


def kizuna(db, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    return run_kizuna("messages", *args, engine=db, KIZUNA_HOME=str(home), **env)


def test_send_test_mail_and_status(db, tmp_path, mail_ready, client):
    with transaction(db) as s:
        c = consented_customer(s, "tanaka@example.jp", family_name="田中", given_name="一郎")
        queue_mail(s, c.id, "promo")
    template = client.post(
        "/api/v1/messaging/templates",
        json={
            "name": "hello",
            "subject": "{{ customer.given_name | default('お客様') }}さんへ",
            "html": "<p>こんにちは</p>",
        },
    ).json()
    env = {"KIZUNA_SMTP_URL": mail_ready.url, "KIZUNA_PUBLIC_URL": "https://crm.example.com"}
    done = kizuna(
        db, tmp_path, "send-test", "--to", "me@example.com", "--template", "hello", "--customer", str(c.id), **env
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "me@example.com" in done.stdout
    [got] = mail_ready.to("me@example.com")
    assert str(got.mail["Subject"]) == "[TEST] 一郎さんへ" and "配信を停止" in got.part("plain")
    assert template["id"]

    refused = kizuna(db, tmp_path, "send-test", "--to", "me@example.com", "--template", "nope", **env)
    assert refused.returncode == 2 and "no template named 'nope'" in refused.stdout

    send_all(db)
    shown = kizuna(db, tmp_path, "status", "--json")
    assert shown.returncode == 0, shown.stderr
    assert '"status": "sent"' in shown.stdout
