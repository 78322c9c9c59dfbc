"""The demo's service side: a support team, desk tickets in every state, NPS answers over a year, FAQ articles
and a few website chats, so that the desk, NPS and chat pages show how they work on the first visit.

Everything goes through the services (claims, replies, the bot's retrieval, signed survey links) and is then
moved back in time, as a team's past weeks would have left it. Agents' replies are queued as service mail like
any reply: nothing leaves the machine until SMTP is configured, and the demo's addresses are on reserved
example domains, so nothing can reach a real person even then.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.customers.models import Customer
from kizuna.db import transaction
from kizuna.orders.models import Order

ACTOR = Actor.system("demo")

AGENTS = [("sato.misaki@kizuna.example", "佐藤 美咲"), ("alex.kim@kizuna.example", "Alex Kim")]

CATEGORIES = [
    ("配送", "Delivery"),
    ("返品・交換", "Returns"),
    ("お支払い", "Payment"),
    ("定期便", "Subscription"),
    ("商品について", "Products"),
    ("法人のご注文", "Business orders"),
]

MACROS = [
    (
        "お詫びと再送のご案内",
        "配送",
        "このたびはご迷惑をおかけし申し訳ございません。\n本日、代わりの商品を発送いたしました。"
        "到着まで今しばらくお待ちください。",
    ),
    (
        "返品手順のご案内",
        "返品・交換",
        "お問い合わせありがとうございます。\n未開封の商品は到着から8日以内であれば返品を承ります。"
        "マイページの「注文履歴」から返品をお申し込みください。",
    ),
    (
        "定期便のお休み方法",
        "定期便",
        "定期便は次回お届け日の5日前まで、マイページの「定期便」から1回単位でお休みいただけます。",
    ),
]

# subject, body, category, priority, channel, days ago, state, agent (index into AGENTS or None). Two unclaimed
# tickets are old enough (5 and 6 days, so at least 3 working days whatever the weekday) to be overdue on any day
# the demo is loaded: the desk's warning has something to show.
TICKETS: list[tuple[str, str, str, str, str, float, str, int | None]] = [
    ("注文した商品がまだ届きません", "3日前に注文したコーヒー豆がまだ届いていません。配送状況を教えてください。",
     "配送", "high", "email", 0.2, "new", None),
    ("届いたドリッパーが割れていました", "本日届いた器具セットのドリッパーが割れていました。交換をお願いできますか。",
     "返品・交換", "urgent", "web_form", 0.1, "new", None),
    ("領収書の宛名を変更したい", "先週の注文の領収書を会社名で発行し直していただけますか。",
     "お支払い", "normal", "email", 5.0, "new", None),
    ("Do you ship to Singapore?", "I'd like to order the tea sampler as a gift for a friend in Singapore.",
     "配送", "low", "web_form", 6.0, "new", None),
    ("定期便を1回お休みしたい", "来月は出張のため、定期便を1回スキップしたいです。",
     "定期便", "normal", "phone", 0.6, "open", 0),
    ("カフェインレスの商品はありますか", "妊娠中でも飲めるカフェインレスのコーヒーか紅茶を探しています。",
     "商品について", "normal", "web_form", 0.9, "open", 1),
    ("法人向けの請求書払いについて", "オフィス用に毎月まとめて購入したいのですが、請求書払いは可能でしょうか。",
     "法人のご注文", "high", "email", 1.2, "open", 0),
    ("違う味の紅茶が届いた", "アールグレイを注文しましたが、ダージリンが届きました。",
     "返品・交換", "high", "email", 3.0, "pending", 0),
    ("Change my delivery address", "Please send my next subscription box to my new office address.",
     "定期便", "normal", "email", 4.0, "pending", 1),
    ("ポイントが付与されていません", "先月の購入分のポイントがまだ反映されていないようです。",
     "お支払い", "normal", "phone", 5.0, "pending", 1),
    ("配達日時を指定したい", "土曜日の午前中に届くようにできますか。", "配送", "low", "web_form", 8.0, "resolved", 0),
    ("抹茶の賞味期限について", "開封後はどのくらい日持ちしますか。",
     "商品について", "low", "email", 11.0, "resolved", 1),
    ("クーポンが使えません", "メールで届いたクーポンコードを入力するとエラーになります。",
     "お支払い", "high", "web_form", 13.0, "resolved", 0),
    ("ギフト包装をお願いしたい", "母の日用にのし付きで包装していただけますか。",
     "配送", "normal", "phone", 16.0, "closed", 0),
    ("Wholesale price list", "Could you send your wholesale price list for cafés?",
     "法人のご注文", "normal", "email", 19.0, "closed", 1),
    ("返品の返金はいつですか", "先週返品した商品の返金時期を教えてください。",
     "返品・交換", "normal", "email", 23.0, "closed", 1),
]  # fmt: skip

REPLIES = {
    "配送": "お問い合わせありがとうございます。お届け状況を確認のうえ、追跡番号をお送りいたします。",
    "返品・交換": "ご迷惑をおかけし申し訳ございません。交換品の手配をいたします。",
    "お支払い": "お問い合わせありがとうございます。経理担当で確認し、本日中にご連絡いたします。",
    "定期便": "承知いたしました。ご希望のとおり手続きいたしました。",
    "商品について": "お問い合わせありがとうございます。おすすめの商品をご案内いたします。",
    "法人のご注文": "Thank you for your interest. Our business team will send the details shortly.",
}

# title, body, language, tags
ARTICLES: list[tuple[str, str, str, list[str]]] = [
    ("送料について", "送料は全国一律550円です。1回のご注文が5,000円（税込）以上で送料無料になります。"
     "定期便は金額にかかわらず送料無料です。", "ja", ["配送"]),
    ("注文してから届くまでの日数", "通常はご注文から2〜4営業日でお届けします。14時までのご注文は当日発送です。"
     "北海道・沖縄・離島は1〜2日多くかかります。", "ja", ["配送"]),
    ("配達日・時間帯の指定", "ご注文画面で、ご注文日の4日後から14日後までの配達日と時間帯（午前中、14〜16時、"
     "16〜18時、18〜20時、19〜21時）を指定できます。", "ja", ["配送"]),
    ("配送状況の確認", "発送完了メールに記載の追跡番号から、配送業者のサイトでお荷物の状況を確認できます。"
     "マイページの注文履歴からも確認できます。", "ja", ["配送"]),
    ("返品・交換について", "未開封の商品は到着から8日以内であれば返品できます。破損や誤配送の場合は送料当社負担で"
     "交換いたします。開封済みの食品は返品をお受けできません。", "ja", ["返品"]),
    ("お支払い方法", "クレジットカード、コンビニ後払い、代金引換、銀行振込、PayPayをご利用いただけます。"
     "法人のお客様は請求書払いも選べます。", "ja", ["支払い"]),
    ("領収書の発行", "マイページの注文履歴から領収書をPDFでダウンロードできます。宛名は自由に入力できます。",
     "ja", ["支払い"]),
    ("定期便のお休み・解約", "定期便は次回お届け日の5日前まで、マイページの「定期便」から1回単位でお休み、"
     "またはいつでも解約できます。解約の手数料はかかりません。", "ja", ["定期便"]),
    ("ポイントの貯め方・使い方", "お買い上げ100円ごとに1ポイントが貯まり、1ポイント1円として次回のお買い物に"
     "使えます。ポイントの有効期限は最終購入日から1年です。", "ja", ["ポイント"]),
    ("ギフト包装・のし", "ご注文画面で「ギフト包装」を選ぶと、無料で包装いたします。のしとメッセージカードも"
     "無料でお付けできます。", "ja", ["ギフト"]),
    ("コーヒー豆の保存方法", "開封後は密閉容器に入れ、直射日光を避けて冷暗所で保存してください。"
     "おいしく飲める目安は開封後2週間です。長く保存する場合は冷凍がおすすめです。", "ja", ["商品"]),
    ("カフェインについて", "カフェインレスのコーヒー（デカフェ）とルイボスティーをご用意しています。"
     "妊娠中の方やお子様にもお楽しみいただけます。", "ja", ["商品"]),
    ("店舗の場所と営業時間", "渋谷店・梅田店・博多店・札幌店は毎日10時〜20時に営業しています（年末年始を除く）。"
     "店舗でもオンラインストアのポイントが使えます。", "ja", ["店舗"]),
    ("法人のご注文", "オフィスやカフェ向けの定期購入と請求書払いを承ります。お問い合わせフォームから"
     "「法人のご注文」を選んでご相談ください。", "ja", ["法人"]),
    ("メールマガジンの配信停止", "メールマガジン末尾の「配信停止」リンクから、ワンクリックで停止できます。",
     "ja", ["メール"]),
    ("Shipping costs", "Shipping within Japan is a flat 550 yen and free on orders of 5,000 yen or more. "
     "We ship to most countries in Asia, North America and Europe; international rates are shown at checkout.",
     "en", ["shipping"]),
    ("Returns and refunds", "Unopened items can be returned within 8 days of delivery. Damaged or wrong items "
     "are replaced at our cost. Refunds reach your card within 10 business days.", "en", ["returns"]),
    ("Pause or cancel a subscription", "Skip a delivery or cancel your subscription from My Page at least 5 "
     "days before the next delivery date. There is no cancellation fee.", "en", ["subscription"]),
    ("Caffeine-free options", "We offer decaf coffee and rooibos tea, suitable during pregnancy and for "
     "children.", "en", ["products"]),
]  # fmt: skip

NPS_COMMENTS = {
    "promoter": ["香りがよく、毎朝の楽しみです。", "発送が早くて助かりました。", "店舗の方の説明が丁寧でした。",
                 "Great beans, fast shipping.", "ギフトで贈ったら喜ばれました。", ""],
    "passive": ["味は良いが、少し価格が高い。", "包装をもう少し簡素にしてほしい。", "Good, but delivery took a while.",
                ""],
    "detractor": ["届いた商品が破損していた。", "問い合わせの返事が遅かった。", "定期便の解約方法がわかりにくい。",
                  "Wrong item arrived and no reply for days."],
}  # fmt: skip


def service_examples(engine: Engine, seed: int, end: dt.datetime) -> str:
    """Load the service examples; answers a summary for the demo's closing line."""
    rng = random.Random(seed + 11)
    with transaction(engine) as session:
        agents, team_id = _team(session)
        tickets = _desk(session, rng, agents, team_id, end)
    with transaction(engine) as session:
        answers = _nps(session, rng, end)
    with transaction(engine) as session:
        articles = _knowledge(session)
    with transaction(engine) as session:
        chats = _chats(session, rng, agents)
    return f"{tickets} inquiries, {answers} NPS answers, {articles} FAQ articles, {chats} chats"


