"""Every UI page a GET reaches, in a real Chromium, in both languages, on a phone and on a desktop: nothing
overflows sideways and axe-core finds no serious or critical accessibility violation.

The pages are the UI router's GET routes, enumerated, so that a page added later is covered without touching
this file; its path parameters are filled with the ids of demo rows made below. A route with a parameter this
file cannot fill fails with the route's name: add a row for it to ``demo_rows`` and its name to ``fill``.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from axe_playwright_python.base import AXE_SCRIPT
from sqlalchemy.engine import Engine

from kizuna.customers import duplicates
from kizuna.customers import service as customers
from kizuna.customers.schemas import CompanyCreate, CustomerUpdate, NoteCreate
from kizuna.db import transaction
from kizuna.imports import jobs as import_jobs
from kizuna.messaging.linking import make_token
from kizuna.web.ui_base import UIRoute
from tests import factories
from tests.web.test_ui_browser import seed_customer_360

pytestmark = pytest.mark.browser

WIDTHS = (390, 1400)
LANGS = ("ja", "en")
# Pages reached only through an error: they must be as usable as the others.
EXTRA_PATHS = {"not-found page": "/nope", "bad id page": "/customers/abc"}
BLOCKING = ("serious", "critical")
# GET routes of the UI that are not pages (data polled by a page's script, downloads, vendored scripts), with
# the content type each answers; every other GET route must be a page.
NOT_PAGES = {
    "progress": "application/json",
    "rejects": "text/csv",
    "plotly_js": "text/javascript",
    "rfm_csv": "text/csv",
    "deciles_csv": "text/csv",
    "cohorts_csv": "text/csv",
    "ctb_csv": "text/csv",
    "ctb_groups_csv": "text/csv",
    "ctb_likely_csv": "text/csv",
    "clv_csv": "text/csv",
    "clv_alive_csv": "text/csv",
    "clv_customers_csv": "text/csv",
    "campaign_csv": "text/csv",
    "journey_counts": "application/json",
    "journey_steps_csv": "text/csv",
    "journey_paths_csv": "text/csv",
    "journey_variants_csv": "text/csv",
    "suppressions_csv": "text/csv",
    "template_preview_html": "text/html",
    "open_pixel": "image/gif",
    "click": "redirect",
    "chats_waiting": "application/json",
}


def demo_rows(engine: Engine) -> dict[str, Any]:
    """One row of each kind a page can be about; returns path parameter name -> value."""
    customer_id = seed_customer_360(engine)
    with transaction(engine) as s:
        company = customers.create_company(
            s,
            actor=factories.SYSTEM,
            data=CompanyCreate(name="株式会社テスト商事", domain="test-shoji.example.jp", prefecture="東京都"),
        )
        customers.update_customer(
            s,
            actor=factories.SYSTEM,
            customer_id=customer_id,
            data=CustomerUpdate(company_id=company.id, email="hanako.sato.very.long.address@subdomain.example.co.jp"),
            expected_version=None,
        )
        customers.add_note(
            s,
            actor=factories.SYSTEM,
            customer_id=customer_id,
            data=NoteCreate(
                body="電話で確認済み。\n次回は表参道店で試飲。\nhttps://example.jp/a/very/long/url/without/spaces/0123456789"
            ),
        )
        other = factories.user(s, email="sales@example.com", role="sales", name="営業 一郎")
        job = import_jobs.upload(
            s,
            actor=factories.SYSTEM,
            kind="customers",
            file_name="顧客リスト.csv",
            stream=io.BytesIO("姓,名,メールアドレス\n山田,花子,hanako@example.jp\n".encode("cp932")),
        )
        twin = factories.customer(s, family_name="佐藤", given_name="花子", email="hanako.sato@example.com")
        pair = duplicates.propose(s, customer_id, twin.id, "same name_phone")
        s.flush()
        from kizuna.segments import service as segments
        from kizuna.segments.schemas import SegmentCreate

        rule = {"any": [{"attribute": "prefecture", "op": "eq", "value": "東京都"}, {"tag": "VIP"}]}
        segment = segments.create_segment(
            s, actor=factories.SYSTEM, data=SegmentCreate(name="東京都またはVIPのお客様（長い名前の例）", rule=rule)
        )
        segments.refresh(s, segment.id, actor=factories.SYSTEM)
        from kizuna.messaging import service as messaging
        from kizuna.messaging import unsubscribe
        from kizuna.messaging.schemas import TemplateCreate

        template = messaging.create_template(
            s,
            actor=factories.SYSTEM,
            data=TemplateCreate(
                name="春のセールのお知らせ",
                subject="{{ customer.given_name | default('お客様') }}さんへ",
                html="<p>{{ customer.family_name }}様</p>",
            ),
        )
        message = factories.message(s, customer_id=customer_id, key="every-page", template_id=template.id)
        s.flush()
        campaign_id = demo_campaign(s, segment.id)
        journey_id = _demo_journey(s, customer_id)
        from kizuna.messaging import webhook_admin
        from kizuna.webhooks import service as webhooks

        endpoint, _ = webhook_admin.create_endpoint(
            s, actor=factories.SYSTEM, name="erp-sync", url="https://93.184.215.14/hooks/kizuna"
        )
        webhooks.create_subscription(
            s, actor=factories.SYSTEM, endpoint_id=endpoint.id, events=["customer.created", "order.completed"]
        )
        deal_id = demo_deal(s, customer_id, company.id, other.id)
        from kizuna.fields import service as custom_fields
        from kizuna.fields.schemas import CustomFieldCreate
        from kizuna.sales import pipelines

        pipeline_id = pipelines.default_pipeline(s).id
        # A choice field with a long label: every customer form and page of the walk shows it.
        field = custom_fields.create_field(
            s,
            actor=factories.SYSTEM,
            data=CustomFieldCreate(
                entity="customer",
                key="preferred_store",
                type="choice",
                label="よく利用する店舗（長い項目名の例）",
                label_en="Preferred store",
                choices=["表参道店", "梅田店"],
            ),
        )
        inquiry_id = demo_inquiry(s, customer_id)
        from kizuna.chat import service as chats
        from kizuna.chat.schemas import ChatStart, MessageIn
        from kizuna.knowledge import service as knowledge
        from kizuna.knowledge.schemas import ArticleCreate

        article = knowledge.create_article(
            s, actor=factories.SYSTEM, data=ArticleCreate(
                title="送料について（長いタイトルの例: 沖縄・離島への配送を含む）", body="送料は全国一律550円です。",
                language="ja", tags=["配送"]),
        )  # fmt: skip
        chat, _, _ = chats.start_chat(s, data=ChatStart(language="ja"))
        chats.post_message(s, chat=chat, data=MessageIn(text="担当者と話したい"))
    survey_id, survey_token = demo_survey(engine, customer_id, segment.id)
    from kizuna.journeys import engine as journey_engine

    journey_engine.run_until_idle(engine)
    return {
        "customer_id": customer_id,
        "company_id": company.id,
        "user_id": other.id,
        "job_id": job.id,
        "pair_id": pair.id,
        "segment_id": segment.id,
        "campaign_id": campaign_id,
        # The public page a customer's signed LINE link opens.
        "link_token": make_token(customer_id),
        "journey_id": journey_id,
        "template_id": template.id,
        "message_id": message.id,
        "token": unsubscribe.token(message.id),
        "endpoint_id": endpoint.id,
        "deal_id": deal_id,
        "pipeline_id": pipeline_id,
        "field_id": field.id,
        "inquiry_id": inquiry_id,
        "survey_id": survey_id,
        # The public page a customer's NPS link opens.
        "survey_token": survey_token,
        "article_id": article.id,
        "chat_id": chat.id,
    }


def demo_inquiry(s: Any, customer_id: int) -> int:
    """An inquiry with a category, a macro and a note, so the queue, the ticket and the report have rows."""
    from kizuna.inquiries import service as inquiries
    from kizuna.inquiries import setup as inquiry_setup
    from kizuna.inquiries.schemas import CategoryIn, InquiryCreate, MacroIn, ReplyCreate

    inquiry_setup.create_category(s, actor=factories.SYSTEM, data=CategoryIn(name="配送", name_en="Shipping"))
    inquiry_setup.create_macro(s, actor=factories.SYSTEM, data=MacroIn(name="お詫び", body="ご迷惑をおかけしました。"))
    inquiry = inquiries.create_inquiry(
        s,
        actor=factories.SYSTEM,
        data=InquiryCreate(
            subject="商品が届かない（長い件名の例）",
            body="注文から一週間たちました。",
            customer_id=customer_id,
            category="配送",
        ),
    )
    inquiries.reply(s, actor=factories.SYSTEM, inquiry_id=inquiry.id, data=ReplyCreate(body="確認します", note=True))
    return inquiry.id


def demo_survey(engine: Engine, customer_id: int, segment_id: int) -> tuple[int, str]:
    """An NPS survey with a commented answer (its report, chart and comments) and a link's token."""
    from kizuna.surveys import links
    from kizuna.surveys import service as surveys
    from kizuna.surveys.schemas import SurveyCreate

    with transaction(engine) as s:
        data = SurveyCreate(
            name="購入後アンケート（長い名前の例）", question_ja="友人に薦める可能性は?", question_en="How likely?",
            touchpoint="purchase",
        )  # fmt: skip
        survey = surveys.create_survey(s, actor=factories.SYSTEM, data=data)
        found = surveys.make_links(
            s,
            actor=factories.SYSTEM,
            survey_id=survey.id,
            customer_id=customer_id,
            base_url="http://x",
            send_key="demo",
        )
        token = found.links[0].url.split("/nps/")[1].split("?")[0]
        surveys.answer(s, token, score=3, comment="配送がとても遅く、連絡もありませんでした。" * 3)
        assert links.read(token).survey_id == survey.id
        return survey.id, token


