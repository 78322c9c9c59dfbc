"""The UI fixtures (signed-in clients) for the customer pages that need them (the business-card page)."""

from tests.web.conftest import make_user, ui_client

__all__ = ["make_user", "ui_client"]
