"""The sender pump against its floor: N queued marketing mails (all consented) sent to an SMTP sink in another
process, on SQLite with one worker, beside a bare ``smtplib`` loop sending the same rendered mails over one
connection to the same sink.

Goal (issue 14, "Speed"): the pump at 80% or more of the floor's rate. The pump does everything a real send
does: claims batches under a lease, gates them (customer, address, suppression list, consent, quiet hours,
caps), renders the template for each customer (sandboxed Jinja2, personalisation), adds the legal footer,
the one-click unsubscribe headers, click tracking and the open pixel, builds the MIME mail, sends it and commits
"sent" for each message right after the server's answer. The floor only sends bytes rendered beforehand.
Every mail must reach the sink exactly once (counted by Message-ID).

    .venv/bin/python benchmarks/email_send.py                   # 20,000 mails
    .venv/bin/python benchmarks/email_send.py --messages 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TEMPLATE = {
    "name": "bench: spring sale",
    "subject": "{{ customer.given_name | default('お客様') }}さん、春のセールのお知らせ",
    "html": (
        "<html><body><h1>{{ customer.family_name }} {{ customer.given_name | default('') }} 様</h1>"
        "<p>いつもご利用ありがとうございます。{{ customer.prefecture | default('全国') }}のお客様に"
        "春のセールをご案内します。</p>"
        + "".join(
            f'<p><a href="https://shop.example.com/items/{n}?utm_source=mail&amp;utm_campaign=spring">'
            f"おすすめ商品 {n}</a> 期間限定で 20% 引き。</p>"
            for n in range(1, 5)
        )
        + "<p>またのご来店をお待ちしております。</p></body></html>"
    ),
}
IDENTITY = {
    "from_name": "絆ストア",
    "from_address": "news@shop.example.com",
    "postal_address": "東京都千代田区丸の内1-1-1",
    "complaints_contact": "support@shop.example.com",
}
FAMILY = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村"]
GIVEN = ["花子", "太郎", "陽菜", "蓮", "結衣", None]
PREFECTURES = ["東京都", "大阪府", "北海道", None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    def __init__(self, delay_ms: float = 0) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(  # noqa: S603 - our interpreter, our script
            [sys.executable, str(HERE / "smtp_sink.py"), str(self.port), str(delay_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stats(self) -> dict[str, int]:
        return json.loads(self.ask("stats"))

    def cpu(self) -> float:
        """Seconds of CPU the sink process has used (user + system)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def consented_customers(session, count: int) -> list[int]:  # noqa: ANN001
    """``count`` customers, each with a granted email marketing consent; their ids (also journey_email.py's)."""
    from sqlalchemy import insert

    from kizuna.customers.models import Consent, Customer
    from kizuna.db import utcnow

    now = utcnow()
    session.execute(
        insert(Customer),
        [
            {
                "email": f"customer{n}@example.jp",
                "family_name": FAMILY[n % len(FAMILY)],
                "given_name": GIVEN[n % len(GIVEN)],
                "full_name": f"{FAMILY[n % len(FAMILY)]} {GIVEN[n % len(GIVEN)] or ''}".strip(),
                "prefecture": PREFECTURES[n % len(PREFECTURES)],
                "created_at": now,
                "updated_at": now,
            }
            for n in range(count)
        ],
    )
    ids = list(session.scalars(Customer.__table__.select().with_only_columns(Customer.id).order_by(Customer.id)))
    session.execute(
        insert(Consent),
        [
            {"customer_id": cid, "channel": "email", "purpose": "marketing", "status": "granted",
             "method": "web_form", "recorded_at": now, "recorded_by": "bench"}
            for cid in ids
        ],
    )  # fmt: skip
    return ids


def build(engine, messages: int) -> int:  # noqa: ANN001
    """Customers with consent and N queued campaign messages; returns the template id."""
    from kizuna.auth.permissions import Actor
    from kizuna.db import transaction
    from kizuna.messaging import service, settings
    from kizuna.messaging.queue import NewMessage, queue_many
    from kizuna.messaging.schemas import TemplateCreate

    actor = Actor.system("bench")
    with transaction(engine) as s:
        ids = consented_customers(s, messages)
        settings.save(s, actor=actor, channel="email", values=IDENTITY)
        template = service.create_template(s, actor=actor, data=TemplateCreate(**TEMPLATE))
        queue_many(
            s,
            [
                NewMessage(
                    key=f"campaign:1:customer:{cid}",
                    customer_id=cid,
                    channel="email",
                    source="campaign",
                    source_id=1,
                    template_id=template.id,
                )  # fmt: skip
                for cid in ids
            ],
        )
        return template.id


