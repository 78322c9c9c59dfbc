"""The UI fixtures (signed-in clients and browser pages) for the desk's chat tab."""

from tests.web.conftest import make_user, sign_in, ui_client

__all__ = ["make_user", "sign_in", "ui_client"]