def _team(session: Session) -> tuple[list[Actor], int]:
    from kizuna.auth import service as auth
    from kizuna.sales.models import Team, team_members

    team = Team(name="カスタマーサポート")
    session.add(team)
    session.flush()
    actors = []
    for email, name in AGENTS:
        # No password: the demo's agents hold tickets but cannot sign in (the admin's login is printed).
        user = auth.create_user(session, actor=ACTOR, email=email, password=None, role="support", name=name)
        session.execute(team_members.insert().values(team_id=team.id, user_id=user.id))
        actors.append(Actor(label=user.email, role="support", user_id=user.id, origin="ui"))
    return actors, team.id


def _desk(session: Session, rng: random.Random, agents: list[Actor], team_id: int, end: dt.datetime) -> int:
    from kizuna.inquiries import claims, setup, sla
    from kizuna.inquiries import service as desk
    from kizuna.inquiries.models import Inquiry, InquiryEvent, InquiryMessage
    from kizuna.inquiries.schemas import CategoryIn, InquiryCreate, InquiryUpdate, MacroIn, ReplyCreate

    category_ids = {}
    for name, name_en in CATEGORIES:
        made = setup.create_category(session, actor=ACTOR, data=CategoryIn(name=name, name_en=name_en, team_id=team_id))
        category_ids[name] = made.id
    for name, category, body in MACROS:
        setup.create_macro(session, actor=ACTOR, data=MacroIn(name=name, body=body, category_id=category_ids[category]))
    people = list(
        session.execute(
            select(Customer.id, Customer.email, Customer.phone, Customer.full_name)
            .where(Customer.email.is_not(None), Customer.status == "active")
            .order_by(Customer.id)
            .limit(200)
        )
    )
    rng.shuffle(people)
    now = dt.datetime.now(dt.UTC)
    base = now if end.date() == now.date() else end
    for n, (subject, body, category, priority, channel, days_ago, state, agent) in enumerate(TICKETS):
        person = people[n % len(people)]
        opened = desk.open_inquiry(
            session,
            actor=Actor.system("demo", origin="api"),
            data=InquiryCreate(
                subject=subject, body=body, channel=channel, category=category, priority=priority,
                customer_id=person.id, email=person.email, name=person.full_name,
            ),
            repeat=False,
        )  # fmt: skip
        inquiry = opened.inquiry
        if agent is not None:
            actor = agents[agent]
            claims.claim(session, actor=actor, inquiry_id=inquiry.id)
            if state != "open":
                desk.reply(session, actor=actor, inquiry_id=inquiry.id, data=ReplyCreate(body=REPLIES[category]))
            if state in ("resolved", "closed"):
                desk.update_inquiry(session, actor=actor, inquiry_id=inquiry.id, data=InquiryUpdate(status="resolved"))
            if state == "closed":
                desk.update_inquiry(session, actor=actor, inquiry_id=inquiry.id, data=InquiryUpdate(status="closed"))
        # Back in time: opened `days_ago` before now (or before the demo's as-of day), answered within hours,
        # resolved within a day or two.
        created = base - dt.timedelta(days=days_ago)
        first_due, resolve_due = sla.due_times(priority, created)
        values: dict[str, Any] = {
            "created_at": created, "updated_at": created, "last_customer_message_at": created,
            "first_response_due_at": first_due, "resolution_due_at": resolve_due,
        }  # fmt: skip
        answered = created + dt.timedelta(minutes=rng.randrange(20, 600))
        if inquiry.claimed_at is not None:
            values["claimed_at"] = created + dt.timedelta(minutes=rng.randrange(5, 20))
        if inquiry.first_responded_at is not None:
            values["first_responded_at"] = answered
        if inquiry.resolved_at is not None:
            values["resolved_at"] = answered + dt.timedelta(hours=rng.randrange(2, 40))
        session.execute(update(Inquiry).where(Inquiry.id == inquiry.id).values(**values))
        session.execute(
            update(InquiryMessage)
            .where(InquiryMessage.inquiry_id == inquiry.id, InquiryMessage.direction == "in")
            .values(created_at=created)
        )
        session.execute(
            update(InquiryMessage)
            .where(InquiryMessage.inquiry_id == inquiry.id, InquiryMessage.direction != "in")
            .values(created_at=answered)
        )
        session.execute(
            update(InquiryEvent)
            .where(InquiryEvent.inquiry_id == inquiry.id)
            .values(
                occurred_at=case(
                    (InquiryEvent.kind == "opened", created),
                    (InquiryEvent.kind.in_(("resolved", "closed")), values.get("resolved_at", answered)),
                    else_=answered,
                )
            )
        )
    session.expire_all()
    return len(TICKETS)


