"""``kizuna inquiries``: the mail server's pipe (stdin or a file), with exit codes a mail server understands, and
the queue listing."""

from __future__ import annotations

from sqlalchemy import select

from kizuna.inquiries.models import Inquiry
from tests.cli import kizuna
from tests.inquiries.test_email import iso2022jp_mail, sjis_mail


def test_a_piped_mail_opens_a_ticket_and_the_queue_lists_it(db, session, tmp_path):
    piped = kizuna("inquiries", "email-in", engine=db, input=iso2022jp_mail("注文の確認", "よろしく").decode("ascii"))
    assert piped.returncode == 0, piped.stdout
    assert "new inquiry KZ-1" in piped.stdout
    mail = tmp_path / "sjis.eml"
    mail.write_bytes(sjis_mail("①の件", "髙橋です"))
    from_file = kizuna("inquiries", "email-in", "--file", str(mail), engine=db)
    assert from_file.returncode == 0 and "new inquiry KZ-2" in from_file.stdout
    again = kizuna("inquiries", "email-in", "--file", str(mail), engine=db)
    assert "duplicate of KZ-2" in again.stdout
    assert sorted(session.scalars(select(Inquiry.subject))) == ["①の件", "注文の確認"]
    listed = kizuna("inquiries", "list", engine=db)
    assert listed.returncode == 0 and "KZ-1" in listed.stdout and "KZ-2" in listed.stdout


def test_a_mail_the_desk_cannot_use_exits_65_so_the_server_bounces_it(db):
    result = kizuna("inquiries", "email-in", engine=db, input="Subject: nobody\r\n\r\nhello\r\n")
    assert result.returncode == 65 and "From" in result.stdout


def test_imap_poll_without_a_server_configured_says_so(db):
    result = kizuna("inquiries", "imap-poll", engine=db)
    assert result.returncode == 2 and "KIZUNA_INQUIRY_IMAP_HOST" in result.stdout


def test_a_piped_auto_reply_matching_no_ticket_is_ignored_with_exit_0(db, session):
    from kizuna.customers.models import Customer
    from tests.inquiries.test_automail import out_of_office_jp, postfix_dsn

    oof = kizuna("inquiries", "email-in", engine=db, input=out_of_office_jp().decode("ascii"))
    assert oof.returncode == 0 and "ignored: auto_reply" in oof.stdout, oof.stdout
    dsn = kizuna("inquiries", "email-in", engine=db, input=postfix_dsn("<x@elsewhere.example>").decode("ascii"))
    assert dsn.returncode == 0 and "ignored: bounce" in dsn.stdout, dsn.stdout
    assert session.scalars(select(Inquiry)).all() == [] and session.scalars(select(Customer)).all() == []