def demo_deal(s: Any, customer_id: int, company_id: int, owner_id: int) -> int:
    """A deal moved twice, with an activity and a task, so the board, the deal page and the 360 panel have rows."""
    import datetime as dt

    from kizuna.sales import activities, deals, pipelines
    from kizuna.sales.schemas import ActivityCreate, DealCreate, TaskCreate

    stages = pipelines.stages_of(s, pipelines.default_pipeline(s).id)
    data = DealCreate(
        name="基幹システム刷新プロジェクト（長い名前の例）", customer_id=customer_id, company_id=company_id,
        amount=12_345_678, expected_close_date=dt.date(2030, 3, 31), owner_id=owner_id,
    )  # fmt: skip
    deal = deals.create_deal(s, actor=factories.SYSTEM, data=data)
    deals.move_deal(s, actor=factories.SYSTEM, deal_id=deal.id, stage_id=stages[1].id)
    deals.move_deal(s, actor=factories.SYSTEM, deal_id=deal.id, stage_id=stages[2].id)
    activities.log_activity(
        s, actor=factories.SYSTEM, data=ActivityCreate(kind="visit", subject="決裁者と面談", deal_id=deal.id)
    )
    due = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    activities.create_task(
        s, actor=factories.SYSTEM, data=TaskCreate(title="見積書を送る", deal_id=deal.id, owner_id=owner_id, due_at=due)
    )
    return deal.id


