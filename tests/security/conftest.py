"""The UI fixtures, for the security tests that drive pages as well as the API."""

from tests.web.conftest import csrf_of, make_user, ui_client  # noqa: F401
