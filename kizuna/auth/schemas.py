from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from kizuna.schemas import Input, Output, StoredJSON, Text

# Passwords are taken exactly as typed: Input strips text fields, but a space is a valid part of a password.
Password = Annotated[str, StringConstraints(strip_whitespace=False, max_length=200)]
Role = Literal["admin", "manager", "marketer", "sales", "support", "viewer"]


class UserCreate(Input):
    email: str = Field(max_length=320)
    password: Password | None = Field(default=None, min_length=10)
    role: Role
    name: Text = Field(default="", max_length=200)


class PasswordChange(Input):
    current_password: Password
    new_password: Password = Field(min_length=10)


class PasswordSet(Input):
    password: Password = Field(min_length=10)


class PasswordReset(Input):
    password: Password | None = Field(default=None, min_length=10, description="Leave out to generate one.")


class TemporaryPassword(Output):
    temporary_password: str = Field(description="Shown once; the user must replace it at the next UI sign-in.")


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
    must_change_password: bool = False
    created_at: dt.datetime
    locked: bool = Field(default=False, description="Sign-in locked after too many wrong passwords.")


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
