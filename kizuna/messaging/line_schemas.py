"""Request and response bodies of the LINE and webhook endpoints (``api_line.py``)."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from kizuna.schemas import Input, Output


class LineSettingsRead(Output):
    api_base: str
    token_set: bool
    token_hint: str = Field(description="The token's last four characters; the token itself is never shown.")
    token_source: str = Field(description="saved (on the settings page), environment, none, or unreadable.")
    secret_set: bool
    secret_source: str
    bot_basic_id: str | None
    webhook_path: str = Field(description="The path to give LINE as the webhook URL (after the site's address).")
    updated_at: dt.datetime | None
    updated_by: str


class LineSettingsUpdate(Input):
    channel_token: str | None = Field(default=None, max_length=1000, description='Stored encrypted; "" clears it.')
    channel_secret: str | None = Field(default=None, max_length=200, description='Stored encrypted; "" clears it.')
    api_base: str | None = Field(default=None, max_length=500)
    bot_basic_id: str | None = Field(default=None, max_length=64, description="The account's LINE ID, e.g. @abc1234.")


class QuotaRead(Output):
    type: str | None = Field(description="limited (a monthly cap) or none.")
    limit: int | None
    used: int
    remaining: int | None


class LinkRequest(Input):
    customer_id: int


class LinkOfferRead(Output):
    url: str = Field(description="The page the customer opens (put it in a mail or on the website).")
    code: str = Field(description="The code the page asks the customer to send to the LINE account.")
    expires_at: dt.datetime


class LinkTokenRequest(Input):
    line_user_id: str = Field(max_length=64)


class LinkTokenRead(Output):
    link_token: str


class AccountLinkRequest(Input):
    customer_id: int
    link_token: str = Field(max_length=200)


class AccountLinkRead(Output):
    redirect_url: str = Field(description="Send the LINE user here; LINE then reports the link to the webhook.")


class WebhookResult(Output):
    handled: dict[str, int]


class EndpointCreate(Input):
    name: str = Field(max_length=100)
    url: str = Field(max_length=2000)


class EndpointUpdate(Input):
    url: str | None = Field(default=None, max_length=2000)
    active: bool | None = None


class EndpointRead(Output):
    id: int
    name: str
    url: str
    active: bool
    created_at: dt.datetime
    created_by: str
    rotated_at: dt.datetime | None


class EndpointWithSecret(EndpointRead):
    secret: str = Field(description="The signing secret: shown this once, store it in the receiver.")


class AllowCreate(Input):
    entry: str = Field(max_length=255, description="A host name, an address or a network (10.0.0.0/8).")
    note: str = Field(default="", max_length=200)


class AllowRead(Output):
    id: int
    entry: str
    note: str
    created_at: dt.datetime
    created_by: str


class UrlSecretRequest(Input):
    url: str = Field(max_length=2000)


class UrlSecretRead(Output):
    url: str
    secret: str
