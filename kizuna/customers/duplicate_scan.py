"""Finding likely duplicate customers in the whole table with blocking keys, never comparing every pair.

Each rule computes one key per active customer in SQL (the same normalised name and phone, the same name and
address, ...). Only customers whose key is shared land in the same block, and only pairs inside a block are
candidates: each rule reads the keys once and groups them in a hash table, so the work grows with the number
of customers, not with its square. A block larger than ``max_block`` is a key too common to say anything (a
shared office address, a placeholder birth date) and is counted, not paired.

A scan is asked for (``request_scan``: the UI's "scan now", the API) and run by the worker through the outbox
topic ``duplicates.scan_requested``, or run directly (``run_scan``: ``kizuna duplicates scan``). New pairs go to
``customer_duplicates`` with the rules that found them as their reason (``same name_phone+kana_birth``); pairs
already known there (open, dismissed or merged) are left as they are.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, cast, func, literal, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.customers import duplicates
from kizuna.customers.models import Customer, DuplicateScan
from kizuna.db import take_write_lock, utcnow
from kizuna.outbox import registry
from kizuna.outbox.service import emit, renew_lease

TOPIC = "duplicates.scan_requested"
# Blocks with more members than this are not paired (see the module docstring); 20 members make 190 pairs.
MAX_BLOCK = 20
# A scan asked for while an earlier one still waits joins it; one waiting longer than this is taken as lost
# (its delivery died) and a new one is queued.
JOIN_WAITING = dt.timedelta(minutes=15)
SEPARATOR = "|"
# Written between the rule names of a pair found by several rules: ``same name_phone+kana_birth``.
RULE_JOIN = "+"

_c = Customer.__table__.c

# Address spellings that mean the same: 1丁目2番3号, 1丁目2番地3 and 1-2-3; dashes NFKC leaves apart.
_STREET = str.maketrans({" ": "", "号": "", "‐": "-", "‑": "-", "−": "-", "–": "-", "—": "-", "―": "-"})


def street_key(address_line: str | None) -> str:
    """The street part with its 丁目/番/号 and dash spellings made one (``1丁目2番3号`` -> ``1-2-3``)."""
    text = (address_line or "").replace("丁目", "-").replace("番地", "-").replace("番", "-")
    return text.translate(_STREET).lower().rstrip("-")


def name_key(column: ColumnElement[str]) -> ColumnElement[str]:
    """The name without spaces, lower-cased: ``山田 太郎`` and ``山田太郎`` block together.

    Stored names are already NFKC (``normalize_text`` on the way in), so full-width letters and half-width
    kana need no work here.
    """
    return func.lower(func.replace(column, " ", ""))


def postal_key(column: ColumnElement[str]) -> ColumnElement[str]:
    """The postal code's digits (``150-0001`` and ``1500001`` block together)."""
    return func.replace(column, "-", "")


def _email_parts(dialect: str) -> tuple[ColumnElement[str], ColumnElement[str]]:
    """(local part, domain) of the stored (case-folded) e-mail, in this dialect's string functions."""
    if dialect == "postgresql":
        return func.split_part(_c.email, "@", 1), func.split_part(_c.email, "@", 2)
    at = func.instr(_c.email, "@")
    return func.substr(_c.email, 1, at - 1), func.substr(_c.email, at + 1)


def _differ(a: str | None, b: str | None) -> bool:
    return a != b


def _same_street(a: str | None, b: str | None) -> bool:
    return street_key(a) == street_key(b)


@dataclass(frozen=True)
class Rule:
    """A blocking rule: customers with the same ``key`` may be one person.

    With ``detail``, a pair of the block is kept only when ``keep(detail of one, detail of the other)``: a test
    too costly to compute in SQL for every customer (the street spelling) runs in Python on the few customers
    that share a key, or a condition that is no key (another e-mail domain).
    """

    name: str
    key: ColumnElement[str]
    present: ColumnElement[bool]
    detail: ColumnElement[str] | None = None
    keep: Callable[[str | None, str | None], bool] | None = None


