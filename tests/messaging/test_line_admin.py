"""LINE settings, quota and webhook admin through the API and the UI pages, in Japanese and English."""

from __future__ import annotations

import re

from sqlalchemy import select

from kizuna.auth.models import AuditEntry
from kizuna.db import new_session
from tests.messaging.http_fakes import TOKEN
from tests.web.conftest import csrf_of


def test_settings_api_never_shows_the_credentials(client, line_env, settings_env, db):
    settings_env(line_channel_token="")
    before = client.get("/api/v1/line/settings").json()
    assert before["token_set"] is False and before["token_source"] == "none"
    assert before["secret_source"] == "environment" and before["webhook_path"] == "/api/v1/line/webhook"
    saved = client.put("/api/v1/line/settings", json={"channel_token": TOKEN, "bot_basic_id": "@kizuna"})
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["token_set"] and body["token_source"] == "saved" and body["token_hint"] == f"…{TOKEN[-4:]}"
    assert TOKEN not in saved.text and TOKEN not in client.get("/api/v1/line/settings").text
    with new_session(db) as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "line.settings"))
        assert entry.details == {"changed": ["channel_token", "bot_basic_id"]} and TOKEN not in str(entry.details)
    assert client.put("/api/v1/line/settings", json={"bot_basic_id": "kizuna"}).status_code == 422
    cleared = client.put("/api/v1/line/settings", json={"channel_token": ""}).json()
    assert cleared["token_set"] is False


def test_quota_is_asked_of_line(client, line_env):
    line_env.used = 1234
    quota = client.get("/api/v1/line/quota")
    assert quota.json() == {"type": "limited", "limit": 5000, "used": 1234, "remaining": 3766}
    assert [r.path for r in line_env.requests] == ["/v2/bot/message/quota", "/v2/bot/message/quota/consumption"]
    line_env.quota_value = None
    assert client.get("/api/v1/line/quota").json()["remaining"] is None


def test_quota_when_line_cannot_answer(client, settings_env):
    settings_env(line_channel_token="", line_api_base="http://127.0.0.1:9")
    answer = client.get("/api/v1/line/quota")
    assert answer.status_code == 502 and "KIZUNA_LINE_CHANNEL_TOKEN" in answer.json()["error"]["message"]


def test_only_admins_manage_channels(client_as, line_env):
    marketer = client_as("marketer")
    assert marketer.get("/api/v1/line/settings").status_code == 403
    assert marketer.put("/api/v1/line/settings", json={"channel_token": "x"}).status_code == 403
    assert marketer.get("/api/v1/webhooks/endpoints").status_code == 403
    assert marketer.get("/api/v1/line/quota").status_code == 200  # everyone may see what sending costs


def test_endpoint_secret_is_shown_once_and_rotates(client, receiver, settings_env):
    settings_env(webhook_allow="127.0.0.1")
    made = client.post("/api/v1/webhooks/endpoints", json={"name": "crm-sync", "url": receiver.url()})
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    listed = client.get("/api/v1/webhooks/endpoints")
    assert secret not in listed.text and listed.json()[0]["name"] == "crm-sync"
    rotated = client.post(f"/api/v1/webhooks/endpoints/{made.json()['id']}/rotate").json()
    assert rotated["secret"] != secret and rotated["rotated_at"]
    assert (
        client.post("/api/v1/webhooks/endpoints", json={"name": "crm-sync", "url": receiver.url()}).status_code == 409
    )
    assert (
        client.post("/api/v1/webhooks/endpoints", json={"name": "Bad Name", "url": receiver.url()}).status_code == 422
    )


