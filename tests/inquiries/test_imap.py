"""E-mail in over IMAP with a real IMAP server (Dovecot, started for the test in a temporary directory): the
worker's poll threads unread mail into the desk once, marks it seen after commit, and survives a bad mail."""

from __future__ import annotations

import getpass
import imaplib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kizuna.inquiries import imap
from kizuna.inquiries.models import Inquiry, InquiryMessage
from tests.conftest import free_port
from tests.inquiries.test_email import iso2022jp_mail, sjis_mail

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "support@example.com", "imap-secret-1"


@dataclass
class Mailbox:
    port: int

    def append(self, raw: bytes) -> None:
        with imaplib.IMAP4("127.0.0.1", self.port) as client:
            client.login(USER, PASSWORD)
            client.append("INBOX", None, None, raw)

    def unseen(self) -> int:
        with imaplib.IMAP4("127.0.0.1", self.port) as client:
            client.login(USER, PASSWORD)
            client.select("INBOX")
            _, found = client.uid("SEARCH", None, "UNSEEN")
            return len((found[0] or b"").split())


@pytest.fixture
def mailbox(configure) -> Iterator[Mailbox]:  # noqa: ANN001
    with tempfile.TemporaryDirectory(prefix="kizuna-imap-") as place:
        yield from _dovecot(Path(place), configure)


def _dovecot(tmp_path: Path, configure) -> Iterator[Mailbox]:  # noqa: ANN001
    # Not pytest's tmp_path: its parents are private to the test's user, and Dovecot's own users must reach in.
    if not Path(DOVECOT).exists():
        pytest.fail("the IMAP tests need Dovecot (apt-get install -y dovecot-imapd)")
    port = free_port()
    # As root, mail is kept as Dovecot's own user; otherwise everything runs as the current user.
    root = os.geteuid() == 0
    internal, login, owner = ("dovecot", "dovenull", "dovecot") if root else (getpass.getuser(),) * 3
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "state").mkdir()
    (tmp_path / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    if root:
        shutil.chown(home, owner, owner)
        tmp_path.chmod(0o755)
    config = tmp_path / "dovecot.conf"
    config.write_text(
        f"""base_dir = {tmp_path}/run
state_dir = {tmp_path}/state
log_path = {tmp_path}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 0
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {tmp_path}/users
}}
userdb {{
  driver = static
  args = uid={owner} gid={owner} home={home}/%u
}}
mail_location = maildir:~/Maildir
"""
    )
    subprocess.run([DOVECOT, "-c", str(config)], check=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with imaplib.IMAP4("127.0.0.1", port) as client:
                    client.login(USER, PASSWORD)
                break
            except (OSError, imaplib.IMAP4.error):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        configure(
            inquiry_imap_host="127.0.0.1", inquiry_imap_port=port, inquiry_imap_ssl="false",
            inquiry_imap_user=USER, inquiry_imap_password=PASSWORD, inquiry_imap_folder="INBOX",
        )  # fmt: skip
        yield Mailbox(port)
    finally:
        subprocess.run([DOVECOT, "-c", str(config), "stop"], check=False)


def test_the_poll_threads_unread_mail_once_and_marks_it_seen(db, session, mailbox):
    mailbox.append(iso2022jp_mail("注文の確認", "注文番号１２３の件です。"))
    mailbox.append(sjis_mail("①の商品", "髙橋です～"))
    mailbox.append(b"Subject: no sender\r\nMessage-ID: <bad@example.jp>\r\n\r\nwho am I\r\n")
    result = imap.poll(db)
    assert (result.read, result.threaded, len(result.refused)) == (3, 2, 1)
    assert "From" in result.refused[0]
    assert mailbox.unseen() == 0
    subjects = set(session.scalars(select(Inquiry.subject)))
    assert subjects == {"注文の確認", "①の商品"}
    assert imap.poll(db).read == 0  # nothing unread is left: nothing is threaded twice


def test_a_reply_read_over_imap_joins_its_thread(db, session, mailbox, client):
    opened = client.post("/api/v1/inquiries", json={"subject": "配送", "email": "yamada@example.jp"}).json()
    mailbox.append(iso2022jp_mail(f"Re: [#KZ-{opened['id']}] 配送", "届きました", msgid="<r1@example.jp>"))
    imap.poll(db)
    assert session.scalar(select(func.count()).select_from(Inquiry)) == 1
    assert session.scalars(select(InquiryMessage.body).where(InquiryMessage.inquiry_id == opened["id"])).all() == [
        "届きました"
    ]


def test_the_worker_pump_polls_on_its_schedule(db, mailbox, configure):
    configure(inquiry_imap_poll_seconds=3600)
    imap._last_poll = None
    mailbox.append(iso2022jp_mail("ポンプ", "定期取得"))
    assert imap.imap_pump(db, "w1") == 1
    mailbox.append(iso2022jp_mail("次", "まだ読まない", msgid="<n2@example.jp>"))
    assert imap.imap_pump(db, "w1") == 0  # within the interval: no poll
    assert mailbox.unseen() == 1


def test_auto_replies_and_bounces_read_over_imap_open_nothing_and_are_counted(db, session, mailbox):
    from tests.inquiries.test_automail import out_of_office_jp, postfix_dsn

    mailbox.append(out_of_office_jp())
    mailbox.append(postfix_dsn("<x@elsewhere.example>"))
    mailbox.append(iso2022jp_mail("注文の確認", "人が書いたメール", msgid="<person@example.jp>"))
    result = imap.poll(db)
    assert (result.read, result.threaded, result.automatic, result.ignored) == (3, 3, 2, 2)
    assert mailbox.unseen() == 0
    assert set(session.scalars(select(Inquiry.subject))) == {"注文の確認"}