def rules(dialect: str) -> list[Rule]:
    """The rules, strongest first (a pair's reason lists the rules that found it in this order)."""
    name = name_key(_c.full_name)
    local, domain = _email_parts(dialect)
    return [
        Rule("name_phone", name + SEPARATOR + _c.phone, and_(_c.full_name != "", _c.phone.is_not(None))),
        # Blocked by name and postal code; the street is compared inside the block (measured at 100,000
        # customers: ten nested replace() calls on every row made this rule 3x slower than the others).
        Rule(
            "name_address",
            name + SEPARATOR + postal_key(_c.postal_code),
            and_(_c.full_name != "", _c.postal_code.is_not(None), _c.address_line.is_not(None)),
            detail=_c.address_line,
            keep=_same_street,
        ),
        Rule(
            "kana_birth",
            func.replace(_c.full_name_kana, " ", "") + SEPARATOR + cast(_c.birth_date, String),
            and_(_c.full_name_kana.is_not(None), _c.birth_date.is_not(None)),
        ),
        # The same local part at another domain (taro.yamada@gmail.com, taro.yamada@company.jp); short local
        # parts (info, sales) say nothing about a person.
        Rule("email_local", local, and_(_c.email.is_not(None), func.length(local) >= 5), detail=domain, keep=_differ),
    ]


RULE_NAMES = ("name_phone", "name_address", "kana_birth", "email_local")


@dataclass
class RuleResult:
    blocks: int = 0
    pairs: int = 0
    oversized: int = 0
    seconds: float = 0.0


@dataclass
class ScanResult:
    max_block: int
    started_at: dt.datetime = field(default_factory=utcnow)
    pairs: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    by_rule: dict[str, RuleResult] = field(default_factory=dict)


def key_query(rule: Rule) -> Select[Any]:
    """The rule's statement: (id, key, detail) of every active customer that has the rule's values."""
    detail = rule.detail if rule.detail is not None else literal(None, String)
    return select(_c.id, rule.key, detail).where(_c.status == "active", rule.present)


def _blocks(session: Session, rule: Rule) -> Iterator[list[tuple[int, str | None]]]:
    """[(id, detail)] of the customers of each key that more than one customer has, in id order.

    The keys are grouped here, in a dict, rather than by the database: measured on 1M customers in SQLite, a
    window (``count(*) OVER (PARTITION BY key)``) or a GROUP BY sorts every row and cost 1.6x the CPU of
    reading the keys and hashing them (16.0 against 10.1 s for the four rules). Only one rule's keys are held
    at a time (~150 MB for 1M customers).
    """
    first: dict[str, tuple[int, str | None]] = {}
    shared: dict[str, list[tuple[int, str | None]]] = {}
    for customer_id, key, detail in session.execute(key_query(rule)).yield_per(50_000):
        if key is None:
            continue
        earlier = first.setdefault(key, (customer_id, detail))
        if earlier[0] != customer_id:
            shared.setdefault(key, [earlier]).append((customer_id, detail))
    first.clear()
    for members in shared.values():
        yield sorted(members)


def find_pairs(
    session: Session,
    *,
    max_block: int = MAX_BLOCK,
    only: tuple[str, ...] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ScanResult:
    """Every candidate pair (smaller id first) with the rules that found it; reads only, writes nothing."""
    result = ScanResult(max_block=max_block)
    for rule in rules(session.get_bind().dialect.name):
        if only is not None and rule.name not in only:
            continue
        started = time.perf_counter()
        tally = result.by_rule.setdefault(rule.name, RuleResult())
        for members in _blocks(session, rule):
            if len(members) > max_block:
                tally.oversized += 1
                continue
            tally.blocks += 1
            for (a, detail_a), (b, detail_b) in combinations(members, 2):
                if rule.keep is not None and not rule.keep(detail_a, detail_b):
                    continue
                tally.pairs += 1
                found = result.pairs.setdefault((a, b) if a < b else (b, a), [])
                if rule.name not in found:
                    found.append(rule.name)
        tally.seconds = round(time.perf_counter() - started, 3)
        if progress is not None:
            progress(rule.name)
    return result


def reason_of(rule_names: list[str]) -> str:
    """``same name_phone+kana_birth``: the reason a pair is stored with (rules in their own order)."""
    ordered = [name for name in RULE_NAMES if name in rule_names]
    return "same " + RULE_JOIN.join(ordered)


def run_scan(
    session: Session,
    *,
    actor: Actor,
    scan_id: int | None = None,
    max_block: int = MAX_BLOCK,
    progress: Callable[[str], None] | None = None,
) -> DuplicateScan:
    """Find candidate pairs in all active customers and propose the new ones, in the caller's transaction.

    ``find_pairs`` then ``record_scan``; the worker and the CLI call the two apart (see ``scan_requested``).
    """
    require(actor, "customers:merge")
    done = _done(session, scan_id)
    if done is not None:
        return done
    found = find_pairs(session, max_block=max_block, progress=progress)
    return record_scan(session, actor=actor, found=found, scan_id=scan_id)


def _done(session: Session, scan_id: int | None) -> DuplicateScan | None:
    scan = session.get(DuplicateScan, scan_id) if scan_id is not None else None
    return scan if scan is not None and scan.status == "done" else None


def record_scan(session: Session, *, actor: Actor, found: ScanResult, scan_id: int | None = None) -> DuplicateScan:
    """Propose the new pairs of ``found`` and record the scan as done (the queued one of ``scan_id``, or a new
    one); audited. A scan already done is returned as it is, so a repeated delivery changes nothing."""
    require(actor, "customers:merge")
    done = _done(session, scan_id)
    if done is not None:
        return done
    scan = session.get(DuplicateScan, scan_id) if scan_id is not None else None
    if scan is None:
        scan = DuplicateScan(requested_by=actor.label, requested_at=found.started_at, details={})
        session.add(scan)
    started = time.perf_counter()
    proposed = duplicates.propose_many(session, {(a, b, reason_of(names)) for (a, b), names in found.pairs.items()})
    scan.status, scan.started_at, scan.finished_at = "done", found.started_at, utcnow()
    scan.candidates, scan.proposed = len(found.pairs), proposed
    scan.details = {
        "max_block": found.max_block,
        "rules": {k: vars(v) for k, v in found.by_rule.items()},
        "store_seconds": round(time.perf_counter() - started, 3),
    }
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="duplicate.scan",
        entity_type="duplicate_scan",
        entity_id=scan.id,
        details={"candidates": scan.candidates, "proposed": proposed, **scan.details},
        summary=f"{proposed} new duplicate pairs",
    )
    return scan