def test_line_settings_page_in_japanese_with_masked_token_and_quota(ui_client, line_env):
    ui = ui_client("admin")
    ui.cookies.set("kizuna_lang", "ja")
    page = ui.get("/admin/line")
    assert page.status_code == 200
    assert "LINE設定" in page.text and "チャネルアクセストークン" in page.text
    assert TOKEN not in page.text
    state = re.search(r'data-testid="token-state">\s*([^<]+)<', page.text).group(1)
    assert f"末尾 …{TOKEN[-4:]}" in state and "環境変数" in state
    assert re.search(r'data-testid="quota-remaining">5,000<', page.text)
    assert "http://testserver/api/v1/line/webhook" in page.text
    saved = ui.post(
        "/admin/line",
        data={
            "csrf_token": csrf_of(page.text),
            "channel_token": "",
            "bot_basic_id": "@kizuna",
            "api_base": line_env.url,
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    again = ui.get("/admin/line")
    assert 'value="@kizuna"' in again.text and f"末尾 …{TOKEN[-4:]}" in again.text  # an empty field kept the token
    bad = ui.post("/admin/line", data={"csrf_token": csrf_of(again.text), "bot_basic_id": "kizuna"})
    assert bad.status_code == 422 and 'data-testid="line-error"' in bad.text


def test_line_settings_page_is_for_admins(ui_client):
    page = ui_client("marketer").get("/admin/line")
    assert page.status_code == 403
    assert 'data-testid="nav-line"' not in ui_client("marketer").get("/customers").text
    assert 'data-testid="nav-line"' in ui_client("admin").get("/customers").text


def test_webhooks_page_shows_a_new_secret_once_and_explains_a_refusal(ui_client):
    ui = ui_client("admin")
    page = ui.get("/admin/webhooks")
    made = ui.post(
        "/admin/webhooks/endpoints",
        data={"csrf_token": csrf_of(page.text), "name": "erp", "url": "https://93.184.216.34/hooks"},
    )
    assert made.status_code == 201
    shown = re.search(r'value="(whsec_[^"]+)" id="new-secret-value"', made.text).group(1)
    assert shown not in ui.get("/admin/webhooks").text
    ui.cookies.set("kizuna_lang", "ja")
    page = ui.get("/admin/webhooks")
    refused = ui.post(
        "/admin/webhooks/endpoints",
        data={"csrf_token": csrf_of(page.text), "name": "meta", "url": "http://169.254.169.254/"},
    )
    assert refused.status_code == 422
    assert "169.254.169.254" in refused.text and "管理者がホストかネットワークを許可しない限り" in refused.text
    allowed = ui.post(
        "/admin/webhooks/allow",
        data={"csrf_token": csrf_of(page.text), "entry": "10.0.0.0/8", "note": "社内"},
        follow_redirects=False,
    )
    assert allowed.status_code == 303
    listing = ui.get("/admin/webhooks")
    assert "10.0.0.0/8" in listing.text and "社内" in listing.text and "許可するプライベートアドレス" in listing.text


def test_line_sending_rules_are_set_on_the_page_and_through_the_api(ui_client, client, db):
    from kizuna.messaging import settings

    ui = ui_client("admin")
    ui.cookies.set("kizuna_lang", "ja")
    page = ui.get("/admin/line")
    assert "LINE の送信ルール" in page.text and 'data-testid="line-rules-form"' in page.text
    saved = ui.post(
        "/admin/line/rules",
        data={"csrf_token": csrf_of(page.text), "cap_count": "2", "cap_days": "7", "quiet_start": "21:00",
              "quiet_end": "8:00"},
        follow_redirects=False,
    )  # fmt: skip
    assert saved.status_code == 303
    with new_session(db) as s:
        rules = settings.rules(s, "line")
        assert (rules.cap_count, rules.cap_days, str(rules.quiet_start), str(rules.quiet_end)) == (
            2, 7, "21:00:00", "08:00:00",
        )  # fmt: skip
        assert s.scalar(select(AuditEntry.action).where(AuditEntry.entity_id == "line")) == "channel_settings.update"
    half = ui.post(
        "/admin/line/rules",
        data={"csrf_token": csrf_of(page.text), "cap_count": "2", "cap_days": "7", "quiet_start": "21:00"},
    )
    assert half.status_code == 422 and 'data-testid="line-error"' in half.text
    negative = ui.post("/admin/line/rules", data={"csrf_token": csrf_of(page.text), "cap_count": "-1"})
    assert negative.status_code == 422
    assert 'value="21:00"' in ui.get("/admin/line").text  # the refused forms changed nothing

    shown = client.get("/api/v1/line/rules").json()
    assert shown == {"channel": "line", "cap_count": 2, "cap_days": 7, "quiet_start": "21:00", "quiet_end": "08:00"}
    put = client.put("/api/v1/line/rules", json={"cap_count": 0, "cap_days": 7, "quiet_start": "", "quiet_end": ""})
    assert put.status_code == 200 and put.json()["quiet_start"] == ""
    assert client.put("/api/v1/line/rules", json={"quiet_start": "25:00", "quiet_end": "08:00"}).status_code == 422


def test_a_line_push_due_in_lines_quiet_hours_waits(db, line_env):
    import datetime as dt
    from zoneinfo import ZoneInfo

    from kizuna.auth.permissions import Actor
    from kizuna.customers import identities
    from kizuna.db import transaction, utcnow
    from kizuna.messaging import settings
    from kizuna.messaging.line_inbound import follow
    from kizuna.messaging.models import Message
    from kizuna.messaging.queue import NewMessage, queue
    from kizuna.messaging.schemas import DeliveryRulesIn
    from kizuna.messaging.sender import send_due
    from tests import factories

    tokyo = ZoneInfo("Asia/Tokyo")
    local = utcnow().astimezone(tokyo)
    start = (local - dt.timedelta(hours=1)).strftime("%H:%M")
    end = (local + dt.timedelta(hours=2)).replace(second=0, microsecond=0).strftime("%H:%M")
    with transaction(db) as s:
        settings.save_rules(
            s, actor=Actor.system("test"), channel="line", data=DeliveryRulesIn(quiet_start=start, quiet_end=end)
        )
        customer = factories.customer(s, timezone="Asia/Tokyo")
        identities.add_identity(
            s, actor=factories.SYSTEM, customer=customer, kind_name="line_user_id", value="U" + "a" * 32
        )
        follow(s, user_id="U" + "a" * 32)
        row = queue(
            s,
            NewMessage(
                key="night",
                customer_id=customer.id,
                channel="line",
                content={"messages": [{"type": "text", "text": "セール"}]},
            ),
        )
        message_id = row.id
    send_due(db, worker="w")
    with transaction(db) as s:
        waiting = s.get(Message, message_id)
        assert waiting.status == "queued" and waiting.due_at.astimezone(tokyo).strftime("%H:%M") == end
    assert line_env.pushes() == []
