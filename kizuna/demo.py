"""Realistic demo data (Faker ja_JP and en_US), reproducible from a seed: `kizuna demo`."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from faker import Faker
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from kizuna.auth import audit
from kizuna.auth.permissions import Actor
from kizuna.catalog.models import Product
from kizuna.customers.models import Company, Consent, Customer, CustomerIdentity, Note, Tag
from kizuna.db import transaction
from kizuna.errors import ValidationError
from kizuna.events.models import Event
from kizuna.messaging.models import Template
from kizuna.normalize import full_name, normalize_email, normalize_phone
from kizuna.orders.models import Order, OrderLine

DEMO_ADMIN_EMAIL = "admin@kizuna.example"
DEMO_ADMIN_PASSWORD = "kizuna-demo-admin"  # noqa: S105 - printed to the terminal on purpose, demo only
ACTOR = Actor.system("demo")

CATALOG = {
    "コーヒー": (
        ["深煎り", "中煎り", "浅煎り", "フルーティ"],
        ["Kizuna Roasters", "山の珈琲", "Blue Harbor"],
        900,
        2800,
    ),
    "紅茶": (["ストレート", "フレーバー", "ミルク向け"], ["Tea Garden", "茶葉堂"], 700, 2400),
    "日本茶": (["煎茶", "ほうじ茶", "抹茶"], ["茶葉堂", "宇治一番"], 600, 3200),
    "菓子": (["甘口", "ビター", "塩味"], ["和菓子 匠", "Sweet Lab", "Kizuna Roasters"], 300, 1800),
    "調味料": (["甘口", "辛口", "だし"], ["旨味屋", "Sakura Foods"], 400, 1500),
    "器具": (["ベーシック", "プロ仕様"], ["Blue Harbor", "工房 和"], 1500, 12000),
}
SKU_PREFIX = {"コーヒー": "COF", "紅茶": "TEA", "日本茶": "JPT", "菓子": "SWT", "調味料": "SEA", "器具": "EQP"}
TAGS = ["VIP", "B2B", "新規", "休眠", "イベント参加", "newsletter", "sample-request", "店舗会員"]
EVENT_TYPES = {
    "web": ["page_view", "page_view", "page_view", "product_view", "cart_add", "search"],
    "email": ["email_open", "email_open", "email_click"],
    "store": ["store_visit"],
    "call": ["call_inbound", "call_outbound"],
    "sns": ["sns_follow", "sns_mention", "line_message"],
}
STORES = ["渋谷店", "梅田店", "博多店", "札幌店", "オンライン"]


def _phone(rng: random.Random) -> str | None:
    prefix = rng.choice(["090", "080", "070", "03", "06"])
    digits = f"{rng.randrange(10**7, 10**8)}" if len(prefix) == 3 else f"{rng.randrange(10**7, 10**8)}"
    raw = f"{prefix}-{digits[:4]}-{digits[4:]}" if len(prefix) == 3 else f"{prefix}-{digits[:4]}-{digits[4:]}"
    if rng.random() < 0.15:  # some arrive full-width, as typed into Japanese forms
        raw = raw.translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))
    try:
        return normalize_phone(raw)
    except ValidationError:
        return None


def load_demo(
    engine: Engine,
    *,
    customers: int = 5000,
    seed: int = 42,
    console: Console | None = None,
    as_of: dt.date | None = None,
) -> str:
    """Generate demo data into an empty database; returns a one-line summary. Refuses a database with customers."""
    console = console or Console(quiet=True)
    with transaction(engine) as session:
        existing = session.scalar(select(func.count()).select_from(Customer)) or 0
    if existing:
        return f"demo data not loaded: the database already has {existing:,} customers"

    rng = random.Random(seed)
    fakes = {"ja": Faker("ja_JP"), "en": Faker("en_US")}
    for i, fake in enumerate(fakes.values()):
        fake.seed_instance(seed + i)
    end = dt.datetime.combine(as_of or dt.date.today(), dt.time(), tzinfo=dt.UTC)
    start = end - dt.timedelta(days=730)

    def moment(after: dt.datetime, until: dt.datetime | None = None) -> dt.datetime:
        span = max(1, int(((until or end) - after).total_seconds()))
        return after + dt.timedelta(seconds=rng.randrange(span))

    with transaction(engine) as session, Progress(console=console, transient=True) as bar:
        task = bar.add_task("demo data", total=customers * 2)
        products: list[Product] = []
        for category, (tastes, brands, low, high) in CATALOG.items():
            for n in range(rng.randint(8, 12)):
                taste, brand = rng.choice(tastes), rng.choice(brands)
                price = Decimal(rng.randrange(low, high, 10))
                products.append(
                    Product(
                        sku=f"{SKU_PREFIX[category]}-{len(products) + 1:04d}",
                        currency="JPY",
                        price=price,
                        name=f"{brand} {category} {taste} No.{n + 1}",
                        category=category,
                        taste=taste,
                        brand=brand,
                        attributes={},
                    )
                )
        session.add_all(products)

        companies = []
        for i in range(max(1, customers // 20)):
            fake = fakes["ja" if rng.random() < 0.8 else "en"]
            companies.append(
                Company(
                    external_id=f"C{i + 1:05d}",
                    name=fake.company(),
                    industry=rng.choice(["小売", "飲食", "製造", "IT", "商社", "ホテル"]),
                    attributes={},
                )
            )
        session.add_all(companies)
        tags = [Tag(name=t) for t in TAGS]
        session.add_all(tags)
        session.flush()

        people: list[Customer] = []
        seen: set[str] = set()
        for i in range(customers):
            lang = "ja" if rng.random() < 0.8 else "en"
            fake = fakes[lang]
            created = start + dt.timedelta(seconds=rng.randrange(int((end - start).total_seconds() * 0.9)))
            if lang == "ja":
                family, family_kana, family_roman = fake.last_name_pair()
                female = rng.random() < 0.55
                given, given_kana, given_roman = (
                    fake.first_name_female_pair() if female else fake.first_name_male_pair()
                )
                local = f"{given_roman}.{family_roman}".lower()
                address = {
                    "postal_code": fake.zipcode(),
                    "prefecture": fake.prefecture(),
                    "city": fake.city(),
                    "address_line": f"{fake.town()}{fake.chome()}{fake.ban()}",
                    "country": "JP",
                }
                zone = "Asia/Tokyo"
            else:
                female = rng.random() < 0.5
                given = fake.first_name_female() if female else fake.first_name_male()
                family, family_kana, given_kana = fake.last_name(), None, None
                local = f"{given}.{family}".lower()
                address = {
                    "postal_code": fake.postcode(),
                    "prefecture": fake.state(),
                    "city": fake.city(),
                    "address_line": fake.street_address(),
                    "country": "US",
                }
                zone = rng.choice(["America/New_York", "America/Los_Angeles", "Asia/Tokyo"])
            email = normalize_email(f"{local}{i}@{fake.safe_domain_name()}")
            while email in seen:
                email = normalize_email(f"{local}{i}x{rng.randrange(1000)}@{fake.safe_domain_name()}")
            seen.add(email or "")
            phone = _phone(rng) if rng.random() < 0.85 else None
            if phone in seen:
                phone = None
            seen.add(phone or "")
            customer = Customer(
                external_id=f"M{i + 1:07d}",
                email=email,
                phone=phone,
                family_name=family,
                given_name=given,
                family_name_kana=family_kana,
                given_name_kana=given_kana,
                full_name=full_name(family, given),
                full_name_kana=full_name(family_kana, given_kana) or None,
                birth_date=fake.date_of_birth(minimum_age=18, maximum_age=80),
                gender="female" if female else "male",
                company_id=rng.choice(companies).id if rng.random() < 0.3 else None,
                lifecycle_stage=rng.choices(["customer", "lead", "prospect", "former"], [70, 15, 10, 5])[0],
                timezone=zone,
                locale=lang,
                source=rng.choice(["web", "store", "event", "import"]),
                attributes={"member_rank": rng.choice(["bronze", "silver", "gold"])},
                created_at=created,
                updated_at=created,
                **address,
            )
            customer.tags = rng.sample(tags, k=rng.choice([0, 0, 1, 1, 2]))
            people.append(customer)
            bar.advance(task)
        session.add_all(people)
        session.flush()

        identities = [
            {"customer_id": c.id, "kind": kind, "value": value, "created_at": c.created_at}
            for c in people
            for kind, value in (("email", c.email), ("phone", c.phone), ("external_id", c.external_id))
            if value
        ]
        session.execute(insert(CustomerIdentity), identities)

        consents: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        orders = 0
        for c in people:
            if rng.random() < 0.65:
                at = c.created_at
                consents.append(
                    {
                        "customer_id": c.id,
                        "channel": "email",
                        "purpose": "marketing",
                        "status": "granted",
                        "method": rng.choice(["web_form", "store_signup", "business_card"]),
                        "evidence": "会員登録フォーム: メールマガジンを受け取る (v2024-04)",
                        "recorded_at": at,
                        "recorded_by": ACTOR.label,
                    }
                )
                if rng.random() < 0.08:
                    consents.append(
                        {
                            "customer_id": c.id,
                            "channel": "email",
                            "purpose": "marketing",
                            "status": "withdrawn",
                            "method": "unsubscribe_link",
                            "evidence": "one-click unsubscribe (RFC 8058)",
                            "recorded_at": moment(at),
                            "recorded_by": ACTOR.label,
                        }
                    )
            if c.locale == "ja" and rng.random() < 0.35:
                consents.append(
                    {
                        "customer_id": c.id,
                        "channel": "line",
                        "purpose": "marketing",
                        "status": "granted",
                        "method": "line_friend_add",
                        "evidence": "LINE 友だち追加",
                        "recorded_at": moment(c.created_at),
                        "recorded_by": ACTOR.label,
                    }
                )
            # A heavy tail: most customers buy once or twice, a few are regulars.
            n_orders = min(40, int(rng.paretovariate(1.3))) if rng.random() < 0.85 else 0
            favourite = rng.choice(list(CATALOG))
            # Most customers stop buying at some point (what CLV's churn model learns from); some stay active.
            active_until = end if rng.random() < 0.35 else moment(c.created_at)
            for _ in range(n_orders):
                ordered = moment(c.created_at, active_until)
                order = Order(
                    customer_id=c.id,
                    ordered_at=ordered,
                    external_id=f"O{orders + 1:08d}",
                    status=rng.choices(["completed", "cancelled", "returned"], [94, 4, 2])[0],
                    channel=rng.choice(["web", "store", "store", "phone"]),
                    store=rng.choice(STORES),
                    currency="JPY",
                    attributes={},
                )
                total = Decimal(0)
                for line_no in range(1, rng.choice([1, 1, 2, 2, 3, 4]) + 1):
                    pool = [p for p in products if p.category == favourite] if rng.random() < 0.6 else products
                    product = rng.choice(pool)
                    quantity = rng.choice([1, 1, 1, 2, 3])
                    amount = (product.price or Decimal(0)) * quantity
                    total += amount
                    order.lines.append(
                        OrderLine(
                            customer_id=c.id,
                            line_no=line_no,
                            product_id=product.id,
                            sku=product.sku,
                            quantity=quantity,
                            unit_price=product.price,
                            amount=amount,
                        )
                    )
                order.total_amount = total
                session.add(order)
                orders += 1
            for _ in range(int(rng.expovariate(1 / 18))):
                channel = rng.choices(list(EVENT_TYPES), [55, 25, 8, 5, 7])[0]
                kind = rng.choice(EVENT_TYPES[channel])
                props: dict[str, Any] = {}
                if kind in ("page_view", "product_view"):
                    props = {
                        "path": rng.choice(
                            [
                                "/",
                                "/products",
                                f"/products/{rng.choice(products).sku}",
                                "/campaign/spring",
                                "/blog/brewing",
                            ]
                        )
                    }
                elif kind.startswith("email"):
                    props = {"campaign": rng.choice(["spring_sale", "newsletter_05", "new_arrivals"])}
                elif kind == "store_visit":
                    props = {"store": rng.choice(STORES[:-1])}
                elif kind.startswith("call"):
                    props = {"minutes": rng.randint(1, 25), "topic": rng.choice(["注文", "配送", "返品", "商品相談"])}
                events.append(
                    {
                        "customer_id": c.id,
                        "type": kind,
                        "channel": channel,
                        "occurred_at": moment(c.created_at),
                        "received_at": end,
                        "source": "demo",
                        "properties": props,
                    }
                )
            bar.advance(task)
        session.execute(insert(Consent), consents)
        session.flush()
        for chunk in range(0, len(events), 20_000):
            session.execute(insert(Event), events[chunk : chunk + 20_000])
        notes = [
            Note(
                customer_id=c.id,
                body=rng.choice(
                    [
                        "電話で新商品の問い合わせ。サンプル送付済み。",
                        "店舗で試飲。深煎りを好む。",
                        "Asked about wholesale pricing; follow up next month.",
                    ]
                ),
            )
            for c in rng.sample(people, k=min(len(people), max(1, customers // 25)))
        ]
        session.add_all(notes)
        summary = (
            f"demo data: {customers:,} customers, {len(companies):,} companies, {len(products)} products, "
            f"{orders:,} orders, {len(events):,} events, {len(consents):,} consent records (seed {seed})"
        )
        audit.record(session, actor=ACTOR, action="demo.load", entity_type="database", summary=summary)
    _compute_metrics(engine)
    _marketing_examples(engine)
    _sales_examples(engine, seed)
    from kizuna.demo_service import service_examples

    return f"{summary}; {service_examples(engine, seed, end)}"


def _marketing_examples(engine: Engine) -> None:
    """A segment, templates, a live welcome journey and a draft A/B campaign, so the marketing pages show how
    they work. Nothing is sent until SMTP is configured (KIZUNA_SMTP_URL or the email settings page)."""
    from kizuna.campaigns import service as campaigns
    from kizuna.campaigns.schemas import ABTest, CampaignCreate, Variant
    from kizuna.journeys import service as journeys
    from kizuna.messaging import service as messaging
    from kizuna.messaging.schemas import TemplateCreate
    from kizuna.segments import service as segments
    from kizuna.segments.schemas import SegmentCreate

    with transaction(engine) as session:
        rule = {"attribute": "prefecture", "op": "eq", "value": "東京都"}
        tokyo = segments.create_segment(
            session, actor=ACTOR, data=SegmentCreate(name="東京都のお客様", description="デモ", rule=rule)
        )
        segments.refresh(session, tokyo.id, actor=ACTOR)
        welcome = TemplateCreate(
            name="ようこそメール",
            subject="{{ customer.family_name | default('お客様') }}様、ご登録ありがとうございます",
            html="<p>{{ customer.family_name | default('お客様') }}様</p><p>絆ストアへようこそ。"
            '<a href="https://shop.example.com/new">新商品はこちら</a></p>',
        )
        sale = TemplateCreate(
            name="冬のセールのご案内",
            subject="冬のセール開催中",
            html="<p>{{ customer.family_name | default('お客様') }}様</p><p>冬のセールを開催中です。"
            '<a href="https://shop.example.com/sale">セール会場へ</a></p>',
        )
        for data in (welcome, sale):
            messaging.create_template(session, actor=ACTOR, data=data)
        session.flush()
        definition = {
            "name": "ようこそシリーズ",
            "description": "東京都のセグメントに入ったお客様へ、1日後にようこそメール(同意のある方のみ)",
            "trigger": {"type": "segment_entered", "segment": tokyo.id},
            "start": "wait",
            "steps": [
                {"id": "wait", "type": "wait", "duration": {"days": 1}, "next": "consent"},
                {"id": "consent", "type": "branch", "condition": {"consent": {"channel": "email"}},
                 "yes": "mail", "no": "done"},
                {"id": "mail", "type": "send", "channel": "email", "template": "ようこそメール", "next": "tag"},
                {"id": "tag", "type": "tag", "add": ["welcomed"], "next": "done"},
                {"id": "done", "type": "exit"},
            ],
            "goal": {"event": "order.completed", "within_days": 30},
            "layout": {"wait": {"x": 240, "y": 20}, "consent": {"x": 240, "y": 120}, "mail": {"x": 240, "y": 220},
                       "tag": {"x": 240, "y": 320}, "done": {"x": 240, "y": 420}},
        }  # fmt: skip
        journeys.apply(session, actor=ACTOR, definition=definition)
        template_id = session.scalar(select(Template.id).where(Template.name == "冬のセールのご案内"))
        ab = ABTest(variants=[Variant(name="A", subject="冬のセール開催中"), Variant(name="B", subject="最大30%オフ")])
        campaigns.create_campaign(
            session,
            actor=ACTOR,
            data=CampaignCreate(name="冬のセール", segment_id=tokyo.id, template_id=template_id, ab_test=ab),
        )


def _sales_examples(engine: Engine, seed: int) -> None:
    """Deals across the default pipeline's stages (some won, one lost), so the board and the forecast to come
    have something to show."""
    from kizuna.sales import deals, pipelines
    from kizuna.sales.schemas import DealCreate
    from kizuna.sales.scoring import service as scoring

    rng = random.Random(seed + 7)
    today = dt.date.today()
    with transaction(engine) as session:
        pipeline = pipelines.default_pipeline(session)
        stages = pipelines.stages_of(session, pipeline.id)
        companies = list(session.scalars(select(Company).order_by(Company.id).limit(12)))
        subjects = ["年間契約", "新店舗向けギフト", "法人向けコーヒー定期便", "Office coffee plan", "ケータリング"]
        for n, company in enumerate(companies):
            stage = stages[n % len(stages)]
            lost = stage.kind == "lost"
            deals.create_deal(
                session,
                actor=ACTOR,
                data=DealCreate(
                    name=f"{company.name} {rng.choice(subjects)}",
                    company_id=company.id,
                    stage_id=stage.id,
                    amount=Decimal(rng.randrange(20, 400) * 10_000),
                    expected_close_date=today + dt.timedelta(days=rng.randrange(-20, 90)),
                    lost_reason="価格が予算に合わなかった" if lost else None,
                ),
            )
        # Twelve deals are far from the 50 closed ones a model needs: the call-first list starts from the
        # editable rule scores, as a new team's would.
        scoring.rescore(session, actor=ACTOR)


def _compute_metrics(engine: Engine) -> None:
    """RFM, deciles, top categories and CLV for the demo's customers, as the worker's daily run would leave
    them, so the 360 pages and segments show them at once (the rows above were written without events)."""
    import contextlib

    from kizuna.analytics.clv import NotEnoughData
    from kizuna.analytics.clv_models import ModelFitError
    from kizuna.analytics.service import refresh_with, save_clv_with

    refresh_with(engine)
    with contextlib.suppress(NotEnoughData, ModelFitError):
        save_clv_with(engine)
