"""The inquiry tests use the messaging tests' real SMTP sink and settings, and the UI's signed-in clients."""

from __future__ import annotations

from tests.messaging.conftest import configure, mail_ready, send_all, smtp_sink  # noqa: F401
from tests.web.conftest import make_user, sign_in, ui_client  # noqa: F401
