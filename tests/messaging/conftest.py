"""Fixtures of the messaging tests: real local HTTP servers for LINE and webhook receivers (``http_fakes.py``)."""

from tests.messaging.http_fakes import fake_line, line_env, receiver, receiver6, settings_env  # noqa: F401
from tests.web.conftest import make_user, ui_client  # noqa: F401