def _nps(session: Session, rng: random.Random, end: dt.datetime) -> int:
    from kizuna.surveys import links
    from kizuna.surveys import service as surveys
    from kizuna.surveys.schemas import SurveyCreate

    purchase = surveys.create_survey(
        session,
        actor=ACTOR,
        data=SurveyCreate(
            name="購入後アンケート",
            question_ja="絆ストアを友人や同僚にすすめる可能性はどのくらいありますか？",
            question_en="How likely are you to recommend Kizuna Store to a friend or colleague?",
            touchpoint="purchase",
        ),
    )
    support = surveys.create_survey(
        session,
        actor=ACTOR,
        data=SurveyCreate(
            name="サポート対応アンケート",
            question_ja="今回のサポート対応をふまえて、絆ストアをすすめる可能性はどのくらいありますか？",
            question_en="After this support conversation, how likely are you to recommend Kizuna Store?",
            touchpoint="support",
        ),
    )
    buyers = list(session.scalars(select(Order.customer_id).distinct().order_by(Order.customer_id).limit(400)))
    rng.shuffle(buyers)
    count = 0
    for n, customer_id in enumerate(buyers[: max(12, len(buyers) // 2)]):
        survey = support if n % 4 == 0 else purchase
        # A year of answers, the later months a little better (the team's improvements showing in the trend).
        days_ago = rng.randrange(2, 360)
        at = end - dt.timedelta(days=days_ago, minutes=rng.randrange(600))
        lift = (360 - days_ago) / 360
        roll = rng.random()
        if roll < 0.35 + 0.15 * lift:
            score, kind = rng.choice([9, 10, 10]), "promoter"
        elif roll < 0.70 + 0.1 * lift:
            score, kind = rng.choice([7, 8]), "passive"
        else:
            score, kind = rng.randrange(0, 7), "detractor"
        key = f"demo:{survey.id}:{customer_id}"
        token = links.token(survey.id, customer_id, key, links.expiry(at, survey.link_days))
        surveys.answer(session, token, score=score, comment=rng.choice(NPS_COMMENTS[kind]), now=at)
        count += 1
    return count


def _knowledge(session: Session) -> int:
    from kizuna.knowledge import service as knowledge
    from kizuna.knowledge.schemas import ArticleCreate

    for title, body, language, tags in ARTICLES:
        knowledge.create_article(
            session, actor=ACTOR, data=ArticleCreate(title=title, body=body, language=language, tags=tags)
        )
    return len(ARTICLES)


def _chats(session: Session, rng: random.Random, agents: list[Actor]) -> int:
    from kizuna.chat import service as chat
    from kizuna.chat.schemas import AgentReply, ChatStart, MessageIn

    people = list(session.scalars(select(Customer.email).where(Customer.email.is_not(None)).order_by(Customer.id)))
    # The bot answers from the FAQ.
    answered, _, _ = chat.start_chat(session, data=ChatStart(language="ja"), site="https://shop.example.com")
    chat.post_message(session, chat=answered, data=MessageIn(text="送料はいくらかかりますか？"))
    # A visitor who asks for a person: the chat waits for an agent and its inquiry is open on the desk.
    waiting, _, _ = chat.start_chat(
        session, data=ChatStart(language="ja", email=rng.choice(people)), site="https://shop.example.com"
    )
    chat.post_message(session, chat=waiting, data=MessageIn(text="注文の内容を変更したいので担当者と話したいです"))
    # A question the FAQ does not cover: handed over, and an agent is answering.
    live, _, _ = chat.start_chat(
        session, data=ChatStart(language="en", email=rng.choice(people)), site="https://shop.example.com"
    )
    chat.post_message(session, chat=live, data=MessageIn(text="Can I book a tasting session for 12 people?"))
    if live.status != "bot":
        chat.agent_reply(
            session,
            actor=agents[1],
            chat_id=live.id,
            data=AgentReply(text="Yes! Which store and date would suit your group?"),
        )
    return 3
