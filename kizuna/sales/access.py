"""Who may change which deal, activity and task: the one place the sales role rules live.

Everyone with access reads everything (``deals:read`` ...). A rep (``deals:write``) changes what they own and
what their teammates own; a manager or admin (``deals:write_all``) changes anything. Services call
``require_edit`` before every write; lists ask ``editable_clause`` so the API, the UI and exports mark (and
filter) the same rows as editable.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor, require
from kizuna.errors import PermissionDenied
from kizuna.sales.models import team_members


def scope_owner_ids(session: Session, actor: Actor) -> set[int] | None:
    """The owners whose records ``actor`` may change: None for "everyone's", else the actor and teammates."""
    if actor.can("deals:write_all"):
        return None
    if actor.user_id is None:
        return set()
    teams = select(team_members.c.team_id).where(team_members.c.user_id == actor.user_id)
    mates = set(session.scalars(select(team_members.c.user_id).where(team_members.c.team_id.in_(teams))))
    return mates | {actor.user_id}


def can_edit(session: Session, actor: Actor, permission: str, owner_id: int | None) -> bool:
    """Whether ``actor`` may change a record of ``owner_id`` under ``permission`` (a record without an owner is
    shared: anyone with the permission may change it)."""
    if not actor.can(permission):
        return False
    owners = scope_owner_ids(session, actor)
    return owners is None or owner_id is None or owner_id in owners


def require_edit(session: Session, actor: Actor, permission: str, owner_id: int | None, *, what: str) -> None:
    require(actor, permission)
    if not can_edit(session, actor, permission, owner_id):
        raise PermissionDenied(
            f"{what} belongs to user {owner_id}, who is neither you nor in your team; ask its owner or a manager",
            key="error.sales_not_yours",
        )


def editable_clause(session: Session, actor: Actor, owner_column: Any, permission: str) -> ColumnElement[bool]:
    """The rows of ``owner_column`` that ``actor`` may change, as a condition (lists, exports, the board)."""
    if not actor.can(permission):
        return false()
    owners = scope_owner_ids(session, actor)
    if owners is None:
        return true()
    return owner_column.is_(None) | owner_column.in_(sorted(owners))