def demo_campaign(s: Any, segment_id: int) -> int:
    """A launched campaign with an A/B test on subjects, so its page has variants, a chart and numbers."""
    from kizuna.campaigns import service as campaigns
    from kizuna.campaigns.schemas import ABTest, CampaignCreate, Variant
    from kizuna.messaging.models import Template

    template = Template(name="冬のセールのご案内", channel="email", subject="冬のセール", html="<p>Hi</p>", text="Hi")
    s.add(template)
    s.flush()
    ab = ABTest(variants=[Variant(name="A", subject="冬のセール開催中"), Variant(name="B", subject="最大50%オフ")])
    data = CampaignCreate(name="冬のセール（A/Bテスト）", segment_id=segment_id, template_id=template.id, ab_test=ab)
    campaign = campaigns.create_campaign(s, actor=factories.SYSTEM, data=data)
    campaigns.schedule(s, campaign.id, actor=factories.SYSTEM)
    s.flush()
    campaigns.launch(s, campaign.id, actor=factories.SYSTEM)
    return campaign.id


def _demo_journey(session: Any, customer_id: int) -> int:
    """A live journey with a split, a send and a holdout, one customer in it (the builder and its numbers)."""
    from kizuna.journeys import service as journeys
    from kizuna.messaging.models import Template

    session.add(Template(name="ようこそメール", channel="email", subject="ようこそ", text="こんにちは"))
    session.flush()
    definition = {
        "name": "新規のお客様へのウェルカムシナリオ（長い名前の例）",
        "trigger": {"type": "manual"},
        "goal": {"event": "order.completed", "within_days": 30},
        "start": "wait",
        "steps": [
            {"id": "wait", "type": "wait", "duration": "P0D", "next": "split"},
            {"id": "split", "type": "split", "holdout": 10, "variants": [
                {"name": "A", "weight": 50, "next": "mail"}, {"name": "B", "weight": 50, "next": "tag"}]},
            {"id": "mail", "type": "send", "template": "ようこそメール", "next": "end"},
            {"id": "tag", "type": "tag", "add": ["ウェルカム"], "next": "end"},
            {"id": "end", "type": "exit"},
        ],
    }  # fmt: skip
    applied = journeys.apply(session, actor=factories.SYSTEM, definition=definition)
    journeys.enroll_customers(session, applied.journey.id, actor=factories.SYSTEM, customer_ids=[customer_id])
    return applied.journey.id


def ui_get_routes(router: Any = None) -> list[UIRoute]:
    """The GET routes of the UI router and of every router included in it (no prefixes are used there)."""
    from kizuna.web.ui import router as ui_router

    found: list[UIRoute] = []
    for route in (router or ui_router).routes:
        if isinstance(route, UIRoute) and "GET" in (route.methods or set()):
            found.append(route)
        # FastAPI keeps an included router as one entry holding the original (kept lazily since 0.16x).
        included = getattr(route, "original_router", None)
        if included is not None:
            found.extend(ui_get_routes(included))
    return found


