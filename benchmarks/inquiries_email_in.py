"""E-mail in: mails threaded into the inquiry desk per second, against a floor measured in the same run.

- **ours**: ``inquiries.email_in.receive`` for each mail in its own transaction, as the endpoint, the pipe and the
  IMAP poll do (parse and decode, match by reference or headers, find or create the customer, open the ticket or
  append to it, audit, timeline entry, outbox message), on a fresh SQLite database;
- **the floor**: the same mails parsed and decoded by the standard library (``message_from_bytes`` +
  ``get_body().get_content()``) and one row each written with bare ``sqlite3``, one transaction per mail.

The mails mix ISO-2022-JP, Shift_JIS (CP932) and UTF-8; a third answer an earlier ticket by In-Reply-To.

    .venv/bin/python benchmarks/inquiries_email_in.py              # 2,000 mails
    .venv/bin/python benchmarks/inquiries_email_in.py --mails 500
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import os
import sqlite3
import sys
import tempfile
import time
from email.header import Header
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def mails(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        sender = f"customer{i % (n // 3 + 1)}@example.jp"
        reply = f"In-Reply-To: <m{i - 1}@example.jp>\r\n" if i % 3 == 2 else ""
        subject, body = f"注文{i}の件について", f"注文番号{i}の商品が届きません。①髙橋～\r\nよろしくお願いします。\r\n"
        kind = i % 3
        if kind == 0:
            encoded = Header(subject, "iso-2022-jp").encode()
            head = f"Subject: {encoded}\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n"
            data = body.replace("①", "1").replace("髙", "高").replace("～", "ー").encode("iso2022_jp")
        elif kind == 1:
            words = base64.b64encode(subject.encode("cp932")).decode()
            head = f"Subject: =?shift_jis?B?{words}?=\r\nContent-Type: text/plain; charset=Shift_JIS\r\n"
            data = body.encode("cp932")
        else:
            head = f"Subject: {Header(subject, 'utf-8').encode()}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            data = body.encode("utf-8")
        out.append(
            f"From: {sender}\r\nTo: support@shop.example.com\r\nMessage-ID: <m{i}@example.jp>\r\n{reply}{head}"
            "MIME-Version: 1.0\r\n\r\n".encode("ascii")
            + data
        )
    return out


def floor(raws: list[bytes], path: str) -> float:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, sender TEXT, subject TEXT, body TEXT, raw BLOB)")
    start = time.perf_counter()
    for raw in raws:
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        part = mail.get_body(preferencelist=("plain", "html"))
        try:
            text = part.get_content() if part is not None else ""
        except (LookupError, UnicodeDecodeError):
            text = ""
        with conn:
            conn.execute(
                "INSERT INTO m (sender, subject, body, raw) VALUES (?, ?, ?, ?)",
                (str(mail["From"]), str(mail["Subject"]), text, raw),
            )
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def ours(raws: list[bytes], path: str) -> float:
    os.environ["KIZUNA_DATABASE_URL"] = f"sqlite:///{path}"
    from kizuna.auth.permissions import Actor
    from kizuna.db import get_engine, migrate, new_session
    from kizuna.inquiries import email_in
    from kizuna.outbox import registry

    engine = get_engine()
    migrate(engine)
    registry.load()  # what a server does at start (the subscriber modules' imports are not e-mail work)
    actor = Actor.system("bench", origin="api")
    start = time.perf_counter()
    for raw in raws:
        with new_session(engine) as session:
            email_in.receive(session, actor=actor, raw=raw)
            session.commit()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=2000)
    args = parser.parse_args()
    raws = mails(args.mails)
    with tempfile.TemporaryDirectory() as place:
        floor_s = floor(raws, f"{place}/floor.db")
        ours_s = ours(raws, f"{place}/kizuna.db")
    n = len(raws)
    print(f"mails: {n}")
    print(f"floor (stdlib parse + one sqlite3 row per mail): {n / floor_s:,.0f} mails/s ({floor_s:.2f} s)")
    print(f"ours  (email_in.receive, one transaction each):  {n / ours_s:,.0f} mails/s ({ours_s:.2f} s)")
    print(f"ours / floor time: {ours_s / floor_s:.1f}x")


if __name__ == "__main__":
    main()