def rendered_mails(engine) -> list[tuple[str, str, bytes]]:  # noqa: ANN001
    """(from, to, bytes) of every queued message, rendered exactly as the sender renders them."""
    from sqlalchemy import select

    from kizuna.db import new_session
    from kizuna.messaging import templates
    from kizuna.messaging.email import EmailBatch
    from kizuna.messaging.models import Message, Template

    with new_session(engine) as s:
        messages = list(s.scalars(select(Message).order_by(Message.id)))
        parts = templates.Parts.of(s.get(Template, messages[0].template_id))
        batch = EmailBatch(s)
        variables = templates.customer_variables(s, [m.customer_id for m in messages])
        out = []
        for m in messages:
            values = {**variables[m.customer_id], "context": {}, **batch.variables(m)}
            content = templates.render(parts, values)
            address = variables[m.customer_id]["customer"]["email"]
            raw = batch.finish(m, address, content, "ja")
            out.append((raw["envelope_from"], address, raw["raw"]))
        return out


def floor(port: int, mails: list[tuple[str, str, bytes]]) -> tuple[float, float]:
    """Seconds of wall time and of this process's CPU."""
    smtp = smtplib.SMTP("127.0.0.1", port)
    started, cpu = time.perf_counter(), time.process_time()
    for sender, to, raw in mails:
        smtp.sendmail(sender, [to], raw)
    elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    smtp.quit()
    return elapsed, used


def pump(engine) -> tuple[float, float]:  # noqa: ANN001
    from kizuna.messaging.sender import send_due

    started, cpu = time.perf_counter(), time.process_time()
    while send_due(engine, worker="bench-worker"):
        pass
    return time.perf_counter() - started, time.process_time() - cpu


def reset_queue(engine) -> None:  # noqa: ANN001
    from sqlalchemy import update

    from kizuna.db import transaction
    from kizuna.messaging.models import Message

    with transaction(engine) as s:
        s.execute(update(Message).values(status="queued", sent_at=None, attempts=0, locked_by=None, locked_until=None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2, help="Floor and pump alternate this many times.")
    parser.add_argument("--batch", type=int, default=None, help="KIZUNA_SEND_BATCH_SIZE (default: the setting's).")
    args = parser.parse_args()
    data = HERE / "data"
    data.mkdir(exist_ok=True)
    db_path = data / "email_send.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    sink = Sink()
    os.environ.update(
        KIZUNA_DATABASE_URL=f"sqlite:///{db_path}",
        KIZUNA_HOME=str(data / "email_send_home"),
        KIZUNA_SMTP_URL=f"smtp://127.0.0.1:{sink.port}",
        KIZUNA_PUBLIC_URL="https://crm.example.com",
    )
    if args.batch:
        os.environ["KIZUNA_SEND_BATCH_SIZE"] = str(args.batch)
    from kizuna.config import get_settings
    from kizuna.db import make_engine, migrate

    engine = make_engine(get_settings().resolved_database_url)
    migrate(engine)
    build(engine, args.messages)
    mails = rendered_mails(engine)
    size = sum(len(raw) for _, _, raw in mails) / len(mails)
    print(f"{args.messages:,} marketing mails of {size:,.0f} bytes, SQLite, one worker, sink in another process, "
          f"batch {get_settings().send_batch_size}", flush=True)  # fmt: skip
    try:
        for n in range(1, args.rounds + 1):
            sink.ask("reset")
            sink_cpu = sink.cpu()
            floor_s, floor_cpu = floor(sink.port, mails)
            floor_sink = sink.cpu() - sink_cpu
            sink.ask("reset")
            if n > 1:
                reset_queue(engine)
            sink_cpu = sink.cpu()
            pump_s, pump_cpu = pump(engine)
            pump_sink = sink.cpu() - sink_cpu
            stats = sink.stats()
            once = stats["received"] == stats["unique"] == args.messages
            floor_rate, pump_rate = args.messages / floor_s, args.messages / pump_s
            ratio = pump_rate / floor_rate
            print(
                f"round {n}: floor (smtplib loop) {floor_rate:,.0f} mails/s ({floor_s:.2f} s); "
                f"sender pump {pump_rate:,.0f} mails/s ({pump_s:.2f} s); pump/floor {ratio:.0%} "
                f"(goal >= 80%: {'PASS' if ratio >= 0.8 else 'FAIL'}); "
                f"every mail received exactly once: {'yes' if once else f'NO {stats}'}",
                flush=True,
            )
            per = 1e6 / args.messages
            print(
                f"         CPU per mail: floor client {floor_cpu * per:,.0f} µs + sink {floor_sink * per:,.0f} µs; "
                f"pump {pump_cpu * per:,.0f} µs + sink {pump_sink * per:,.0f} µs; "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    finally:
        sink.close()


if __name__ == "__main__":
    main()