def fill(route: UIRoute, rows: dict[str, Any], lang: str) -> str:
    values = {**rows, "lang": lang}
    missing = [name for name in route.param_convertors if name not in values]
    if missing:
        pytest.fail(
            f"route '{route.name}' ({route.path}) has path parameters {missing} that this test cannot fill: "
            "add a demo row for them in tests/web/test_every_page_browser.py"
        )
    path = route.path_format
    for name, value in values.items():
        path = path.replace("{" + name + "}", str(value))
    return path


def blocking_violations(page: Any, *, contrast: bool = True) -> list[str]:
    """axe-core's serious and critical violations on the open page; ``contrast=False`` leaves out its colour
    contrast rule, half of axe's time on a page."""
    page.evaluate(AXE_SCRIPT)
    rules = "" if contrast else ", rules: {'color-contrast': {enabled: false}}"
    options = "{resultTypes: ['violations']" + rules + "}"
    result = page.evaluate(f"axe.run(document, {options})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]


def overflow(page: Any) -> tuple[int, int]:
    return page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")


# Layout and accessibility do not depend on the database, and this walk is the suite's slowest test (about three
# minutes a backend): it runs on SQLite only, and one test per language and width, so that the suite's workers
# share it instead of one worker walking every page while the others wait. The pages' data paths run on both
# backends in the HTTP tests.
# Each language and width is walked in PARTS halves (every other page, by name): at 70-90 s a walk, whole walks
# were the last tests still running on one worker while the others had finished.
PARTS = 2


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
@pytest.mark.parametrize("part", range(PARTS))
@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("width", WIDTHS)
def test_every_ui_page_fits_a_phone_and_passes_axe_in_both_languages(live_server, sign_in, db, lang, width, part):
    rows = demo_rows(db)
    page = sign_in("admin")
    # The walk checks layout and accessibility, not speed (benchmarks/ui_pages.py does): an analytics page's
    # first DuckDB run beside the Spark parity test on the same two cores once took over the default 10 s.
    page.set_default_navigation_timeout(30_000)
    routes = ui_get_routes()
    assert len(routes) >= 8, "the UI router's GET routes were not found"
    assert set(NOT_PAGES) <= {r.name for r in routes}, "NOT_PAGES names a route that no longer exists"
    problems: list[str] = []
    seen = 0
    page.goto(f"{live_server}/lang/{lang}?next=/customers")
    page.set_viewport_size({"width": width, "height": 900})
    targets = {r.name: fill(r, rows, lang) for r in routes if r.name not in NOT_PAGES}
    targets.update(EXTRA_PATHS)
    targets = {name: targets[name] for n, name in enumerate(sorted(targets)) if n % PARTS == part}
    for name, path in targets.items():
        page.goto(f"{live_server}{path}")
        seen += 1
        where = f"{name} {path} [{lang}, {width}px]"
        html_lang = page.evaluate("document.documentElement.lang")
        if html_lang != lang:
            problems.append(f"{where}: shown in '{html_lang}'")
        scroll, inner = overflow(page)
        if scroll > inner:
            problems.append(f"{where}: {scroll}px wide in a {inner}px window")
        # Colours are the same at both widths (no media query changes one): contrast is checked on the phone.
        problems.extend(f"{where}: {v}" for v in blocking_violations(page, contrast=width == min(WIDTHS)))
    assert not problems, f"{len(problems)} problems on {seen} page views:\n" + "\n".join(problems)


def test_note_keeps_its_line_breaks_and_a_blank_note_is_refused_next_to_the_field(live_server, sign_in, db):
    with transaction(db) as s:
        customer_id = factories.customer(s).id
    page = sign_in("admin")
    page.goto(f"{live_server}/lang/ja?next=/customers/{customer_id}")
    page.set_viewport_size({"width": 390, "height": 900})
    page.get_by_label("新しいメモ").fill("   ")
    page.get_by_test_id("note-form").locator("button[type=submit]").click()
    assert page.get_by_test_id("error-body").inner_text() == "文字を入力してください（空白だけでは保存できません）。"
    page.get_by_label("新しいメモ").fill("一行目\n①㈱ｶﾀｶﾅ！")
    page.get_by_test_id("note-form").locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf".*/customers/{customer_id}#timeline"))
    note = page.locator(".note-body").first
    assert note.inner_text() == "一行目\n①㈱ｶﾀｶﾅ！"
    scroll, inner = overflow(page)
    assert scroll <= inner
