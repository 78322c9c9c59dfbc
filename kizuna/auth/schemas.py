from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from kizuna.schemas import Input, Output, StoredJSON, Text

Role = Literal["admin", "manager", "marketer", "sales", "support", "viewer"]


class UserCreate(Input):
    email: str = Field(max_length=320)
    password: str | None = Field(default=None, min_length=10, max_length=200)
    role: Role
    name: Text = Field(default="", max_length=200)


class UserUpdate(Input):
    role: Role
    is_active: bool | None = None


class UserRead(Output):
    id: int
    email: str
    name: str
    role: str
    locale: str | None
    is_active: bool
    created_at: dt.datetime


class TokenCreate(Input):
    name: Text = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, description="Whose token; defaults to yours (admins may name others).")


class TokenRead(Output):
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None


class TokenCreated(TokenRead):
    token: str = Field(description="Shown once; only its hash is stored.")


class AuditRead(Output):
    id: int
    at: dt.datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str | None
    customer_id: int | None
    details: StoredJSON | None
    summary: str
