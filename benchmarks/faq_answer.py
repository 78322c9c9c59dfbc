"""FAQ bot speed: an answer with 1,000 published articles takes under 300 ms (issue 17, "Quality and speed").

The data: the 47 sample articles of tests/knowledge/data plus generated ones (Faker ja_JP / en_US text under
shop-like titles) up to ``--articles`` (1,000), half Japanese and half English, in a scratch SQLite database
migrated like production. The questions: the evaluation set's answerable and out-of-scope questions, asked
round-robin ``--questions`` times through ``kizuna.knowledge.answer.answer`` (what the chat API calls: the
freshness check, BM25 over the cached index, the articles' rows). Printed beside it, in the same run:

  floor: the two SQL statements an answer cannot do without (the freshness check and a primary-key fetch of
         three articles), on the same session, through SQLAlchemy;
  cold:  the first answer of the process (loading Sudachi's dictionary, analysing every article, building
         the index), and the rebuild after one article changes (only that article analysed again).

    .venv/bin/python benchmarks/faq_answer.py [--articles 1000] [--questions 1000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_MS = 300.0


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--questions", type=int, default=1000)
    args = parser.parse_args()

    from faker import Faker
    from sqlalchemy import func, select

    from kizuna.auth.permissions import Actor
    from kizuna.db import make_engine, migrate, new_session
    from kizuna.knowledge import answer as answering
    from kizuna.knowledge.models import Article
    from kizuna.knowledge.schemas import ArticleCreate, ArticleUpdate
    from kizuna.knowledge.service import create_article, update_article
    from tests.knowledge import evalset

    scratch = Path(tempfile.mkdtemp(prefix="kizuna-faq-bench-"))
    engine = make_engine(f"sqlite:///{scratch / 'faq.db'}")
    migrate(engine)
    actor = Actor.system("bench")
    fakers = {"ja": Faker("ja_JP"), "en": Faker("en_US")}
    Faker.seed(17)
    random.seed(17)
    topics = {
        "ja": ["配送", "返品", "支払い", "定期便", "ポイント", "会員", "商品", "ギフト", "店舗", "法人"],
        "en": ["shipping", "returns", "payment", "subscription", "points", "account", "products", "gifts"],
    }
    with new_session(engine) as s:
        samples = evalset.articles()
        ids = {}
        for a in samples:
            data = ArticleCreate(title=a["title"], body=a["body"], language=a["language"], tags=a["tags"])
            ids[a["key"]] = create_article(s, actor=actor, data=data).id
        for i in range(args.articles - len(samples)):
            lang = "ja" if i % 2 == 0 else "en"
            fake = fakers[lang]
            topic = random.choice(topics[lang])
            title = f"{topic}: {fake.sentence(nb_words=6)}"[:300]
            body = " ".join(fake.paragraphs(nb=3))
            create_article(s, actor=actor, data=ArticleCreate(title=title, body=body, language=lang, tags=[topic]))
        s.commit()
        count = s.scalar(select(func.count()).select_from(Article))
    answerable, outside = evalset.question_set("evaluation", ids)
    questions = [q for q, _ in answerable] + outside

    with new_session(engine) as s:
        started = time.perf_counter()
        answering.answer(s, questions[0])
        cold = (time.perf_counter() - started) * 1000
        times, floors = [], []
        for i in range(args.questions):
            q = questions[i % len(questions)]
            started = time.perf_counter()
            result = answering.answer(s, q)
            times.append((time.perf_counter() - started) * 1000)
            wanted = [src.id for src in result.sources] or [1, 2, 3]
            started = time.perf_counter()
            s.execute(
                select(func.count(Article.id), func.max(Article.updated_at), func.sum(Article.version)).where(
                    Article.published.is_(True)
                )
            ).one()
            list(s.scalars(select(Article).where(Article.id.in_(wanted))))
            floors.append((time.perf_counter() - started) * 1000)
            s.expire_all()
        update_article(s, actor=actor, article_id=ids["ja-store"], data=ArticleUpdate(body="京都本店は10時〜19時。"),
                       expected_version=None)  # fmt: skip
        s.commit()
        started = time.perf_counter()
        answering.answer(s, questions[0])
        rebuild = (time.perf_counter() - started) * 1000

    p50, p95 = statistics.median(times), _percentile(times, 95)
    f50, f95 = statistics.median(floors), _percentile(floors, 95)
    print(f"{count} articles, {args.questions} answers ({len(questions)} distinct questions), SQLite")
    print(f"answer  p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   max {max(times):7.2f} ms   goal < {GOAL_MS:.0f} ms")
    print(f"floor   p50 {f50:7.2f} ms   p95 {f95:7.2f} ms   (freshness check + fetch of 3 articles)")
    print(f"cold first answer {cold:8.1f} ms (dictionary + analysing {count} articles + index)")
    print(f"rebuild after one edit {rebuild:8.1f} ms")
    print("PASS" if p95 < GOAL_MS else "FAIL", f"p95 {p95:.2f} ms vs goal {GOAL_MS:.0f} ms")


if __name__ == "__main__":
    main()