def request_scan(session: Session, *, actor: Actor) -> DuplicateScan:
    """Queue a scan for the worker (``duplicates.scan_requested``); a scan still waiting is returned instead."""
    require(actor, "customers:merge")
    waiting = session.scalar(
        select(DuplicateScan)
        .where(DuplicateScan.status.in_(("queued", "running")), DuplicateScan.requested_at > utcnow() - JOIN_WAITING)
        .order_by(DuplicateScan.id.desc())
        .limit(1)
    )
    if waiting is not None:
        return waiting
    scan = DuplicateScan(status="queued", requested_by=actor.label, requested_at=utcnow(), details={})
    session.add(scan)
    session.flush()
    audit.record(session, actor=actor, action="duplicate.scan_request", entity_type="duplicate_scan", entity_id=scan.id)
    emit(session, TOPIC, {"scan_id": scan.id}, origin=actor.origin)
    return scan


def latest_scans(session: Session, *, actor: Actor) -> tuple[DuplicateScan | None, DuplicateScan | None]:
    """(the newest finished scan, a newer one still waiting for the worker), for the review page."""
    require(actor, "customers:read")
    done = session.scalar(
        select(DuplicateScan).where(DuplicateScan.status == "done").order_by(DuplicateScan.id.desc()).limit(1)
    )
    waiting = session.scalar(
        select(DuplicateScan)
        .where(DuplicateScan.status != "done", DuplicateScan.id > (done.id if done else 0))
        .order_by(DuplicateScan.id.desc())
        .limit(1)
    )
    return done, waiting


class LeaseLost(RuntimeError):
    """The delivery's lease passed to another worker while this one scanned: stop, the other one runs it."""


@registry.declare("duplicates.scan", TOPIC)
def scan_requested(session: Session, delivery: registry.Delivery) -> None:
    """The worker's side of "scan now": find the pairs outside any write lock, then store them.

    A delivery's transaction starts with SQLite's single write lock (``outbox.service.deliver``). Reading 1M
    customers takes tens of seconds, and every web request that writes would wait behind it past the busy
    timeout, so this handler ends that transaction before reading (nothing is written in it yet), as the
    import jobs' handler does, and takes the lock again only to store the pairs; ``deliver`` commits them with
    the delivery's done mark. The lease is renewed after each rule, so no other worker takes the delivery
    meanwhile; were it lost all the same, a second run would find the same pairs and store none twice (the
    pair's unique key, and a scan already done is left as it is).
    """
    actor = Actor.system("duplicates", origin="worker")
    scan_id = delivery.payload.get("scan_id")
    if _done(session, scan_id) is not None:
        return
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    session.commit()

    def keep_lease(_rule: str) -> None:
        if not renew_lease(engine, delivery=delivery):
            raise LeaseLost(f"duplicate scan {scan_id}: the lease passed to another worker")

    found = find_pairs(session, progress=keep_lease)
    session.rollback()  # end the read transaction: the write below must not start from its old snapshot
    take_write_lock(session.connection())
    record_scan(session, actor=actor, found=found, scan_id=scan_id)
