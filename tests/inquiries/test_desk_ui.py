"""The desk's pages over HTTP in both languages: queue, ticket (claim, refusal, reply with a macro, note, change),
set-up, report, and the public web form (token, honeypot, no redirect, framing)."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import func, select

from kizuna.inquiries import webform
from kizuna.inquiries.models import Inquiry, InquiryMessage
from tests.web.conftest import csrf_of


def open_ticket(client, **fields):  # noqa: ANN001, ANN003, ANN201
    body = {"subject": "配送について", "body": "荷物が届きません", "email": "hanako@example.jp", **fields}
    r = client.post("/api/v1/inquiries", json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_queue_ticket_setup_and_report_pages_render_in_both_languages(client, ui_client, lang):
    opened = open_ticket(client)
    c = ui_client("manager")
    c.cookies.set("kizuna_lang", lang)
    for path in (
        "/inquiries",
        "/inquiries?tab=unclaimed",
        f"/inquiries/{opened['id']}",
        "/inquiries/setup",
        "/inquiries/report",
        "/inquiries/new",
        f"/inquiries/new?customer_id={opened['customer_id']}",
    ):
        r = c.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert "inquiries." not in re.sub(r"<[^>]+>", "", r.text), f"an untranslated key on {path}"
    page = c.get("/inquiries").text
    assert ("未担当" if lang == "ja" else "Unclaimed") in page and 'data-testid="nav-inquiries"' in page


def test_a_second_agent_sees_a_message_when_the_ticket_is_claimed(client, ui_client):
    opened = open_ticket(client)
    first, second = ui_client("support"), ui_client("support")
    page = first.get(f"/inquiries/{opened['id']}").text
    r = first.post(f"/inquiries/{opened['id']}/claim", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303
    page2 = second.get(f"/inquiries/{opened['id']}").text
    assert 'data-testid="claim"' not in page2  # already held: no claim button
    r = second.post(f"/inquiries/{opened['id']}/claim", data={"csrf_token": csrf_of(page2)})
    assert r.status_code == 409 and 'data-testid="ticket-problem"' in r.text and "support-0@example.com" in r.text
    r = second.post(f"/inquiries/{opened['id']}/reply", data={"csrf_token": csrf_of(page2), "body": "横から"})
    assert r.status_code == 409 and "support-0@example.com" in r.text and "横から" in r.text  # the text is kept


def test_reply_with_a_macro_a_note_and_a_status_change(client, ui_client, session):
    client.post("/api/v1/inquiries/macros", json={"name": "お詫び", "body": "ご不便をおかけし申し訳ございません。"})
    opened = open_ticket(client)
    c = ui_client("support")
    page = c.get(f"/inquiries/{opened['id']}?macro=1").text
    assert "ご不便をおかけし申し訳ございません。</textarea>" in page
    token = csrf_of(page)
    r = c.post(
        f"/inquiries/{opened['id']}/reply",
        data={"csrf_token": token, "body": "ご不便をおかけし申し訳ございません。", "status": "pending"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "done=replied" in r.headers["location"]
    r = c.post(
        f"/inquiries/{opened['id']}/reply",
        data={"csrf_token": token, "body": "社内: 配送業者に確認中", "note": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = c.post(f"/inquiries/{opened['id']}/reply", data={"csrf_token": token, "body": ""})
    assert r.status_code == 422
    version = session.scalar(select(Inquiry.version).where(Inquiry.id == opened["id"]))
    r = c.post(
        f"/inquiries/{opened['id']}/update",
        data={
            "csrf_token": token,
            "status": "resolved",
            "priority": "high",
            "category": "",
            "team_id": "",
            "version": version,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    stale = c.post(
        f"/inquiries/{opened['id']}/update",
        data={
            "csrf_token": token,
            "status": "open",
            "priority": "high",
            "category": "",
            "team_id": "",
            "version": version,
        },
    )
    assert stale.status_code == 409
    session.expire_all()
    inquiry = session.get(Inquiry, opened["id"])
    assert inquiry.status == "resolved" and inquiry.priority == "high"
    directions = list(session.scalars(select(InquiryMessage.direction).order_by(InquiryMessage.id)))
    assert directions == ["in", "out", "note"]


def test_the_form_posts_need_a_csrf_token(client, ui_client):
    opened = open_ticket(client)
    c = ui_client("support")
    assert c.post(f"/inquiries/{opened['id']}/claim", data={}).status_code in (400, 403)


def test_categories_and_macros_are_added_on_the_setup_page_and_refused_to_support(ui_client, session):
    c = ui_client("manager")
    token = csrf_of(c.get("/inquiries/setup").text)
    r = c.post(
        "/inquiries/setup/categories",
        data={"csrf_token": token, "name": "請求", "name_en": "Billing", "team_id": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = c.post("/inquiries/setup/categories", data={"csrf_token": token, "name": "請求", "name_en": "", "team_id": ""})
    assert r.status_code == 422 and "already exists" in r.text
    r = c.post(
        "/inquiries/setup/macros",
        data={"csrf_token": token, "name": "挨拶", "body": "お問い合わせありがとうございます。"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert ui_client("support").get("/inquiries/setup").status_code == 403


# --- the public form ---------------------------------------------------------------------------------------------


@pytest.fixture
def quick_form(configure):  # noqa: ANN001, ANN201
    configure(inquiry_form_min_seconds=0)


def _form(app_client, lang: str = "ja"):  # noqa: ANN001, ANN202
    r = app_client.get(f"/forms/inquiry?lang={lang}")
    assert r.status_code == 200
    return re.search(r'name="form_token" value="([^"]+)"', r.text).group(1), r


def test_the_public_form_opens_a_web_form_ticket_without_signing_in(app, session, quick_form):
    from fastapi.testclient import TestClient

    with TestClient(app) as visitor:
        token, page = _form(visitor)
        assert "frame-ancestors *" in page.headers["content-security-policy"]
        r = visitor.post(
            "/forms/inquiry",
            data={
                "form_token": token,
                "name": "山田 花子",
                "email": "hanako@example.jp",
                "subject": "サイズ交換",
                "body": "Mを Lに",
                "website": "",
            },
            follow_redirects=False,
        )
    assert r.status_code == 200 and 'data-testid="inquiry-form-done"' in r.text and "location" not in r.headers
    inquiry = session.scalars(select(Inquiry)).one()
    assert inquiry.channel == "web_form" and inquiry.subject == "サイズ交換" and inquiry.reply_to == "hanako@example.jp"


def test_a_bot_filling_the_honeypot_is_thanked_and_nothing_is_written(app, session, quick_form):
    from fastapi.testclient import TestClient

    with TestClient(app) as bot:
        token, _ = _form(bot)
        r = bot.post(
            "/forms/inquiry",
            data={"form_token": token, "email": "spam@example.jp", "subject": "buy", "website": "http://spam.example"},
        )
    assert r.status_code == 200 and 'data-testid="inquiry-form-done"' in r.text
    assert session.scalar(select(func.count()).select_from(Inquiry)) == 0


def test_a_forged_or_too_fast_form_is_refused_with_a_message(app, session, configure):
    from fastapi.testclient import TestClient

    configure(inquiry_form_min_seconds=30)
    with TestClient(app) as visitor:
        token, _ = _form(visitor, "en")
        fast = visitor.post(
            "/forms/inquiry?lang=en", data={"form_token": token, "email": "a@example.jp", "subject": "x"}
        )
        assert fast.status_code == 422 and "too quickly" in fast.text
        forged = visitor.post(
            "/forms/inquiry?lang=en", data={"form_token": token[:-2] + "xx", "email": "a@example.jp", "subject": "x"}
        )
        assert forged.status_code == 422 and "no longer valid" in forged.text
        old = webform.issue_token(time.time() - 3 * 86400)
        expired = visitor.post(
            "/forms/inquiry?lang=en", data={"form_token": old, "email": "a@example.jp", "subject": "x"}
        )
        assert expired.status_code == 422
    assert session.scalar(select(func.count()).select_from(Inquiry)) == 0


def test_the_form_keeps_what_was_typed_and_names_the_missing_field(app, quick_form):
    from fastapi.testclient import TestClient

    with TestClient(app) as visitor:
        token, _ = _form(visitor, "en")
        r = visitor.post(
            "/forms/inquiry?lang=en",
            data={"form_token": token, "email": "", "subject": "件名だけ", "next": "https://evil.example"},
        )
    assert r.status_code == 422 and "件名だけ" in r.text and "e-mail address" in r.text
    assert "evil.example" not in r.text


def test_a_category_is_renamed_and_retired_on_the_setup_page(ui_client, client, session):
    made = client.post("/api/v1/inquiries/categories", json={"name": "請求", "name_en": "Billing"}).json()
    c = ui_client("manager")
    token = csrf_of(c.get("/inquiries/setup").text)
    r = c.post(
        f"/inquiries/setup/categories/{made['id']}",
        data={"csrf_token": token, "name": "請求・支払い", "name_en": "Billing", "team_id": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303
    [shown] = client.get("/api/v1/inquiries/categories").json()
    assert shown["name"] == "請求・支払い" and shown["active"] is False
    assert "請求・支払い" not in client.get("/forms/inquiry").text  # a retired category is not offered


def test_a_viewer_reads_a_ticket_but_gets_no_forms_to_work_it(client, ui_client):
    opened = open_ticket(client)
    page = ui_client("viewer").get(f"/inquiries/{opened['id']}").text
    assert "荷物が届きません" in page
    assert 'data-testid="claim"' not in page and 'data-testid="reply-form"' not in page


def test_an_agent_logs_a_phone_inquiry_linked_to_the_caller(db, client, ui_client):
    from kizuna.customers.models import Customer

    known = client.post("/api/v1/customers", json={"email": "caller@example.jp", "phone": "03-1234-5678"}).json()
    c = ui_client("support")
    page = c.get("/inquiries/new").text
    form = {"csrf_token": csrf_of(page), "subject": "請求書の再発行", "body": "先月分をもう一度", "channel": "phone",
            "phone": "0312345678", "priority": "high"}  # fmt: skip
    # Nobody named: refused with the reason, nothing stored.
    refused = c.post("/inquiries/new", data={**form, "phone": ""})
    assert refused.status_code == 422 and "customer_id, an email or a phone" in refused.text
    made = c.post("/inquiries/new", data=form, follow_redirects=False)
    assert made.status_code == 303, made.text
    with db.connect() as conn:
        row = conn.execute(select(Inquiry.customer_id, Inquiry.channel, Inquiry.priority)).one()
    assert tuple(row) == (known["id"], "phone", "high")  # the caller's phone found the customer
    # From the 360 page: the customer is fixed, a visit.
    c360 = c.get(f"/customers/{known['id']}").text
    assert f'href="/inquiries/new?customer_id={known["id"]}"' in c360
    page = c.get(f"/inquiries/new?customer_id={known['id']}").text
    assert 'data-testid="inquiry-customer"' in page and 'name="email"' not in page
    form = {"csrf_token": csrf_of(page), "subject": "店頭で返品の相談", "body": "来店して再度の相談",
            "channel": "visit", "customer_id": str(known["id"]), "priority": "normal"}  # fmt: skip
    again = c.post("/inquiries/new", data=form, follow_redirects=False)
    # The same customer on the same (no) category within the repeat window: added to the open ticket.
    with db.connect() as conn:
        ticket = conn.execute(select(Inquiry.id)).scalar_one()
        assert again.headers["location"] == f"/inquiries/{ticket}"
        bodies = conn.execute(select(InquiryMessage.body).where(InquiryMessage.inquiry_id == ticket)).scalars().all()
        assert any("来店して再度の相談" in b for b in bodies)
        assert conn.execute(select(func.count()).select_from(Customer)).scalar() == 1
    # A viewer may read the desk but not log one.
    assert ui_client("viewer").get("/inquiries/new").status_code == 403


def test_report_shows_hours_and_minutes_and_names_tickets_without_a_category(client, ui_client, session):
    import datetime as dt

    from sqlalchemy import update

    opened = open_ticket(client)
    c = ui_client("support")
    page = c.get(f"/inquiries/{opened['id']}").text
    r = c.post(f"/inquiries/{opened['id']}/reply", data={"csrf_token": csrf_of(page), "body": "確認します"})
    assert r.status_code in (200, 303), r.text[:300]
    # The answer came 2 h 5 min after the ticket opened.
    ticket = session.get(Inquiry, opened["id"])
    session.execute(
        update(Inquiry)
        .where(Inquiry.id == opened["id"])
        .values(first_responded_at=ticket.created_at + dt.timedelta(hours=2, minutes=5))
    )
    session.commit()
    ja = ui_client("manager")
    ja.cookies.set("kizuna_lang", "ja")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", ja.get("/inquiries/report").text))
    assert "2時間5分" in text and "カテゴリなし" in text
    ja.cookies.set("kizuna_lang", "en")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", ja.get("/inquiries/report").text))
    assert "2 h 5 min" in text and "No category" in text


def test_ticket_page_shows_deadlines_as_due_and_each_reply_mails_state(client, ui_client, session):
    from sqlalchemy import update

    from kizuna.messaging.models import Message

    opened = open_ticket(client)
    c = ui_client("support")
    c.cookies.set("kizuna_lang", "ja")
    page = c.get(f"/inquiries/{opened['id']}").text
    assert re.search(r"\d{2}:\d{2}まで", page)  # a deadline not yet met reads as one, not as a done time
    c.post(f"/inquiries/{opened['id']}/reply", data={"csrf_token": csrf_of(page), "body": "確認いたします"})
    page = c.get(f"/inquiries/{opened['id']}").text
    badge = re.search(r'<span class="badge([^"]*)" data-testid="delivery">([^<]+)</span>', page)
    assert badge and badge.group(2) == "送信待ち" and "warn" not in badge.group(1)
    outgoing = session.scalar(
        select(InquiryMessage.outgoing_message_id).where(InquiryMessage.inquiry_id == opened["id"])
        .where(InquiryMessage.direction == "out")
    )  # fmt: skip
    session.execute(update(Message).where(Message.id == outgoing).values(status="failed"))
    session.commit()
    page = c.get(f"/inquiries/{opened['id']}").text
    badge = re.search(r'<span class="badge([^"]*)" data-testid="delivery">([^<]+)</span>', page)
    assert badge and badge.group(2) == "送信失敗" and "warn" in badge.group(1)
