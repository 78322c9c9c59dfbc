"""Finding the FAQ articles that answer a question, offline: BM25 (``bm25s``) over analysed tokens.

Which analyser, and why (measured by ``benchmarks/faq_retrieval.py`` on the evaluation set in
``tests/knowledge/data``; the table is in benchmarks/README.md):

- ``sudachi`` (the default): SudachiPy with ``sudachidict-core``, split mode A (the shortest units, so
  追加料金 meets 料金 and コンビニ後払い meets 支払い), each word's *normalised form* (やめ -> やめる,
  引き落し -> 引き落とし), only content words (nouns, verbs, adjectives, adverbs...), so the particles and
  light verbs every question shares do not look like a match. On the evaluation set it ties for the best
  top-3 (98%) and top-1 (93%) hit rates and answers the most in-scope questions (83%) while still handing over
  every out-of-scope one (100%); modes B and C (longer compounds) miss more. The dictionary ships in the
  wheel, so nothing is downloaded at run time.
- ``fugashi`` (MeCab + ``unidic-lite``): the same hit rates, but it answered one out-of-scope question
  (おすすめの映画を教えて) and analysed the articles about twice as slowly here; a second native dependency for
  no gain.
- ``bigram``: overlapping character pairs. Needs no dictionary and ranks well, but its confidence separates
  covered from uncovered questions poorly (fewer than half the in-scope questions answered at a threshold
  that hands over 96% of the rest).

English (in either analyser) is lower-cased, stripped of stop words and Snowball-stemmed (PyStemmer), so
"cancel", "cancelled" and "cancelling" meet.

Confidence: how much of the question an article covers, the IDF-weighted share of the question's terms
that occur in the article (a term the base never uses weighs as much as the rarest term). A question whose
distinctive words the base does not have therefore scores low, however long it is; the threshold
below which the bot hands over to a person is tuned on a separate tuning set (``CONFIDENCE_THRESHOLD``).
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import bm25s
import numpy as np

# Chosen on tests/knowledge/data/tuning.json by ``evaluation.tune_threshold`` (benchmarks/faq_retrieval.py --sweep
# prints the sweep): the middle of the first run of thresholds with the best answered + 2 x handed-over score.
# tests/knowledge/test_evaluation.py fails when the tuning set would now give another value.
CONFIDENCE_THRESHOLD = 0.44
DEFAULT_ANALYZER = "sudachi"
K1 = 1.5
B = 0.75

_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_RUNS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]+")

# Light verbs and auxiliaries that every question uses ("...できますか", "...したい") and no answer is about.
_JA_STOP = frozenset(
    "する ある いる なる できる 出来る もらう 貰う 下さる くださる 思う いう 言う 教える 知る くれる 呉れる "  # noqa: SIM905
    "こと もの ため よう 方 時 場合 どう どこ いつ 何 なに どれ どの 良い いい いくら 幾ら".split()
)
_CONTENT_POS = ("名詞", "動詞", "形容詞", "副詞", "形状詞", "接頭辞", "接尾辞", "感動詞")


def query_language(text: str) -> str:
    """``ja`` when the text has any kana or kanji, else ``en``."""
    return "ja" if _JAPANESE.search(text) else "en"


def _normal(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


class _English:
    """Lower-cased, stop words dropped, Snowball-stemmed: shared by every analyser for Latin words."""

    def __init__(self) -> None:
        import Stemmer  # PyStemmer

        self._stemmer = Stemmer.Stemmer("english")
        self._stop = frozenset(bm25s.stopwords.STOPWORDS_EN_PLUS)

    def words(self, text: str) -> list[str]:
        return [self._stemmer.stemWord(w) for w in _WORD.findall(text) if w not in self._stop]


@cache
def _english() -> _English:
    return _English()


# Latin text (and digits) apart from the rest: a Japanese dictionary reads "refund" as リファンド.
_LATIN = re.compile(r"[a-z0-9][a-z0-9' .,!?&/-]*")


def _split(text: str) -> list[tuple[bool, str]]:
    """(is Latin, run) pieces of NFKC, case-folded text."""
    pieces: list[tuple[bool, str]] = []
    position = 0
    for match in _LATIN.finditer(text):
        if match.start() > position:
            pieces.append((False, text[position : match.start()]))
        pieces.append((True, match.group()))
        position = match.end()
    if position < len(text):
        pieces.append((False, text[position:]))
    return pieces


class Analyzer(Protocol):
    name: str

    def tokens(self, text: str) -> list[str]: ...


class _Mixed:
    """Latin runs through the English path, everything else through ``japanese``."""

    name = ""

    def japanese(self, text: str) -> list[str]:
        raise NotImplementedError

    def tokens(self, text: str) -> list[str]:
        english = _english()
        out: list[str] = []
        for latin, piece in _split(_normal(text)):
            out.extend(english.words(piece) if latin else self.japanese(piece))
        return out


# Sudachi's normalised forms of the light verbs above.
_JA_STOP_SUDACHI = _JA_STOP | frozenset(["為る", "有る", "居る", "成る", "出来る", "呉れる", "言う", "良い"])


class SudachiAnalyzer(_Mixed):
    """SudachiPy normalised forms of content words (split mode A, B or C); English words stemmed."""

    def __init__(self, mode: str = "A") -> None:
        from sudachipy import Dictionary, SplitMode

        self.name = f"sudachi-{mode}"
        self._mode = getattr(SplitMode, mode)
        self._dictionary = Dictionary(dict="core")
        # A Sudachi tokenizer is not safe to share between threads (FastAPI runs handlers in a pool).
        self._local = threading.local()

    def japanese(self, text: str) -> list[str]:
        tokenizer = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            tokenizer = self._local.tokenizer = self._dictionary.tokenizer(self._mode)
        out: list[str] = []
        for morpheme in tokenizer.tokenize(text):
            pos = morpheme.part_of_speech()
            if pos[0] not in _CONTENT_POS or pos[1] == "数詞":
                continue
            form = morpheme.normalized_form()
            if form not in _JA_STOP_SUDACHI:
                out.append(form)
        return out


class FugashiAnalyzer(_Mixed):
    """MeCab through fugashi with unidic-lite base forms of content words; English words stemmed."""

    name = "fugashi"

    def __init__(self) -> None:
        import fugashi

        self._fugashi = fugashi
        self._local = threading.local()

    def japanese(self, text: str) -> list[str]:
        tagger = getattr(self._local, "tagger", None)
        if tagger is None:
            tagger = self._local.tagger = self._fugashi.Tagger()
        out: list[str] = []
        for word in tagger(text):
            feature = word.feature
            if feature.pos1 not in _CONTENT_POS or feature.pos2 == "数詞":
                continue
            # The written base form: UniDic's lemma turns place names into katakana (沖縄 -> オキナワ).
            form = feature.orthBase or word.surface
            if form not in _JA_STOP_SUDACHI:
                out.append(form)
        return out


class BigramAnalyzer(_Mixed):
    """Overlapping character pairs of Japanese runs (a lone character as itself); English words stemmed."""

    name = "bigram"

    def japanese(self, text: str) -> list[str]:
        out: list[str] = []
        for run in _RUNS.findall(text):
            if len(run) == 1:
                out.append(run)
            else:
                out.extend(run[i : i + 2] for i in range(len(run) - 1))
        return out


ANALYZERS: dict[str, Callable[[], Analyzer]] = {
    "sudachi": lambda: SudachiAnalyzer("A"),
    "sudachi-B": lambda: SudachiAnalyzer("B"),
    "sudachi-C": lambda: SudachiAnalyzer("C"),
    "fugashi": FugashiAnalyzer,
    "bigram": BigramAnalyzer,
}


@cache
def analyzer(name: str = DEFAULT_ANALYZER) -> Analyzer:
    """The named analyser, loaded once per process (Sudachi's dictionary takes about a second)."""
    return ANALYZERS[name]()


@dataclass(frozen=True)
class Document:
    """One article as the index sees it: its id, language and analysed tokens (title counted twice)."""

    id: int
    language: str
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class Hit:
    id: int
    score: float
    confidence: float


def document_tokens(analyser: Analyzer, title: str, body: str, tags: Iterable[str] = ()) -> tuple[str, ...]:
    """An article's tokens: the title twice (a title names what the article answers), the tags, the body."""
    title_tokens = analyser.tokens(title)
    tag_tokens = [t for tag in tags for t in analyser.tokens(tag)]
    return tuple(title_tokens + title_tokens + tag_tokens + analyser.tokens(body))


class _LanguageIndex:
    def __init__(self, documents: Sequence[Document]) -> None:
        self.ids = np.array([d.id for d in documents], dtype=np.int64)
        self.retriever = bm25s.BM25(k1=K1, b=B)
        if documents:  # bm25s cannot index nothing; an empty base finds nothing (and so hands over)
            self.retriever.index([list(d.tokens) or [""] for d in documents], show_progress=False)
        count = len(documents)
        frequency: dict[str, int] = {}
        for document in documents:
            for token in set(document.tokens):
                frequency[token] = frequency.get(token, 0) + 1
        self.idf = {t: _idf(count, df) for t, df in frequency.items()}
        self.token_sets = [frozenset(d.tokens) for d in documents]
        self.unseen_idf = _idf(count, 1)

    def search(self, tokens: list[str], k: int) -> list[Hit]:
        unique = list(dict.fromkeys(tokens))
        if not unique or not len(self.ids):
            return []
        scores = self.retriever.get_scores(unique)
        weights = {t: self.idf.get(t, self.unseen_idf) for t in unique}
        total = sum(weights.values())
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [
            Hit(
                id=int(self.ids[i]),
                score=float(scores[i]),
                confidence=sum(w for t, w in weights.items() if t in self.token_sets[i]) / total,
            )
            for i in top
            if scores[i] > 0
        ]


def _idf(count: int, df: int) -> float:
    # bm25s's default ("lucene") IDF, so the perfect score is in the same units as its scores.
    return math.log(1 + (count - df + 0.5) / (df + 0.5))


class KnowledgeIndex:
    """BM25 over the published articles, one index per language; a question searches its own language first."""

    def __init__(self, documents: Sequence[Document], analyser: Analyzer) -> None:
        self.analyser = analyser
        languages = sorted({d.language for d in documents})
        self._by_language = {lang: _LanguageIndex([d for d in documents if d.language == lang]) for lang in languages}
        self._documents = documents
        self._all: _LanguageIndex | None = None
        self.size = len(documents)

    def search(self, question: str, *, k: int = 3) -> list[Hit]:
        """The best ``k`` articles for ``question``, best first, each with its confidence (0-1)."""
        tokens = self.analyser.tokens(question)
        own = self._by_language.get(query_language(question))
        if own is None:
            # A question in a language the base has no article in still finds articles that share its words;
            # built on first need, so a rebuild after an edit costs only the per-language indexes.
            if self._all is None:
                self._all = _LanguageIndex(self._documents)
            own = self._all
        return own.search(tokens, k)
