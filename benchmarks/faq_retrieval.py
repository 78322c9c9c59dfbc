"""Compares the FAQ retrieval analysers on the sample knowledge base and its question sets.

For each analyser: the hand-over threshold tuned on tests/knowledge/data/tuning.json, then on the evaluation
set the top-3 / top-1 hit rates, the share of answerable questions answered, the share of out-of-scope
questions handed over, the index build time and the time to analyse one question.

    .venv/bin/python benchmarks/faq_retrieval.py [--analyzers sudachi fugashi bigram] [--sweep]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kizuna.knowledge.evaluation import evaluate, tune_threshold  # noqa: E402
from kizuna.knowledge.retrieval import ANALYZERS, Document, KnowledgeIndex, analyzer, document_tokens  # noqa: E402
from tests.knowledge import evalset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--analyzers", nargs="*", default=list(ANALYZERS))
    parser.add_argument("--sweep", action="store_true", help="print the tuning sweep")
    args = parser.parse_args()
    articles = evalset.articles()
    ids = {a["key"]: i for i, a in enumerate(articles, start=1)}
    tuning = evalset.question_set("tuning", ids)
    evaluation = evalset.question_set("evaluation", ids)
    print(
        f"{len(articles)} articles; evaluation {len(evaluation[0])} answerable + {len(evaluation[1])} "
        f"out of scope; tuning {len(tuning[0])} + {len(tuning[1])}"
    )
    print(
        f"{'analyser':<9} {'threshold':>9} {'top3':>6} {'top1':>6} {'answered':>9} {'handover':>9} "
        f"{'load s':>7} {'index ms':>9} {'query ms':>9}"
    )
    for name in args.analyzers:
        started = time.perf_counter()
        analyser = analyzer(name)
        analyser.tokens("読み込み")
        load = time.perf_counter() - started
        started = time.perf_counter()
        documents = [
            Document(ids[a["key"]], a["language"], document_tokens(analyser, a["title"], a["body"], a["tags"]))
            for a in articles
        ]
        index = KnowledgeIndex(documents, analyser)
        build = (time.perf_counter() - started) * 1000
        threshold, sweep = tune_threshold(index, *tuning)
        result = evaluate(index, *evaluation, threshold=threshold)
        questions = [q for q, _ in evaluation[0]] + evaluation[1]
        started = time.perf_counter()
        for q in questions:
            index.search(q)
        per_query = (time.perf_counter() - started) * 1000 / len(questions)
        print(
            f"{name:<9} {threshold:>9.2f} {result.top3:>6.1%} {result.top1:>6.1%} {result.answered:>9.1%} "
            f"{result.handed_over:>9.1%} {load:>7.2f} {build:>9.1f} {per_query:>9.2f}"
        )
        if result.misses:
            print("   not in top 3:", " | ".join(result.misses))
        if result.wrong_answers:
            print("   answered out of scope:", " | ".join(result.wrong_answers))
        if args.sweep:
            for t, a, h in sweep[::5]:
                print(f"      {t:.2f} answered {a:.0%} handed over {h:.0%}")


if __name__ == "__main__":
    main()
